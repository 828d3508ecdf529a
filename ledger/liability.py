"""The liability of agreements at a point in time (contract section 2), read from the core
projection: valid time `as_of` (D), transaction time `known_at` (K).

The cost of a query does not grow with the whole history: the terms come from the agreement's
few recorded changes, the basis from one indexed sum over the customer's rows inside the
agreement's period, and claims and write-offs from the agreement's own rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ledger.membership import MembershipChange, is_member, member_days
from ledger.money import EXACT, ZERO, format_decimal, format_money, from_micro, round_money
from ledger.projections.core import (
    BLOCK_DAYS,
    agreements,
    basis,
    basis_blocks,
    day,
    memberships,
    money,
    terms_changes,
    to_us,
)
from ledger.rules import Accrual, accrue
from ledger.rules import liability as owed
from ledger.terms import Terms, TermsChange, changes_of, terms_in_force, terms_of

#: Stand-in for "everything recorded" (no K): later than any recorded time.
FOREVER_US = (1 << 62)


@dataclass(frozen=True)
class LiabilityRow:
    agreement_id: str
    customer_id: str | None  # None for a group agreement (contract 4)
    currency: str
    basis: Decimal
    accrued: Decimal
    approved: Decimal
    paid: Decimal
    written_off: Decimal
    liability: Decimal
    # How the figures came about (for explain, audit and tests); not part of the contract row.
    terms: Terms | None = field(default=None, compare=False, repr=False)
    accrual: Accrual | None = field(default=None, compare=False, repr=False)
    quantity: Decimal = field(default=ZERO, compare=False)
    amount: Decimal = field(default=ZERO, compare=False)
    forecast_basis: Decimal | None = field(default=None, compare=False)
    group_id: str | None = None
    program_id: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """The contract's liability row: decimals as strings, money with two decimals;
        `customer_id` or `group_id` null as the agreement is a group's or a customer's."""
        return {
            "agreement_id": self.agreement_id,
            "customer_id": self.customer_id,
            "group_id": self.group_id,
            "program_id": self.program_id,
            "currency": self.currency,
            "basis": format_decimal(self.basis),
            "accrued": format_money(self.accrued),
            "approved": format_money(self.approved),
            "paid": format_money(self.paid),
            "written_off": format_money(self.written_off),
            "liability": format_money(self.liability),
        }


def _created_terms(data: dict[str, Any]) -> Terms:
    return terms_of(data)  # group_id, program_id: absent in what a v1 store projected


def _amended_values(data: dict[str, Any]) -> dict[str, Any]:
    return changes_of(data["changed"], data)


@dataclass
class AgreementHistory:
    """An agreement's recorded changes of terms, as known at K."""

    agreement_id: str
    created: Terms
    created_event: str
    amendments: list[TermsChange]
    forecasts: list[TermsChange]

    def terms_at(self, as_of: date) -> Terms:
        return terms_in_force(self.created, self.amendments, as_of)

    def forecast_at(self, as_of: date, terms: Terms) -> tuple[Decimal | None, str | None]:
        """Contract 2.4: the latest recorded revision effective by D, else the terms' own."""
        latest: TermsChange | None = None
        for revision in self.forecasts:
            if revision.effective_from <= as_of and (latest is None or revision.seq > latest.seq):
                latest = revision
        if latest is not None:
            return latest.changes["forecast_basis"], latest.source
        return terms.forecast_basis, terms.sources.get("forecast_basis", self.created_event)


# The read path's statements are built once, with bound parameters: building one and its
# cache key on every query cost SQLAlchemy more than SQLite spent answering it.
_HISTORIES = (
    select(
        terms_changes.c.agreement_id,
        terms_changes.c.position,
        terms_changes.c.kind,
        terms_changes.c.effective_day,
        terms_changes.c.event_id,
        terms_changes.c.data,
    )
    .where(terms_changes.c.agreement_id.in_(bindparam("ids", expanding=True)))
    .where(terms_changes.c.recorded_us <= bindparam("known_us"))
    .order_by(terms_changes.c.agreement_id, terms_changes.c.position)
)


