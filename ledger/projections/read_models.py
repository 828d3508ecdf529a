"""The projections fed from the events topic: liability, the claims register, sales attribution.

Each `ReadModel` creates its tables in a projection database (`create(engine)`) and applies
events in the order one partition delivers them (`apply(session, items)`, items being
`Delivered` envelopes with their decoded event). Records are keyed by customer id, and every
event a model joins on (an agreement and its customer's sales, a claim and its agreement)
belongs to one customer, so one partition's order is all a model needs.

- `liability`: the SAME tables and code as the core projection (`ledger.projections.core`),
  so that `ledger.liability.liability_rows` answers any (as_of, known_at) from it exactly as
  from the store. One table stays empty: `core_sales` (every sale by id), which only the
  core's own work reads (apply's duplicate and reversal checks, `explain` and `diff`, which
  answer from the store); a projection never reads it, and writing it (its two B-trees, the
  widest rows) was the largest part of a replay's inserts (issue 11 point 3).
- `claims`: one row per claim: agreement, customer, status, claimed, approved and paid amounts,
  their dates and the ids of the events that set them.
- `sales`: each agreement's recorded changes of terms, every sale and reversal, every join
  and leave of a group, each with its recorded time; `attribution(session, D, K)` tells, per
  agreement and invoice month, how many sales it counts at D as known at K and their quantity
  and amount: by the terms in force at D as known at K (contract 2.1-2.2: the period and
  products the liability's basis uses), reversals effective by D taken out. Summed per
  agreement it is the liability's basis (a property test holds it so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.orm import Session

from ledger.errors import LedgerError
from ledger.events import (
    AgreementAmended,
    AgreementCreated,
    ClaimApproved,
    ClaimRejected,
    ClaimSettled,
    ClaimSubmitted,
    LedgerEvent,
    MemberJoined,
    MemberLeft,
    SalesRecorded,
)
from ledger.liability import FOREVER_US
from ledger.membership import JOIN, LEAVE, MembershipChange, member_days
from ledger.money import EXACT, ZERO
from ledger.projections import core
from ledger.projections.core import CoreProjection, insert_rows
from ledger.store import ensure_tables


class Delivered(NamedTuple):
    """One envelope as a projection applies it (a named tuple: built once per record)."""

    position: int
    part: int
    key: str  # the customer id
    event_id: str
    event: LedgerEvent



class ReadModel(Protocol):
    name: str
    #: the read tables its answers come from, present in every version of the projection:
    #: once it has applied events, one of them missing is an error (never recreated empty)
    required_tables: tuple[str, ...]

    def create(self, engine: Engine) -> None: ...

    def apply(self, session: Session, items: Sequence[Delivered]) -> None: ...


# --- liability: the core tables -------------------------------------------------------------


class LiabilityModel:
    """The core projection's tables, fed from envelopes: `liability_rows` reads them."""

    name = "liability"
    required_tables: tuple[str, ...] = (
        "ledger_state", "core_agreements", "core_terms_changes", "core_sales",
        "core_reversals", "core_basis", "core_money", "core_claims",
    )

    def __init__(self) -> None:
        self.core = CoreProjection()

    def create(self, engine: Engine) -> None:
        core.upgrade_v1_tables(engine)
        core.ensure_basis_blocks(engine)

        def seeded(connection: Connection) -> bool:
            return connection.execute(select(core.ledger_state.c.id)).first() is not None

        def seed(connection: Connection) -> None:
            connection.execute(
                insert(core.ledger_state).values(
                    id=1, watermark_us=0, accepted=0, rejected=0, position=0, writes=0
                )
            )

        ensure_tables(engine, core.metadata.sorted_tables, seeded=seeded, seed=seed)

    def apply(self, session: Session, items: Sequence[Delivered]) -> None:
        apply_one = self.core._apply_one
        last = 0
        # the rows of every sales batch of the poll go in with one executemany per table;
        # `core_sales` is not written (see the module's docstring): no answer of a projection
        # reads it
        reversal_rows: list[tuple[Any, ...]] = []
        basis_rows: list[tuple[Any, ...]] = []
        for envelope in items:
            event = envelope.event
            if isinstance(event, SalesRecorded):
                _, more_reversals, more_basis = core.sales_rows(event, envelope.position)
                reversal_rows += more_reversals
                basis_rows += more_basis
            else:
                apply_one(session, event, envelope.position)
            last = max(last, envelope.position)
        insert_rows(session, core.reversals, core.REVERSAL_COLUMNS, reversal_rows)
        core.insert_basis(session, basis_rows)
        if last:
            session.execute(
                update(core.ledger_state)
                .where(core.ledger_state.c.id == 1)
                .where(core.ledger_state.c.position < last)
                .values(position=last)
            )


