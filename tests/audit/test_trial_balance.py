"""The trial balance per currency (issue 4, item 1): a book in two currencies on SQLite and
PostgreSQL, a hypothesis property over random two-currency books, random D and random K, and
the CLI as a user types it.

The worked book is conftest.py's (EUR: A1 for C1, A2 for C2) plus one USD agreement:

A5 (customer C5, USD): quantity basis, retroactive, 0.50 per unit from 0.
  S50 40 units (400.00 USD), invoiced 2025-03-10, recorded 2025-03-11
  S51 20 units (200.00 USD), invoiced 2025-05-05, recorded 2025-05-06
  K5  claim 25.00 submitted 2025-06-01, approved 2025-06-02, paid 25.00 on 2025-06-03
      (recorded 06-01, 06-02, 06-03)
  write-off 2.00 effective 2025-06-30, recorded 2025-07-01
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Ledger
from ledger.audit.journal import CASH, EXPENSE, LIABILITY, postings, trial_balance
from ledger.audit.journal import trial_balance_report as report_of
from tests.audit.conftest import BOOK
from tests.contract import helpers as h
from tests.e2e.conftest import Runner
from tests.test_ledger_properties import agreements, sales, stamped

D = Decimal
END = date(2025, 12, 31)

USD_BOOK: list[h.Command] = [
    h.at("2025-01-01T00:00:02Z", h.agreement("A5", customer_id="C5", currency="USD",
                                             tiers=(("0", "0.50"),))),
    h.at("2025-03-11T00:00:00Z", h.sale("S50", "40", "400.00", "2025-03-10",
                                        customer_id="C5", currency="USD")),
    h.at("2025-05-06T00:00:00Z", h.sale("S51", "20", "200.00", "2025-05-05",
                                        customer_id="C5", currency="USD")),
    h.at("2025-06-01T00:00:00Z", h.submit("K5", "25.00", submitted_on="2025-06-01",
                                          agreement_id="A5")),
    h.at("2025-06-02T00:00:00Z", h.approve("K5", approved_on="2025-06-02")),
    h.at("2025-06-03T00:00:00Z", h.settle("K5", paid_on="2025-06-03", paid_amount="25.00",
                                          payment_ref="PAY-5")),
    h.at("2025-07-01T00:00:00Z", h.write_off("2.00", effective_date="2025-06-30",
                                             agreement_id="A5")),
]


def by_recorded_time(commands: list[h.Command]) -> list[h.Command]:
    return sorted(commands, key=lambda c: str(c["recorded_at"]))


BOTH = by_recorded_time([*BOOK, *USD_BOOK])


@pytest.fixture
def two_currencies(database_url: str) -> Iterator[Ledger]:
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, BOTH)
        yield ledger


def table(ledger: Ledger, as_of: date, known_at: datetime | None = None,
          ) -> dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]]:
    return {(b.currency, b.account): (b.debit, b.credit, b.balance)
            for b in trial_balance(postings(ledger, as_of, known_at))}


def test_each_currency_has_its_own_accounts_and_balances(two_currencies: Ledger) -> None:
    balances = table(two_currencies, END)
    # USD (A5): accrual 40 x 0.50 = 20.00 (S50), true-up 20 x 0.50 = 10.00 (S51): expense
    # debited 30.00; the write-off credits expense 2.00: balance 28.00. The liability is
    # credited 30.00 and debited 25.00 (paid) + 2.00 (written off) = 27.00: -3.00, i.e. the
    # contract's 30.00 - 25.00 - 2.00 = 3.00. Cash is credited the 25.00 paid.
    assert balances[("USD", EXPENSE)] == (D("30.00"), D("2.00"), D("28.00"))
    assert balances[("USD", LIABILITY)] == (D("27.00"), D("30.00"), D("-3.00"))
    assert balances[("USD", CASH)] == (D("0"), D("25.00"), D("-25.00"))
    # EUR is the worked book of test_journal.py, untouched by the USD entries: expense
    # 307.50 / 22.00, liability 122.00 / 307.50 (-185.50), cash 0 / 100.00.
    assert balances[("EUR", EXPENSE)] == (D("307.50"), D("22.00"), D("285.50"))
    assert balances[("EUR", LIABILITY)] == (D("122.00"), D("307.50"), D("-185.50"))
    assert balances[("EUR", CASH)] == (D("0"), D("100.00"), D("-100.00"))
    report = report_of(two_currencies, END)
    checks = {c["currency"]: c for c in report.extra["checks"]}
    # debits = credits per currency: USD 30 + 27 = 57.00 = 2 + 30 + 25; EUR 307.50 + 122.00 =
    # 429.50 = 22.00 + 307.50 + 100.00
    assert (checks["USD"]["debits"], checks["USD"]["credits"]) == (D("57.00"), D("57.00"))
    assert (checks["EUR"]["debits"], checks["EUR"]["credits"]) == (D("429.50"), D("429.50"))
    assert checks["USD"]["liability_account"] == checks["USD"]["contract_liability"] == D("3.00")
    assert checks["EUR"]["contract_liability"] == D("185.50")
    assert report.extra["balanced"] is True and report.extra["liability_matches"] is True


def test_as_known_at_k_and_as_of_d(two_currencies: Ledger) -> None:
    # as known at 2025-05-01 (before S51, the claim and the write-off): USD accrued 20.00 only
    balances = table(two_currencies, END, datetime(2025, 5, 1, tzinfo=UTC))
    assert balances[("USD", LIABILITY)] == (D("0"), D("20.00"), D("-20.00"))
    assert ("USD", CASH) not in balances
    # valid at 2025-06-15 as known now: 60 units x 0.50 = 30.00 accrued, 25.00 paid on 06-03;
    # the write-off (effective 06-30) is not yet valid: liability 5.00
    balances = table(two_currencies, date(2025, 6, 15))
    assert balances[("USD", LIABILITY)] == (D("25.00"), D("30.00"), D("-5.00"))
    assert balances[("USD", EXPENSE)] == (D("30.00"), D("0"), D("30.00"))
    assert report_of(two_currencies, date(2025, 6, 15)).extra["liability_matches"] is True


def test_the_agreement_filter_keeps_one_currency(two_currencies: Ledger) -> None:
    report = report_of(two_currencies, END, agreement_id="A5")
    assert {row["currency"] for row in report.rows} == {"USD"}
    assert [c["liability_account"] for c in report.extra["checks"]] == [D("3.00")]


PROPERTY = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
START = datetime(2025, 1, 1, tzinfo=UTC)


def in_usd(commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same random sales as customer C2's, in USD, with their own sale ids."""
    return [{**c, "sale_id": f"U{c['sale_id']}", "customer_id": "C2", "currency": "USD"}
            for c in commands]


