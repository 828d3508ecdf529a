"""Exact decimals and money: parsing, rounding and formatting.

Money is `Decimal`, never float. Arithmetic runs in a wide context so that sums, products and
the one division of the forecast method stay exact (or, for that division, exact to 60 digits)
until the single half-up rounding to cents that the contract prescribes (section 2.7).
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal(0)

#: Precision of the arithmetic context: far wider than any amount a ledger meets, so that
#: products and sums are exact and only the forecast division is ever cut (at 60 digits).
PRECISION_DIGITS = 60
EXACT = Context(prec=PRECISION_DIGITS, rounding=ROUND_HALF_UP)

_DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

#: Largest exponent we accept in input (1E+30 is already beyond any real basis or amount).
_EXPONENT_MAX = 30
#: Most digits after the decimal point accepted in input.
_PLACES_MAX = 18


class DecimalFormatError(ValueError):
    """A value that is not an exact decimal number."""


def parse_decimal(value: object) -> Decimal:
    """Read a JSON string or JSON number as an exact `Decimal`.

    Accepts `"12.50"`, `12`, and `Decimal` (what a JSON float becomes when the line is decoded
    with `parse_float=Decimal`). Refuses floats, booleans, NaN, infinities and text with spaces
    or separators, so that nothing ever passes through binary floating point.
    """
    if isinstance(value, bool):
        raise DecimalFormatError(f"expected a decimal number, got {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        if not _DECIMAL_TEXT.fullmatch(value):
            raise DecimalFormatError(f"expected a decimal number such as \"12.50\", got {value!r}")
        try:
            result = Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - the pattern already guards this
            raise DecimalFormatError(f"expected a decimal number, got {value!r}") from exc
    elif isinstance(value, float):
        raise DecimalFormatError(
            f"got a binary float {value!r}; send decimals as JSON strings or numbers"
        )
    else:
        raise DecimalFormatError(f"expected a decimal number, got {type(value).__name__}")
    if not result.is_finite():
        raise DecimalFormatError(f"expected a finite decimal number, got {value!r}")
    exponent = result.as_tuple().exponent
    assert isinstance(exponent, int)
    if result != 0 and result.adjusted() > _EXPONENT_MAX:
        raise DecimalFormatError(f"{value!r} is too large (more than 1E+{_EXPONENT_MAX})")
    places_unit = Decimal(1).scaleb(-_PLACES_MAX)
    if -exponent > _PLACES_MAX and result != result.quantize(places_unit, context=EXACT):
        raise DecimalFormatError(f"{value!r} has more than {_PLACES_MAX} decimal places")
    return result


def round_money(value: Decimal) -> Decimal:
    """Round once to cents, half up (contract 2.7); never returns negative zero."""
    rounded = value.quantize(CENT, rounding=ROUND_HALF_UP, context=EXACT)
    return rounded + ZERO if rounded.is_zero() else rounded


def format_money(value: Decimal) -> str:
    """Money with exactly two decimals: `"5750.00"`."""
    return f"{round_money(value):.2f}"


def format_decimal(value: Decimal) -> str:
    """A decimal as plain text without exponent or redundant trailing zeros: `"1500"`, `"12.5"`."""
    if value.is_zero():
        return "0"
    text = f"{value.normalize(context=EXACT):f}"
    return text


def to_micro(value: Decimal) -> int | None:
    """The value in millionths as an integer when that is exact and fits 62 bits, else None.

    The core projection stores basis quantities and amounts this way so that the database can
    add them; rows that do not fit fall back to exact text summed in Python. Computed from the
    value's exact fraction (n / d, in lowest terms): it is a whole number of millionths
    exactly when d divides a million; half the cost of scaling the Decimal and comparing
    (twice per sale on the apply path).
    """
    numerator, denominator = value.as_integer_ratio()
    if _MICROS_PER_UNIT % denominator:
        return None
    micro = numerator * (_MICROS_PER_UNIT // denominator)
    if not -_MICRO_LIMIT < micro < _MICRO_LIMIT:
        return None
    return micro


_MICROS_PER_UNIT = 1_000_000
_MICRO_LIMIT = 1 << 62


def from_micro(micro: int) -> Decimal:
    return Decimal(micro).scaleb(-6, context=EXACT)
