"""What the store knows about one agreement, loaded once, and its accrual replayed moment by
moment: the ground the auditors' tools stand on.

`load_facts(session, agreement_id, as_of, known_us)` reads the agreement's terms changes, the
basis rows of its customer and currency (sales count on their invoice day, reversals from their
reversal day on), and its money rows (approved, paid, written off), all as known at K. For a
buying group's agreement (contract 4) it reads the group's joins and leaves and the basis rows
of every customer they name; a row counts while its customer is a member on its invoice day,
as known at the moment asked about. The
accrual at (D, t) for any t <= K is then computed from those rows in memory with the same rule
functions as `ledger.liability` (`accrue`, `terms_in_force`, the forecast rule), so it equals
`Ledger.liability(D, t)` for that agreement, to the cent; `timeline()` gives it after every
recorded moment at which something about the agreement became known.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.audit.chain import events_table
from ledger.errors import LedgerError
from ledger.liability import AgreementHistory, _amended_values, _created_terms, exact_value
from ledger.liability import agreement_ids as liability_agreement_ids
from ledger.membership import MembershipChange, member_spans
from ledger.money import EXACT, ZERO
from ledger.projections.core import (
    agreements,
    basis,
    day,
    from_us,
    memberships,
    money,
    reversals,
    sales,
    terms_changes,
)
from ledger.rules import Accrual, accrue
from ledger.terms import Terms, TermsChange


class UnknownAgreement(LedgerError):
    """No agreement with that id is known at K."""


@dataclass(frozen=True)
class TermsRecord:
    position: int
    recorded_us: int
    kind: str  # created | amended | forecast
    effective_day: int | None
    event_id: str
    data: dict[str, object]

    @property
    def effective_from(self) -> date | None:
        return None if self.effective_day is None else date.fromordinal(self.effective_day)


@dataclass(frozen=True)
class BasisRecord:
    invoice_day: int
    effective_day: int
    recorded_us: int
    product_id: str
    position: int
    quantity: Decimal
    amount: Decimal
    customer_id: str = ""

    @property
    def invoice_date(self) -> date:
        return date.fromordinal(self.invoice_day)

    @property
    def reversal(self) -> bool:
        return self.effective_day != self.invoice_day


@dataclass(frozen=True)
class MembershipRecord:
    """A join or leave of the agreement's group (contract 4)."""

    customer_id: str
    kind: str  # join | leave
    effective_day: int
    recorded_us: int
    position: int
    event_id: str

    @property
    def effective_from(self) -> date:
        return date.fromordinal(self.effective_day)


#: Per member: the invoice days (ordinals, first and last, inclusive) it is a member.
Windows = dict[str, list[tuple[int, int]]]


@dataclass(frozen=True)
class MoneyRecord:
    kind: str  # claimed | approved | rejected | paid | written_off
    valid_day: int
    recorded_us: int
    amount: Decimal
    claim_id: str | None
    position: int
    event_id: str

    @property
    def valid_date(self) -> date:
        return date.fromordinal(self.valid_day)


@dataclass
class State:
    """The agreement as known at one moment, at valid date D."""

    terms: Terms
    accrual: Accrual
    quantity: Decimal
    amount: Decimal
    forecast_basis: Decimal | None
    forecast_source: str | None


@dataclass
class Moment:
    """A recorded time at which something about the agreement became known, and the accrued
    figure at D just after it."""

    recorded_us: int
    terms: list[TermsRecord]
    sales: list[BasisRecord]
    money: list[MoneyRecord]
    accrued: Decimal
    members: list[MembershipRecord] = field(default_factory=list)

    @property
    def recorded_at(self) -> datetime:
        return from_us(self.recorded_us)

    @property
    def positions(self) -> list[int]:
        found = {r.position for r in self.terms} | {r.position for r in self.sales}
        found |= {r.position for r in self.money} | {r.position for r in self.members}
        return sorted(found)