# --- the claims register --------------------------------------------------------------------

claims_metadata = MetaData()
ID = String(200)

claims_register = Table(
    "claims_register",
    claims_metadata,
    Column("claim_id", ID, primary_key=True),
    Column("agreement_id", ID, nullable=False),
    Column("customer_id", ID, nullable=False),
    # submitted | approved | rejected | settled
    Column("status", String(16), nullable=False),
    Column("claimed", Text, nullable=False),
    Column("approved", Text, nullable=True),
    Column("paid", Text, nullable=False),
    Column("submitted_on", String(10), nullable=False),
    Column("approved_on", String(10), nullable=True),
    Column("rejected_on", String(10), nullable=True),
    Column("paid_on", String(10), nullable=True),
    Column("reason", Text, nullable=True),
    Column("payment_ref", Text, nullable=True),
    Column("submitted_event", String(64), nullable=False),
    Column("approved_event", String(64), nullable=True),
    Column("rejected_event", String(64), nullable=True),
    # every settlement's event id, in order (JSON list)
    Column("settled_events", Text, nullable=False),
    Column("position", BigInteger, nullable=False),
    Index("claims_register_by_agreement", "agreement_id"),
)


@dataclass(frozen=True)
class ClaimRow:
    claim_id: str
    agreement_id: str
    customer_id: str
    status: str
    claimed: Decimal
    approved: Decimal | None
    paid: Decimal
    submitted_on: date
    approved_on: date | None
    rejected_on: date | None
    paid_on: date | None
    reason: str | None
    payment_ref: str | None
    submitted_event: str
    approved_event: str | None
    rejected_event: str | None
    settled_events: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            name: (
                str(value) if isinstance(value, Decimal)
                else value.isoformat() if isinstance(value, date)
                else list(value) if isinstance(value, tuple)
                else value
            )
            for name, value in self.__dict__.items()
        }


class ClaimsModel:
    name = "claims"
    required_tables: tuple[str, ...] = ("claims_register",)

    def create(self, engine: Engine) -> None:
        ensure_tables(engine, claims_metadata.sorted_tables)

    def apply(self, session: Session, items: Sequence[Delivered]) -> None:
        table = claims_register
        for envelope in items:
            event = envelope.event
            where = table.c.claim_id == getattr(event, "claim_id", None)
            if isinstance(event, ClaimSubmitted):
                session.execute(insert(table).values(
                    claim_id=event.claim_id, agreement_id=event.agreement_id,
                    customer_id=envelope.key, status="submitted", claimed=str(event.amount),
                    approved=None, paid="0", submitted_on=event.submitted_on.isoformat(),
                    submitted_event=envelope.event_id, settled_events="[]",
                    position=envelope.position,
                ))
            elif isinstance(event, ClaimApproved):
                session.execute(update(table).where(where).values(
                    status="approved", approved=str(event.approved_amount),
                    approved_on=event.approved_on.isoformat(),
                    approved_event=envelope.event_id, position=envelope.position,
                ))
            elif isinstance(event, ClaimRejected):
                session.execute(update(table).where(where).values(
                    status="rejected", rejected_on=event.rejected_on.isoformat(),
                    reason=event.reason, rejected_event=envelope.event_id,
                    position=envelope.position,
                ))
            elif isinstance(event, ClaimSettled):
                paid, settled = session.execute(
                    select(table.c.paid, table.c.settled_events).where(where)
                ).one()
                session.execute(update(table).where(where).values(
                    status="settled",
                    paid=str(EXACT.add(Decimal(paid), event.paid_amount)),
                    paid_on=event.paid_on.isoformat(), payment_ref=event.payment_ref,
                    settled_events=orjson.dumps(
                        [*orjson.loads(settled), envelope.event_id]
                    ).decode(),
                    position=envelope.position,
                ))


