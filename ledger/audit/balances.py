"""The trial balance's totals without the journal's postings (issue 9: `/audit` at 1M sales).

`trial_balance(iter_postings(...))` builds every posting of the journal (one accrual or
true-up per recorded moment at which an agreement's accrued figure at D moved, each a
`Posting` object with its events) only to add them up. The totals need less: per currency,
the sum of the increases of each agreement's accrued figure over its recorded moments (the
expense debited, the liability credited), the sum of its decreases (the reverse), and the
paid and written-off amounts with their signs. `balances` computes exactly those, agreement
by agreement, with the same rule functions (`accrue` through `facts._state`, the terms and
forecast as known at each moment through `facts.history_of`) as `Facts.timeline`, but:

- an agreement's terms, forecasts and money rows are read for the whole book in a few
  queries (`load_facts_of`), and its basis rows as plain tuples, customer by customer, in
  chunked queries (no `BasisRecord` objects, no event id look-ups);
- the eligible quantity and amount are kept as integer millionths, turned into `Decimal`
  only for the accrual at a moment whose eligible totals changed (a moment whose sales add
  nothing eligible keeps its accrued figure, so `accrue` is not asked again).

A buying group's agreement (contract 4: membership decides which rows count, as known at
each moment), and an agreement with a figure stored as text (not as millionths), go through
`Facts.timeline` itself. The result equals `trial_balance(iter_postings(...))` exactly, the
accounts present being those some posting touches (tests/audit/test_trial_balance_fast.py
compares the two on random books, both databases).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from functools import partial
from itertools import compress, count, pairwise
from operator import gt

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ledger.audit.facts import (
    Facts,
    MoneyRecord,
    _state,
    agreement_ids,
    history_of,
    load_facts,
    load_facts_of,
)
from ledger.audit.journal import ACCOUNTS, CASH, EXPENSE, LIABILITY, Balance
from ledger.core import Ledger
from ledger.liability import FOREVER_US
from ledger.money import EXACT, ZERO, from_micro
from ledger.projections.core import basis, day, to_us
from ledger.terms import Terms

#: one basis row: recorded µs, invoice day, product, quantity and amount in millionths
#: (None: stored as text)
Row = tuple[int, int, str | None, int | None, int | None]


#: customers whose basis rows are read in one query (and held at once: memory is bounded by
#: the rows of this many customers, not by the book)
CUSTOMERS_PER_QUERY = 50


class _Totals:
    """Debits and credits per (currency, account), exact; an account is present once a
    posting touched it (as `journal.trial_balance`)."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, str], list] = defaultdict(lambda: [ZERO, ZERO])

    def entry(self, currency: str, debit: str, credit: str, amount) -> None:
        if amount == 0:
            return
        if amount < 0:
            debit, credit, amount = credit, debit, -amount
        pair = self.sums[(currency, debit)]
        pair[0] = EXACT.add(pair[0], amount)
        pair = self.sums[(currency, credit)]
        pair[1] = EXACT.add(pair[1], amount)

    def money(self, currency: str, rows: Sequence[MoneyRecord]) -> None:
        for row in rows:
            if row.kind == "paid":
                self.entry(currency, LIABILITY, CASH, row.amount)
            elif row.kind == "written_off":
                self.entry(currency, LIABILITY, EXPENSE, row.amount)

    def balances(self) -> list[Balance]:
        return [
            Balance(currency, account, *self.sums[(currency, account)])
            for currency in sorted({c for c, _ in self.sums})
            for account in ACCOUNTS
            if (currency, account) in self.sums
        ]


def balances(
    ledger: Ledger, as_of: date, known_at: datetime | None = None, *,
    agreement_id: str | None = None, customer_id: str | None = None,
) -> list[Balance]:
    """`journal.trial_balance(journal.iter_postings(ledger, as_of, known_at, ...))`, fast."""
    known_us = FOREVER_US if known_at is None else to_us(known_at)
    totals = _Totals()
    with Session(ledger.engine) as session:
        ids = agreement_ids(session, known_us, agreement_id=agreement_id,
                            customer_id=customer_id, as_of=as_of)
        facts_of = load_facts_of(session, ids, as_of, known_us)
        own: dict[tuple[str, str], list[Facts]] = defaultdict(list)
        # an agreement whose terms at D count the same invoice days and products at every
        # moment (no amendment of its period end or products: most): its basis summed per
        # recorded moment in SQL
        summed: dict[tuple[str, str], list[Facts]] = defaultdict(list)
        summed_filter: dict[str, Filter] = {}
        rising: dict[str, bool] = {}
        for facts in facts_of.values():
            if facts.group_id is None:
                one = _one_filter(facts)
                if one is None:
                    own[(facts.customer_id or "", facts.currency)].append(facts)
                else:
                    summed[(facts.customer_id or "", facts.currency)].append(facts)
                    summed_filter[facts.agreement_id], rising[facts.agreement_id] = one
            else:  # contract 4: who counts is known moment by moment
                _by_timeline(load_facts(session, facts.agreement_id, as_of, known_us), totals)
        for key, rows in _basis_rows(session, sorted(own), as_of, known_us):
            for facts in own[key]:
                _own(session, facts, rows, totals)
        for agreements in summed.values():
            for facts in agreements:
                _own(session, facts, _moment_sums(session, facts,
                                                  summed_filter[facts.agreement_id], known_us,
                                                  rising[facts.agreement_id]),
                     totals)
    return totals.balances()


