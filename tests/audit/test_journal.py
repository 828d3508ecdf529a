"""The double-entry journal and the trial balance (issue 4, item 1), on the worked book of
conftest.py, on SQLite and PostgreSQL; a hypothesis property on random books; the CLI."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Ledger
from ledger.audit.journal import (
    CASH,
    EXPENSE,
    LIABILITY,
    postings,
    trial_balance,
    trial_balance_report,
)
from tests.e2e.conftest import Runner
from tests.test_ledger_properties import agreements, sales, stamped

END = date(2025, 12, 31)
D = Decimal


def entries(lines: list[Any], agreement_id: str) -> list[tuple[str, str, Decimal, str]]:
    """(kind, debited account, amount, recorded date) per entry of one agreement."""
    found = []
    for line in lines:
        if line.agreement_id == agreement_id and line.debit:
            found.append((line.kind, line.account, line.debit, line.recorded_at.date().isoformat()))
    return found


def test_every_entry_of_the_worked_book_in_recorded_order(book: Ledger) -> None:
    # A1 at 2025-12-31: 60 units x 1.00 = 60.00 (S1); 110 units reach the 2.00 tier: 220.00,
    # +160.00 (S2); paid 100.00; written off 10.00; the amendment (2.50 from 100) makes it
    # 110 x 2.50 = 275.00, +55.00; the late S3 makes 115 x 2.50 = 287.50, +12.50.
    assert entries(postings(book, END), "A1") == [
        ("accrual", EXPENSE, D("60.00"), "2025-02-01"),
        ("true-up", EXPENSE, D("160.00"), "2025-03-01"),
        ("settlement", LIABILITY, D("100.00"), "2025-04-03"),
        ("write-off", LIABILITY, D("10.00"), "2025-05-01"),
        ("true-up", EXPENSE, D("55.00"), "2025-05-02"),
        ("true-up", EXPENSE, D("12.50"), "2025-07-15"),
    ]
    # A2: forecast method, E = max(400, 2000) = 2000 reaches 5 %: 0.05 x 400 = 20.00; the
    # forecast revised to 500 gives E = 500, 2 %: 8.00, a true-up of -12.00 (liability debited).
    assert entries(postings(book, END), "A2") == [
        ("accrual", EXPENSE, D("20.00"), "2025-02-11"),
        ("true-up", LIABILITY, D("12.00"), "2025-03-05"),
    ]


def test_each_entry_names_the_events_it_came_from(book: Ledger) -> None:
    lines = postings(book, END, agreement_id="A1")
    settlement = next(line for line in lines if line.kind == "settlement")
    amendment = [line for line in lines if line.recorded_at.date() == date(2025, 5, 2)]
    assert len(settlement.events) == 1 and settlement.events[0].endswith("/3")  # the claim's 3rd
    assert len(amendment) == 2 and amendment[0].events == amendment[1].events
    # the agreement's third event: created (1), written off (2), amended (3)
    assert amendment[0].events[0].endswith("/3")
    assert all(line.events for line in lines)


def test_each_entry_names_the_sales_and_business_ids_beside_its_events(book: Ledger) -> None:
    """Issue 14 point 7: an entry made by sales names them (`sale S1`), by the agreement's
    creation, amendment, claim or write-off names those, beside the event ids; another
    customer's sale in the same store (S10 of C2) is never named on A1."""
    about = [(line.kind, line.recorded_at.date().isoformat(), line.about)
             for line in postings(book, END, agreement_id="A1") if line.debit]
    assert about == [
        ("accrual", "2025-02-01", "sale S1"),
        ("true-up", "2025-03-01", "sale S2"),
        ("settlement", "2025-04-03", "claim K1 settled"),
        ("write-off", "2025-05-01", "write-off of A1"),
        ("true-up", "2025-05-02", "amendment of A1 from 2025-01-01"),
        ("true-up", "2025-07-15", "sale S3"),
    ]
    # as known before S3 was recorded, its event is not named (nor posted)
    early = postings(book, END, datetime(2025, 7, 1, tzinfo=UTC), agreement_id="A1")
    assert all("S3" not in line.about for line in early)
    assert "S10" in " ".join(line.about for line in postings(book, END, agreement_id="A2"))