@PROPERTY
@given(eur=agreements(), usd=agreements(),
       first=st.integers(1, 6).flatmap(lambda n: sales("S", n)),
       second=st.integers(1, 6).flatmap(lambda n: sales("T", n)),
       late=st.integers(0, 3).flatmap(lambda n: sales("L", n)),
       claim=st.integers(0, 3000), write_off=st.integers(0, 500),
       as_of=st.dates(date(2025, 1, 1), date(2026, 3, 31)),
       known_minutes=st.integers(0, 2100))
def test_every_currency_balances_and_its_liability_is_the_contracts(
    eur: dict[str, Any], usd: dict[str, Any], first: list[dict[str, Any]],
    second: list[dict[str, Any]], late: list[dict[str, Any]], claim: int, write_off: int,
    as_of: date, known_minutes: int,
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
        ledger.apply(stamped([eur, usd, *first, *in_usd(second)], 0))
        ledger.apply(stamped([*in_usd(first), *second], 1000))
        ledger.apply(stamped(later, 2000))
        known = START + timedelta(minutes=known_minutes)
        for k in (known, None):
            lines = postings(ledger, as_of, k)
            contract: dict[str, Decimal] = {}
            for row in ledger.liability(as_of, k):
                contract[row.currency] = contract.get(row.currency, D(0)) + row.liability
            for currency in ("EUR", "USD"):
                mine = [x for x in lines if x.currency == currency]
                assert sum(x.debit for x in mine) == sum(x.credit for x in mine)
                balances = {b.account: b for b in trial_balance(mine)}
                account = -balances[LIABILITY].balance if LIABILITY in balances else D(0)
                assert account == contract.get(currency, D(0))
            report = report_of(ledger, as_of, k)
            assert report.extra["balanced"] and report.extra["liability_matches"]


def test_cli_trial_balance_in_two_currencies_as_a_user_types_it(tmp_path: Path) -> None:
    cli = Runner(tmp_path)
    cli.write("book.jsonl", BOTH)
    assert cli("apply", "book.jsonl").code == 0
    done = cli("trial-balance", "--as-of", "2025-12-31", "--format", "csv")
    assert done.code == 0, str(done)
    header, *rows = done.stdout.splitlines()
    assert header == "currency,account,debit,credit,balance"
    # the figures of test_each_currency_has_its_own_accounts_and_balances
    assert "USD,accrued rebate liability,27.00,30.00,-3.00" in rows
    assert "EUR,accrued rebate liability,122.00,307.50,-185.50" in rows
    assert len(rows) == 6  # three accounts in each of two currencies
    done = cli("trial-balance", "--as-of", "2025-12-31", "--known-at", "2025-05-01",
               "--agreement", "A5")
    assert done.code == 0, str(done)
    # as known at the end of 2025-05-01: S51 (recorded 05-06) not yet known: 20.00
    assert "USD: debits 20.00 = credits 20.00: balanced" in done.stdout
    assert "liability account 20.00 vs the contract's liability 20.00: equal" in done.stdout
    done = cli("journal", "--as-of", "2025-12-31", "--agreement", "A5", "--format", "json")
    assert done.code == 0, str(done)
    kinds = [(r["kind"], r["account"], r["debit"]) for r in done.json()["rows"]
             if r["debit"] != "0.00"]
    assert kinds == [
        ("accrual", EXPENSE, "20.00"), ("true-up", EXPENSE, "10.00"),
        ("settlement", LIABILITY, "25.00"), ("write-off", LIABILITY, "2.00")]
