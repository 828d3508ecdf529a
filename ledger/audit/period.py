"""The postings of a period: `journal --from D1 --to D2` and `trial-balance --from D1 --to D2`.

The books of a period D1 to D2, as known at K, are the difference of two positions the
journal already derives (`ledger.audit.journal`, both as known at K): the position at the day
before D1 (the opening balances) and the position at D2 (the closing balances). The postings
dated in the period are what moves one into the other:

- *accrual*: per agreement, the accrued figure at D2 minus the accrued figure the day before
  D1 (the contract's rounded figures, section 2.7), posted on D2, the period's last day, as a
  period-end accrual is booked: an increase debits rebate expense and credits the accrued
  liability, a decrease the reverse. Its events are those that take effect in the period (sales
  invoiced and reversals dated in it, amendments and forecasts effective in it, joins and leaves
  effective in it), the first `EVENTS_MAX` of them listed; `recorded_at` is when the latest of
  them was recorded.
- *settlement* and *write-off*: each payment and write-off (or its reversal) whose valid date
  (`paid_on`, `effective_date`, `reversed_on`) is in the period, posted on that date, as in the
  journal at D2.

So for every currency and account, opening + the period's debits - its credits = closing, and
closing is the trial balance at D2 (opening the one at the day before D1), to the cent; "Q2
rebate expense" is the expense account's movement. `gl-export` takes the same figures.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from ledger.audit.facts import (
    BasisRecord,
    Facts,
    MembershipRecord,
    TermsRecord,
    agreement_ids,
    business_ids,
    event_ids,
    load_facts,
)
from ledger.audit.journal import (
    ACCOUNTS,
    CASH,
    EXPENSE,
    JOURNAL_COLUMNS,
    JOURNAL_FIGURES,
    LIABILITY,
    Posting,
    _known_text,
    dr_cr,
)
from ledger.audit.output import Report, money
from ledger.core import Ledger
from ledger.errors import RuleViolation
from ledger.liability import FOREVER_US
from ledger.money import EXACT, ZERO, round_money
from ledger.projections.core import from_us, to_us

#: Events listed on one period accrual posting; the rest are counted in its `about`.
EVENTS_MAX = 100


@dataclass(frozen=True)
class PeriodBalance:
    """One account in one currency over the period: signed balances (debit - credit)."""

    currency: str
    account: str
    opening: Decimal
    debit: Decimal
    credit: Decimal

    @property
    def closing(self) -> Decimal:
        return EXACT.subtract(EXACT.add(self.opening, self.debit), self.credit)


@dataclass
class PeriodBooks:
    """The period's postings (entries numbered from 1 in posting-date order) and balances."""

    start: date
    end: date
    known_at: datetime | None
    postings: list[Posting]
    balances: list[PeriodBalance]
    #: the agreements the books cover (with --customer: those covering it at either end)
    agreements: list[str]

    @property
    def entries(self) -> int:
        return max((p.entry for p in self.postings), default=0)


def check_period(start: date, end: date) -> None:
    if end < start:
        raise RuleViolation("--to", f"{end} is before --from {start}: give the period's first "
                            "and last days")


def period_books(
    ledger: Ledger, start: date, end: date, known_at: datetime | None = None, *,
    agreement_id: str | None = None, customer_id: str | None = None,
    with_events: bool = True,
) -> PeriodBooks:
    """The postings dated from `start` to `end` (inclusive) as known at `known_at`, with the
    opening (the day before `start`) and closing (`end`) balances per currency and account.

    Memory: a posting per agreement and one per payment or write-off of the period; each
    agreement's facts are loaded and dropped in turn (as `iter_postings`)."""
    check_period(start, end)
    before = start - timedelta(days=1)
    known_us = FOREVER_US if known_at is None else to_us(known_at)
    opening: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    found: list[Posting] = []
    with Session(ledger.engine) as session:
        # one selection for both ends (with --customer, the agreements covering it at either
        # end), so that opening + movements = closing holds for every account, and the balances
        # at each end are the trial balances of those agreements
        chosen = set(agreement_ids(session, known_us, agreement_id=agreement_id,
                                   customer_id=customer_id, as_of=before))
        chosen |= set(agreement_ids(session, known_us, agreement_id=agreement_id,
                                    customer_id=customer_id, as_of=end))
        for agreement in sorted(chosen):
            first = load_facts(session, agreement, before, known_us)
            last = load_facts(session, agreement, end, known_us)
            accrued_before = _accrued(first)
            _add_opening(opening, first, accrued_before)
            names: dict[int, str] = {}
            in_period = _in_period(last, start, end)
            if with_events:
                names = event_ids(session, ledger.app.recorder,
                                  [r.position for r in in_period[0]]
                                  + [m.position for m in in_period[2]])
            events, about = _accrual_events(last, in_period, names, with_events)
            found += _accrual(last, end, EXACT.subtract(_accrued(last), accrued_before),
                              events, about, _latest_us(in_period))
            found += _money(last, start, end, with_events)
            del first, last, names
    found.sort(key=lambda p: (p.valid_date, p.agreement_id, p.entry))
    numbered: list[Posting] = []
    entry_of: dict[tuple[str, int], int] = {}
    for posting in found:
        key = (posting.agreement_id, posting.entry)
        if key not in entry_of:
            entry_of[key] = len(entry_of) + 1
        numbered.append(replace(posting, entry=entry_of[key]))
    return PeriodBooks(start, end, known_at, numbered, _balances(opening, numbered),
                       sorted(chosen))