def test_trial_balance_balances_and_its_liability_account_is_the_contracts(book: Ledger) -> None:
    balances = {(b.account): b for b in trial_balance(postings(book, END))}
    # expense: debits 60 + 160 + 55 + 12.50 + 20 = 307.50, credits 10 (write-off) + 12 = 22
    assert (balances[EXPENSE].debit, balances[EXPENSE].credit) == (D("307.50"), D("22.00"))
    # liability: credits 307.50, debits 100 + 10 + 12 = 122: credit balance 185.50
    assert balances[LIABILITY].balance == D("-185.50")
    assert balances[CASH].balance == D("-100.00")
    # = the contract: A1 287.50 - 100 - 10 = 177.50, A2 8.00
    assert sum(r.liability for r in book.liability(END)) == D("185.50")
    report = trial_balance_report(book, END)
    assert report.extra["balanced"] and report.extra["liability_matches"]


def test_as_known_at_k_the_journal_stops_at_k(book: Ledger) -> None:
    # as known at 2025-05-01 (before the amendment and the late sale): 60 + 160 accrued,
    # paid 100, written off 10: liability 110.00 for A1, 8.00 for A2.
    known = datetime(2025, 5, 1, 12, tzinfo=UTC)
    lines = postings(book, END, known)
    assert max(line.recorded_at for line in lines) <= known
    liability = {b.account: b for b in trial_balance(lines)}[LIABILITY]
    assert liability.balance == D("-118.00")
    assert trial_balance_report(book, END, known).extra["liability_matches"]


def test_as_of_an_earlier_date_payments_after_it_are_not_posted(book: Ledger) -> None:
    # at 2025-03-31 as known now: 115 units (S3 invoiced 03-20) x 2.50 = 287.50; the payment
    # (04-02) and the write-off (04-30) are after D.
    lines = postings(book, date(2025, 3, 31), agreement_id="A1")
    assert {line.kind for line in lines} == {"accrual", "true-up"}
    assert {b.account: b for b in trial_balance(lines)}[LIABILITY].balance == D("-287.50")


PROPERTY = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
START = datetime(2025, 1, 1, tzinfo=UTC)


@PROPERTY
@given(agreement=agreements(), book=st.integers(1, 8).flatmap(lambda n: sales("S", n)),
       late=st.integers(0, 4).flatmap(lambda n: sales("L", n)),
       amend=st.booleans(), claim=st.integers(0, 3000), write_off=st.integers(0, 500),
       as_of=st.dates(date(2025, 1, 1), date(2026, 3, 31)),
       known_minutes=st.integers(0, 2000))
def test_the_journal_always_balances_and_equals_the_contract(
    agreement: dict[str, Any], book: list[dict[str, Any]], late: list[dict[str, Any]],
    amend: bool, claim: int, write_off: int, as_of: date, known_minutes: int,
) -> None:
    later: list[dict[str, Any]] = list(late)
    if amend:
        later.append({"type": "amend_agreement", "agreement_id": "A1",
                      "effective_from": "2025-03-01", "tiers": [{"from": "0", "rate": "0.5"}]})
    if claim:
        amount = f"{claim / 100:.2f}"
        later += [
            {"type": "submit_claim", "claim_id": "K1", "agreement_id": "A1",
             "amount": amount, "submitted_on": "2025-06-01"},
            {"type": "approve_claim", "claim_id": "K1", "approved_on": "2025-06-02"},
            {"type": "settle_claim", "claim_id": "K1", "paid_on": "2025-06-03",
             "payment_ref": "P1"},
        ]
    if write_off:
        later.append({"type": "write_off", "agreement_id": "A1",
                      "amount": f"{write_off / 100:.2f}", "effective_date": "2025-09-30",
                      "reason": "test"})
    with tempfile.TemporaryDirectory() as folder, Ledger(
        f"sqlite:///{Path(folder) / 'ledger.db'}"
    ) as ledger:
        ledger.apply(stamped([agreement, *book], 0))
        ledger.apply(stamped(later, 1000))
        known = START + timedelta(minutes=known_minutes)
        for k in (known, None):
            lines = postings(ledger, as_of, k)
            assert sum(x.debit for x in lines) == sum(x.credit for x in lines)
            balances = {b.account: b for b in trial_balance(lines)}
            owed = sum((r.liability for r in ledger.liability(as_of, k)), D(0))
            account = -balances[LIABILITY].balance if LIABILITY in balances else D(0)
            assert account == owed
            assert all(x.debit >= 0 and x.credit >= 0 for x in lines)


