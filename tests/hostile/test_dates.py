"""Issue 15, point 3: one range for every date and timestamp the ledger accepts (1900-01-01 to
2199-12-31, docs/configuration.md), refused with a reason outside it; an open-ended agreement
is refused with a reason that says how to write one."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ledger import Ledger
from ledger.commands import DAY_MAX, DAY_MIN, MOMENT_MAX, MOMENT_MIN, parse_line
from ledger.errors import InvalidCommand

from .helpers import assert_good_lines_applied, good_sale, sandwich

#: One command of each kind with a date field, and that field.
DATED: list[tuple[dict[str, Any], str]] = [
    ({"type": "create_agreement", "agreement_id": "A9", "customer_id": "C1",
      "currency": "EUR", "period_start": "2025-01-01", "period_end": "2025-12-31",
      "basis": "quantity", "tier_method": "retroactive", "rate_kind": "per_unit",
      "tiers": [{"from": "0", "rate": "1"}]}, "period_start"),
    ({"type": "amend_agreement", "agreement_id": "A1", "effective_from": "2025-01-01",
      "cap": "5"}, "effective_from"),
    ({"type": "revise_forecast", "agreement_id": "A1", "forecast_basis": "5",
      "effective_from": "2025-01-01"}, "effective_from"),
    (orjson.loads(good_sale("S9")), "invoice_date"),
    ({"type": "reverse_sale", "sale_id": "S1", "reversed_on": "2025-01-01"}, "reversed_on"),
    ({"type": "submit_claim", "claim_id": "K1", "agreement_id": "A1", "amount": "1",
      "submitted_on": "2025-01-01"}, "submitted_on"),
    ({"type": "approve_claim", "claim_id": "K1", "approved_on": "2025-01-01"}, "approved_on"),
    ({"type": "reject_claim", "claim_id": "K1", "rejected_on": "2025-01-01", "reason": "no"},
     "rejected_on"),
    ({"type": "settle_claim", "claim_id": "K1", "paid_on": "2025-01-01", "payment_ref": "P"},
     "paid_on"),
    ({"type": "write_off", "agreement_id": "A1", "amount": "1", "effective_date": "2025-01-01",
      "reason": "r"}, "effective_date"),
]


def rejection(command: dict[str, Any]) -> InvalidCommand:
    with pytest.raises(InvalidCommand) as caught:
        parse_line(orjson.dumps(command))
    return caught.value


@pytest.mark.parametrize(("command", "name"), DATED, ids=[n for _, n in DATED])
@pytest.mark.parametrize("value", ["0001-01-01", "1899-12-31", "2200-01-01", "9999-12-31"])
def test_a_date_outside_the_range_is_refused_naming_the_field_and_the_range(
    command: dict[str, Any], name: str, value: str
) -> None:
    error = rejection({**command, name: value})
    assert error.field == name
    assert f"{value} is outside the dates the ledger accepts, 1900-01-01 to 2199-12-31" in str(
        error)


@pytest.mark.parametrize(("command", "name"), DATED, ids=[n for _, n in DATED])
def test_the_first_and_last_day_of_the_range_are_accepted(
    command: dict[str, Any], name: str
) -> None:
    for value in (DAY_MIN, DAY_MAX):
        assert getattr(parse_line(orjson.dumps({**command, name: value.isoformat()})),
                       name) == value


@pytest.mark.parametrize(("command", "name"), DATED, ids=[n for _, n in DATED])
@pytest.mark.parametrize("value", ["1735689600", "20250101", "２０２５-01-01", "2025-01-01 "])
def test_a_date_is_ascii_yyyy_mm_dd_and_never_a_unix_time(
    command: dict[str, Any], name: str, value: str
) -> None:
    assert rejection({**command, name: value}).field == name


@pytest.mark.parametrize(
    "value",
    ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "1899-12-31T23:59:59Z",
     "1900-01-01T00:30:00+01:00", "2200-01-01T00:00:00Z", "2199-12-31T23:00:00-05:00"],
)
def test_a_recorded_at_outside_the_range_in_utc_is_refused_naming_it(value: str) -> None:
    error = rejection({**orjson.loads(good_sale("S1")), "recorded_at": value})
    assert error.field == "recorded_at"
    assert "is outside the timestamps the ledger accepts" in str(error)


@pytest.mark.parametrize("value", ["1735689600", "1735689600.5", "2025-01-01", "2025"])
def test_a_recorded_at_is_an_iso_timestamp_never_a_unix_time(value: str) -> None:
    assert rejection({**orjson.loads(good_sale("S1")), "recorded_at": value}).field == (
        "recorded_at")


def test_the_first_and_last_instant_of_the_range_are_accepted() -> None:
    for text, moment in [("1900-01-01T00:00:00Z", MOMENT_MIN),
                         ("1900-01-01T01:00:00+01:00", MOMENT_MIN),
                         ("2199-12-31T23:59:59.999999Z", MOMENT_MAX),
                         ("2199-12-31T18:59:59.999999-05:00", MOMENT_MAX)]:
        command = parse_line(orjson.dumps({**orjson.loads(good_sale("S1")), "recorded_at": text}))
        assert command.recorded_at == moment


@pytest.mark.parametrize("kind", ["create_agreement", "amend_agreement"])
def test_an_open_ended_agreement_is_refused_saying_how_to_write_one(kind: str) -> None:
    command = next(c for c, _ in DATED if c["type"] == kind)

    error = rejection({**command, "period_end": "9999-12-31"})

    assert error.field == "period_end"
    assert "without an end is written with a far period_end inside the range, such as " \
           "2199-12-31" in str(error)


def test_an_agreement_ending_on_the_last_day_of_the_range_is_applied_and_accrues(
    ledger: Ledger,
) -> None:
    open_ended = orjson.dumps({**DATED[0][0], "agreement_id": "A1", "period_end": "2199-12-31"})

    report = ledger.apply_lines([open_ended, good_sale("S1"), good_sale("S2")])

    assert report.rejected == []
    (row,) = ledger.liability(DAY_MAX)
    assert row.basis == 2


def test_apply_goes_on_around_a_line_with_a_date_out_of_range(ledger: Ledger) -> None:
    report = ledger.apply_lines(sandwich([good_sale("B1", invoice_date="9999-12-31")]))

    assert [(r.line, r.field) for r in report.rejected] == [(3, "invoice_date")]
    assert_good_lines_applied(ledger, report, good_sales=2)
