"""The trial balance's fast totals (`ledger.audit.balances`, issue 9: the /audit page at 1M
sales) against the straightforward sum of the journal's postings,
`trial_balance(postings(...))`, which builds every posting: on random books (late sales,
returns, amendments of tiers, products and period end, forecasts, claims paid, write-offs
and their reversal, a buying group's agreement) at random D and K, on SQLite; and the whole
report, byte for byte, on the worked two-currency book on SQLite and PostgreSQL."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Ledger
from ledger.audit import balances as fast
from ledger.audit import journal
from ledger.audit.balances import balances
from ledger.audit.journal import postings, trial_balance
from tests.audit.test_trial_balance import END, two_currencies  # noqa: F401 (a fixture)
from tests.contract import helpers as h
from tests.test_ledger_properties import START, agreements, sales, stamped

PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def for_customer(commands: list[dict[str, Any]], customer: str, prefix: str,
                 currency: str = "EUR") -> list[dict[str, Any]]:
    return [{**c, "customer_id": customer, "currency": currency,
             "sale_id": f"{prefix}{c['sale_id']}"} for c in commands]


@st.composite
def changes(draw: st.DrawFn, agreement_id: str) -> list[dict[str, Any]]:
    """Amendments and forecast revisions of `agreement_id`, effective on random days."""
    found: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 3))):
        effective = (date(2025, 1, 1) + timedelta(days=draw(st.integers(0, 360)))).isoformat()
        kind = draw(st.sampled_from(["tiers", "products", "period_end", "forecast", "cap"]))
        if kind == "tiers":
            found.append(h.amend(agreement_id, effective, tiers=h.tier_list(
                (("0", draw(st.sampled_from(["0.03", "0.50", "1.10"]))),))))
        elif kind == "products":
            found.append(h.amend(agreement_id, effective, products=draw(
                st.sampled_from([["P1"], ["P1", "P2"], None]))))
        elif kind == "period_end":
            found.append(h.amend(agreement_id, effective, period_end=draw(
                st.sampled_from(["2025-06-30", "2025-12-31"]))))
        elif kind == "cap":
            found.append(h.amend(agreement_id, effective,
                                 cap=draw(st.sampled_from(["40", None]))))
        else:
            found.append(h.forecast(agreement_id, str(draw(st.integers(0, 3000))), effective))
    return found


@PROPERTY
@given(eur=agreements(), usd=agreements(), forecast=st.booleans(),
       first=st.integers(1, 8).flatmap(lambda n: sales("S", n)),
       late=st.integers(0, 5).flatmap(lambda n: sales("L", n)),
       amended=changes("A1"), amended_usd=changes("A2"),
       returned=st.integers(0, 7), claim=st.integers(0, 3000),
       write_off=st.integers(0, 500), undo_write_off=st.booleans(),
       grouped=st.booleans(),
       as_of=st.dates(date(2025, 1, 1), date(2026, 3, 31)),
       known_minutes=st.integers(0, 3100))
def test_the_fast_totals_are_the_sum_of_the_postings(
    eur: dict[str, Any], usd: dict[str, Any], forecast: bool, first: list[dict[str, Any]],
    late: list[dict[str, Any]], amended: list[dict[str, Any]],
    amended_usd: list[dict[str, Any]], returned: int, claim: int, write_off: int,
    undo_write_off: bool, grouped: bool, as_of: date, known_minutes: int,
) -> None:
    if forecast:
        eur = {**eur, "accrual_method": "forecast", "forecast_basis": "500"}
    usd = {**usd, "agreement_id": "A2", "customer_id": "C2", "currency": "USD"}
    book: list[dict[str, Any]] = [eur, usd, *first, *for_customer(first, "C2", "U", "USD")]
    if grouped:  # C1 and C3 in a buying group with its own agreement (contract 4)
        book += [h.group("G1"), h.join("C1", "2025-01-01"), h.join("C3", "2025-03-01"),
                 h.group_agreement("GA", tiers=(("0", "0.20"),)),
                 *for_customer(first, "C3", "G")]
    later: list[dict[str, Any]] = [*late, *for_customer(late, "C2", "V", "USD"), *amended,
                                   *amended_usd]
    if grouped:
        later += [h.leave("C3", "2025-08-01"), *for_customer(late, "C3", "H")]
    if returned < len(first):  # a return of one of the first sales, recorded late
        later.append(h.reversal(first[returned]["sale_id"], "2025-10-01"))
    if claim:
        later += [h.submit("K2", f"{claim / 100:.2f}", agreement_id="A2"),
                  h.approve("K2", approved_on="2025-06-02"),
                  h.settle("K2", paid_on="2025-06-03", paid_amount=f"{claim / 100:.2f}",
                           payment_ref="P2")]
    if write_off:
        later.append({**h.write_off(f"{write_off / 100:.2f}", effective_date="2025-09-30",
                                    agreement_id="A1"), "write_off_id": "W1"})
        if undo_write_off:
            later.append(h.reverse_write_off("W1", "2025-11-30"))
    with tempfile.TemporaryDirectory() as folder, Ledger(
        f"sqlite:///{Path(folder) / 'ledger.db'}"
    ) as ledger:
        ledger.apply(stamped(book, 0))
        ledger.apply(stamped(later, 2000))
        known = START + timedelta(minutes=known_minutes)
        for k in (known, None):
            assert balances(ledger, as_of, k) == trial_balance(postings(ledger, as_of, k))
            for one in ("A1", "GA"):
                assert balances(ledger, as_of, k, agreement_id=one) == trial_balance(
                    postings(ledger, as_of, k, agreement_id=one))
            assert balances(ledger, as_of, k, customer_id="C1") == trial_balance(
                postings(ledger, as_of, k, customer_id="C1"))


def test_the_report_is_byte_identical_on_both_databases(
        two_currencies: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The report from the fast totals, then from every posting (the code before)."""
    for as_of, known_at in ((END, None), (date(2025, 6, 30), None),
                            (END, h.moment("2025-06-02T12:00:00Z")), (END, h.moment(
                                "2025-05-06T00:00:00Z"))):
        with monkeypatch.context() as patched:
            patched.setattr(fast, "balances", lambda ledger, d, k, **kw: trial_balance(
                journal.iter_postings(ledger, d, k, with_events=False, **kw)))
            before = journal.trial_balance_report(two_currencies, as_of, known_at).to_json()
        now = journal.trial_balance_report(two_currencies, as_of, known_at)
        assert now.rows, "the worked book has postings"
        assert now.to_json() == before
        for one in ("A1", "A5"):
            assert balances(two_currencies, as_of, known_at, agreement_id=one) == \
                trial_balance(postings(two_currencies, as_of, known_at, agreement_id=one))