@dataclass
class Facts:
    agreement_id: str
    customer_id: str | None  # None: a group's agreement
    currency: str
    as_of: date
    known_us: int
    terms_rows: list[TermsRecord]
    basis_rows: list[BasisRecord]
    money_rows: list[MoneyRecord] = field(default_factory=list)
    group_id: str | None = None
    membership_rows: list[MembershipRecord] = field(default_factory=list)

    @property
    def owner(self) -> str:
        """Who the agreement is with, for people: `customer C` or `group G`."""
        return (f"customer {self.customer_id}" if self.group_id is None
                else f"group {self.group_id}")

    def member_windows(self, upto_us: int | None = None) -> Windows:
        """Contract 4: each customer's days of membership in the group, as known at
        `upto_us` (default K)."""
        changes: dict[str, list[MembershipChange]] = {}
        for row in self.membership_rows:
            if upto_us is None or row.recorded_us <= upto_us:
                changes.setdefault(row.customer_id, []).append(
                    MembershipChange(row.position, row.kind, row.effective_from))
        windows: Windows = {}
        for customer, made in changes.items():
            for start, end in member_spans(made):
                last = date.max.toordinal() if end is None else end.toordinal() - 1
                windows.setdefault(customer, []).append((start.toordinal(), last))
        return windows

    def buyers(self, terms: Terms, upto_us: int | None = None) -> list[tuple[str, int, int]]:
        """(customer, first invoice day, last invoice day) whose sales count at D under
        `terms`: the customer over the period, or each member on its member days in it."""
        first, last = terms.period_start.toordinal(), min(terms.period_end, self.as_of).toordinal()
        if self.group_id is None:
            assert self.customer_id is not None
            return [(self.customer_id, first, last)] if first <= last else []
        return [
            (customer, max(first, start), min(last, end))
            for customer, spans in sorted(self.member_windows(upto_us).items())
            for start, end in spans
            if max(first, start) <= min(last, end)
        ]

    def _counts(self, row: BasisRecord, windows: Windows | None) -> bool:
        if windows is None:
            return True
        return any(start <= row.invoice_day <= end
                   for start, end in windows.get(row.customer_id, ()))

    # --- the contract's figures at any moment t <= K ------------------------------------

    def history(self, upto_us: int | None = None) -> AgreementHistory:
        rows = [r for r in self.terms_rows if upto_us is None or r.recorded_us <= upto_us]
        return history_of(rows)

    def state(self, upto_us: int | None = None, terms: Terms | None = None) -> State | None:
        """The figures at D as known at `upto_us` (default K); None before the agreement
        was known. `terms` replaces the recorded terms (what-if)."""
        rows = [r for r in self.terms_rows if upto_us is None or r.recorded_us <= upto_us]
        if terms is None and not any(r.kind == "created" for r in rows):
            return None
        forecast: Decimal | None
        source: str | None
        if terms is None:
            history = history_of(rows)
            terms = history.terms_at(self.as_of)
            forecast, source = history.forecast_at(self.as_of, terms)
        else:
            forecast, source = terms.forecast_basis, None
        quantity, amount = self.eligible(terms, upto_us)
        return _state(terms, forecast, source, quantity, amount)

    def eligible_rows(self, terms: Terms, upto_us: int | None = None) -> list[BasisRecord]:
        """Contract 2.2-2.3: the basis rows that count at D under `terms`."""
        last = min(terms.period_end, self.as_of).toordinal()
        first = terms.period_start.toordinal()
        windows = None if self.group_id is None else self.member_windows(upto_us)
        return [
            r for r in self.basis_rows
            if first <= r.invoice_day <= last
            and (upto_us is None or r.recorded_us <= upto_us)
            and terms.covers(r.product_id)
            and self._counts(r, windows)
        ]

    def eligible(self, terms: Terms, upto_us: int | None = None) -> tuple[Decimal, Decimal]:
        quantity, amount = ZERO, ZERO
        for row in self.eligible_rows(terms, upto_us):
            quantity = EXACT.add(quantity, row.quantity)
            amount = EXACT.add(amount, row.amount)
        return quantity, amount

    def money_totals(self, upto_us: int | None = None) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for row in self.money_rows:
            if upto_us is None or row.recorded_us <= upto_us:
                totals[row.kind] = EXACT.add(totals.get(row.kind, ZERO), row.amount)
        return totals

    def timeline(self) -> list[Moment]:
        """Every recorded moment (up to K) at which a terms change, a sale or reversal in the
        customer's basis, or a money movement of the agreement became known, in recorded
        order, with the accrued figure at D after it."""
        by_moment: dict[int, Moment] = {}

        def moment(recorded_us: int) -> Moment:
            if recorded_us not in by_moment:
                by_moment[recorded_us] = Moment(recorded_us, [], [], [], ZERO)
            return by_moment[recorded_us]

        created_us = min((r.recorded_us for r in self.terms_rows if r.kind == "created"),
                         default=None)
        for t in self.terms_rows:
            moment(t.recorded_us).terms.append(t)
        for b in self.basis_rows:
            moment(max(b.recorded_us, created_us or b.recorded_us)).sales.append(b)
        for m in self.money_rows:
            moment(m.recorded_us).money.append(m)
        for j in self.membership_rows:
            moment(j.recorded_us).members.append(j)
        # Incremental: the terms (and forecast) change only at moments that carry a terms
        # row; between them each moment adds its own sales to the eligible totals. This is
        # `self.state(recorded_us)` at every moment (exact sums), in linear time.
        result = []
        terms: Terms | None = None
        forecast: Decimal | None = None
        source: str | None = None
        quantity, amount = ZERO, ZERO
        windows: Windows | None = None
        for recorded_us in sorted(by_moment):
            point = by_moment[recorded_us]
            if point.members:  # who is a member changed: count the basis afresh
                windows = self.member_windows(recorded_us)
                if terms is not None and not point.terms:
                    quantity, amount = self.eligible(terms, recorded_us)
                    point.accrued = _state(terms, forecast, source, quantity,
                                           amount).accrual.accrued
                    result.append(point)
                    continue
            if point.terms or terms is None:
                rows = [r for r in self.terms_rows if r.recorded_us <= recorded_us]
                if not any(r.kind == "created" for r in rows):
                    result.append(point)  # not yet known: nothing accrued
                    continue
                history = history_of(rows)
                now = history.terms_at(self.as_of)
                forecast, source = history.forecast_at(self.as_of, now)
                if now != terms or point.members:
                    terms = now
                    quantity, amount = self.eligible(terms, recorded_us)
                else:
                    quantity, amount = self._add(terms, point.sales, quantity, amount, windows)
            else:
                quantity, amount = self._add(terms, point.sales, quantity, amount, windows)
            point.accrued = _state(terms, forecast, source, quantity, amount).accrual.accrued
            result.append(point)
        return result

    def _add(self, terms: Terms, rows: list[BasisRecord], quantity: Decimal,
             amount: Decimal, windows: Windows | None = None) -> tuple[Decimal, Decimal]:
        last = min(terms.period_end, self.as_of).toordinal()
        first = terms.period_start.toordinal()
        if self.group_id is not None and windows is None:
            windows = {}  # nobody is a member yet
        for r in rows:
            if (first <= r.invoice_day <= last and terms.covers(r.product_id)
                    and self._counts(r, windows)):
                quantity = EXACT.add(quantity, r.quantity)
                amount = EXACT.add(amount, r.amount)
        return quantity, amount