def _accrued(facts: Facts) -> Decimal:
    """The accrued figure at the facts' D as known at K: where the journal's accrual and
    true-ups of the agreement add up to (the last moment of its timeline)."""
    timeline = facts.timeline()
    return timeline[-1].accrued if timeline else ZERO


def _add_opening(opening: dict[tuple[str, str], Decimal], facts: Facts,
                 accrued: Decimal) -> None:
    """The agreement's part of each account's balance (debit - credit) at the facts' D."""
    paid = sum((m.amount for m in facts.money_rows if m.kind == "paid"), ZERO)
    written_off = sum((m.amount for m in facts.money_rows if m.kind == "written_off"), ZERO)
    for account, amount in ((EXPENSE, EXACT.subtract(accrued, written_off)),
                            (LIABILITY, EXACT.subtract(EXACT.add(paid, written_off), accrued)),
                            (CASH, -paid)):
        if amount != 0 or (account != CASH and accrued != 0):  # as the journal posts them
            key = (facts.currency, account)
            opening[key] = EXACT.add(opening[key], amount)


_InPeriod = tuple[list[BasisRecord], list[TermsRecord], list[MembershipRecord]]


def _in_period(facts: Facts, start: date, end: date) -> _InPeriod:
    first, last = start.toordinal(), end.toordinal()
    return (
        [r for r in facts.basis_rows if first <= r.effective_day <= last],
        [t for t in facts.terms_rows if first <= _takes_effect(t) <= last],
        [m for m in facts.membership_rows if first <= m.effective_day <= last],
    )


def _takes_effect(row: TermsRecord) -> int:
    """The day (ordinal) a terms row takes effect: an amendment's or forecast's
    `effective_from`, the creation's `period_start`."""
    if row.effective_day is not None:
        return row.effective_day
    start = row.data.get("period_start")
    return date.fromisoformat(start).toordinal() if isinstance(start, str) else 0


def _latest_us(in_period: _InPeriod) -> int | None:
    sales, terms, members = in_period
    return max([r.recorded_us for r in sales] + [t.recorded_us for t in terms]
               + [m.recorded_us for m in members], default=None)


def _accrual_events(facts: Facts, in_period: _InPeriod, names: dict[int, str],
                    with_events: bool) -> tuple[tuple[str, ...], str]:
    """The events taking effect in the period (at most EVENTS_MAX) and what they are about."""
    if not with_events:
        return (), ""
    sales, terms, members = in_period
    listed = list(dict.fromkeys(
        [t.event_id for t in terms] + [m.event_id for m in members]
        + [names.get(s.position, str(s.position)) for s in sales]))
    said = business_ids(facts)
    about = list(dict.fromkeys(said[e] for e in listed if e in said))
    invoiced = sum(1 for s in sales if not s.reversal)
    reversed_ = len(sales) - invoiced
    if invoiced:
        about.append(f"{invoiced} sale{'s' if invoiced != 1 else ''} invoiced in the period")
    if reversed_:
        about.append(f"{reversed_} reversal{'s' if reversed_ != 1 else ''} in the period")
    if len(listed) > EVENTS_MAX:
        about.append(f"the first {EVENTS_MAX} of {len(listed)} events listed (explain "
                     f"--agreement {facts.agreement_id} shows them all)")
    return tuple(listed[:EVENTS_MAX]), "; ".join(about)


