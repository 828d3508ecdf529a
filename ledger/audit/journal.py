"""The double-entry journal of the rebate position at valid date D, as known at K.

Every movement of money is a balanced entry, per customer and agreement, derived from events:

- **accrual / true-up**: at each recorded moment at which something about an agreement became
  known (a sale or reversal in its basis, a terms change, a forecast revision), the accrued
  figure at D moves from what it was just before to what it is just after (both the contract's
  rounded figures, `ledger.audit.facts`). An increase debits *rebate expense (contra-revenue)*
  and credits *accrued rebate liability*; a decrease the reverse. The first is the accrual, the
  later ones true-ups; together they add up to the accrued figure at (D, K) exactly.
- **settlement**: a claim paid (valid date on or before D) debits the liability and credits
  *cash / credit notes*.
- **write-off**: debits the liability and credits rebate expense.

So the liability account's credit balance is accrued - paid - written off: the contract's
liability, to the cent. Approvals move no money (they are memo figures in `reconcile`).
"""

from __future__ import annotations

import csv
import itertools
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

import orjson
from rich.console import Console
from sqlalchemy.orm import Session

from ledger.audit.facts import (
    Facts,
    agreement_ids,
    business_ids,
    event_ids,
    load_facts,
    sale_business_ids,
)
from ledger.audit.output import Report, _cell, emit, money, money_figure, plain, shown
from ledger.core import Ledger
from ledger.liability import FOREVER_US, LiabilityRow
from ledger.money import EXACT, ZERO, round_money
from ledger.projections.core import from_us, to_us
from ledger.text import csv_cell

EXPENSE = "rebate expense (contra-revenue)"
LIABILITY = "accrued rebate liability"
CASH = "cash / credit notes"
ACCOUNTS = (EXPENSE, LIABILITY, CASH)


@dataclass(frozen=True)
class Posting:
    """One line of a balanced entry: `debit` or `credit` is zero."""

    entry: int
    recorded_at: datetime
    valid_date: date
    agreement_id: str
    customer_id: str | None  # None: a buying group's agreement
    currency: str
    kind: str  # accrual | true-up | settlement | write-off
    account: str
    debit: Decimal
    credit: Decimal
    events: tuple[str, ...]
    #: the business ids its events are about (claim, amendment, write-off, membership);
    #: a sales batch's sales are listed by `explain`
    about: str = ""

    def to_row(self) -> dict[str, object]:
        return {
            "entry": self.entry, "recorded_at": self.recorded_at, "valid_date": self.valid_date,
            "agreement_id": self.agreement_id, "customer_id": self.customer_id,
            "currency": self.currency, "kind": self.kind, "account": self.account,
            "debit": money(self.debit), "credit": money(self.credit),
            "events": list(self.events), "about": self.about,
        }


class _Entries:
    def __init__(self, number: int = 0) -> None:
        self.postings: list[Posting] = []
        self.number = number

    def add(self, facts: Facts, recorded_us: int, valid: date, kind: str, debit: str,
            credit: str, amount: Decimal, events: tuple[str, ...]) -> None:
        if amount == 0:
            return
        if amount < 0:  # a negative movement is the reverse entry
            debit, credit, amount = credit, debit, -amount
        self.number += 1
        moment = from_us(recorded_us)
        for account, dr, cr in ((debit, amount, ZERO), (credit, ZERO, amount)):
            self.postings.append(Posting(
                self.number, moment, valid, facts.agreement_id, facts.customer_id,
                facts.currency, kind, account, dr, cr, events,
            ))


