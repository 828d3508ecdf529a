"""Exact decimals and money (ledger.money): what is read, how it is rounded, how it is shown."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.money import (
    EXACT,
    DecimalFormatError,
    format_decimal,
    format_money,
    parse_decimal,
    round_money,
    to_micro,
)

# parse_decimal ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.50", "12.50"),
        ("0", "0"),
        ("-3.25", "-3.25"),
        (".5", "0.5"),
        ("+7", "7"),
        (12, "12"),
        (-40, "-40"),
        (10**20, "100000000000000000000"),
        (Decimal("0.1"), "0.1"),
        (Decimal("-1E-7"), "-1E-7"),
        ("1e-7", "1E-7"),
        ("1E+3", "1E+3"),
        ("-2.5E-2", "-0.025"),
        ("1.000000000000000001", "1.000000000000000001"),
        ("123456789012345678901234567890", "123456789012345678901234567890"),
    ],
)
def test_parse_decimal_reads_strings_ints_decimals_and_exponents_exactly(
    value: object, expected: str
) -> None:
    result = parse_decimal(value)
    assert isinstance(result, Decimal)
    assert result == Decimal(expected)


def test_parse_decimal_keeps_the_digits_as_sent() -> None:
    # "12.50" is not turned into 12.5 or 12.500000001: the exact text survives.
    assert str(parse_decimal("12.50")) == "12.50"
    assert str(parse_decimal("0.1")) == "0.1"


@pytest.mark.parametrize(
    "value",
    [0.1, 12.0, 1e-7, float("nan"), float("inf")],
    ids=["0.1", "12.0", "1e-7", "nan", "inf"],
)
def test_parse_decimal_refuses_binary_floats(value: float) -> None:
    with pytest.raises(DecimalFormatError, match="float"):
        parse_decimal(value)


@pytest.mark.parametrize("value", [True, False])
def test_parse_decimal_refuses_booleans_although_they_are_ints(value: bool) -> None:
    with pytest.raises(DecimalFormatError):
        parse_decimal(value)


@pytest.mark.parametrize(
    "value",
    [
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-Infinity",
        "inf",
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
    ],
    ids=str,
)
def test_parse_decimal_refuses_nan_and_infinities(value: object) -> None:
    with pytest.raises(DecimalFormatError):
        parse_decimal(value)


@pytest.mark.parametrize(
    "value",
    ["1,000", " 12", "12 ", "", " ", "12.5.1", "0x10", "1_000", "1e", "e5", "--1", "12abc", "½"],
    ids=repr,
)
def test_parse_decimal_refuses_text_with_spaces_separators_or_garbage(value: str) -> None:
    with pytest.raises(DecimalFormatError, match=re.escape(repr(value))):
        parse_decimal(value)


@pytest.mark.parametrize(
    "value",
    ["1E+31", "-1E+31", "1e999999999999", "9.9E+999", Decimal("1E+31")],
    ids=str,
)
def test_parse_decimal_refuses_huge_exponents(value: object) -> None:
    with pytest.raises(DecimalFormatError, match="too large"):
        parse_decimal(value)


@pytest.mark.parametrize("value", ["1E-19", "1e-999999999", "0.0000000000000000001"])
def test_parse_decimal_refuses_more_than_eighteen_places(value: str) -> None:
    with pytest.raises(DecimalFormatError, match="decimal places"):
        parse_decimal(value)


def test_parse_decimal_accepts_the_limits_themselves() -> None:
    # The bounds are inclusive: 1E+30 and 18 places are still read.
    assert parse_decimal("1E+30") == Decimal(10) ** 30
    assert parse_decimal("1E-18") == Decimal("0.000000000000000001")


@pytest.mark.parametrize("value", [None, [], {}, object()], ids=repr)
def test_parse_decimal_refuses_other_types(value: object) -> None:
    with pytest.raises(DecimalFormatError):
        parse_decimal(value)


def test_a_decimal_format_error_is_a_value_error() -> None:
    # Callers that only know the standard library still catch it.
    assert issubclass(DecimalFormatError, ValueError)


# round_money -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exact", "rounded"),
    [
        ("2.675", "2.68"),  # exactly half a cent: up
        ("2.665", "2.67"),  # half up, not half even (half even would give 2.66)
        ("0.005", "0.01"),
        ("5.005", "5.01"),
        ("2.6749999999", "2.67"),  # just under half: down
        ("0.0049999", "0.00"),
        ("100", "100.00"),
        ("1E+3", "1000.00"),
        ("12.5", "12.50"),
        ("-2.675", "-2.68"),  # negative halves go away from zero (ROUND_HALF_UP)
        ("-2.6749", "-2.67"),
    ],
)
def test_round_money_rounds_half_up_to_cents(exact: str, rounded: str) -> None:
    result = round_money(Decimal(exact))
    assert result == Decimal(rounded)
    assert result.as_tuple().exponent == -2  # always exactly cents


@pytest.mark.parametrize("exact", ["-0", "-0.00", "-0.004", "-0.0049999", "-1E-20", "0E+5"])
def test_round_money_never_gives_negative_zero(exact: str) -> None:
    result = round_money(Decimal(exact))
    assert result.is_zero()
    assert not result.is_signed()
    assert str(result) == "0.00"


# format_money -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("5750", "5750.00"),
        ("12.5", "12.50"),
        ("0", "0.00"),
        ("-0.001", "0.00"),
        ("1E+3", "1000.00"),
        ("1.5E+7", "15000000.00"),
        ("2.675", "2.68"),
        ("-12.345", "-12.35"),
        ("0.1", "0.10"),
    ],
)
def test_format_money_always_shows_two_decimals(value: str, text: str) -> None:
    assert format_money(Decimal(value)) == text


# format_decimal ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1500", "1500"),
        ("1.5E+3", "1500"),
        ("1500.000", "1500"),
        ("100", "100"),  # normalize alone would say 1E+2
        ("12.50", "12.5"),
        ("-12.500", "-12.5"),
        ("1E-7", "0.0000001"),
        ("0.000", "0"),
        ("-0", "0"),
        ("0E+10", "0"),
        ("0.05", "0.05"),
        ("1E+30", "1" + "0" * 30),
    ],
)
def test_format_decimal_has_no_exponent_and_no_redundant_zeros(value: str, text: str) -> None:
    assert format_decimal(Decimal(value)) == text


# to_micro ----------------------------------------------------------------------------------


def _micro_by_scaling(value: Decimal) -> int | None:
    """The definition: the value times a million, when that is a whole number under 2**62."""
    scaled = EXACT.multiply(value, Decimal(1_000_000))
    micro = int(scaled)
    return micro if micro == scaled and -(1 << 62) < micro < (1 << 62) else None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.50", 12_500_000), ("0", 0), ("-0", 0), ("-0.000001", -1), ("0.0000001", None),
        ("1.0000000", 1_000_000), ("5E+3", 5_000_000_000), ("1E-6", 1), ("1E-7", None),
        ("4611686018427.387903", (1 << 62) - 1), ("4611686018427.387904", None),
        ("-4611686018427.387903", -(1 << 62) + 1), ("-4611686018427.387904", None),
        ("123456789012345678901234567890.123456789012345678", None),
    ],
)
def test_to_micro_examples(text: str, expected: int | None) -> None:
    assert to_micro(Decimal(text)) == expected
    assert _micro_by_scaling(Decimal(text)) == expected


@given(st.decimals(allow_nan=False, allow_infinity=False, places=None,
                   min_value=Decimal("-1e20"), max_value=Decimal("1e20")))
def test_to_micro_is_the_value_in_millionths(value: Decimal) -> None:
    assert to_micro(value) == _micro_by_scaling(value)
