"""Contract section 1 (commands), through the public `Ledger` API, on SQLite and PostgreSQL.

Every expected figure is a worked example computed by hand from the contract text; the
arithmetic is in the comment next to it. Unless a test says otherwise, agreement A1 is
customer C1's, in EUR, for 2025, retroactive on quantity at 1 EUR a unit.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger import Ledger

from .helpers import (
    Clock,
    accepted_all,
    agreement,
    amend,
    at,
    fixed_clock,
    forecast,
    one_row,
    rejected_one,
    reversal,
    row,
    rows,
    sale,
    submit,
    tier_list,
    write_off,
)

# A clock at midday on 1 June 2025: history loaded with recorded_at before it is in the past.
NOW = "2025-06-01T12:00:00Z"


@pytest.fixture
def clock() -> Clock:
    return fixed_clock(NOW)


@pytest.fixture
def clocked_ledger(database_url: str, clock: Clock) -> Iterator[Ledger]:
    """A ledger on a fresh database (SQLite, then PostgreSQL) whose clock the test holds."""
    with Ledger(database_url, clock=clock) as book:
        yield book


# Decimals, dates and timestamps -----------------------------------------------------------


def test_json_numbers_are_read_as_exact_decimals_never_floats(ledger: Ledger) -> None:
    lines = [
        '{"type": "create_agreement", "agreement_id": "A1", "customer_id": "C1",'
        ' "currency": "EUR", "period_start": "2025-01-01", "period_end": "2025-12-31",'
        ' "basis": "amount", "tier_method": "retroactive", "rate_kind": "percent",'
        ' "tiers": [{"from": 0, "rate": 1E-1}]}',  # 0.1, written with an exponent
        *(
            f'{{"type": "record_sale", "sale_id": "S{n}", "customer_id": "C1", "product_id": "P1",'
            ' "quantity": 1, "amount": 0.1, "currency": "EUR", "invoice_date": "2025-03-01"}'
            for n in (1, 2, 3)
        ),
        '{"type": "record_sale", "sale_id": "S4", "customer_id": "C1", "product_id": "P1",'
        ' "quantity": 1, "amount": 1000000.000000001, "currency": "EUR",'
        ' "invoice_date": "2025-03-01"}',
    ]
    report = ledger.apply(lines)
    assert report.accepted == 5 and not report.rejected
    # A = 0.1 + 0.1 + 0.1 + 1000000.000000001 = 1000000.300000001 exactly (binary floats give
    # 0.30000000000000004 for the first three and cannot hold the last);
    # accrued = 0.1 × 1000000.300000001 = 100000.0300000001 → 100000.03.
    assert one_row(ledger, "2025-12-31") == row(
        basis="1000000.300000001", accrued="100000.03", liability="100000.03"
    )


def test_decimals_as_strings_and_as_numbers_give_the_same_figures(ledger: Ledger) -> None:
    accepted_all(ledger, [agreement(basis="amount", rate_kind="percent",
                                    tiers=(("0", "0.05"),))])
    report = ledger.apply([
        sale("S1", "1", "19.99"),
        '{"type": "record_sale", "sale_id": "S2", "customer_id": "C1", "product_id": "P1",'
        ' "quantity": 1, "amount": 19.99, "currency": "EUR", "invoice_date": "2025-03-01"}',
    ])
    assert report.accepted == 2 and not report.rejected
    # A = 19.99 + 19.99 = 39.98; accrued = 0.05 × 39.98 = 1.999 → 2.00.
    assert one_row(ledger, "2025-12-31") == row(basis="39.98", accrued="2.00", liability="2.00")


@pytest.mark.parametrize("invoice_date", ["2025-3-1", "01/03/2025", "2025-02-30", "20250301"])
def test_dates_other_than_yyyy_mm_dd_are_rejected_naming_the_field(
    ledger: Ledger, invoice_date: str
) -> None:
    accepted_all(ledger, [agreement()])
    reason = rejected_one(ledger, sale("S1", "1", "10", invoice_date))
    assert "invoice_date" in reason
    assert one_row(ledger, "2025-12-31") == row(basis="0", accrued="0.00", liability="0.00")


def test_a_timestamp_without_an_offset_is_rejected_naming_recorded_at(ledger: Ledger) -> None:
    reason = rejected_one(ledger, at("2025-04-02T09:00:00", agreement()))
    assert "recorded_at" in reason
    assert rows(ledger, "2025-12-31") == []


# recorded_at ------------------------------------------------------------------------------


def test_recorded_at_earlier_than_an_accepted_commands_is_rejected(
    clocked_ledger: Ledger,
) -> None:
    accepted_all(clocked_ledger, [at("2025-05-01T10:00:00Z", agreement())])
    reason = rejected_one(clocked_ledger, at("2025-05-01T09:59:59Z", sale("S1", "10", "100")))
    assert "recorded_at" in reason
    assert one_row(clocked_ledger, "2025-12-31") == row(
        basis="0", accrued="0.00", liability="0.00"
    )


def test_recorded_at_equal_to_an_accepted_commands_is_accepted(clocked_ledger: Ledger) -> None:
    report = clocked_ledger.apply([
        at("2025-05-01T10:00:00Z", agreement()),
        at("2025-05-01T10:00:00Z", sale("S1", "10", "100")),
    ])
    assert report.accepted == 2 and not report.rejected
    # B = 10 units × 1 = 10.00
    assert one_row(clocked_ledger, "2025-12-31") == row(
        basis="10", accrued="10.00", liability="10.00"
    )


@pytest.mark.parametrize("batches", [1, 3], ids=["one-batch", "three-batches"])
def test_a_duplicate_sale_counts_as_accepted_and_raises_the_recorded_at_watermark(
    clocked_ledger: Ledger, batches: int
) -> None:
    commands = [
        at("2025-05-01T10:00:00Z", agreement()),
        at("2025-05-01T10:00:00Z", sale("S1", "10", "100")),
        at("2025-05-01T12:00:00Z", sale("S1", "10", "100")),  # duplicate, later recorded_at
        at("2025-05-01T11:00:00Z", sale("S2", "20", "200")),  # before the duplicate's
        at("2025-05-01T12:00:00Z", sale("S3", "40", "400")),  # equal to the duplicate's
    ]
    cuts = [(0, 5)] if batches == 1 else [(0, 2), (2, 3), (3, 5)]
    reports = [clocked_ledger.apply(commands[start:end]) for start, end in cuts]
    assert sum(r.accepted for r in reports) == 3
    assert [d for r in reports for d in r.duplicates] == [
        (3 if batches == 1 else 1, "record_sale", "S1")
    ]
    rejected = [(r.command_type, r.reason) for report in reports for r in report.rejected]
    assert len(rejected) == 1 and rejected[0][0] == "record_sale"
    assert "recorded_at" in rejected[0][1]
    # S1 counted once and S3: B = 10 + 40 = 50 → 50.00
    assert one_row(clocked_ledger, "2025-12-31") == row(
        basis="50", accrued="50.00", liability="50.00"
    )


def test_a_duplicate_sale_with_an_earlier_recorded_at_is_rejected(
    clocked_ledger: Ledger,
) -> None:
    accepted_all(clocked_ledger, [
        at("2025-05-01T10:00:00Z", agreement()),
        at("2025-05-01T10:00:00Z", sale("S1", "10", "100")),
        at("2025-05-02T10:00:00Z", sale("S2", "20", "200")),
    ])
    # The recorded_at rule holds for every command, a would-be duplicate too.
    reason = rejected_one(clocked_ledger, at("2025-05-01T10:00:00Z", sale("S1", "10", "100")))
    assert "recorded_at" in reason
    assert one_row(clocked_ledger, "2025-12-31") == row(
        basis="30", accrued="30.00", liability="30.00"
    )


def test_a_rejected_command_does_not_raise_the_recorded_at_watermark(
    clocked_ledger: Ledger,
) -> None:
    report = clocked_ledger.apply([
        at("2025-05-01T10:00:00Z", agreement()),
        # rejected for its own rule (no such sale), though its recorded_at is fine:
        at("2025-05-20T10:00:00Z", reversal("S404", "2025-05-20")),
        # rejected for a recorded_at in the future of the clock (1 June, 12:00):
        at("2025-07-01T00:00:00Z", sale("S9", "1", "1")),
        at("2025-05-02T10:00:00Z", sale("S1", "10", "100")),
    ])
    assert [r.line for r in report.rejected] == [2, 3]
    assert report.accepted == 2
    assert one_row(clocked_ledger, "2025-12-31") == row(
        basis="10", accrued="10.00", liability="10.00"
    )


def test_recorded_at_in_the_future_is_rejected_and_now_is_accepted(
    clocked_ledger: Ledger,
) -> None:
    reason = rejected_one(clocked_ledger, at("2025-06-01T12:00:00.000001Z", agreement()))
    assert "recorded_at" in reason
    assert rows(clocked_ledger, "2025-12-31") == []
    accepted_all(clocked_ledger, [at(NOW, agreement())])
    assert rows(clocked_ledger, "2025-12-31") == [row(basis="0", accrued="0.00",
                                                      liability="0.00")]


def test_without_recorded_at_the_ledgers_clock_stamps_the_command(
    clocked_ledger: Ledger, clock: Clock
) -> None:
    accepted_all(clocked_ledger, [agreement()])
    clock.advance(hours=1)  # 13:00
    accepted_all(clocked_ledger, [sale("S1", "10", "100")])
    # The agreement is recorded at 12:00 and the sale at 13:00, when the clock said so.
    assert rows(clocked_ledger, "2025-12-31", known_at="2025-06-01T11:59:59Z") == []
    assert one_row(clocked_ledger, "2025-12-31", known_at=NOW) == row(
        basis="0", accrued="0.00", liability="0.00"
    )
    assert one_row(clocked_ledger, "2025-12-31", known_at="2025-06-01T13:00:00Z") == row(
        basis="10", accrued="10.00", liability="10.00"
    )
    # The stamped commands are accepted ones: history may not be loaded before them.
    reason = rejected_one(clocked_ledger, at("2025-06-01T12:30:00Z", sale("S2", "1", "1")))
    assert "recorded_at" in reason


def test_recorded_at_offsets_are_compared_as_instants(clocked_ledger: Ledger) -> None:
    report = clocked_ledger.apply([
        at("2025-05-01T11:00:00+02:00", agreement()),  # 09:00 UTC
        at("2025-05-01T09:30:00Z", sale("S1", "10", "100")),  # later than 09:00 UTC
        at("2025-05-01T10:45:00+02:00", sale("S2", "20", "200")),  # 08:45 UTC: earlier
    ])
    assert report.accepted == 2
    assert [r.line for r in report.rejected] == [3]
    assert "recorded_at" in report.rejected[0].reason
    assert one_row(clocked_ledger, "2025-12-31", known_at="2025-05-01T09:00:00Z") == row(
        basis="0", accrued="0.00", liability="0.00"
    )


# Rejections -------------------------------------------------------------------------------


def test_a_rejected_command_changes_nothing_and_the_rest_of_the_batch_applies(
    ledger: Ledger,
) -> None:
    report = ledger.apply([
        agreement(),
        sale("S1", "10", "100", discount="5"),  # unknown field
        sale("S2", "20", "200"),
    ])
    assert report.accepted == 2
    (rejection,) = report.rejected
    assert (rejection.line, rejection.command_type) == (2, "record_sale")
    assert "discount" in rejection.reason
    # Only S2 counts: B = 20 → 20.00
    assert one_row(ledger, "2025-12-31") == row(basis="20", accrued="20.00", liability="20.00")
    # Nothing of S1 was kept: the id is still free for a sale with other fields.
    accepted_all(ledger, [sale("S1", "1", "10")])
    # B = 20 + 1 = 21 → 21.00
    assert one_row(ledger, "2025-12-31") == row(basis="21", accrued="21.00", liability="21.00")


def test_a_line_that_is_not_json_is_rejected_and_the_rest_applies(ledger: Ledger) -> None:
    broken = '{"type": "record_sale", "sale_id": '
    report = ledger.apply([agreement(), broken, sale("S1", "1", "10")])
    assert report.accepted == 2
    assert [r.line for r in report.rejected] == [2]
    assert "JSON" in report.rejected[0].reason
    assert [r.line for r in ledger.rejections()] == [2]
    assert one_row(ledger, "2025-12-31") == row(basis="1", accrued="1.00", liability="1.00")


def test_every_rejection_is_kept_with_its_line_command_and_reason(ledger: Ledger) -> None:
    first = ledger.apply([
        agreement(),
        {k: v for k, v in sale("S1", "1", "10").items() if k != "invoice_date"},
        sale("S2", "1", "10"),
    ])
    second = ledger.apply([
        sale("S3", "1", "10"),
        sale("S4", "1", "10"),
        reversal("S404", "2025-05-01"),
    ])
    assert len(first.rejected) == 1 and len(second.rejected) == 1
    kept = [(r.line, r.command_type) for r in ledger.rejections()]
    assert kept == [(2, "record_sale"), (3, "reverse_sale")]
    reasons = [r.reason for r in ledger.rejections()]
    assert "invoice_date" in reasons[0]
    assert "S404" in reasons[1]
    # The command itself is kept with its rejection.
    assert '"S404"' in ledger.rejections()[1].command


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (sale("S1", "10", "100", discount="5"), "discount"),
        ({k: v for k, v in sale("S1", "10", "100").items() if k != "invoice_date"},
         "invoice_date"),
        ({k: v for k, v in sale("S1", "10", "100").items() if k != "customer_id"},
         "customer_id"),
        (sale("S1", "ten", "100"), "quantity"),
        (sale("S1", "10", "1e"), "amount"),
        ({**sale("S1", "10", "100"), "invoice_date": 20250301}, "invoice_date"),
        ({**sale("S1", "10", "100"), "product_id": 7}, "product_id"),
        ({**sale("S1", "10", "100"), "type": "record_sales"}, "type"),
        ({k: v for k, v in sale("S1", "10", "100").items() if k != "type"}, "type"),
    ],
    ids=["unknown-field", "missing-invoice-date", "missing-customer", "quantity-not-decimal",
         "amount-not-decimal", "date-as-number", "id-as-number", "unknown-type", "no-type"],
)
def test_malformed_commands_are_rejected_with_a_reason_naming_the_field(
    ledger: Ledger, command: dict[str, object], named: str
) -> None:
    accepted_all(ledger, [agreement()])
    reason = rejected_one(ledger, command)
    assert named in reason
    assert one_row(ledger, "2025-12-31") == row(basis="0", accrued="0.00", liability="0.00")
    assert [r.reason for r in ledger.rejections()] == [reason]


# Unique ids -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "again",
    [agreement(), agreement(customer_id="C2", tiers=(("0", "5"),))],
    ids=["identical", "different-fields"],
)
def test_agreement_ids_are_unique(ledger: Ledger, again: dict[str, object]) -> None:
    accepted_all(ledger, [agreement(), sale("S1", "10", "100")])
    reason = rejected_one(ledger, again)
    assert "agreement_id" in reason
    # Still C1's agreement at 1 a unit: 10 × 1 = 10.00
    assert rows(ledger, "2025-12-31") == [row(basis="10", accrued="10.00", liability="10.00")]


@pytest.mark.parametrize(
    "changed",
    [
        {"quantity": "11"}, {"amount": "101"}, {"invoice_date": "2025-03-02"},
        {"product_id": "P2"}, {"customer_id": "C2"}, {"currency": "USD"},
    ],
    ids=lambda changed: next(iter(changed)),
)
def test_the_same_sale_id_with_different_fields_is_rejected(
    ledger: Ledger, changed: dict[str, str]
) -> None:
    accepted_all(ledger, [agreement(), sale("S1", "10", "100")])
    reason = rejected_one(ledger, {**sale("S1", "10", "100"), **changed})
    assert "sale_id" in reason
    assert one_row(ledger, "2025-12-31") == row(basis="10", accrued="10.00", liability="10.00")


def test_an_identical_sale_is_a_duplicate_that_changes_nothing(ledger: Ledger) -> None:
    accepted_all(ledger, [agreement(), sale("S1", "10", "100")])
    report = ledger.apply([sale("S2", "5", "50"), sale("S1", "10", "100")])
    assert report.accepted == 1
    assert report.duplicates == [(2, "record_sale", "S1")]
    assert report.rejected == []
    assert ledger.rejections() == []
    # S1 counted once: B = 10 + 5 = 15 → 15.00
    assert one_row(ledger, "2025-12-31") == row(basis="15", accrued="15.00", liability="15.00")


def test_a_sale_repeated_within_one_batch_is_a_duplicate(ledger: Ledger) -> None:
    report = ledger.apply([agreement(), sale("S1", "10", "100"), sale("S1", "10", "100")])
    assert report.accepted == 2 and report.duplicates == [(3, "record_sale", "S1")]
    assert one_row(ledger, "2025-12-31") == row(basis="10", accrued="10.00", liability="10.00")


# Field rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("currency", ["eur", "EU", "EURO", "E1R", ""])
def test_currency_must_be_three_capital_letters(ledger: Ledger, currency: str) -> None:
    assert "currency" in rejected_one(ledger, agreement(currency=currency))
    assert "currency" in rejected_one(ledger, sale("S1", "1", "10", currency=currency))
    assert rows(ledger, "2025-12-31") == []


def test_period_start_after_period_end_is_rejected(ledger: Ledger) -> None:
    reason = rejected_one(ledger, agreement(period_start="2025-07-01", period_end="2025-06-30"))
    assert "period" in reason
    assert rows(ledger, "2025-12-31") == []


def test_a_one_day_period_is_accepted_and_covers_that_day(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(period_start="2025-06-30", period_end="2025-06-30"),
        sale("S1", "1", "10", "2025-06-29"),
        sale("S2", "2", "20", "2025-06-30"),
        sale("S3", "4", "40", "2025-07-01"),
    ])
    # Only S2 lies inside [30 June, 30 June]: B = 2 → 2.00
    assert one_row(ledger, "2025-12-31") == row(basis="2", accrued="2.00", liability="2.00")


@pytest.mark.parametrize(
    ("field", "value"),
    [("basis", "units"), ("tier_method", "stepped"), ("rate_kind", "fixed"),
     ("accrual_method", "expected")],
)
def test_unknown_enumeration_values_are_rejected(ledger: Ledger, field: str, value: str) -> None:
    assert field in rejected_one(ledger, {**agreement(), field: value})
    assert rows(ledger, "2025-12-31") == []


@pytest.mark.parametrize(("basis", "rate_kind"), [("quantity", "percent"),
                                                  ("amount", "per_unit")])
def test_incremental_tiers_with_mixed_basis_and_rate_kind_are_rejected(
    ledger: Ledger, basis: str, rate_kind: str
) -> None:
    reason = rejected_one(
        ledger, agreement(tier_method="incremental", basis=basis, rate_kind=rate_kind)
    )
    assert "incremental" in reason or "tier_method" in reason
    assert rows(ledger, "2025-12-31") == []


def test_incremental_tiers_are_accepted_on_quantity_per_unit_and_amount_percent(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        agreement("A1", tier_method="incremental", basis="quantity", rate_kind="per_unit",
                  tiers=(("0", "1"), ("5", "2"))),
        agreement("A2", tier_method="incremental", basis="amount", rate_kind="percent",
                  tiers=(("0", "0.01"), ("50", "0.02"))),
        sale("S1", "8", "80"),
    ])
    # A1: inc(8) = 1 × (5 − 0) + 2 × (8 − 5) = 5 + 6 = 11.00
    # A2: inc(80) = 0.01 × 50 + 0.02 × (80 − 50) = 0.5 + 0.6 = 1.10
    assert rows(ledger, "2025-12-31") == [
        row(agreement_id="A1", basis="8", accrued="11.00", liability="11.00"),
        row(agreement_id="A2", basis="80", accrued="1.10", liability="1.10"),
    ]


@pytest.mark.parametrize(
    ("tiers", "named"),
    [
        ([], "tiers"),
        ([{"from": "-1", "rate": "1"}], "from"),
        ([{"from": "0", "rate": "-0.01"}], "rate"),
        ([{"from": "0", "rate": "1"}, {"from": "0", "rate": "2"}], "from"),
        ([{"from": "10", "rate": "1"}, {"from": "5", "rate": "2"}], "from"),
        ([{"from": "0"}], "rate"),
        ([{"from": "0", "rate": "1", "to": "10"}], "to"),
    ],
    ids=["empty", "negative-from", "negative-rate", "equal-from", "decreasing-from",
         "missing-rate", "unknown-key"],
)
def test_invalid_tier_tables_are_rejected(
    ledger: Ledger, tiers: list[dict[str, str]], named: str
) -> None:
    command = agreement()
    command["tiers"] = tiers
    reason = rejected_one(ledger, command)
    assert "tiers" in reason and named in reason
    assert rows(ledger, "2025-12-31") == []


def test_a_zero_rate_and_a_first_tier_above_zero_are_accepted(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(tiers=(("10", "0"), ("20", "3"))),
        sale("S1", "15", "150", "2025-03-01"),
        sale("S2", "5", "50", "2025-04-01"),
    ])
    # 31 March: B = 15 → highest tier with from ≤ 15 is 10 (rate 0) → 0 × 15 = 0.00
    assert one_row(ledger, "2025-03-31") == row(basis="15", accrued="0.00", liability="0.00")
    # 30 April: B = 20 → tier 20 reached (rate 3) → 3 × 20 = 60.00
    assert one_row(ledger, "2025-04-30") == row(basis="20", accrued="60.00", liability="60.00")


@pytest.mark.parametrize("value", ["0", "-5"])
def test_cap_and_forecast_basis_must_be_positive(ledger: Ledger, value: str) -> None:
    assert "cap" in rejected_one(ledger, agreement(cap=value))
    assert "forecast_basis" in rejected_one(
        ledger, agreement(accrual_method="forecast", forecast_basis=value)
    )
    accepted_all(ledger, [agreement()])
    assert "forecast_basis" in rejected_one(ledger, forecast("A1", value, "2025-01-01"))
    assert "cap" in rejected_one(ledger, amend("A1", "2025-01-01", cap=value))
    assert "amount" in rejected_one(ledger, write_off(value))
    assert "amount" in rejected_one(ledger, submit("X1", value))
    assert rows(ledger, "2025-12-31") == [row(basis="0", accrued="0.00", liability="0.00")]


@pytest.mark.parametrize(("quantity", "amount"), [("5", "-50"), ("-5", "50")])
def test_quantity_and_amount_of_different_signs_are_rejected(
    ledger: Ledger, quantity: str, amount: str
) -> None:
    accepted_all(ledger, [agreement()])
    reason = rejected_one(ledger, sale("S1", quantity, amount))
    assert "quantity" in reason and "amount" in reason
    assert one_row(ledger, "2025-12-31") == row(basis="0", accrued="0.00", liability="0.00")


def test_a_negative_line_is_a_return_that_reduces_the_basis(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(),
        sale("S1", "10", "100", "2025-03-01"),
        sale("R1", "-3", "-30", "2025-04-01"),
    ])
    # B = 10 − 3 = 7 → 7.00
    assert one_row(ledger, "2025-12-31") == row(basis="7", accrued="7.00", liability="7.00")


def test_sales_recorded_before_the_agreement_count_once_it_is_created(ledger: Ledger) -> None:
    accepted_all(ledger, [
        at("2025-02-01T00:00:00Z", sale("S1", "10", "100", "2025-01-15")),
        at("2025-02-01T00:00:00Z", sale("S2", "20", "200", "2024-12-31")),  # before the period
        at("2025-03-01T00:00:00Z", agreement()),
    ])
    # The agreement does not exist as known before 1 March.
    assert rows(ledger, "2025-12-31", known_at="2025-02-28T23:59:59Z") == []
    # From its creation on it counts S1 (inside 2025), not S2: B = 10 → 10.00
    assert one_row(ledger, "2025-12-31", known_at="2025-03-01T00:00:00Z") == row(
        basis="10", accrued="10.00", liability="10.00"
    )
    # and at a valid date before its creation was recorded: D = 31 January, B = 10.
    assert one_row(ledger, "2025-01-31") == row(basis="10", accrued="10.00", liability="10.00")


# reverse_sale -----------------------------------------------------------------------------


def test_reversing_an_unknown_sale_is_rejected(ledger: Ledger) -> None:
    accepted_all(ledger, [agreement(), sale("S1", "10", "100")])
    reason = rejected_one(ledger, reversal("S2", "2025-05-01"))
    assert "sale_id" in reason
    assert one_row(ledger, "2025-12-31") == row(basis="10", accrued="10.00", liability="10.00")


def test_a_sale_cannot_be_reversed_twice(ledger: Ledger) -> None:
    accepted_all(ledger, [agreement(), sale("S1", "10", "100"), reversal("S1", "2025-06-01")])
    reason = rejected_one(ledger, reversal("S1", "2025-04-01"))
    assert "sale_id" in reason or "reversed" in reason
    # The first reversal stands (from 1 June), the second one did not move it to 1 April.
    assert one_row(ledger, "2025-05-31") == row(basis="10", accrued="10.00", liability="10.00")
    assert one_row(ledger, "2025-06-01") == row(basis="0", accrued="0.00", liability="0.00")


def test_a_sale_cannot_be_reversed_twice_in_one_batch(ledger: Ledger) -> None:
    report = ledger.apply([
        agreement(), sale("S1", "10", "100"), reversal("S1", "2025-06-01"),
        reversal("S1", "2025-04-01"),
    ])
    assert report.accepted == 3 and [r.line for r in report.rejected] == [4]
    assert one_row(ledger, "2025-05-31") == row(basis="10", accrued="10.00", liability="10.00")


def test_reversed_on_before_the_invoice_date_is_rejected_and_equal_is_accepted(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [agreement(), sale("S1", "10", "100", "2025-03-01")])
    reason = rejected_one(ledger, reversal("S1", "2025-02-28"))
    assert "reversed_on" in reason
    assert one_row(ledger, "2025-03-01") == row(basis="10", accrued="10.00", liability="10.00")
    accepted_all(ledger, [reversal("S1", "2025-03-01")])
    assert one_row(ledger, "2025-03-01") == row(basis="0", accrued="0.00", liability="0.00")


def test_a_reversed_sale_is_still_a_known_sale_id(ledger: Ledger) -> None:
    accepted_all(ledger, [agreement(), sale("S1", "10", "100"), reversal("S1", "2025-04-01")])
    report = ledger.apply([sale("S1", "10", "100")])
    assert report.duplicates == [(1, "record_sale", "S1")]
    assert "sale_id" in rejected_one(ledger, sale("S1", "12", "120"))
    assert one_row(ledger, "2025-12-31") == row(basis="0", accrued="0.00", liability="0.00")


# Commands that need an agreement, and amendments that would break its terms ---------------


@pytest.mark.parametrize(
    "command",
    [
        amend("A9", "2025-01-01", cap="10"),
        forecast("A9", "100", "2025-01-01"),
        write_off("1", agreement_id="A9"),
        submit("X1", "10", agreement_id="A9"),
    ],
    ids=["amend_agreement", "revise_forecast", "write_off", "submit_claim"],
)
def test_commands_on_an_unknown_agreement_are_rejected(
    ledger: Ledger, command: dict[str, object]
) -> None:
    accepted_all(ledger, [agreement(), sale("S1", "10", "100")])
    reason = rejected_one(ledger, command)
    assert "agreement_id" in reason and "A9" in reason
    assert rows(ledger, "2025-12-31") == [row(basis="10", accrued="10.00", liability="10.00")]


def test_an_amendment_to_incremental_on_quantity_percent_is_rejected(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(basis="quantity", rate_kind="percent", tiers=(("0", "0.1"),)),
        sale("S1", "10", "250"),
    ])
    reason = rejected_one(ledger, amend("A1", "2025-04-01", tier_method="incremental"))
    assert "incremental" in reason or "tier_method" in reason
    # Terms unchanged: retroactive rate(10) = 0.1 on M = A = 250 → 25.00
    assert one_row(ledger, "2025-12-31") == row(basis="10", accrued="25.00", liability="25.00")


def test_an_amendment_that_changes_basis_rate_kind_and_tier_method_together_is_accepted(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        agreement(),
        sale("S1", "10", "250"),
        amend("A1", "2025-04-01", tier_method="incremental", basis="amount",
              rate_kind="percent", tiers=tier_list((("0", "0.1"), ("200", "0.2")))),
    ])
    # 31 March: creation terms, 1 × 10 = 10.00
    assert one_row(ledger, "2025-03-31") == row(basis="10", accrued="10.00", liability="10.00")
    # 1 April: incremental on A = 250: 0.1 × 200 + 0.2 × 50 = 20 + 10 = 30.00
    assert one_row(ledger, "2025-04-01") == row(basis="250", accrued="30.00", liability="30.00")


def test_an_amendment_that_breaks_the_terms_from_a_later_amendments_date_is_rejected(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        agreement(),
        sale("S1", "10", "250"),
        # From 1 July: incremental on quantity/per_unit (valid).
        amend("A1", "2025-07-01", tier_method="incremental"),
    ])
    # Recorded later, so laid over the July amendment: from 1 July the terms would be
    # incremental on quantity/percent, which the contract forbids.
    reason = rejected_one(ledger, amend("A1", "2025-03-01", rate_kind="percent"))
    assert "incremental" in reason or "tier_method" in reason
    # Unchanged: 1 × 10 = 10.00 in April and in August.
    assert one_row(ledger, "2025-04-30") == row(basis="10", accrued="10.00", liability="10.00")
    assert one_row(ledger, "2025-08-31") == row(basis="10", accrued="10.00", liability="10.00")


def test_an_amendment_moving_period_end_before_period_start_is_rejected(ledger: Ledger) -> None:
    accepted_all(ledger, [agreement(period_start="2025-03-01"), sale("S1", "10", "100")])
    reason = rejected_one(ledger, amend("A1", "2025-01-01", period_end="2025-02-28"))
    assert "period" in reason
    assert one_row(ledger, "2025-12-31") == row(basis="10", accrued="10.00", liability="10.00")


@pytest.mark.parametrize(
    "changes",
    [{}, {"tiers": []}, {"basis": "units"}, {"period_end": "2025/12/31"},
     {"period_start": "2025-02-01"}, {"customer_id": "C2"}, {"currency": "USD"}],
    ids=["nothing", "empty-tiers", "bad-basis", "bad-date", "period-start-not-amendable",
         "customer-not-amendable", "currency-not-amendable"],
)
def test_malformed_amendments_are_rejected(ledger: Ledger, changes: dict[str, object]) -> None:
    accepted_all(ledger, [agreement(), sale("S1", "10", "100")])
    rejected_one(ledger, amend("A1", "2025-01-01", **changes))
    assert one_row(ledger, "2025-12-31") == row(basis="10", accrued="10.00", liability="10.00")