def iter_postings(
    ledger: Ledger,
    as_of: date,
    known_at: datetime | None = None,
    *,
    agreement_id: str | None = None,
    customer_id: str | None = None,
    with_events: bool = True,
) -> Iterator[Posting]:
    """Every posting behind the position at D as known at K, agreement by agreement, each
    agreement's entries in recorded order; entries numbered from 1 across the whole journal.

    Streams: one agreement's facts are loaded, its postings yielded, and both dropped before
    the next agreement, so memory is bounded by the largest agreement, not by the history
    (issue 11). `with_events=False` leaves each posting's `events` empty and skips the event
    id look-up (the trial balance needs only the figures)."""
    known_us = FOREVER_US if known_at is None else to_us(known_at)
    number = 0
    with Session(ledger.engine) as session:
        ids = agreement_ids(session, known_us, agreement_id=agreement_id,
                            customer_id=customer_id, as_of=as_of)
        for agreement in ids:
            facts = load_facts(session, agreement, as_of, known_us)
            names: dict[int, str] = {}
            if with_events:
                positions = {b.position for b in facts.basis_rows}
                positions |= {m.position for m in facts.membership_rows}
                names = event_ids(session, ledger.app.recorder, positions)
            entries = _Entries(number)
            _post(facts, as_of, names, entries, with_events)
            number = entries.number
            about = business_ids(facts) if with_events else {}
            sold = sale_business_ids(session, facts, names) if with_events else {}
            del facts, names
            for posting in entries.postings:
                moment = to_us(posting.recorded_at)
                said = "; ".join(dict.fromkeys(
                    about[e] if e in about else sold[(e, moment)] for e in posting.events
                    if e in about or (e, moment) in sold))
                yield replace(posting, about=said) if said else posting


def _post(facts: Facts, as_of: date, names: dict[int, str], entries: _Entries,
          with_events: bool) -> None:
    """The agreement's entries: accrual and true-ups from its timeline, settlements and
    write-offs from its money rows."""
    previous = ZERO
    accrued_once = False
    for moment in facts.timeline():
        delta = EXACT.subtract(moment.accrued, previous)
        if delta != 0:
            events = tuple(dict.fromkeys(
                [t.event_id for t in moment.terms]
                + [m.event_id for m in moment.members]
                + [names.get(s.position, str(s.position)) for s in moment.sales]
            )) if with_events else ()
            entries.add(facts, moment.recorded_us, as_of,
                        "true-up" if accrued_once else "accrual",
                        EXPENSE, LIABILITY, delta, events)
            accrued_once = True
        previous = moment.accrued
        for row in moment.money:
            events = (row.event_id,) if with_events else ()
            if row.kind == "paid":
                entries.add(facts, row.recorded_us, row.valid_date, "settlement",
                            LIABILITY, CASH, row.amount, events)
            elif row.kind == "written_off":  # negative: a reversal posts back
                entries.add(facts, row.recorded_us, row.valid_date,
                            "write-off" if row.amount > 0 else "write-off reversal",
                            LIABILITY, EXPENSE, row.amount, events)


def postings(
    ledger: Ledger,
    as_of: date,
    known_at: datetime | None = None,
    *,
    agreement_id: str | None = None,
    customer_id: str | None = None,
) -> list[Posting]:
    """`iter_postings` as a list (for a bounded selection: one agreement or customer)."""
    return list(iter_postings(ledger, as_of, known_at, agreement_id=agreement_id,
                              customer_id=customer_id))


@dataclass(frozen=True)
class Balance:
    currency: str
    account: str
    debit: Decimal
    credit: Decimal

    @property
    def balance(self) -> Decimal:
        """Debit minus credit (a liability's balance is negative: a credit balance)."""
        return EXACT.subtract(self.debit, self.credit)


def trial_balance(lines: Iterable[Posting]) -> list[Balance]:
    totals: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for line in lines:
        pair = totals[(line.currency, line.account)]
        pair[0] = EXACT.add(pair[0], line.debit)
        pair[1] = EXACT.add(pair[1], line.credit)
    return [
        Balance(currency, account, *totals[(currency, account)])
        for currency in sorted({c for c, _ in totals})
        for account in ACCOUNTS
        if (currency, account) in totals
    ]


JOURNAL_COLUMNS = ("entry", "recorded_at", "valid_date", "agreement_id", "customer_id",
                   "currency", "kind", "account", "debit", "credit", "events", "about")
#: the table shows debits and credits for people: `1,234.50 EUR`
JOURNAL_FIGURES = {"debit": money_figure(), "credit": money_figure()}


def _journal_title(as_of: date, known_at: datetime | None) -> str:
    return f"Journal of the rebate position at {as_of}, as known at {_known_text(known_at)}"


def _journal_note(entries: int, postings_count: int) -> str:
    return f"{entries} entries, {postings_count} postings"