def test_sums_past_sqlites_integer_range_stay_exact(database_url: str) -> None:
    """Three sales of 4,000,000,000,000.00 EUR recorded at one moment: each is kept in
    millionths (under 2**62, `ledger.money.to_micro`), their sum passes SQLite's integers
    (its SUM raises 'integer overflow': /audit and trial-balance failed): the totals come from
    the exact general path instead, equal to the sum of the postings; the same on PostgreSQL."""
    book = [h.agreement("A1", customer_id="C1", basis="amount", rate_kind="percent",
                        tiers=(("0", "0.01"),)),
            *(h.sale(f"S{n}", "1", "4000000000000.00", f"2025-0{n}-01") for n in (1, 2, 3))]
    # recorded at one moment: SQL sums them together
    book = [h.at("2025-04-01T00:00:00Z", c) for c in book]
    with Ledger(database_url) as ledger:
        report = ledger.apply(book)
        assert not report.rejected, report.to_dict()["rejections"]
        as_of = date(2025, 12, 31)
        assert balances(ledger, as_of, None) == trial_balance(postings(ledger, as_of, None))
        assert balances(ledger, as_of, None, agreement_id="A1") == trial_balance(
            postings(ledger, as_of, None, agreement_id="A1"))


#: rising tiers (each rate at least the one below): `balances` merges runs of moments that
#: only add basis (`fast._runs`)
RISING = (("0", "0.5"), ("10", "1"), ("30", "2"))