def _posting(facts: Facts, valid: date, recorded_us: int | None, kind: str, account: str,
             debit: Decimal, credit: Decimal, events: tuple[str, ...], about: str,
             entry: int) -> Posting:
    moment = from_us(recorded_us if recorded_us is not None else _recorded_us(facts))
    return Posting(entry, moment, valid, facts.agreement_id, facts.customer_id,
                   facts.currency, kind, account, debit, credit, events, about)


def _recorded_us(facts: Facts) -> int:
    return max([t.recorded_us for t in facts.terms_rows]
               + [b.recorded_us for b in facts.basis_rows]
               + [m.recorded_us for m in facts.money_rows]
               + [j.recorded_us for j in facts.membership_rows])


def _pair(facts: Facts, valid: date, recorded_us: int | None, kind: str, debit: str,
          credit: str, amount: Decimal, events: tuple[str, ...], about: str,
          entry: int) -> list[Posting]:
    """A balanced entry of two postings; a negative amount is the reverse entry."""
    if amount == 0:
        return []
    if amount < 0:
        debit, credit, amount = credit, debit, -amount
    return [_posting(facts, valid, recorded_us, kind, debit, amount, ZERO, events, about,
                     entry),
            _posting(facts, valid, recorded_us, kind, credit, ZERO, amount, events, about,
                     entry)]


def _accrual(facts: Facts, end: date, delta: Decimal, events: tuple[str, ...], about: str,
             recorded_us: int | None = None) -> list[Posting]:
    return _pair(facts, end, recorded_us, "accrual", EXPENSE, LIABILITY, delta, events, about,
                 0)


def _money(facts: Facts, start: date, end: date, with_events: bool) -> list[Posting]:
    """Payments and write-offs (and their reversals) valid in the period, as the journal."""
    first, last = start.toordinal(), end.toordinal()
    said = business_ids(facts) if with_events else {}
    found: list[Posting] = []
    for number, row in enumerate(facts.money_rows, start=1):
        if not first <= row.valid_day <= last:
            continue
        events = (row.event_id,) if with_events else ()
        about = said.get(row.event_id, "")
        if row.kind == "paid":
            found += _pair(facts, row.valid_date, row.recorded_us, "settlement", LIABILITY,
                           CASH, row.amount, events, about, number)
        elif row.kind == "written_off":
            found += _pair(facts, row.valid_date, row.recorded_us,
                           "write-off" if row.amount > 0 else "write-off reversal",
                           LIABILITY, EXPENSE, row.amount, events, about, number)
    return found


def _balances(opening: dict[tuple[str, str], Decimal],
              postings: list[Posting]) -> list[PeriodBalance]:
    moves: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for posting in postings:
        pair = moves[(posting.currency, posting.account)]
        pair[0] = EXACT.add(pair[0], posting.debit)
        pair[1] = EXACT.add(pair[1], posting.credit)
    keys = set(opening) | set(moves)
    return [
        PeriodBalance(currency, account, opening.get((currency, account), ZERO),
                      *moves.get((currency, account), (ZERO, ZERO)))
        for currency in sorted({c for c, _ in keys})
        for account in ACCOUNTS
        if (currency, account) in keys
    ]


def _period_text(books: PeriodBooks) -> str:
    return f"{books.start} to {books.end}, as known at {_known_text(books.known_at)}"


BALANCE_COLUMNS = ("currency", "account", "opening", "debit", "credit", "closing")


def _balance_rows(books: PeriodBooks) -> list[dict[str, object]]:
    return [{"currency": b.currency, "account": b.account, "opening": money(b.opening),
             "debit": money(b.debit), "credit": money(b.credit), "closing": money(b.closing)}
            for b in books.balances]