def _state(terms: Terms, forecast: Decimal | None, source: str | None, quantity: Decimal,
           amount: Decimal) -> State:
    basis_value = quantity if terms.basis == "quantity" else amount
    measure = quantity if terms.rate_kind == "per_unit" else amount
    accrual = accrue(
        tiers=terms.tiers, tier_method=terms.tier_method,
        accrual_method=terms.accrual_method, basis=basis_value, measure=measure,
        forecast_basis=forecast, cap=terms.cap,
    )
    return State(terms, accrual, quantity, amount, forecast, source)


def history_of(rows: Sequence[TermsRecord]) -> AgreementHistory:
    created = next((r for r in rows if r.kind == "created"), None)
    if created is None:
        raise UnknownAgreement("the agreement is not known at that moment")
    history = AgreementHistory(
        str(created.data["agreement_id"]), _created_terms(created.data), created.event_id, [], []
    )
    for row in rows:
        if row.kind == "created":
            continue
        assert row.effective_from is not None
        change = TermsChange(
            seq=row.position,
            effective_from=row.effective_from,
            changes=(
                _amended_values(row.data) if row.kind == "amended"
                else {"forecast_basis": Decimal(str(row.data["forecast_basis"]))}
            ),
            source=row.event_id,
        )
        (history.amendments if row.kind == "amended" else history.forecasts).append(change)
    return history


def agreement_ids(session: Session, known_us: int, *, customer_id: str | None = None,
                  agreement_id: str | None = None, as_of: date = date.max) -> list[str]:
    """The agreements known at K; `customer_id`: its own and those of the groups it is a
    member of at `as_of` (contract 4), as `ledger.liability.agreement_ids`."""
    return liability_agreement_ids(session, as_of, known_us, agreement_id=agreement_id,
                                   customer_id=customer_id)


