"""The books of a period (issue 10, point 6; ledger.audit.period): for every period D1 to D2
and every K, each account's opening balance is the cumulative trial balance at the day before
D1, its closing balance the one at D2, and opening + the period's postings = closing; the
period's postings balance per currency. On the two-currency worked book (SQLite and
PostgreSQL), on a buying group's agreement, and as a hypothesis property over random books,
periods and K."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Ledger
from ledger.audit.journal import EXPENSE, postings, trial_balance
from ledger.audit.period import (
    period_books,
    period_journal_report,
    period_trial_balance_report,
)
from ledger.errors import RuleViolation
from tests.audit.test_trial_balance import in_usd, two_currencies  # noqa: F401 (fixture)
from tests.contract import helpers as h
from tests.test_ledger_properties import agreements, sales, stamped

D = Decimal
Key = tuple[str, str]


def cumulative(ledger: Ledger, as_of: date, known_at: datetime | None,
               **filters: str) -> dict[Key, Decimal]:
    """Each account's balance at `as_of` from the journal (zero balances left out)."""
    return {(b.currency, b.account): b.balance
            for b in trial_balance(postings(ledger, as_of, known_at, **filters))
            if b.balance != 0}


def of_agreements(ledger: Ledger, agreements: list[str], as_of: date,
                  known_at: datetime | None) -> dict[Key, Decimal]:
    total: dict[Key, Decimal] = {}
    for agreement in agreements:
        for key, balance in cumulative(ledger, as_of, known_at, agreement_id=agreement).items():
            total[key] = total.get(key, D(0)) + balance
    return {key: balance for key, balance in total.items() if balance != 0}


def assert_period_agrees(ledger: Ledger, start: date, end: date,
                         known_at: datetime | None = None, **filters: str) -> None:
    books = period_books(ledger, start, end, known_at, **filters)
    opening = {(b.currency, b.account): b.opening for b in books.balances if b.opening != 0}
    closing = {(b.currency, b.account): b.closing for b in books.balances if b.closing != 0}
    if "customer_id" in filters:  # the agreements covering the customer at either end
        assert opening == of_agreements(ledger, books.agreements, start - timedelta(days=1),
                                        known_at)
        assert closing == of_agreements(ledger, books.agreements, end, known_at)
    else:
        assert opening == cumulative(ledger, start - timedelta(days=1), known_at, **filters)
        assert closing == cumulative(ledger, end, known_at, **filters)
    for currency in {b.currency for b in books.balances}:
        mine = [p for p in books.postings if p.currency == currency]
        assert sum(p.debit for p in mine) == sum(p.credit for p in mine)
        assert all(start <= p.valid_date <= end for p in mine)
    report = period_trial_balance_report(ledger, start, end, known_at, **filters)
    assert report.extra["balanced"] and report.extra["liability_matches"], report.extra


PERIODS = [(date(2025, 1, 1), date(2025, 3, 31)), (date(2025, 4, 1), date(2025, 6, 30)),
           (date(2025, 2, 15), date(2025, 2, 15)), (date(2025, 1, 1), date(2025, 12, 31)),
           (date(2024, 1, 1), date(2024, 12, 31)), (date(2025, 7, 1), date(2026, 6, 30))]


@pytest.mark.parametrize("known_at", [None, datetime(2025, 5, 1, 12, tzinfo=UTC)])
def test_the_worked_book_agrees_with_the_trial_balance_at_both_ends(
        two_currencies: Ledger, known_at: datetime | None) -> None:  # noqa: F811
    for start, end in PERIODS:
        assert_period_agrees(two_currencies, start, end, known_at)
    assert_period_agrees(two_currencies, date(2025, 4, 1), date(2025, 6, 30), known_at,
                         agreement_id="A5")


def test_q2_of_the_worked_book_by_hand(two_currencies: Ledger) -> None:  # noqa: F811
    # A5 (USD, 0.50 per unit): 40 units by 03-31 (20.00), 60 by 06-30 (30.00): accrual 10.00
    # on 06-30; K5 paid 25.00 on 06-03; write-off 2.00 effective 06-30
    report = period_journal_report(two_currencies, date(2025, 4, 1), date(2025, 6, 30),
                                   agreement_id="A5")
    rows = [(r["valid_date"], r["kind"], r["account"], r["debit"], r["credit"])
            for r in report.rows]
    assert rows == [
        (date(2025, 6, 3), "settlement", "accrued rebate liability", D("25.00"), D("0.00")),
        (date(2025, 6, 3), "settlement", "cash / credit notes", D("0.00"), D("25.00")),
        (date(2025, 6, 30), "accrual", EXPENSE, D("10.00"), D("0.00")),
        (date(2025, 6, 30), "accrual", "accrued rebate liability", D("0.00"), D("10.00")),
        (date(2025, 6, 30), "write-off", "accrued rebate liability", D("2.00"), D("0.00")),
        (date(2025, 6, 30), "write-off", EXPENSE, D("0.00"), D("2.00")),
    ]
    expense = next(b for b in report.extra["balances"] if b["account"] == EXPENSE)
    assert (expense["opening"], expense["closing"]) == (D("20.00"), D("28.00"))