def _own(session: Session, facts: Facts, rows: list[Row], totals: _Totals) -> None:
    if any(q is None or a is None for _, _, _, q, a in rows):  # a figure kept as text
        _by_timeline(load_facts(session, facts.agreement_id, facts.as_of, facts.known_us),
                     totals)
    else:
        _accruals(facts, rows, totals)
        totals.money(facts.currency, facts.money_rows)


#: the invoice days (first, last ordinals) and products (None: all) counted at D
Filter = tuple[int, int, frozenset[str] | None]


def _one_filter(facts: Facts) -> tuple[Filter, bool] | None:
    """The days and products the agreement's terms at D count, when they are the same as
    known at each of its terms moments, and whether the terms at D as known at each of them
    are rising (`_rising`); None when the days or products differ (or none is known)."""
    found: set[Filter] = set()
    rising = True
    for moment in sorted({t.recorded_us for t in facts.terms_rows}):
        known = [t for t in facts.terms_rows if t.recorded_us <= moment]
        if any(t.kind == "created" for t in known):
            terms = history_of(known).terms_at(facts.as_of)
            rising = rising and _rising(terms)
            found.add((terms.period_start.toordinal(),
                       min(terms.period_end, facts.as_of).toordinal(),
                       None if terms.products is None else frozenset(terms.products)))
    return (next(iter(found)), rising) if len(found) == 1 else None


_SUMS = (
    select(basis.c.recorded_us, func.sum(basis.c.q_micro), func.sum(basis.c.a_micro),
           func.count() - func.count(basis.c.q_micro) + func.count()
           - func.count(basis.c.a_micro))
    .where(basis.c.customer_id == bindparam("customer"))
    .where(basis.c.currency == bindparam("currency"))
    .where(basis.c.effective_day <= bindparam("as_of_day"))
    .where(basis.c.recorded_us <= bindparam("known_us"))
    .where(basis.c.invoice_day >= bindparam("first"))
    .where(basis.c.invoice_day <= bindparam("last"))
    .group_by(basis.c.recorded_us)
    .order_by(basis.c.recorded_us)
)
_SUMS_OF_PRODUCTS = _SUMS.where(
    basis.c.product_id.in_(bindparam("products", expanding=True)))


def _moment_sums(session: Session, facts: Facts, counted: Filter, known_us: int,
                 rising: bool = False) -> list[Row]:
    """The agreement's eligible basis summed per recorded moment in SQL, as rows of no
    product (`_add` counts them: the filter is applied here); a sum is None when a row of the
    moment keeps its figure as text. Under terms `rising` at every terms moment, each run of
    moments that only add basis comes back as one row (`_runs`)."""
    first, last, products = counted
    values: dict[str, object] = {
        "customer": facts.customer_id, "currency": facts.currency,
        "as_of_day": day(facts.as_of), "known_us": known_us, "first": first, "last": last}
    try:
        if products is None:
            found = session.execute(_SUMS, values).all()
        else:
            found = session.execute(_SUMS_OF_PRODUCTS,
                                    {**values, "products": sorted(products)}).all()
    except DBAPIError as exc:  # SQLite raises on integer overflow: the exact general path
        if "overflow" not in str(exc).lower():
            raise
        return [(0, first, None, None, None)]  # a figure "as text": `_own` goes by timeline
    if rising:
        return _runs(found, first, sorted({t.recorded_us for t in facts.terms_rows}))
    return _each_moment(found, first)


def _each_moment(found: Sequence, first: int) -> list[Row]:
    """The moments' sums `found` as rows, one a moment; a sum is None when a row of the
    moment keeps its figure as text."""
    return [(int(r), first, None, None if texts else int(q), None if texts else int(a))
            for r, q, a, texts in found]