def test_cli_journal_and_trial_balance_as_a_user_types_them(cli: Runner) -> None:
    done = cli("trial-balance", "--as-of", "2025-12-31", "--format", "json")
    assert done.code == 0, str(done)
    document = done.json()
    assert document["balanced"] is True and document["liability_matches"] is True
    (check,) = document["checks"]
    assert check["liability_account"] == check["contract_liability"] == "185.50"
    done = cli("journal", "--as-of", "2025-12-31", "--agreement", "A1", "--format", "csv")
    assert done.code == 0, str(done)
    header, *rows = done.stdout.splitlines()
    assert header.startswith("entry,recorded_at,valid_date,agreement_id")
    assert len(rows) == 12  # six entries of two lines
    # without --as-of the journal is valid today: any day after 2025 (the book's last event is
    # 2025-07-15) gives the same six A1 entries; the accruals are valid today, the settlement
    # on its payment date 2025-04-02, the write-off on its effective date 2025-04-30
    done = cli("journal", "--agreement", "A1", "--format", "csv")
    assert done.code == 0, str(done)
    header, *today = done.stdout.splitlines()
    assert len(today) == 12
    assert {(row.split(",")[6], row.split(",")[2]) for row in today} == {
        ("accrual", datetime.now(UTC).date().isoformat()),
        ("true-up", datetime.now(UTC).date().isoformat()),
        ("settlement", "2025-04-02"), ("write-off", "2025-04-30")}
    done = cli("journal", "--as-of", "2025-12-31", "--known-at", "2025-03-01")
    assert done.code == 0 and "true-up" in done.stdout and "settlement" not in done.stdout
    done = cli("trial-balance", "--as-of", "2025-13-01")
    assert done.code == 2 and "--as-of" in done.stderr


def test_a_long_journal_prints_as_a_plain_aligned_table(book: Ledger) -> None:
    # `journal --format table` above PLAIN_TABLE_ROWS postings (the demo book's 140,000 would
    # take rich two minutes): the same rows, numbers right-aligned under their header
    import io

    from ledger.audit.journal import journal_report
    from ledger.cli.finance import _plain_table

    out = io.StringIO()
    _plain_table(journal_report(book, END, agreement_id="A1"), out)
    title, header, rule, *rows, note = out.getvalue().splitlines()
    assert title.startswith("Journal of the rebate position at 2025-12-31")
    assert header.split() == ["entry", "recorded_at", "valid_date", "agreement_id",
                              "customer_id", "currency", "kind", "account", "debit", "credit",
                              "events", "about"]
    assert len(rows) == 12 and note == "6 entries, 12 postings"
    # the accrual of S1 (60.00 EUR, with its currency for people): right-aligned under
    # "debit" in a column as wide as "160.00 EUR", so both end at the same place
    first = rows[0]
    assert "accrual" in first
    assert first.index("60.00 EUR") + len("60.00 EUR") == header.index("debit") + len("debit")
    assert len(rule.split()) == 12


def test_journal_names_the_business_ids_of_its_events(cli: Runner) -> None:
    """Issue 14, point 7: beside the event ids, what they are about."""
    import csv

    done = cli("journal", "--as-of", "2025-12-31", "--agreement", "A1", "--format", "csv")
    assert done.code == 0, str(done)
    about = {(r["kind"], r["about"]) for r in csv.DictReader(done.stdout.splitlines())}
    assert {("settlement", "claim K1 settled"), ("write-off", "write-off of A1"),
            ("true-up", "amendment of A1 from 2025-01-01")} <= about