def load_histories(
    session: Session, agreement_ids: Sequence[str], known_us: int
) -> dict[str, AgreementHistory]:
    histories: dict[str, AgreementHistory] = {}
    if not agreement_ids:
        return histories
    for start in range(0, len(agreement_ids), 500):
        ids = list(agreement_ids[start : start + 500])
        for agreement_id, position, kind, effective_day, source, data_text in session.execute(
            _HISTORIES, {"ids": ids, "known_us": known_us}
        ):
            data = orjson.loads(data_text)
            if kind == "created":
                histories[agreement_id] = AgreementHistory(
                    agreement_id, _created_terms(data), source, [], []
                )
                continue
            history = histories[agreement_id]
            change = TermsChange(
                seq=position,
                effective_from=date.fromordinal(effective_day),
                changes=(
                    _amended_values(data)
                    if kind == "amended"
                    else {"forecast_basis": Decimal(data["forecast_basis"])}
                ),
                source=source,
            )
            (history.amendments if kind == "amended" else history.forecasts).append(change)
    return histories


_BASIS_SUM = (
    select(
        func.sum(basis.c.q_micro),
        func.sum(basis.c.a_micro),
        func.count(),
        func.count(basis.c.q_micro),
        func.count(basis.c.a_micro),
    )
    .where(basis.c.customer_id == bindparam("customer_id"))
    .where(basis.c.currency == bindparam("currency"))
    .where(basis.c.invoice_day >= bindparam("first_day"))
    .where(basis.c.invoice_day <= bindparam("last_day"))
    .where(basis.c.effective_day <= bindparam("as_of_day"))
    .where(basis.c.recorded_us <= bindparam("known_us"))
)
_BASIS_SUM_PRODUCTS = _BASIS_SUM.where(
    basis.c.product_id.in_(bindparam("products", expanding=True))
)
_BASIS_ROWS = (
    select(basis.c.q_micro, basis.c.a_micro, basis.c.quantity, basis.c.amount)
    .where(basis.c.customer_id == bindparam("customer_id"))
    .where(basis.c.currency == bindparam("currency"))
    .where(basis.c.invoice_day >= bindparam("first_day"))
    .where(basis.c.invoice_day <= bindparam("last_day"))
    .where(basis.c.effective_day <= bindparam("as_of_day"))
    .where(basis.c.recorded_us <= bindparam("known_us"))
)
_BASIS_ROWS_PRODUCTS = _BASIS_ROWS.where(
    basis.c.product_id.in_(bindparam("products", expanding=True))
)


def eligible_totals(
    session: Session, terms: Terms, as_of: date, known_us: int
) -> tuple[Decimal, Decimal]:
    """Contract 2.2–2.3: Q and A of the eligible sales at D as known at K: of the agreement's
    customer, or (contract 4) of each customer on the days it is a member of the agreement's
    group, as known at K."""
    last = min(terms.period_end, as_of)
    if last < terms.period_start:
        return ZERO, ZERO
    if terms.group_id is None:
        assert terms.customer_id is not None
        return customer_totals(session, terms, terms.customer_id, terms.period_start, last,
                               as_of, known_us)
    quantity, amount = ZERO, ZERO
    for customer, first, final in member_windows(
        session, terms.group_id, terms.period_start, last, known_us
    ):
        q, a = customer_totals(session, terms, customer, first, final, as_of, known_us)
        quantity, amount = EXACT.add(quantity, q), EXACT.add(amount, a)
    return quantity, amount


_MEMBERSHIP = (
    select(memberships.c.customer_id, memberships.c.position, memberships.c.kind,
           memberships.c.effective_day)
    .where(memberships.c.group_id == bindparam("group_id"))
    .where(memberships.c.recorded_us <= bindparam("known_us"))
    .order_by(memberships.c.customer_id, memberships.c.position)
)


