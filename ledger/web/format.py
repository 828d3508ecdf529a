"""Figures for people: thousands separators, two decimals, the currency code. Decimal only."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")


def decimal(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def money(value: object, currency: str | None = None) -> str:
    """`1234.5` -> `1,234.50 EUR` (half up to cents, as the ledger reports money)."""
    number = decimal(value)
    if number is None:
        return "" if value is None else str(value)
    text = f"{number.quantize(CENT, ROUND_HALF_UP):,.2f}"
    return f"{text} {currency}" if currency else text


def quantity(value: object) -> str:
    """`1234567.500000` -> `1,234,567.5`: separators, no trailing zeros."""
    number = decimal(value)
    if number is None:
        return "" if value is None else str(value)
    if number == number.to_integral_value():
        return f"{number.quantize(Decimal(1)):,}"
    return f"{number.normalize():,f}"


#: a money figure inside a sentence of the ledger's (`approved 1234.50 > accrued 980.00`,
#: `(+67.50)`): two decimals, not part of a longer number, a date or a time
_FIGURE = re.compile(r"(?<![\d.,:])([+-]?)(0|[1-9]\d*)\.(\d\d)(?![\d.])")


def figures(text: object) -> str:
    """The money figures in one of the ledger's sentences (a reconcile flag) for people:
    `approved 12345.60 > accrued 980.00` -> `approved 12,345.60 > accrued 980.00`. Only the
    separators change; the digits, the sign and the words are the ledger's."""
    return _FIGURE.sub(lambda m: f"{m[1]}{int(m[2]):,}.{m[3]}", str(text))