def journal_report(
    ledger: Ledger, as_of: date, known_at: datetime | None = None, *,
    agreement_id: str | None = None, customer_id: str | None = None,
) -> Report:
    """The journal as one `Report` (every row in memory: for one agreement or customer, or a
    page of it; the CLI streams the whole book with `write_journal`)."""
    lines = postings(ledger, as_of, known_at, agreement_id=agreement_id,
                     customer_id=customer_id)
    entries = len({line.entry for line in lines})
    return Report(
        title=_journal_title(as_of, known_at),
        columns=JOURNAL_COLUMNS,
        rows=[line.to_row() for line in lines],
        meta={"as_of": as_of, "known_at": known_at},
        extra={"entries": entries},
        figures=JOURNAL_FIGURES,
        notes=[_journal_note(entries, len(lines))],
    )


def journal_page(
    ledger: Ledger, as_of: date, known_at: datetime | None = None, *,
    agreement_id: str | None = None, customer_id: str | None = None,
    after: int = 0, limit: int | None = None,
) -> Report:
    """The journal's entries numbered after `after`, at most `limit` of them (all without),
    from the stream: only the page's rows are kept; `entries` and the note count them all."""
    assert after >= 0 and (limit is None or limit >= 1)
    last = None if limit is None else after + limit
    rows = []
    entries = count = 0
    for line in iter_postings(ledger, as_of, known_at, agreement_id=agreement_id,
                              customer_id=customer_id):
        count += 1
        entries = line.entry
        if after < line.entry and (last is None or line.entry <= last):
            rows.append(line.to_row())
    return Report(
        title=_journal_title(as_of, known_at),
        columns=JOURNAL_COLUMNS,
        rows=rows,
        meta={"as_of": as_of, "known_at": known_at},
        extra={"entries": entries},
        notes=[_journal_note(entries, count)],
        figures=JOURNAL_FIGURES,
    )


def write_journal(
    ledger: Ledger, as_of: date, known_at: datetime | None, output: str, out: TextIO,
    console: Console, *, agreement_id: str | None = None, customer_id: str | None = None,
    plain_above: int = 2000,
) -> None:
    """Print the journal in `output` format ("json", "csv" or "table") as it is computed, in
    bounded memory: the same bytes as `journal_report(...)` printed by `emit`, except that a
    table of more than `plain_above` rows is a plain aligned table (rich needs about 1 ms a
    row), its cells spooled to a temporary file while the column widths are measured."""
    rows = (line.to_row() for line in iter_postings(
        ledger, as_of, known_at, agreement_id=agreement_id, customer_id=customer_id))
    meta = {"as_of": as_of, "known_at": known_at}
    counted = _Counted()
    if output == "json":
        head = orjson.dumps(plain(meta))
        out.write(head[:-1].decode() + (',"rows":[' if len(head) > 2 else '"rows":['))
        for n, row in enumerate(counted.rows(rows)):
            out.write(("," if n else "") + orjson.dumps(plain(row)).decode())
        out.write("]," + orjson.dumps({"entries": counted.entries}).decode()[1:] + "\n")
    elif output == "csv":
        writer = csv.DictWriter(out, fieldnames=list(JOURNAL_COLUMNS), lineterminator="\n",
                                extrasaction="ignore")
        writer.writeheader()
        for row in counted.rows(rows):
            writer.writerow({k: csv_cell(_cell(v)) for k, v in plain(row).items()})
    else:
        title = _journal_title(as_of, known_at)
        first = list(itertools.islice(counted.rows(rows), plain_above + 1))
        if len(first) <= plain_above:
            emit(Report(title, JOURNAL_COLUMNS, first, meta, {"entries": counted.entries},
                        [_journal_note(counted.entries, counted.count)],
                        figures=JOURNAL_FIGURES), "table", console,
                 out)
            return
        _plain_table(title, first, counted.rows(rows), counted, out)