def membership_changes(
    session: Session, group_id: str, known_us: int
) -> dict[str, list[MembershipChange]]:
    """Every join and leave of `group_id` recorded at or before K, by customer."""
    changes: dict[str, list[MembershipChange]] = defaultdict(list)
    for customer, position, kind, effective_day in session.execute(
        _MEMBERSHIP, {"group_id": group_id, "known_us": known_us}
    ):
        changes[customer].append(
            MembershipChange(position, kind, date.fromordinal(effective_day))
        )
    return changes


def member_windows(
    session: Session, group_id: str, first: date, last: date, known_us: int
) -> list[tuple[str, date, date]]:
    """(customer, first day, last day) of every span of membership in `group_id`, as known
    at K, cut to the days `first` to `last`: the invoice days whose sales count (contract 4)."""
    return [
        (customer, date.fromordinal(start), date.fromordinal(end))
        for customer, start, end in member_days(
            membership_changes(session, group_id, known_us), first.toordinal(),
            last.toordinal())
    ]


_GROUPS_OF = (
    select(memberships.c.group_id, memberships.c.position, memberships.c.kind,
           memberships.c.effective_day)
    .where(memberships.c.customer_id == bindparam("customer_id"))
    .where(memberships.c.recorded_us <= bindparam("known_us"))
)


def groups_of(session: Session, customer_id: str, on: date, known_us: int) -> list[str]:
    """The groups `customer_id` is a member of on `on`, as known at K (contract 4)."""
    changes: dict[str, list[MembershipChange]] = defaultdict(list)
    for group_id, position, kind, effective_day in session.execute(
            _GROUPS_OF, {"customer_id": customer_id, "known_us": known_us}):
        changes[group_id].append(
            MembershipChange(position, kind, date.fromordinal(effective_day))
        )
    return sorted(group for group, made in changes.items() if is_member(made, on))