#: whether a sum (an int, or a Decimal from PostgreSQL) is below zero: C calls only, as
#: `_runs` maps it over every moment
_BELOW_ZERO = partial(gt, 0)


def _runs(found: Sequence, first: int, bounds: list[int]) -> list[Row]:
    """The moments' sums `found` (recorded order) with each run of moments that only add
    basis merged into one row at the run's last moment. A run: the moments between two that
    take something away (from either eligible total), none of them a terms moment (`bounds`)
    and none across one, the totals before it zero or more; a moment that takes away and a
    terms moment's are rows of their own (and so are a run's moments when the totals before
    it are below zero; every moment's when a row keeps its figure as text). Under terms
    rising at every terms moment `_accruals` posts such a run as one true-up from the totals
    at its last moment whether it gets the moments one by one or merged: the same figures,
    and far fewer rows to go through."""
    if not found:
        return []
    rs, qs, as_, texts = zip(*found, strict=True)  # columns: the scans below run at C speed
    if any(texts):  # `_own` goes by the timeline
        return _each_moment(found, first)
    alone = {*compress(count(), map(_BELOW_ZERO, qs)),
             *compress(count(), map(_BELOW_ZERO, as_))}
    ends = set(alone)
    for bound in bounds:  # a run ends before a terms moment; its own rows are alone
        at = bisect_left(rs, bound)
        ends.add(at)
        if at < len(rs) and rs[at] == bound:
            alone.add(at)
    rows: list[Row] = []
    quantity = amount = 0  # the eligible totals before
    start = 0
    for end in [*sorted(ends), len(rs)]:
        if start < end:
            q, a = int(sum(qs[start:end])), int(sum(as_[start:end]))
            if quantity >= 0 and amount >= 0:
                rows.append((int(rs[end - 1]), first, None, q, a))
            else:
                rows.extend((int(rs[i]), first, None, int(qs[i]), int(as_[i]))
                            for i in range(start, end))
            quantity, amount = quantity + q, amount + a
        start = end
        if end in alone:
            rows.append((int(rs[end]), first, None, int(qs[end]), int(as_[end])))
            quantity, amount = quantity + int(qs[end]), amount + int(as_[end])
            start = end + 1
    return rows


def _by_timeline(facts: Facts, totals: _Totals) -> None:
    """`journal._post`'s figures from `Facts.timeline`: the exact general path."""
    previous = ZERO
    for moment in facts.timeline():
        totals.entry(facts.currency, EXPENSE, LIABILITY,
                     EXACT.subtract(moment.accrued, previous))
        previous = moment.accrued
    totals.money(facts.currency, facts.money_rows)


def _basis_rows(session: Session, wanted: Sequence[tuple[str, str]], as_of: date,
                known_us: int) -> Iterator[tuple[tuple[str, str], list[Row]]]:
    """Per (customer, currency) asked for: its basis rows that count at D as known at K, in
    recorded order, as plain tuples; a few customers a query."""
    currencies_of: dict[str, set[str]] = defaultdict(set)
    for customer, currency in wanted:
        currencies_of[customer].add(currency)
    customers = sorted(currencies_of)
    for start in range(0, len(customers), CUSTOMERS_PER_QUERY):
        chunk = customers[start:start + CUSTOMERS_PER_QUERY]
        found: dict[tuple[str, str], list[Row]] = {
            (c, cur): [] for c in chunk for cur in sorted(currencies_of[c])}
        for c, cur, r, i, p, q, a in session.execute(
            select(basis.c.customer_id, basis.c.currency, basis.c.recorded_us,
                   basis.c.invoice_day, basis.c.product_id, basis.c.q_micro, basis.c.a_micro)
            .where(basis.c.customer_id.in_(chunk))
            .where(basis.c.effective_day <= day(as_of))
            .where(basis.c.recorded_us <= known_us)
            .order_by(basis.c.customer_id, basis.c.currency, basis.c.recorded_us,
                      basis.c.position)
        ):
            if (c, cur) in found:
                found[(c, cur)].append((r, i, p, q, a))
        yield from found.items()