def load_facts(session: Session, agreement_id: str, as_of: date, known_us: int, *,
               with_basis: bool = True) -> Facts:
    """Everything known at K (µs) about `agreement_id` that counts at valid date D;
    `with_basis=False` leaves the basis rows out (the terms, memberships and money rows only:
    `diff` names the sales it needs itself, and an agreement's basis grows with the book)."""
    head = session.execute(
        select(agreements.c.customer_id, agreements.c.currency, agreements.c.group_id)
        .where(agreements.c.agreement_id == agreement_id)
        .where(agreements.c.recorded_us <= known_us)
    ).first()
    if head is None:
        raise UnknownAgreement(
            f"agreement_id: no agreement {agreement_id!r} is known at that moment; list them "
            "with `rebate-ledger liability --as-of D`"
        )
    customer_id, currency, group_id = head
    terms_rows = [
        TermsRecord(int(p), int(r), k, e, ev, orjson.loads(d))
        for p, r, k, e, ev, d in session.execute(
            select(terms_changes.c.position, terms_changes.c.recorded_us, terms_changes.c.kind,
                   terms_changes.c.effective_day, terms_changes.c.event_id,
                   terms_changes.c.data)
            .where(terms_changes.c.agreement_id == agreement_id)
            .where(terms_changes.c.recorded_us <= known_us)
            .order_by(terms_changes.c.position)
        )
    ]
    membership_rows: list[MembershipRecord] = []
    basis_rows: list[BasisRecord] = []
    if group_id is None:
        if with_basis:
            basis_rows = load_basis(session, customer_id, currency, as_of, known_us)
    else:
        membership_rows = [
            MembershipRecord(c, k, int(e), int(r), int(p), ev)
            for c, k, e, r, p, ev in session.execute(
                select(memberships.c.customer_id, memberships.c.kind,
                       memberships.c.effective_day, memberships.c.recorded_us,
                       memberships.c.position, memberships.c.event_id)
                .where(memberships.c.group_id == group_id)
                .where(memberships.c.recorded_us <= known_us)
                .order_by(memberships.c.position)
            )
        ]
        basis_rows = [
            row
            for customer in sorted({m.customer_id for m in membership_rows}) if with_basis
            for row in load_basis(session, customer, currency, as_of, known_us)
        ]
        basis_rows.sort(key=lambda r: (r.recorded_us, r.position))
    money_rows = load_money(session, agreement_id, as_of, known_us)
    return Facts(agreement_id, customer_id, currency, as_of, known_us, terms_rows, basis_rows,
                 money_rows, group_id, membership_rows)


def load_money(
    session: Session, agreement_id: str, as_of: date, known_us: int
) -> list[MoneyRecord]:
    """The agreement's money rows (claimed, approved, rejected, paid, written off) valid on or
    before D, as known at K, in store order: without its basis rows (reconcile needs no more)."""
    return [
        MoneyRecord(k, int(v), int(r), Decimal(a), c, int(p), ev)
        for k, v, r, a, c, p, ev in session.execute(
            select(money.c.kind, money.c.valid_day, money.c.recorded_us, money.c.amount,
                   money.c.claim_id, money.c.position, money.c.event_id)
            .where(money.c.agreement_id == agreement_id)
            .where(money.c.valid_day <= day(as_of))
            .where(money.c.recorded_us <= known_us)
            .order_by(money.c.position, money.c.id)
        )
    ]


def load_money_of(
    session: Session, agreement_ids: Sequence[str], as_of: date, known_us: int
) -> dict[str, list[MoneyRecord]]:
    """`load_money` of several agreements in one query (each agreement's rows in store order,
    as `load_money` gives them); at most `AGREEMENTS_PER_QUERY` ids a query."""
    found: dict[str, list[MoneyRecord]] = {a: [] for a in agreement_ids}
    wanted = sorted(found)
    for start in range(0, len(wanted), AGREEMENTS_PER_QUERY):
        for g, k, v, r, a, c, p, ev in session.execute(
            select(money.c.agreement_id, money.c.kind, money.c.valid_day, money.c.recorded_us,
                   money.c.amount, money.c.claim_id, money.c.position, money.c.event_id)
            .where(money.c.agreement_id.in_(wanted[start:start + AGREEMENTS_PER_QUERY]))
            .where(money.c.valid_day <= day(as_of))
            .where(money.c.recorded_us <= known_us)
            .order_by(money.c.position, money.c.id)
        ):
            found[g].append(MoneyRecord(k, int(v), int(r), Decimal(a), c, int(p), ev))
    return found