class _Counted:
    """Counts the rows and entries passing through (the journal's closing note)."""

    def __init__(self) -> None:
        self.count = 0
        self.entries = 0

    def rows(self, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            self.count += 1
            self.entries = max(self.entries, int(row["entry"]))
            yield row


def _plain_table(title: str, first: list[dict[str, Any]], rest: Iterator[dict[str, Any]],
                 counted: _Counted, out: TextIO) -> None:
    """A plain text table: a header, a rule, numbers right-aligned (`first` decides which
    columns are numbers); the cells go to a temporary file while the widths are measured,
    then are printed aligned."""
    columns = JOURNAL_COLUMNS
    numeric = {i for i, c in enumerate(columns)
               if c in JOURNAL_FIGURES
               or any(isinstance(r.get(c), (Decimal, int)) for r in first[:50])}
    widths = [len(c) for c in columns]
    with tempfile.TemporaryFile() as spool:
        for row in itertools.chain(first, rest):
            cells = [shown(row, c, JOURNAL_FIGURES) for c in columns]
            widths = [max(w, len(v)) for w, v in zip(widths, cells, strict=True)]
            spool.write(orjson.dumps(cells) + b"\n")
        del first

        def line(values: list[str]) -> str:
            return "  ".join(v.rjust(w) if i in numeric else v.ljust(w)
                             for i, (v, w) in enumerate(zip(values, widths, strict=True))
                             ).rstrip()

        out.write(title + "\n")
        out.write(line(list(columns)) + "\n")
        out.write("  ".join("-" * w for w in widths) + "\n")
        spool.seek(0)
        for saved in spool:
            out.write(line(orjson.loads(saved)) + "\n")
    out.write(_journal_note(counted.entries, counted.count) + "\n")


def trial_balance_report(
    ledger: Ledger, as_of: date, known_at: datetime | None = None, *,
    agreement_id: str | None = None, customer_id: str | None = None,
    liability: Iterable[LiabilityRow] | None = None,
) -> Report:
    """Per currency and account: debits, credits, balance; whether each currency balances, and
    the liability account against the contract's liability (`Ledger.liability`, or the rows
    `liability` of the same question: `LedgerService` passes its kept answer)."""
    from ledger.audit.balances import balances as totals  # it imports this module

    # the totals of `trial_balance(iter_postings(...))`, without the postings (issue 9)
    balances = totals(ledger, as_of, known_at, agreement_id=agreement_id,
                      customer_id=customer_id)
    contract: dict[str, Decimal] = defaultdict(lambda: ZERO)
    if liability is None:
        liability = ledger.liability(as_of, known_at, agreement_id=agreement_id,
                                     customer_id=customer_id)
    for row in liability:
        contract[row.currency] = EXACT.add(contract[row.currency], row.liability)
    checks = []
    notes = []
    for currency in sorted({b.currency for b in balances} | set(contract)):
        mine = [b for b in balances if b.currency == currency]
        debit = sum((b.debit for b in mine), ZERO)
        credit = sum((b.credit for b in mine), ZERO)
        account = next((b for b in mine if b.account == LIABILITY), None)
        ledger_liability = round_money(-account.balance) if account is not None else ZERO
        checks.append({
            "currency": currency, "debits": money(debit), "credits": money(credit),
            "balanced": debit == credit,
            "liability_account": ledger_liability,
            "contract_liability": round_money(contract[currency]),
            "liability_matches": ledger_liability == round_money(contract[currency]),
        })
        notes.append(
            f"{currency}: debits {debit:.2f} = credits {credit:.2f}: "
            f"{'balanced' if debit == credit else 'NOT BALANCED'}; liability account "
            f"{ledger_liability:.2f} vs the contract's liability "
            f"{round_money(contract[currency]):.2f}: "
            f"{'equal' if ledger_liability == round_money(contract[currency]) else 'DIFFERENT'}"
        )
    return Report(
        title=f"Trial balance at {as_of}, as known at {_known_text(known_at)}",
        columns=("currency", "account", "debit", "credit", "balance"),
        rows=[{"currency": b.currency, "account": b.account, "debit": money(b.debit),
               "credit": money(b.credit), "balance": money(b.balance)}
              for b in balances],
        meta={"as_of": as_of, "known_at": known_at},
        extra={"checks": checks,
               "balanced": all(c["balanced"] for c in checks),
               "liability_matches": all(c["liability_matches"] for c in checks)},
        notes=notes,
    )


def dr_cr(balance: Decimal) -> str:
    """A balance as a bookkeeper reads it: `1,234.56 Dr` (debit) or `1,234.56 Cr` (credit),
    with thousands separators; the table's form only (json and csv keep the signed figure)."""
    side = "Cr" if balance < 0 else "Dr"
    return f"{abs(money(balance)):,} {side}"


def trial_balance_table(report: Report) -> Report:
    """The trial balance for people: debits and credits with thousands separators, the
    balance with Dr or Cr instead of a sign."""
    return replace(report, rows=[
        {**row, "debit": f"{row['debit']:,}", "credit": f"{row['credit']:,}",
         "balance": dr_cr(row["balance"])} for row in report.rows])


def _known_text(known_at: datetime | None) -> str:
    return "everything recorded" if known_at is None else known_at.isoformat()