def period_journal_report(
    ledger: Ledger, start: date, end: date, known_at: datetime | None = None, *,
    agreement_id: str | None = None, customer_id: str | None = None,
) -> Report:
    """`journal --from D1 --to D2`: the period's postings by posting date, and each account's
    opening and closing balance (JSON: `balances`; the table: notes under it)."""
    books = period_books(ledger, start, end, known_at, agreement_id=agreement_id,
                         customer_id=customer_id)
    notes = [f"{books.entries} entries, {len(books.postings)} postings dated {start} to {end}"]
    notes += [f"{b.currency} {b.account}: opening {dr_cr(b.opening)}, debits "
              f"{money(b.debit):,}, credits {money(b.credit):,}, closing {dr_cr(b.closing)}"
              for b in books.balances]
    return Report(
        title=f"Journal of the postings dated {_period_text(books)}",
        columns=JOURNAL_COLUMNS,
        rows=[p.to_row() for p in books.postings],
        meta={"from": start, "to": end, "known_at": known_at},
        extra={"entries": books.entries, "balances": _balance_rows(books)},
        notes=notes,
        figures=JOURNAL_FIGURES,
    )


def period_trial_balance_report(
    ledger: Ledger, start: date, end: date, known_at: datetime | None = None, *,
    agreement_id: str | None = None, customer_id: str | None = None,
) -> Report:
    """`trial-balance --from D1 --to D2`: per currency and account the opening balance (the
    day before D1), the period's debits and credits and the closing balance (D2); checks that
    the movements balance and that the liability account equals the contract's liability at
    both ends."""
    books = period_books(ledger, start, end, known_at, agreement_id=agreement_id,
                         customer_id=customer_id, with_events=False)
    contract: dict[date, dict[str, Decimal]] = {}
    covered = set(books.agreements)
    for day in (start - timedelta(days=1), end):
        totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
        # the same agreements at both ends (not the customer's selection at each)
        for row in ledger.liability(day, known_at, agreement_id=agreement_id):
            if row.agreement_id in covered:
                totals[row.currency] = EXACT.add(totals[row.currency], row.liability)
        contract[day] = totals
    checks = []
    notes = []
    for currency in sorted({b.currency for b in books.balances}
                           | set(contract[end]) | set(contract[start - timedelta(days=1)])):
        mine = [b for b in books.balances if b.currency == currency]
        debit = sum((b.debit for b in mine), ZERO)
        credit = sum((b.credit for b in mine), ZERO)
        account = next((b for b in mine if b.account == LIABILITY), None)
        ends = {}
        for name, day, balance in (
                ("opening", start - timedelta(days=1), account.opening if account else ZERO),
                ("closing", end, account.closing if account else ZERO)):
            ends[name] = (round_money(-balance), round_money(contract[day].get(currency, ZERO)))
        check = {
            "currency": currency, "debits": money(debit), "credits": money(credit),
            "balanced": debit == credit,
            **{f"{name}_liability_account": mine_ for name, (mine_, _) in ends.items()},
            **{f"{name}_contract_liability": theirs for name, (_, theirs) in ends.items()},
            "liability_matches": all(a == b for a, b in ends.values()),
        }
        checks.append(check)
        notes.append(
            f"{currency}: the period's debits {debit:.2f} = credits {credit:.2f}: "
            f"{'balanced' if debit == credit else 'NOT BALANCED'}; liability account "
            f"opening {ends['opening'][0]:.2f} and closing {ends['closing'][0]:.2f} vs the "
            f"contract's liability {ends['opening'][1]:.2f} and {ends['closing'][1]:.2f}: "
            f"{'equal' if check['liability_matches'] else 'DIFFERENT'}")
    return Report(
        title=f"Trial balance of {_period_text(books)}",
        columns=BALANCE_COLUMNS,
        rows=_balance_rows(books),
        meta={"from": start, "to": end, "known_at": known_at},
        extra={"checks": checks, "balanced": all(c["balanced"] for c in checks),
               "liability_matches": all(c["liability_matches"] for c in checks)},
        notes=notes,
    )


def period_trial_balance_table(report: Report) -> Report:
    """For people: opening and closing with Dr or Cr, movements with thousands separators."""
    return replace(report, rows=[
        {**row, "opening": dr_cr(row["opening"]), "debit": f"{row['debit']:,}",
         "credit": f"{row['credit']:,}", "closing": dr_cr(row["closing"])}
        for row in report.rows])


def iter_period_postings(
    ledger: Ledger, start: date, end: date, known_at: datetime | None = None, *,
    agreement_id: str | None = None, customer_id: str | None = None,
) -> Iterator[Posting]:
    """The period's postings in posting-date order (for exports)."""
    yield from period_books(ledger, start, end, known_at, agreement_id=agreement_id,
                            customer_id=customer_id).postings