def test_a_period_ending_before_it_starts_is_refused(two_currencies: Ledger) -> None:  # noqa: F811
    with pytest.raises(RuleViolation, match="before --from"):
        period_books(two_currencies, date(2025, 6, 30), date(2025, 4, 1))


def test_a_group_agreement_and_a_member_leaving(database_url: str) -> None:
    book = [
        h.at("2025-01-01T00:00:00Z", {"type": "create_group", "group_id": "G1"}),
        h.at("2025-01-01T00:00:01Z", {"type": "join_group", "group_id": "G1",
                                      "customer_id": "C1", "effective_from": "2025-01-01"}),
        h.at("2025-01-01T00:00:02Z", {**h.agreement("AG", tiers=(("0", "1"), ("50", "2"))),
                                      "customer_id": None, "group_id": "G1"}),
        h.at("2025-02-02T00:00:00Z", h.sale("S1", "30", "300.00", "2025-02-01")),
        h.at("2025-04-02T00:00:00Z", h.sale("S2", "30", "300.00", "2025-04-01")),
        h.at("2025-05-02T00:00:00Z", {"type": "leave_group", "group_id": "G1",
                                      "customer_id": "C1", "effective_from": "2025-05-01"}),
        h.at("2025-05-03T00:00:00Z", h.sale("S3", "30", "300.00", "2025-05-02")),
    ]
    book[2] = {k: v for k, v in book[2].items() if v is not None}
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, book)
        # 30 units by 03-31 (30.00 at 1.00), 60 by 06-30 (120.00 at 2.00, retroactive); S3
        # after C1 left does not count: Q2 accrual 90.00
        books = period_books(ledger, date(2025, 4, 1), date(2025, 6, 30))
        assert [(p.account, p.debit) for p in books.postings if p.debit] == [
            (EXPENSE, D("90.00"))]
        for start, end in PERIODS:
            assert_period_agrees(ledger, start, end)
            assert_period_agrees(ledger, start, end, customer_id="C1")


PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
START = datetime(2025, 1, 1, tzinfo=UTC)


@PROPERTY
@given(eur=agreements(), usd=agreements(),
       first=st.integers(1, 6).flatmap(lambda n: sales("S", n)),
       late=st.integers(0, 3).flatmap(lambda n: sales("L", n)),
       claim=st.integers(0, 3000), write_off=st.integers(0, 500),
       start=st.dates(date(2024, 12, 1), date(2026, 1, 31)), days=st.integers(0, 200),
       known_minutes=st.integers(0, 2100))
def test_every_period_agrees_with_the_trial_balance_at_both_ends(
    eur: dict[str, Any], usd: dict[str, Any], first: list[dict[str, Any]],
    late: list[dict[str, Any]], claim: int, write_off: int, start: date, days: int,
    known_minutes: int,
) -> None:
    usd = {**usd, "agreement_id": "A2", "customer_id": "C2", "currency": "USD"}
    later: list[dict[str, Any]] = [*late, *in_usd(late)]
    if claim:
        later += [
            {"type": "submit_claim", "claim_id": "K2", "agreement_id": "A2",
             "amount": f"{claim / 100:.2f}", "submitted_on": "2025-06-01"},
            {"type": "approve_claim", "claim_id": "K2", "approved_on": "2025-06-02"},
            {"type": "settle_claim", "claim_id": "K2", "paid_on": "2025-06-03",
             "payment_ref": "P2"},
        ]
    if write_off:
        later.append({"type": "write_off", "agreement_id": "A1",
                      "amount": f"{write_off / 100:.2f}", "effective_date": "2025-09-30",
                      "reason": "test"})
    with tempfile.TemporaryDirectory() as folder, Ledger(
        f"sqlite:///{Path(folder) / 'ledger.db'}"
    ) as ledger:
        ledger.apply(stamped([eur, usd, *first, *in_usd(first)], 0))
        ledger.apply(stamped(later, 1000))
        for known in (START + timedelta(minutes=known_minutes), None):
            assert_period_agrees(ledger, start, start + timedelta(days=days), known)


def test_an_accrual_names_the_events_taking_effect_in_the_period(
        two_currencies: Ledger) -> None:  # noqa: F811
    # Q1: A5 starts (period_start 2025-01-01) and S50 is invoiced on 03-10; Q2: S51 only
    q1 = period_journal_report(two_currencies, date(2025, 1, 1), date(2025, 3, 31),
                               agreement_id="A5").rows[0]
    assert q1["about"] == "agreement A5; 1 sale invoiced in the period"
    assert len(q1["events"]) == 2
    q2 = next(r for r in period_journal_report(
        two_currencies, date(2025, 4, 1), date(2025, 6, 30), agreement_id="A5").rows
        if r["kind"] == "accrual")
    assert q2["about"] == "1 sale invoiced in the period" and len(q2["events"]) == 1
    assert q2["recorded_at"] == datetime(2025, 5, 6, tzinfo=UTC)  # S51's