def _merged(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record (moments in, rows out) of each `fast._runs` call."""
    seen: list[tuple[int, int]] = []
    runs = fast._runs

    def recording(found, first, bounds):  # type: ignore[no-untyped-def]
        rows = runs(found, first, bounds)
        seen.append((len(found), len(rows)))
        return rows

    monkeypatch.setattr(fast, "_runs", recording)
    return seen


@st.composite
def moments(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Sales (credit notes among them), returns and amendments of A1, each recorded at its
    own minute or with the one before."""
    book: list[dict[str, Any]] = []
    minute = 0
    for n in range(draw(st.integers(1, 14))):
        minute += draw(st.sampled_from([0, 1, 1, 2]))
        kind = draw(st.sampled_from(["sale", "sale", "sale", "credit", "return", "amend"]))
        invoice = f"2025-{draw(st.integers(1, 12)):02d}-01"
        if kind == "sale":
            command = h.sale(f"S{n}", str(draw(st.integers(0, 25))), "10.00", invoice)
        elif kind == "credit":
            command = h.sale(f"S{n}", str(-draw(st.integers(1, 25))), "-10.00", invoice)
        elif kind == "return" and any(c["type"] == "record_sale" for c in book):
            sold = [c["sale_id"] for c in book if c["type"] == "record_sale"]
            command = h.reversal(draw(st.sampled_from(sold)), invoice)
        else:
            command = h.amend("A1", invoice, tiers=h.tier_list(draw(st.sampled_from(
                [RISING, (("0", "0.5"), ("5", "3")), (("0", "2"), ("20", "1"))]))))
        book.append(h.at(f"2025-01-01T{minute // 60:02d}:{minute % 60:02d}:00Z", command))
    return book


@PROPERTY
@given(book=moments(), as_of=st.dates(date(2025, 1, 1), date(2026, 1, 31)),
       known_minutes=st.integers(0, 60))
def test_merged_runs_give_the_sum_of_the_postings(
        book: list[dict[str, Any]], as_of: date, known_minutes: int) -> None:
    """Runs of sales between credit notes, returns and amendments (rising or not), a moment
    with several of them: the merged runs give the same totals as every posting."""
    agreement = h.at("2024-12-31T00:00:00Z", h.agreement("A1", tiers=RISING))
    with tempfile.TemporaryDirectory() as folder, Ledger(
        f"sqlite:///{Path(folder) / 'ledger.db'}"
    ) as ledger:
        ledger.apply([agreement, *book])
        known = h.moment("2025-01-01T00:00:00Z") + timedelta(minutes=known_minutes)
        for k in (known, None):
            assert balances(ledger, as_of, k) == trial_balance(postings(ledger, as_of, k))


def test_a_run_of_sales_is_one_row_on_both_databases(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five sales at five moments, a credit note, three more sales, a sale with an amendment
    to lower rising tiers at one moment (its sale counts there, not with the run before),
    two more sales: `_runs` returns the runs merged (fewer rows than moments) and the totals
    are those of every posting, on SQLite and PostgreSQL."""
    seen = _merged(monkeypatch)
    book = [h.at("2024-12-31T00:00:00Z", h.agreement("A1", tiers=(("0", "1"), ("10", "3"))))]
    for n in range(11):
        moment = f"2025-01-01T00:{n:02d}:00Z"
        if n == 8:
            book.append(h.at(moment, h.amend("A1", "2025-02-01", tiers=h.tier_list(RISING))))
        book.append(h.at(moment, h.sale(f"S{n}", "-4", "-40.00") if n == 5 else
                         h.sale(f"S{n}", "3", "30.00")))
    with Ledger(database_url) as ledger:
        report = ledger.apply(book)
        assert not report.rejected, report.to_dict()["rejections"]
        as_of = date(2025, 12, 31)
        assert balances(ledger, as_of, None) == trial_balance(postings(ledger, as_of, None))
    assert seen and all(rows < found for found, rows in seen), seen


def test_the_service_report_takes_the_kept_liability(
        two_currencies: Ledger) -> None:  # noqa: F811
    """`LedgerService.trial_balance` checks against the liability answer the service keeps
    (the /liability page's): the same bytes as the report that computes the liability, and
    the second report finds the liability kept instead of computing it again."""
    from ledger.access import operator
    from ledger.service import LedgerService

    service = LedgerService(two_currencies)
    principal = operator("test")
    for as_of, known_at in ((END, None), (END, h.moment("2025-06-02T12:00:00Z"))):
        direct = journal.trial_balance_report(two_currencies, as_of, known_at).to_json()
        assert service.trial_balance(principal, as_of, known_at) == direct
        hits = service.answers.hits
        assert service.trial_balance(principal, as_of, known_at) == direct
        assert service.answers.hits == hits + 1
        for one in ("A1", "A5"):
            assert service.trial_balance(principal, as_of, known_at, agreement_id=one) == \
                journal.trial_balance_report(two_currencies, as_of, known_at,
                                             agreement_id=one).to_json()