def _accruals(facts: Facts, rows: list[Row], totals: _Totals) -> None:
    """An agreement with its own customer: the accrual and true-ups of `Facts.timeline`,
    moment by moment (terms rows, basis rows, money rows), the eligible totals in integer
    millionths."""
    created_us = min((t.recorded_us for t in facts.terms_rows if t.kind == "created"),
                     default=None)
    # the moments: a terms row's, a basis row's (not before the agreement was created),
    # a money row's (which moves no accrual: only the moments' order matters for it)
    terms_at: dict[int, bool] = {t.recorded_us: True for t in facts.terms_rows}
    moments = sorted(set(terms_at) | {
        r if created_us is None else max(r, created_us) for r, _, _, _, _ in rows})
    currency = facts.currency
    previous = ZERO
    terms: Terms | None = None
    forecast = source = None
    first = last = 0
    quantity = amount = 0
    n = 0  # rows[:n] are counted
    accrued = ZERO
    rising = False  # under these terms the accrued figure can only rise with the basis
    # A run of moments that each add to both eligible totals, from totals at least zero,
    # under rising terms: the accrued figure only rises along it, so the sum of its
    # true-ups is its last figure less the one before it, exactly, and the figures in
    # between need not be computed. `run`: the eligible totals at the run's last moment.
    run: tuple[int, int] | None = None
    at = [r if created_us is None else max(r, created_us) for r, _, _, _, _ in rows]
    for recorded_us in moments:
        start = n
        while n < len(at) and at[n] <= recorded_us:
            n += 1
        if recorded_us not in terms_at and terms is not None:
            if n == start + 1 and rows[start][2] is None:  # one moment's sum (`_moment_sums`)
                added = (quantity + rows[start][3], amount + rows[start][4])  # type: ignore[operator]
            else:
                added = _add(terms, rows[start:n], first, last, quantity, amount)
            if added == (quantity, amount):
                continue  # nothing that counts: the figure stays
            if rising and 0 <= quantity <= added[0] and 0 <= amount <= added[1]:
                quantity, amount = run = added
                continue
        if run is not None:  # the run ends before this moment: post its true-ups
            accrued = _accrued(terms, forecast, source, *run)  # type: ignore[arg-type]
            totals.entry(currency, EXPENSE, LIABILITY, EXACT.subtract(accrued, previous))
            previous, run = accrued, None
        if recorded_us in terms_at or terms is None:
            known = [t for t in facts.terms_rows if t.recorded_us <= recorded_us]
            if not any(t.kind == "created" for t in known):
                accrued = ZERO
            else:
                history = history_of(known)
                now = history.terms_at(facts.as_of)
                forecast, source = history.forecast_at(facts.as_of, now)
                if now != terms:
                    terms = now
                    rising = _rising(terms)
                    first = terms.period_start.toordinal()
                    last = min(terms.period_end, facts.as_of).toordinal()
                    quantity, amount = _eligible(terms, rows[:n], first, last)
                else:
                    quantity, amount = _add(terms, rows[start:n], first, last,
                                            quantity, amount)
                accrued = _accrued(terms, forecast, source, quantity, amount)
        else:
            quantity, amount = added
            accrued = _accrued(terms, forecast, source, quantity, amount)
        totals.entry(currency, EXPENSE, LIABILITY, EXACT.subtract(accrued, previous))
        previous = accrued
    if run is not None:
        accrued = _accrued(terms, forecast, source, *run)  # type: ignore[arg-type]
        totals.entry(currency, EXPENSE, LIABILITY, EXACT.subtract(accrued, previous))


def _rising(terms: Terms) -> bool:
    """Whether the accrued figure under `terms` can only rise when both the quantity and
    the amount counted rise from zero or more: every tier's rate at least zero and at least
    the rate of the tier below (contract 2: a retroactive rate(E) x M, an incremental
    inc(E) or inc(E) x B / E with E = max(B, F), the cap a minimum, the rounding half up:
    each non-decreasing in B and M then)."""
    tiers = terms.tiers
    return all(t.rate >= 0 for t in tiers) and all(
        a.threshold <= b.threshold and a.rate <= b.rate for a, b in pairwise(tiers))


def _eligible(terms: Terms, rows: Sequence[Row], first: int, last: int) -> tuple[int, int]:
    return _add(terms, rows, first, last, 0, 0)


def _add(terms: Terms, rows: Sequence[Row], first: int, last: int, quantity: int,
         amount: int) -> tuple[int, int]:
    products = terms.products
    for _, invoice_day, product, q, a in rows:
        if first <= invoice_day <= last and (products is None or product is None
                                             or product in products):
            quantity += q  # type: ignore[operator]
            amount += a  # type: ignore[operator]
    return quantity, amount


def _accrued(terms: Terms, forecast, source, quantity: int, amount: int):
    return _state(terms, forecast, source, from_micro(quantity),
                  from_micro(amount)).accrual.accrued