#: agreement ids bound in one query at most
AGREEMENTS_PER_QUERY = 500


def load_facts_of(session: Session, agreement_ids: Sequence[str], as_of: date,
                  known_us: int) -> dict[str, Facts]:
    """`load_facts(..., with_basis=False)` of several agreements known at K, in a few queries
    (at most `AGREEMENTS_PER_QUERY` ids a query): each agreement's terms, memberships and
    money rows in the order `load_facts` gives them. An agreement unknown at K is left out."""
    wanted = sorted(set(agreement_ids))
    heads: dict[str, tuple[str | None, str, str | None]] = {}
    terms_of: dict[str, list[TermsRecord]] = {}
    for start in range(0, len(wanted), AGREEMENTS_PER_QUERY):
        chunk = wanted[start:start + AGREEMENTS_PER_QUERY]
        for a, customer_id, currency, group_id in session.execute(
            select(agreements.c.agreement_id, agreements.c.customer_id, agreements.c.currency,
                   agreements.c.group_id)
            .where(agreements.c.agreement_id.in_(chunk))
            .where(agreements.c.recorded_us <= known_us)
        ):
            heads[a] = (customer_id, currency, group_id)
        for a, p, r, k, e, ev, d in session.execute(
            select(terms_changes.c.agreement_id, terms_changes.c.position,
                   terms_changes.c.recorded_us, terms_changes.c.kind,
                   terms_changes.c.effective_day, terms_changes.c.event_id,
                   terms_changes.c.data)
            .where(terms_changes.c.agreement_id.in_(chunk))
            .where(terms_changes.c.recorded_us <= known_us)
            .order_by(terms_changes.c.agreement_id, terms_changes.c.position)
        ):
            terms_of.setdefault(a, []).append(
                TermsRecord(int(p), int(r), k, e, ev, orjson.loads(d)))
    groups = sorted({head[2] for head in heads.values() if head[2] is not None})
    members_of: dict[str, list[MembershipRecord]] = {}
    for start in range(0, len(groups), AGREEMENTS_PER_QUERY):
        for g, c, k, e, r, p, ev in session.execute(
            select(memberships.c.group_id, memberships.c.customer_id, memberships.c.kind,
                   memberships.c.effective_day, memberships.c.recorded_us,
                   memberships.c.position, memberships.c.event_id)
            .where(memberships.c.group_id.in_(groups[start:start + AGREEMENTS_PER_QUERY]))
            .where(memberships.c.recorded_us <= known_us)
            .order_by(memberships.c.group_id, memberships.c.position)
        ):
            members_of.setdefault(g, []).append(
                MembershipRecord(c, k, int(e), int(r), int(p), ev))
    money_of = load_money_of(session, list(heads), as_of, known_us)
    return {
        a: Facts(a, customer_id, currency, as_of, known_us, terms_of.get(a, []), [],
                 money_of[a], group_id,
                 [] if group_id is None else members_of.get(group_id, []))
        for a, (customer_id, currency, group_id) in sorted(heads.items())
    }


def load_basis(
    session: Session, customer_id: str, currency: str, as_of: date, known_us: int
) -> list[BasisRecord]:
    """The customer's basis rows in `currency` that count at D, as known at K."""
    rows = session.execute(
        select(basis.c.invoice_day, basis.c.effective_day, basis.c.recorded_us,
               basis.c.product_id, basis.c.position, basis.c.q_micro, basis.c.a_micro,
               basis.c.quantity, basis.c.amount)
        .where(basis.c.customer_id == customer_id)
        .where(basis.c.currency == currency)
        .where(basis.c.effective_day <= day(as_of))
        .where(basis.c.recorded_us <= known_us)
        .order_by(basis.c.recorded_us, basis.c.position)
    )
    return [
        BasisRecord(int(i), int(e), int(r), p, int(pos), exact_value(qm, qt),
                    exact_value(am, at), customer_id)
        for i, e, r, p, pos, qm, am, qt, at in rows
    ]