def customer_totals(
    session: Session, terms: Terms, customer_id: str, first: date, last: date, as_of: date,
    known_us: int,
) -> tuple[Decimal, Decimal]:
    """Q and A of `customer_id`'s sales in the agreement's currency and products invoiced
    from `first` to `last`, counted at D (reversals effective by D) as known at K.

    Without a product list the whole blocks of invoice days inside the range come from
    `core_basis_blocks` where a block counts whole at (D, K), and only the rest (the ends of
    the range, and blocks that count in part) is summed from `core_basis`."""
    params: dict[str, Any] = {
        "customer_id": customer_id,
        "currency": terms.currency,
        "as_of_day": day(as_of),
        "known_us": known_us,
    }
    if terms.products is not None:
        params["products"] = sorted(terms.products)
        return _row_totals(session, params, day(first), day(last), products=True)
    first_day, last_day = day(first), day(last)
    first_block = -(-first_day // BLOCK_DAYS)  # the first block that starts inside the range
    last_block = (last_day + 1) // BLOCK_DAYS - 1  # the last block that ends inside it
    if first_block > last_block:
        return _row_totals(session, params, first_day, last_day, products=False)
    whole: dict[int, list[int]] = {}
    partial: set[int] = set()
    as_of_day = params["as_of_day"]
    for block, q_micro, a_micro, min_effective, max_effective, min_recorded, max_recorded in \
            session.execute(_BLOCKS, {**params, "first_block": first_block,
                                      "last_block": last_block}):
        if min_effective > as_of_day or min_recorded > known_us:
            continue  # none of it counts at (D, K)
        if max_effective <= as_of_day and max_recorded <= known_us \
                and q_micro is not None and a_micro is not None:
            sums = whole.setdefault(block, [0, 0])
            sums[0] += q_micro
            sums[1] += a_micro
        else:
            partial.add(block)
    quantity = from_micro(sum(s[0] for b, s in whole.items() if b not in partial))
    amount = from_micro(sum(s[1] for b, s in whole.items() if b not in partial))
    for start, end in _row_ranges(first_day, last_day, first_block, last_block, partial):
        q, a = _row_totals(session, params, start, end, products=False)
        quantity, amount = EXACT.add(quantity, q), EXACT.add(amount, a)
    return quantity, amount


_BLOCKS = (
    select(basis_blocks.c.block, basis_blocks.c.q_micro, basis_blocks.c.a_micro,
           basis_blocks.c.min_effective_day, basis_blocks.c.max_effective_day,
           basis_blocks.c.min_recorded_us, basis_blocks.c.max_recorded_us)
    .where(basis_blocks.c.customer_id == bindparam("customer_id"))
    .where(basis_blocks.c.currency == bindparam("currency"))
    .where(basis_blocks.c.block >= bindparam("first_block"))
    .where(basis_blocks.c.block <= bindparam("last_block"))
)


def _row_ranges(
    first_day: int, last_day: int, first_block: int, last_block: int, partial: set[int]
) -> list[tuple[int, int]]:
    """The day ranges summed from `core_basis`: the days before the first whole block, the
    runs of blocks that count in part, and the days after the last whole block."""
    ranges = []
    if first_day < first_block * BLOCK_DAYS:
        ranges.append((first_day, first_block * BLOCK_DAYS - 1))
    for block in sorted(partial):
        start, end = block * BLOCK_DAYS, (block + 1) * BLOCK_DAYS - 1
        if ranges and ranges[-1][1] == start - 1:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    after = (last_block + 1) * BLOCK_DAYS
    if after <= last_day:
        if ranges and ranges[-1][1] == after - 1:
            ranges[-1] = (ranges[-1][0], last_day)
        else:
            ranges.append((after, last_day))
    return ranges


def _row_totals(
    session: Session, params: dict[str, Any], first_day: int, last_day: int, *, products: bool
) -> tuple[Decimal, Decimal]:
    """Q and A summed from `core_basis` rows invoiced from `first_day` to `last_day`."""
    params = {**params, "first_day": first_day, "last_day": last_day}
    summed, rows = (_BASIS_SUM_PRODUCTS, _BASIS_ROWS_PRODUCTS) if products else \
        (_BASIS_SUM, _BASIS_ROWS)
    try:
        q_micro, a_micro, count, q_count, a_count = session.execute(summed, params).one()
        if count == q_count == a_count:
            return from_micro(int(q_micro or 0)), from_micro(int(a_micro or 0))
    except DBAPIError as exc:  # SQLite raises on integer overflow; sum exactly below
        if "overflow" not in str(exc).lower():
            raise
    quantity, amount = ZERO, ZERO
    for q_micro, a_micro, q_text, a_text in session.execute(rows, params):
        quantity = EXACT.add(quantity, exact_value(q_micro, q_text))
        amount = EXACT.add(amount, exact_value(a_micro, a_text))
    return quantity, amount


def exact_value(micro: int | None, text: str | None) -> Decimal:
    """A figure stored as millionths, or as exact text when millionths could not hold it."""
    if micro is not None:
        return from_micro(micro)
    assert text is not None
    return Decimal(text)


_MONEY = (
    select(money.c.agreement_id, money.c.kind, money.c.amount)
    .where(money.c.agreement_id.in_(bindparam("ids", expanding=True)))
    .where(money.c.valid_day <= bindparam("as_of_day"))
    .where(money.c.recorded_us <= bindparam("known_us"))
)


def money_totals(
    session: Session, agreement_ids: Sequence[str], as_of: date, known_us: int
) -> dict[str, dict[str, Decimal]]:
    """Contract 2.8: approved, paid and written off by agreement at D as known at K."""
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for start in range(0, len(agreement_ids), 500):
        ids = list(agreement_ids[start : start + 500])
        for agreement_id, kind, amount in session.execute(
                _MONEY, {"ids": ids, "as_of_day": day(as_of), "known_us": known_us}):
            bucket = totals[agreement_id]
            bucket[kind] = EXACT.add(bucket[kind], Decimal(amount))
    return totals


def accrual_at(
    session: Session, history: AgreementHistory, as_of: date, known_us: int,
    *, method: str | None = None,
) -> tuple[Terms, Accrual, Decimal, Decimal, Decimal | None]:
    """Terms at D, and the accrual they give (with `method` forcing earned or forecast)."""
    terms = history.terms_at(as_of)
    quantity, amount = eligible_totals(session, terms, as_of, known_us)
    basis_value = quantity if terms.basis == "quantity" else amount
    measure = quantity if terms.rate_kind == "per_unit" else amount
    forecast, _ = history.forecast_at(as_of, terms)
    accrual = accrue(
        tiers=terms.tiers,
        tier_method=terms.tier_method,
        accrual_method=method or terms.accrual_method,
        basis=basis_value,
        measure=measure,
        forecast_basis=forecast,
        cap=terms.cap,
    )
    return terms, accrual, quantity, amount, forecast


def liability_rows(
    session: Session,
    as_of: date,
    known_at: datetime | None = None,
    *,
    agreement_id: str | None = None,
    customer_id: str | None = None,
    group_id: str | None = None,
    program_id: str | None = None,
    among: Collection[str] | None = None,
) -> list[LiabilityRow]:
    """Every agreement that exists as known at K (filtered), sorted by agreement id.

    `customer_id` selects the customer's own agreements and those of every group it is a
    member of at D, as known at K (contract 4); `group_id` a group's agreements; `program_id`
    the agreements made from a program; `among` only the agreements it names (`diff` computes
    only those that something recorded between its two moments concerns)."""
    known_us = FOREVER_US if known_at is None else to_us(known_at)
    ids = agreement_ids(
        session, as_of, known_us, agreement_id=agreement_id, customer_id=customer_id,
        group_id=group_id, program_id=program_id,
    )
    if among is not None:
        ids = [a for a in ids if a in among]
    histories = load_histories(session, ids, known_us)
    totals = money_totals(session, ids, as_of, known_us)
    rows = []
    for agreement in ids:
        history = histories[agreement]
        terms, accrual, quantity, amount, forecast = accrual_at(
            session, history, as_of, known_us
        )
        bucket = totals.get(agreement, {})
        paid = bucket.get("paid", ZERO)
        written_off = bucket.get("written_off", ZERO)
        rows.append(
            LiabilityRow(
                agreement_id=agreement,
                customer_id=terms.customer_id,
                group_id=terms.group_id,
                program_id=terms.program_id,
                currency=terms.currency,
                basis=accrual.basis,
                accrued=accrual.accrued,
                approved=bucket.get("approved", ZERO),
                paid=paid,
                written_off=written_off,
                liability=round_money(owed(accrual.accrued, paid, written_off)),
                terms=terms,
                accrual=accrual,
                quantity=quantity,
                amount=amount,
                forecast_basis=forecast,
            )
        )
    return rows


_ONE_AGREEMENT = (
    select(agreements.c.agreement_id)
    .where(agreements.c.agreement_id == bindparam("agreement_id"))
    .where(agreements.c.recorded_us <= bindparam("known_us"))
)


def agreement_ids(
    session: Session,
    as_of: date,
    known_us: int,
    *,
    agreement_id: str | None = None,
    customer_id: str | None = None,
    group_id: str | None = None,
    program_id: str | None = None,
) -> list[str]:
    """The ids of the agreements that exist as known at K and pass the filters (see
    `liability_rows`), sorted."""
    if agreement_id is not None and customer_id is group_id is program_id is None:
        return [row[0] for row in session.execute(
            _ONE_AGREEMENT, {"agreement_id": agreement_id, "known_us": known_us})]
    query = (
        select(agreements.c.agreement_id)
        .where(agreements.c.recorded_us <= known_us)
        .order_by(agreements.c.agreement_id)
    )
    if agreement_id is not None:
        query = query.where(agreements.c.agreement_id == agreement_id)
    if group_id is not None:
        query = query.where(agreements.c.group_id == group_id)
    if program_id is not None:
        query = query.where(agreements.c.program_id == program_id)
    if customer_id is not None:
        owners = agreements.c.customer_id == customer_id
        groups = groups_of(session, customer_id, as_of, known_us)
        if groups:
            owners = or_(owners, agreements.c.group_id.in_(groups))
        query = query.where(owners)
    return [row[0] for row in session.execute(query)]
