"""The contract's ten commands (section 1) as read from JSON (ledger.commands).

Each rejection must name the field it is about: `error.field` carries it and the reason (the
text kept with the rejection) says it in a sentence with the offending value.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from ledger import Ledger
from ledger.commands import COMMAND_TYPES, AmendAgreement, decode_line, parse_command, parse_line
from ledger.errors import InvalidCommand

D = Decimal

RECORDED_AT = "2025-04-02T09:00:00Z"

#: One valid example of every command, with every optional field given.
VALID: dict[str, dict[str, Any]] = {
    "create_agreement": {
        "type": "create_agreement",
        "agreement_id": "A1",
        "customer_id": "C1",
        "currency": "EUR",
        "period_start": "2025-01-01",
        "period_end": "2025-12-31",
        "basis": "amount",
        "tier_method": "incremental",
        "rate_kind": "percent",
        "tiers": [{"from": "0", "rate": "0.01"}, {"from": "1000", "rate": "0.02"}],
        "products": ["P1", "P2"],
        "cap": "5000",
        "accrual_method": "forecast",
        "forecast_basis": "250000",
        "recorded_at": RECORDED_AT,
    },
    "amend_agreement": {
        "type": "amend_agreement",
        "agreement_id": "A1",
        "effective_from": "2025-04-01",
        "tiers": [{"from": "0", "rate": "1.00"}, {"from": "500", "rate": "1.25"}],
        "cap": "6000",
        "products": ["P1"],
        "period_end": "2026-03-31",
        "basis": "quantity",
        "tier_method": "retroactive",
        "rate_kind": "per_unit",
        "accrual_method": "earned",
        "forecast_basis": "5000",
        "recorded_at": RECORDED_AT,
    },
    "revise_forecast": {
        "type": "revise_forecast",
        "agreement_id": "A1",
        "forecast_basis": "300000",
        "effective_from": "2025-07-01",
        "recorded_at": RECORDED_AT,
    },
    "record_sale": {
        "type": "record_sale",
        "sale_id": "S1",
        "customer_id": "C1",
        "product_id": "P1",
        "quantity": "10",
        "amount": "1250.00",
        "currency": "EUR",
        "invoice_date": "2025-02-03",
        "recorded_at": RECORDED_AT,
    },
    "reverse_sale": {
        "type": "reverse_sale",
        "sale_id": "S1",
        "reversed_on": "2025-02-10",
        "recorded_at": RECORDED_AT,
    },
    "submit_claim": {
        "type": "submit_claim",
        "claim_id": "K1",
        "agreement_id": "A1",
        "amount": "100.00",
        "submitted_on": "2025-04-05",
        "recorded_at": RECORDED_AT,
    },
    "approve_claim": {
        "type": "approve_claim",
        "claim_id": "K1",
        "approved_on": "2025-04-10",
        "approved_amount": "90.00",
        "recorded_at": RECORDED_AT,
    },
    "reject_claim": {
        "type": "reject_claim",
        "claim_id": "K1",
        "rejected_on": "2025-04-10",
        "reason": "no proof of purchase",
        "recorded_at": RECORDED_AT,
    },
    "settle_claim": {
        "type": "settle_claim",
        "claim_id": "K1",
        "paid_on": "2025-04-20",
        "payment_ref": "PAY-1",
        "paid_amount": "90.00",
        "recorded_at": RECORDED_AT,
    },
    "write_off": {
        "type": "write_off",
        "agreement_id": "A1",
        "amount": "10.00",
        "effective_date": "2025-12-31",
        "reason": "customer insolvent",
        "recorded_at": RECORDED_AT,
    },
}

#: The contract's table of required fields (section 1).
REQUIRED: dict[str, tuple[str, ...]] = {
    "create_agreement": (
        "agreement_id",
        "customer_id",
        "currency",
        "period_start",
        "period_end",
        "basis",
        "tier_method",
        "rate_kind",
        "tiers",
    ),
    "amend_agreement": ("agreement_id", "effective_from"),
    "revise_forecast": ("agreement_id", "forecast_basis", "effective_from"),
    "record_sale": (
        "sale_id",
        "customer_id",
        "product_id",
        "quantity",
        "amount",
        "currency",
        "invoice_date",
    ),
    "reverse_sale": ("sale_id", "reversed_on"),
    "submit_claim": ("claim_id", "agreement_id", "amount", "submitted_on"),
    "approve_claim": ("claim_id", "approved_on"),
    "reject_claim": ("claim_id", "rejected_on", "reason"),
    "settle_claim": ("claim_id", "paid_on", "payment_ref"),
    "write_off": ("agreement_id", "amount", "effective_date", "reason"),
}

ID_FIELDS = {
    "create_agreement": ("agreement_id", "customer_id"),
    "amend_agreement": ("agreement_id",),
    "revise_forecast": ("agreement_id",),
    "record_sale": ("sale_id", "customer_id", "product_id"),
    "reverse_sale": ("sale_id",),
    "submit_claim": ("claim_id", "agreement_id"),
    "approve_claim": ("claim_id",),
    "reject_claim": ("claim_id",),
    "settle_claim": ("claim_id",),
    "write_off": ("agreement_id",),
}

DATE_FIELDS = {
    "create_agreement": ("period_start", "period_end"),
    "amend_agreement": ("effective_from", "period_end"),
    "revise_forecast": ("effective_from",),
    "record_sale": ("invoice_date",),
    "reverse_sale": ("reversed_on",),
    "submit_claim": ("submitted_on",),
    "approve_claim": ("approved_on",),
    "reject_claim": ("rejected_on",),
    "settle_claim": ("paid_on",),
    "write_off": ("effective_date",),
}

#: Decimal fields that the contract says must be > 0 where given.
POSITIVE_FIELDS = {
    "create_agreement": ("cap", "forecast_basis"),
    "amend_agreement": ("cap", "forecast_basis"),
    "revise_forecast": ("forecast_basis",),
    "submit_claim": ("amount",),
    "approve_claim": ("approved_amount",),
    "settle_claim": ("paid_amount",),
    "write_off": ("amount",),
}

DECIMAL_FIELDS = {**POSITIVE_FIELDS, "record_sale": ("quantity", "amount")}


def pairs(table: dict[str, tuple[str, ...]]) -> list[Any]:
    return [
        pytest.param(kind, name, id=f"{kind}.{name}")
        for kind, names in table.items()
        for name in names
    ]


def line(command: dict[str, Any]) -> bytes:
    return orjson.dumps(command)


def with_(kind: str, **changes: Any) -> dict[str, Any]:
    return {**VALID[kind], **changes}


def without(kind: str, name: str) -> dict[str, Any]:
    return {key: value for key, value in VALID[kind].items() if key != name}


def rejected(command: dict[str, Any] | bytes) -> InvalidCommand:
    """The rejection of a command given as a dict or as a raw JSON line."""
    with pytest.raises(InvalidCommand) as caught:
        if isinstance(command, bytes):
            parse_line(command)
        else:
            parse_line(line(command))
    return caught.value


def assert_names(error: InvalidCommand, field: str) -> None:
    """The rejection is about `field` and its reason says so."""
    assert error.field == field, str(error)
    assert field in str(error)


# Valid commands --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(VALID))
def test_a_valid_example_of_each_command_parses(kind: str) -> None:
    command = parse_line(line(VALID[kind]))
    assert isinstance(command, COMMAND_TYPES[kind])
    assert command.kind == kind
    assert command.recorded_at == datetime(2025, 4, 2, 9, 0, tzinfo=UTC)
    for name in DECIMAL_FIELDS.get(kind, ()):
        assert getattr(command, name) == D(VALID[kind][name])
        assert isinstance(getattr(command, name), Decimal)


@pytest.mark.parametrize("kind", list(VALID))
def test_a_dict_parses_like_its_json_line(kind: str) -> None:
    assert parse_command(VALID[kind]) == parse_line(line(VALID[kind]))


@pytest.mark.parametrize("kind", list(VALID))
def test_optional_fields_may_be_left_out(kind: str) -> None:
    minimal = {"type": kind} | {name: VALID[kind][name] for name in REQUIRED[kind]}
    if kind == "amend_agreement":
        minimal["cap"] = "100"  # an amendment has to change something
    command = parse_line(line(minimal))
    assert command.recorded_at is None  # the ledger's clock will stamp it


def test_create_agreement_defaults_to_the_earned_method_every_product_and_no_cap() -> None:
    minimal = {"type": "create_agreement"} | {
        name: VALID["create_agreement"][name] for name in REQUIRED["create_agreement"]
    }
    command = parse_line(line(minimal))
    assert command.accrual_method == "earned"  # type: ignore[attr-defined]
    assert command.products is None  # type: ignore[attr-defined]
    assert command.cap is None  # type: ignore[attr-defined]


def test_tiers_are_read_in_order_with_from_as_threshold() -> None:
    command = parse_line(line(VALID["create_agreement"]))
    tiers = [tier.to_tier() for tier in command.tiers]  # type: ignore[attr-defined]
    assert [(t.threshold, t.rate) for t in tiers] == [(D("0"), D("0.01")), (D("1000"), D("0.02"))]


# Missing, unknown and mistyped fields --------------------------------------------------


@pytest.mark.parametrize(("kind", "name"), pairs(REQUIRED))
def test_each_required_field_is_needed(kind: str, name: str) -> None:
    error = rejected(without(kind, name))
    assert_names(error, name)
    assert "required" in str(error)
    assert kind in str(error)


def test_a_command_without_a_type_is_refused() -> None:
    error = rejected(without("record_sale", "type"))
    assert_names(error, "type")


def test_an_unknown_command_type_is_refused_naming_the_type() -> None:
    error = rejected(with_("record_sale", type="record_sales"))
    assert_names(error, "type")
    assert "record_sales" in str(error)


@pytest.mark.parametrize("kind", list(VALID))
def test_unknown_fields_are_refused(kind: str) -> None:
    error = rejected(with_(kind, colour="red"))
    assert_names(error, "colour")
    assert "not a field" in str(error)


def test_an_unknown_field_inside_a_tier_is_refused() -> None:
    tiers = [{"from": "0", "rate": "0.01", "cap": "10"}]
    assert_names(rejected(with_("create_agreement", tiers=tiers)), "tiers[0].cap")


def test_a_tier_without_a_rate_is_refused() -> None:
    assert_names(rejected(with_("create_agreement", tiers=[{"from": "0"}])), "tiers[0].rate")


@pytest.mark.parametrize(("kind", "name"), pairs(ID_FIELDS))
@pytest.mark.parametrize("value", [5, True, ["X"], ""], ids=["number", "bool", "list", "empty"])
def test_an_id_must_be_a_non_empty_string(kind: str, name: str, value: Any) -> None:
    assert_names(rejected(with_(kind, **{name: value})), name)


@pytest.mark.parametrize(("kind", "name"), pairs(ID_FIELDS))
def test_an_id_sent_as_a_json_number_with_a_fraction_is_refused(kind: str, name: str) -> None:
    raw = line(VALID[kind]).replace(
        f'"{name}":"{VALID[kind][name]}"'.encode(), f'"{name}":1.5'.encode()
    )
    assert b"1.5" in raw
    error = rejected(raw)
    assert_names(error, name)
    assert "1.5" in str(error)


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("create_agreement", "tiers"),
        ("create_agreement", "products"),
        ("amend_agreement", "tiers"),
        ("amend_agreement", "products"),
    ],
)
def test_a_string_where_a_list_belongs_is_refused(kind: str, name: str) -> None:
    error = rejected(with_(kind, **{name: "P1"}))
    assert_names(error, name)
    assert "array" in str(error)


def test_a_number_in_the_products_list_is_refused_naming_its_position() -> None:
    assert_names(rejected(with_("create_agreement", products=["P1", 7])), "products[1]")


@pytest.mark.parametrize(("kind", "name"), pairs(DECIMAL_FIELDS))
@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_where_a_decimal_belongs_is_refused(kind: str, name: str, value: bool) -> None:
    error = rejected(with_(kind, **{name: value}))
    assert_names(error, name)
    assert str(value).lower() in str(error)


@pytest.mark.parametrize("name", ["from", "rate"])
def test_a_boolean_in_a_tier_is_refused(name: str) -> None:
    tier = {"from": "0", "rate": "0.01"} | {name: True}
    assert_names(rejected(with_("create_agreement", tiers=[tier])), f"tiers[0].{name}")


@pytest.mark.parametrize(("kind", "name"), pairs(DECIMAL_FIELDS))
@pytest.mark.parametrize("value", ["abc", "NaN", "Infinity", "1,000", ""])
def test_text_that_is_not_a_finite_decimal_is_refused(kind: str, name: str, value: str) -> None:
    assert_names(rejected(with_(kind, **{name: value})), name)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("basis", "units"),
        ("tier_method", "stepped"),
        ("rate_kind", "fixed"),
        ("accrual_method", "cash"),
        ("accrual_method", None),
    ],
)
def test_a_value_outside_a_fixed_choice_is_refused(name: str, value: Any) -> None:
    error = rejected(with_("create_agreement", **{name: value}))
    assert_names(error, name)


@pytest.mark.parametrize(
    ("kind", "name"),
    [("reject_claim", "reason"), ("write_off", "reason"), ("settle_claim", "payment_ref")],
)
def test_an_empty_text_field_is_refused(kind: str, name: str) -> None:
    assert_names(rejected(with_(kind, **{name: ""})), name)


# Exact decimals from JSON numbers --------------------------------------------------------


def test_decode_line_reads_json_numbers_with_fractions_as_exact_decimals() -> None:
    decoded = decode_line(
        b'{"a": 0.1, "b": 1e-7, "c": 12.50, "d": 12345678901234567.89, "e": [0.5], "f": 3}'
    )
    assert decoded["a"] == D("0.1")
    assert decoded["b"] == D("1E-7")
    assert str(decoded["c"]) == "12.50"  # the digits as sent, trailing zero kept
    # A float would have made this 12345678901234568.0.
    assert decoded["d"] == D("12345678901234567.89")
    assert decoded["e"] == [D("0.5")]
    assert decoded["f"] == 3
    for key in "abcd":
        assert isinstance(decoded[key], Decimal)


def test_decode_line_without_fractions_reads_integers_exactly() -> None:
    decoded = decode_line(b'{"quantity": 12, "amount": -40}')
    assert decoded == {"quantity": 12, "amount": -40}
    assert all(isinstance(value, int) for value in decoded.values())


def test_decode_line_refuses_broken_json() -> None:
    with pytest.raises(InvalidCommand, match="not valid JSON"):
        decode_line(b'{"type": "record_sale",')


def test_decode_line_reads_integers_beyond_64_bits_exactly() -> None:
    decoded = decode_line(b'{"quantity": 123456789012345678901234567890}')
    assert not isinstance(decoded["quantity"], float)
    assert decoded["quantity"] == D("123456789012345678901234567890")


def test_json_numbers_in_a_sale_are_read_exactly() -> None:
    raw = (
        b'{"type":"record_sale","sale_id":"S1","customer_id":"C1","product_id":"P1",'
        b'"quantity":0.1,"amount":1e-7,"currency":"EUR","invoice_date":"2025-02-03"}'
    )
    command = parse_line(raw)
    assert command.quantity == D("0.1")  # type: ignore[attr-defined]
    assert command.amount == D("1E-7")  # type: ignore[attr-defined]


def test_json_numbers_that_a_float_would_change_are_read_exactly() -> None:
    # Both differ after a round trip through a binary float (12345678901234568, 1.0).
    raw = (
        b'{"type":"record_sale","sale_id":"S1","customer_id":"C1","product_id":"P1",'
        b'"quantity":1.000000000000000001,"amount":12345678901234567.89,"currency":"EUR",'
        b'"invoice_date":"2025-02-03"}'
    )
    command = parse_line(raw)
    assert command.quantity == D("1.000000000000000001")  # type: ignore[attr-defined]
    assert command.amount == D("12345678901234567.89")  # type: ignore[attr-defined]


def test_json_integers_are_read_as_exact_decimals() -> None:
    raw = (
        b'{"type":"record_sale","sale_id":"S1","customer_id":"C1","product_id":"P1",'
        b'"quantity":123456789012345678901234567890,"amount":-40,"currency":"EUR",'
        b'"invoice_date":"2025-02-03"}'
    )
    command = parse_line(raw)
    assert command.quantity == D("123456789012345678901234567890")  # type: ignore[attr-defined]
    assert command.amount == D(-40)  # type: ignore[attr-defined]


def test_a_huge_integer_beside_a_fraction_is_read_or_rejected_never_a_crash() -> None:
    raw = (
        b'{"type":"record_sale","sale_id":"S1","customer_id":"C1","product_id":"P1",'
        b'"quantity":123456789012345678901234567890,"amount":0.5,"currency":"EUR",'
        b'"invoice_date":"2025-02-03"}'
    )
    try:
        command = parse_line(raw)
    except InvalidCommand as error:
        assert_names(error, "quantity")
    else:
        assert command.quantity == D("123456789012345678901234567890")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kind", "name", "number", "expected"),
    [
        ("create_agreement", "cap", b"0.1", "0.1"),
        ("create_agreement", "forecast_basis", b"2.5e5", "250000"),
        ("amend_agreement", "cap", b"99.995", "99.995"),
        ("revise_forecast", "forecast_basis", b"1E+3", "1000"),
        ("submit_claim", "amount", b"100.10", "100.10"),
        ("approve_claim", "approved_amount", b"0.01", "0.01"),
        ("settle_claim", "paid_amount", b"90.05", "90.05"),
        ("write_off", "amount", b"1e-7", "0.0000001"),
    ],
)
def test_every_decimal_field_reads_json_numbers_exactly(
    kind: str, name: str, number: bytes, expected: str
) -> None:
    raw = line(VALID[kind]).replace(
        f'"{name}":"{VALID[kind][name]}"'.encode(), f'"{name}":'.encode() + number
    )
    assert number in raw
    value = getattr(parse_line(raw), name)
    assert isinstance(value, Decimal)
    assert value == D(expected)


def test_tier_thresholds_and_rates_read_json_numbers_exactly() -> None:
    raw = line(VALID["create_agreement"]).replace(
        b'[{"from":"0","rate":"0.01"},{"from":"1000","rate":"0.02"}]',
        b'[{"from":0,"rate":0.015},{"from":1000.5,"rate":2E-2}]',
    )
    assert b"1000.5" in raw
    command = parse_line(raw)
    tiers = [(t.threshold, t.rate) for t in command.tiers]  # type: ignore[attr-defined]
    assert tiers == [(D("0"), D("0.015")), (D("1000.5"), D("0.02"))]


# Currency, dates, timestamps ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["create_agreement", "record_sale"])
@pytest.mark.parametrize(
    "value", ["eur", "Eur", "EURO", "EU", "E1R", "", " EUR", "ÉUR", 978], ids=repr
)
def test_currency_is_three_capital_letters(kind: str, value: Any) -> None:
    assert_names(rejected(with_(kind, currency=value)), "currency")


@pytest.mark.parametrize(("kind", "name"), pairs(DATE_FIELDS))
@pytest.mark.parametrize(
    "value",
    [
        "2025-02-30",
        "2025-13-01",
        "2025-2-3",
        "2025/02/03",
        "03.02.2025",
        "2025-02-03T00:00:00",
        "20250203",
        20250203,
        "",
    ],
    ids=repr,
)
def test_dates_must_be_real_yyyy_mm_dd_dates(kind: str, name: str, value: Any) -> None:
    assert_names(rejected(with_(kind, **{name: value})), name)


def test_a_leap_day_is_a_real_date_only_in_a_leap_year() -> None:
    command = parse_line(line(with_("record_sale", invoice_date="2024-02-29")))
    assert command.invoice_date == date(2024, 2, 29)  # type: ignore[attr-defined]
    assert_names(rejected(with_("record_sale", invoice_date="2025-02-29")), "invoice_date")


@pytest.mark.parametrize("kind", list(VALID))
@pytest.mark.parametrize(
    "value", ["2025-04-02T09:00:00", "2025-04-02", "yesterday", 1743584400], ids=repr
)
def test_recorded_at_needs_a_timestamp_with_an_offset(kind: str, value: Any) -> None:
    assert_names(rejected(with_(kind, recorded_at=value)), "recorded_at")


@pytest.mark.parametrize(
    "value", ["2025-04-02T09:00:00Z", "2025-04-02T11:00:00+02:00", "2025-04-02T04:00:00-05:00"]
)
def test_recorded_at_with_any_offset_is_read_as_the_same_utc_instant(value: str) -> None:
    command = parse_line(line(with_("record_sale", recorded_at=value)))
    assert command.recorded_at == datetime(2025, 4, 2, 9, 0, tzinfo=UTC)
    assert command.recorded_at is not None and command.recorded_at.utcoffset() is not None


# amend_agreement and null ------------------------------------------------------------------


def test_an_amendment_with_a_null_cap_removes_the_cap() -> None:
    raw = line(
        {
            "type": "amend_agreement",
            "agreement_id": "A1",
            "effective_from": "2025-04-01",
            "cap": None,
        }
    )
    command = parse_line(raw)
    assert isinstance(command, AmendAgreement)
    assert command.changes() == {"cap": None}


def test_an_amendment_changes_exactly_the_fields_it_sends() -> None:
    command = parse_line(line(VALID["amend_agreement"]))
    assert isinstance(command, AmendAgreement)
    changes = command.changes()
    expected = set(VALID["amend_agreement"]) - {
        "type",
        "agreement_id",
        "effective_from",
        "recorded_at",
    }
    assert set(changes) == expected
    assert changes["cap"] == D("6000")
    assert changes["period_end"] == date(2026, 3, 31)


@pytest.mark.parametrize(
    "name",
    [
        "tiers",
        "period_end",
        "basis",
        "tier_method",
        "rate_kind",
        "accrual_method",
        "forecast_basis",
    ],
)
def test_an_amendment_may_not_null_any_other_term(name: str) -> None:
    error = rejected(with_("amend_agreement", **{name: None}))
    # Only the reason is checked: the core reports this model-level check with field "".
    assert name in str(error)
    assert "null" in str(error)


@pytest.mark.parametrize("name", ["agreement_id", "effective_from"])
def test_an_amendment_may_not_null_its_required_fields(name: str) -> None:
    assert_names(rejected(with_("amend_agreement", **{name: None})), name)


def test_an_amendment_that_changes_nothing_is_refused() -> None:
    error = rejected(
        {"type": "amend_agreement", "agreement_id": "A1", "effective_from": "2025-04-01"}
    )
    assert "at least one" in str(error)
    assert "tiers" in str(error)


# Tiers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["create_agreement", "amend_agreement"])
def test_tiers_may_not_be_empty(kind: str) -> None:
    error = rejected(with_(kind, tiers=[]))
    assert_names(error, "tiers")
    assert "at least 1" in str(error)


@pytest.mark.parametrize("kind", ["create_agreement", "amend_agreement"])
@pytest.mark.parametrize(
    ("tiers", "field"),
    [
        ([{"from": "-1", "rate": "0.01"}], "tiers[0].from"),
        ([{"from": "0", "rate": "0.01"}, {"from": "10", "rate": "-0.01"}], "tiers[1].rate"),
    ],
    ids=["negative-from", "negative-rate"],
)
def test_tier_thresholds_and_rates_may_not_be_negative(
    kind: str, tiers: list[dict[str, str]], field: str
) -> None:
    assert_names(rejected(with_(kind, tiers=tiers)), field)


@pytest.mark.parametrize("kind", ["create_agreement", "amend_agreement"])
@pytest.mark.parametrize(
    "tiers",
    [
        [{"from": "0", "rate": "0.01"}, {"from": "0", "rate": "0.02"}],
        [
            {"from": "0", "rate": "0.01"},
            {"from": "1000", "rate": "0.02"},
            {"from": "999.99", "rate": "0.03"},
        ],
    ],
    ids=["equal", "decreasing"],
)
def test_tier_thresholds_must_strictly_increase(kind: str, tiers: list[dict[str, str]]) -> None:
    error = rejected(with_(kind, tiers=tiers))
    # Only the reason is checked: the core reports this model-level check with field "".
    assert f"tiers[{len(tiers) - 1}].from" in str(error)
    assert "increasing" in str(error)


def test_a_zero_rate_and_a_threshold_of_zero_are_allowed() -> None:
    tiers = [{"from": "0", "rate": "0"}, {"from": "100", "rate": "0.05"}]
    command = parse_line(line(with_("create_agreement", tiers=tiers)))
    assert command.tiers[0].rate == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("tier", [5, "0:0.01", [0, "0.01"], None], ids=repr)
def test_a_tier_that_is_not_an_object_is_refused_naming_the_tier(tier: Any) -> None:
    assert_names(rejected(with_("create_agreement", tiers=[tier])), "tiers[0]")


# record_sale signs ---------------------------------------------------------------------------


@pytest.fixture
def fresh_ledger(tmp_path: Any) -> Iterator[Ledger]:
    # The same-sign rule lives in the record_sale handler (on the sale path a model validator
    # costs a fifth of the validation time), so it is exercised through a SQLite ledger.
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as book:
        yield book


@pytest.mark.parametrize(("quantity", "amount"), [("10", "-1250.00"), ("-10", "1250.00")])
def test_a_sale_with_quantity_and_amount_of_opposite_signs_is_rejected(
    fresh_ledger: Ledger, quantity: str, amount: str
) -> None:
    sale = with_("record_sale", quantity=quantity, amount=amount)
    del sale["recorded_at"]
    report = fresh_ledger.apply([sale])
    assert report.accepted == 0
    (rejection,) = report.rejected
    assert rejection.field == "amount"
    assert "quantity" in rejection.reason
    assert "amount" in rejection.reason
    assert "same sign" in rejection.reason


def test_a_return_with_both_signs_negative_is_accepted(fresh_ledger: Ledger) -> None:
    sale = with_("record_sale", quantity="-10", amount="-1250.00")
    del sale["recorded_at"]
    report = fresh_ledger.apply([sale])
    assert report.accepted == 1
    assert not report.rejected


# Positive amounts ------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name"), pairs(POSITIVE_FIELDS))
@pytest.mark.parametrize("value", ["0", "0.00", "-1", "-0.01"])
def test_positive_fields_must_be_greater_than_zero(kind: str, name: str, value: str) -> None:
    error = rejected(with_(kind, **{name: value}))
    assert_names(error, name)
    assert "greater than 0" in str(error)


@pytest.mark.parametrize(("kind", "name"), pairs(POSITIVE_FIELDS))
def test_the_smallest_positive_amount_is_accepted(kind: str, name: str) -> None:
    assert getattr(parse_line(line(with_(kind, **{name: "0.01"}))), name) == D("0.01")


# Readable reasons --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "field", "shown"),
    [
        (with_("record_sale", quantity="ten"), "quantity", '"ten"'),
        (with_("create_agreement", currency="eur"), "currency", '"eur"'),
        (with_("submit_claim", amount="-5"), "amount", '"-5"'),
        (with_("reverse_sale", reversed_on="2025-02-30"), "reversed_on", '"2025-02-30"'),
        (with_("write_off", agreement_id=42), "agreement_id", "42"),
    ],
    ids=["quantity", "currency", "amount", "reversed_on", "agreement_id"],
)
def test_a_rejection_is_a_sentence_naming_the_field_and_the_value(
    command: dict[str, Any], field: str, shown: str
) -> None:
    error = rejected(command)
    assert_names(error, field)
    reason = str(error)
    assert reason.startswith(f"{field}: ")
    assert shown in reason
    assert len(reason.split()) >= 4  # words, not a code
    assert error.reason == reason


@pytest.mark.parametrize("kind", sorted(VALID))
def test_every_command_dumps_to_json_without_a_warning_and_reads_back_the_same(
    kind: str, recwarn: pytest.WarningsRecorder
) -> None:
    """A command's dates serialise as their ISO text, silently: pydantic 2.14 warned "Expected
    `date`" on every dump of a command with a date, the plain-validated `Day` fields."""
    line = orjson.dumps(VALID[kind])
    command = parse_line(line)
    dumped = command.model_dump_json(by_alias=True, exclude_none=True)
    assert [str(w.message) for w in recwarn] == []
    assert parse_line(dumped.encode()) == command
    days = {key: value for key, value in command.model_dump().items()
            if isinstance(value, date) and not isinstance(value, datetime)}
    assert days  # python mode keeps `date`s; every command has one
    for key, value in days.items():
        assert orjson.loads(dumped)[key] == value.isoformat()


def test_lines_of_a_body_are_split_as_apply_splits_a_file() -> None:
    from ledger.commands import lines_of

    assert lines_of(b"\xef\xbb\xbf{}\r\n{\"a\":1}\n\n[]") == [b"{}\r\n", b'{"a":1}\n', b"\n", b"[]"]
    assert lines_of(b"") == [] and lines_of(b"\xef\xbb\xbf") == []
    # a bare \r is not a line end (a JSON line never holds one raw): one line, as in a file
    assert lines_of(b"{}\r{}\n") == [b"{}\r{}\n"]