def _day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def claim_rows(
    session: Session, *, agreement_id: str | None = None, customer_id: str | None = None
) -> list[ClaimRow]:
    """The claims register, sorted by claim id."""
    table = claims_register
    query = select(table).order_by(table.c.claim_id)
    if agreement_id is not None:
        query = query.where(table.c.agreement_id == agreement_id)
    if customer_id is not None:
        query = query.where(table.c.customer_id == customer_id)
    return [
        ClaimRow(
            claim_id=row.claim_id, agreement_id=row.agreement_id, customer_id=row.customer_id,
            status=row.status, claimed=Decimal(row.claimed),
            approved=None if row.approved is None else Decimal(row.approved),
            paid=Decimal(row.paid), submitted_on=date.fromisoformat(row.submitted_on),
            approved_on=_day(row.approved_on), rejected_on=_day(row.rejected_on),
            paid_on=_day(row.paid_on), reason=row.reason, payment_ref=row.payment_ref,
            submitted_event=row.submitted_event, approved_event=row.approved_event,
            rejected_event=row.rejected_event,
            settled_events=tuple(orjson.loads(row.settled_events)),
        )
        for row in session.execute(query)
    ]


# --- sales attribution ----------------------------------------------------------------------

sales_metadata = MetaData()

sa_agreements = Table(
    "sa_agreements",
    sales_metadata,
    Column("agreement_id", ID, primary_key=True),
    # exactly one of customer_id and group_id (contract 4)
    Column("customer_id", ID, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("period_start", Integer, nullable=False),
    Column("period_end", Integer, nullable=False),
    # JSON list of product ids, or NULL: every product
    Column("products", Text, nullable=True),
    Column("position", BigInteger, nullable=False),
    Column("group_id", ID, nullable=True),
)

# Every join and leave of a buying group (contract 4), in recorded order (position).
sa_members = Table(
    "sa_members",
    sales_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_id", ID, nullable=False),
    Column("customer_id", ID, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("effective_day", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("recorded_us", BigInteger, nullable=True),  # NULL: projected before it was kept
    Index("sa_members_by_group", "group_id", "customer_id", "position"),
)

# Every agreement's creation and amendments of period and products, in recorded order:
# `data` holds the creation's period and products, or the amendment's changed ones.
sa_terms_changes = Table(
    "sa_terms_changes",
    sales_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agreement_id", ID, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Column("effective_day", Integer, nullable=False),
    Column("data", Text, nullable=False),
    Index("sa_terms_changes_by_agreement", "agreement_id", "position"),
)

sa_reversals = Table(
    "sa_reversals",
    sales_metadata,
    Column("sale_id", ID, primary_key=True),
    Column("reversed_day", Integer, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
)

sa_sales = Table(
    "sa_sales",
    sales_metadata,
    Column("sale_id", ID, primary_key=True),
    Column("customer_id", ID, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("product_id", ID, nullable=False),
    Column("invoice_day", Integer, nullable=False),
    Column("quantity", Text, nullable=False),
    Column("amount", Text, nullable=False),
    Column("reversed", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("recorded_us", BigInteger, nullable=True),  # NULL: projected before it was kept
    Index("sa_sales_by_customer", "customer_id", "currency", "invoice_day"),
)

SA_SALE_COLUMNS = (
    "sale_id", "customer_id", "currency", "product_id", "invoice_day", "quantity", "amount",
    "reversed", "position", "recorded_us",
)


class ProjectionOutdated(LedgerError):
    """A projection's database lacks what a query needs: it was built by an older version,
    or a read table is missing. Rebuilding it from the log fixes it."""


class ProjectionTablesMissing(ProjectionOutdated):
    """Read tables of a projection that has applied events are gone (dropped behind its
    back): recreating them empty would answer with figures that lack those events."""

    def __init__(self, name: str, missing: Sequence[str]) -> None:
        self.name, self.missing = name, tuple(missing)
        super().__init__(
            f"projection {name}: read table{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} missing from its database, though it has applied events; "
            f"they are not recreated empty: rebuild the projection from the log with "
            f"`rebate-ledger replay {name}`"
        )


def missing_read_tables(bind: Engine | Connection, tables: Sequence[str]) -> list[str]:
    """Which of `tables` the database of `bind` lacks."""
    present = set(inspect(bind).get_table_names())
    return [name for name in tables if name not in present]


@dataclass(frozen=True)
class AttributionRow:
    agreement_id: str
    month: str  # YYYY-MM of the invoice date
    sales: int
    quantity: Decimal
    amount: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {"agreement_id": self.agreement_id, "month": self.month, "sales": self.sales,
                "quantity": str(self.quantity), "amount": str(self.amount)}


class SalesModel:
    name = "sales"
    required_tables: tuple[str, ...] = ("sa_agreements", "sa_sales")

    def create(self, engine: Engine) -> None:
        core.reshape_table(engine, sa_agreements, ("group_id",))
        core.reshape_table(engine, sa_members, ("recorded_us",))
        core.reshape_table(engine, sa_sales, ("recorded_us",))
        ensure_tables(engine, sales_metadata.sorted_tables)

    def apply(self, session: Session, items: Sequence[Delivered]) -> None:
        for envelope in items:
            event = envelope.event
            if isinstance(event, SalesRecorded):
                rows = [
                    (s.sale_id, s.customer_id, s.currency, s.product_id,
                     s.invoice_date.toordinal(), str(s.quantity), str(s.amount), 0,
                     envelope.position, core.to_us(s.recorded_at))
                    for s in event.sales.rows()
                ]
                insert_rows(session, sa_sales, SA_SALE_COLUMNS, rows)
                reversals = list(event.reversals.rows())
                if reversals:
                    session.execute(insert(sa_reversals), [
                        {"sale_id": r.sale_id, "reversed_day": r.reversed_on.toordinal(),
                         "recorded_us": core.to_us(r.recorded_at)}
                        for r in reversals
                    ])
                reversed_ids = [r.sale_id for r in reversals]
                if reversed_ids:
                    session.execute(
                        update(sa_sales).where(sa_sales.c.sale_id.in_(reversed_ids))
                        .values(reversed=1)
                    )
            elif isinstance(event, AgreementCreated):
                session.execute(insert(sa_agreements).values(
                    agreement_id=event.agreement_id, customer_id=event.customer_id,
                    group_id=event.group_id,
                    currency=event.currency, period_start=event.period_start.toordinal(),
                    period_end=event.period_end.toordinal(),
                    products=None if event.products is None
                    else orjson.dumps(sorted(event.products)).decode(),
                    position=envelope.position,
                ))
                session.execute(insert(sa_terms_changes).values(
                    agreement_id=event.agreement_id, position=envelope.position,
                    recorded_us=core.to_us(event.recorded_at),
                    effective_day=event.period_start.toordinal(),
                    data=orjson.dumps({
                        "period_start": event.period_start.toordinal(),
                        "period_end": event.period_end.toordinal(),
                        "products": None if event.products is None else sorted(event.products),
                    }).decode(),
                ))
            elif isinstance(event, MemberJoined | MemberLeft):
                session.execute(insert(sa_members).values(
                    group_id=event.group_id, customer_id=event.customer_id,
                    kind=JOIN if isinstance(event, MemberJoined) else LEAVE,
                    effective_day=event.effective_from.toordinal(),
                    position=envelope.position, recorded_us=core.to_us(event.recorded_at),
                ))
            elif isinstance(event, AgreementAmended):
                changed: dict[str, Any] = {}
                if "period_end" in event.changed and event.period_end is not None:
                    changed["period_end"] = event.period_end.toordinal()
                if "products" in event.changed:
                    changed["products"] = (
                        None if event.products is None else sorted(event.products)
                    )
                if changed:
                    session.execute(insert(sa_terms_changes).values(
                        agreement_id=event.agreement_id, position=envelope.position,
                        recorded_us=core.to_us(event.recorded_at),
                        effective_day=event.effective_from.toordinal(),
                        data=orjson.dumps(changed).decode(),
                    ))
                values: dict[str, Any] = {}
                if "period_end" in event.changed and event.period_end is not None:
                    values["period_end"] = event.period_end.toordinal()
                if "products" in event.changed:
                    values["products"] = (
                        None if event.products is None
                        else orjson.dumps(sorted(event.products)).decode()
                    )
                if values:
                    session.execute(
                        update(sa_agreements)
                        .where(sa_agreements.c.agreement_id == event.agreement_id)
                        .values(position=envelope.position, **values)
                    )


def _buyers(
    session: Session, group_id: str | None, customer_id: str | None, first: int, last: int,
    known_us: int,
) -> list[tuple[str, int, int]]:
    """(customer, first day, last day) whose sales an agreement counts from `first` to
    `last`: its customer, or each member of its group on the days it is a member, as known
    at K (contract 4)."""
    if group_id is None:
        assert customer_id is not None
        return [(customer_id, first, last)]
    changes: dict[str, list[MembershipChange]] = {}
    for customer, position, kind, effective_day in session.execute(
        select(sa_members.c.customer_id, sa_members.c.position, sa_members.c.kind,
               sa_members.c.effective_day)
        .where(sa_members.c.group_id == group_id)
        .where(sa_members.c.recorded_us <= known_us)
    ):
        changes.setdefault(customer, []).append(
            MembershipChange(position, kind, date.fromordinal(effective_day))
        )
    return member_days(changes, first, last)


def _check_current(session: Session) -> None:
    """ProjectionOutdated when this sales projection was built before it kept the recorded
    times and terms history `attribution` needs."""
    outdated = session.execute(select(
        select(sa_agreements.c.agreement_id)
        .where(~select(sa_terms_changes.c.id)
               .where(sa_terms_changes.c.agreement_id == sa_agreements.c.agreement_id)
               .exists())
        .exists()
        | select(sa_sales.c.sale_id).where(sa_sales.c.recorded_us.is_(None)).exists()
        | select(sa_members.c.id).where(sa_members.c.recorded_us.is_(None)).exists()
    )).scalar_one()
    if outdated:
        raise ProjectionOutdated(
            "projection sales was built by an older rebate-ledger without the terms history "
            "and recorded times attribution needs: rebuild it with `rebate-ledger replay "
            "sales`"
        )


def attribution(
    session: Session,
    as_of: date,
    known_at: datetime | None = None,
    *,
    agreement_id: str | None = None,
) -> list[AttributionRow]:
    """Per agreement and invoice month: the sales it counts at D = `as_of` as known at
    K = `known_at` (default: everything), with their quantity and amount: its customer's, or
    its group's members' on the days they are members, in its currency, invoiced from the
    start of the period to D inside the period and of the products of the terms in force at D
    (contract 2.1-2.2: the creation's, with every amendment effective by D laid over in
    recorded order), reversals effective by D taken out. Summed over the months, an
    agreement's rows are the quantity and amount its liability's basis uses at (D, K)."""
    _check_current(session)
    known_us = FOREVER_US if known_at is None else core.to_us(known_at)
    as_of_day = as_of.toordinal()
    query = (
        select(sa_agreements.c.agreement_id, sa_agreements.c.customer_id,
               sa_agreements.c.group_id, sa_agreements.c.currency)
        .order_by(sa_agreements.c.agreement_id)
    )
    if agreement_id is not None:
        query = query.where(sa_agreements.c.agreement_id == agreement_id)
    result = []
    for agreement in session.execute(query).all():
        changes = session.execute(
            select(sa_terms_changes.c.effective_day, sa_terms_changes.c.recorded_us,
                   sa_terms_changes.c.data)
            .where(sa_terms_changes.c.agreement_id == agreement.agreement_id)
            .order_by(sa_terms_changes.c.position)
        ).all()
        if not changes or changes[0].recorded_us > known_us:
            continue  # not recorded yet at K
        terms: dict[str, Any] = orjson.loads(changes[0].data)
        for change in changes[1:]:
            if change.recorded_us <= known_us and change.effective_day <= as_of_day:
                terms.update(orjson.loads(change.data))
        first, last = terms["period_start"], min(terms["period_end"], as_of_day)
        if last < first:
            continue
        products = None if terms["products"] is None else set(terms["products"])
        reversed_by_d = (
            select(sa_reversals.c.sale_id)
            .where(sa_reversals.c.sale_id == sa_sales.c.sale_id)
            .where(sa_reversals.c.reversed_day <= as_of_day)
            .where(sa_reversals.c.recorded_us <= known_us)
            .exists()
        )
        months: dict[str, list[Any]] = {}
        for customer, window_first, window_last in _buyers(
            session, agreement.group_id, agreement.customer_id, first, last, known_us
        ):
            for product_id, invoice_day, quantity, amount in session.execute(
                select(sa_sales.c.product_id, sa_sales.c.invoice_day, sa_sales.c.quantity,
                       sa_sales.c.amount)
                .where(sa_sales.c.customer_id == customer)
                .where(sa_sales.c.currency == agreement.currency)
                .where(sa_sales.c.invoice_day >= window_first)
                .where(sa_sales.c.invoice_day <= window_last)
                .where(sa_sales.c.recorded_us <= known_us)
                .where(~reversed_by_d)
            ):
                if products is not None and product_id not in products:
                    continue
                month = date.fromordinal(invoice_day).strftime("%Y-%m")
                bucket = months.setdefault(month, [0, ZERO, ZERO])
                bucket[0] += 1
                bucket[1] = EXACT.add(bucket[1], Decimal(quantity))
                bucket[2] = EXACT.add(bucket[2], Decimal(amount))
        for month in sorted(months):
            count, quantity, amount = months[month]
            result.append(AttributionRow(agreement.agreement_id, month, count, quantity, amount))
    return result


MODELS: dict[str, type[LiabilityModel] | type[ClaimsModel] | type[SalesModel]] = {
    "liability": LiabilityModel,
    "claims": ClaimsModel,
    "sales": SalesModel,
}


def model(name: str) -> ReadModel:
    return MODELS[name]()