def event_ids(session: Session, recorder: object, positions: Iterable[int]) -> dict[int, str]:
    """Store position -> event id (`<aggregate id>/<version>`), read from the event table's
    head columns (never the event bodies)."""
    wanted = sorted(set(positions))
    if not wanted:
        return {}
    table = events_table(recorder)
    found: dict[int, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        for position, originator, version in session.execute(
            select(table.c.id, table.c.originator_id, table.c.originator_version)
            .where(table.c.id.in_(chunk))
        ):
            found[int(position)] = f"{originator}/{version}"
    return found


#: what a money event does to its claim, in the words of a report
MONEY_WORDS = {"claimed": "submitted", "approved": "approved", "rejected": "rejected",
               "paid": "settled"}


#: a sales batch names at most this many of its sales beside its event id
SALES_NAMED = 5


def sale_business_ids(session: Session, facts: Facts, names: dict[int, str]
                      ) -> dict[tuple[str, int], str]:
    """(event id, recorded µs) -> the sales of the agreement's buyers that event recorded at
    that moment (`sales S1, S2`) or the returns (`return of S9`), for the sales batches and
    reversals among the agreement's basis rows (`names`: store position -> event id; a batch
    loaded from history holds sales recorded at several moments). Read by customer
    (core_sales_by_customer) and kept to the rows asked for."""
    wanted = {(b.position, b.recorded_us) for b in facts.basis_rows}
    if not wanted:
        return {}
    buyers = sorted({b.customer_id or facts.customer_id or "" for b in facts.basis_rows} - {""})
    sold: dict[tuple[int, int], list[str]] = {}
    returned: dict[tuple[int, int], list[str]] = {}
    for buyer in buyers:
        for sale_id, position, recorded_us in session.execute(
                select(sales.c.sale_id, sales.c.position, sales.c.recorded_us)
                .where(sales.c.customer_id == buyer)
                .where(sales.c.currency == facts.currency)
                .where(sales.c.recorded_us <= facts.known_us)):
            if (position, recorded_us) in wanted:
                sold.setdefault((int(position), int(recorded_us)), []).append(sale_id)
        for sale_id, position, recorded_us in session.execute(
                select(reversals.c.sale_id, reversals.c.position, reversals.c.recorded_us)
                .join(sales, sales.c.sale_id == reversals.c.sale_id)
                .where(sales.c.customer_id == buyer)
                .where(sales.c.currency == facts.currency)
                .where(reversals.c.recorded_us <= facts.known_us)):
            if (position, recorded_us) in wanted:
                returned.setdefault((int(position), int(recorded_us)), []).append(sale_id)
    found: dict[tuple[str, int], str] = {}
    for (position, recorded_us), ids in sold.items():
        if position in names:
            found[(names[position], recorded_us)] = _named("sale", "sales", sorted(ids))
    for (position, recorded_us), ids in returned.items():
        if position in names:
            key = (names[position], recorded_us)
            text = _named("return of", "returns of", sorted(ids))
            found[key] = f"{found[key]}; {text}" if key in found else text
    return found


def _named(one: str, many: str, ids: list[str]) -> str:
    if len(ids) == 1:
        return f"{one} {ids[0]}"
    more = f" and {len(ids) - SALES_NAMED} more" if len(ids) > SALES_NAMED else ""
    return f"{many} {', '.join(ids[:SALES_NAMED])}{more}"


def business_ids(facts: Facts) -> dict[str, str]:
    """Event id -> the business ids it is about, from the agreement's own facts (no event is
    decoded): `agreement A1`, `amendment of A1 from 2025-03-01`, `forecast of A1`, `claim K1
    approved`, `write-off of A1`, `C7 joins group G1`."""
    agreement = facts.agreement_id
    found: dict[str, str] = {}
    for t in facts.terms_rows:
        found[t.event_id] = (
            f"agreement {agreement}" if t.kind == "created" else
            f"forecast of {agreement} from {t.effective_from}" if t.kind == "forecast" else
            f"amendment of {agreement} from {t.effective_from}")
    for m in facts.money_rows:
        if m.kind == "written_off":
            found[m.event_id] = f"write-off of {agreement}"
        elif m.claim_id is not None:
            found[m.event_id] = f"claim {m.claim_id} {MONEY_WORDS.get(m.kind, m.kind)}"
    for j in facts.membership_rows:
        verb = "joins" if j.kind == "join" else "leaves"
        found[j.event_id] = f"{j.customer_id} {verb} group {facts.group_id}"
    return found
