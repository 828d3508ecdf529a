"""The core projection: what command handling and point-in-time queries read.

It is derived from events only, written in the same transaction as the events it derives from
(so it is never behind the store), and can be rebuilt from the notification log. Money and
quantities are kept as exact text; the basis table also keeps them in millionths as integers,
so that the database adds them up (rows that do not fit are summed exactly in Python).

Dates are stored as proleptic ordinals (`date.toordinal()`), recorded times as microseconds
since the Unix epoch (UTC): both compare and index as integers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import chain
from operator import itemgetter
from typing import Any, cast

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
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ledger.errors import StoreReadOnly
from ledger.events import (
    AgreementAmended,
    AgreementCreated,
    ClaimApproved,
    ClaimRejected,
    ClaimSettled,
    ClaimSubmitted,
    ForecastRevised,
    GroupCreated,
    LedgerEvent,
    MemberJoined,
    MemberLeft,
    PeriodClosed,
    RebateWrittenOff,
    SalesRecorded,
    WriteOffReversed,
)
from ledger.money import EXACT, to_micro
from ledger.store import refusing_read_only, schema_transaction

metadata = MetaData()

ID = String(200)

ledger_state = Table(
    "ledger_state",
    metadata,
    Column("id", Integer, primary_key=True),
    # Highest recorded_at of any accepted command, in µs (commands may not go back before it).
    Column("watermark_us", BigInteger, nullable=False),
    # Commands accepted (including duplicates) and rejected so far.
    Column("accepted", BigInteger, nullable=False),
    Column("rejected", BigInteger, nullable=False),
    # Position in the notification log of the last event applied to this projection.
    Column("position", BigInteger, nullable=False),
    Column("writes", BigInteger, nullable=False),
)

# One row per agreement: exactly one of customer_id and group_id (contract 4).
agreements = Table(
    "core_agreements",
    metadata,
    Column("agreement_id", ID, primary_key=True),
    Column("customer_id", ID, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("group_id", ID, nullable=True),
    Column("program_id", ID, nullable=True),
    Index("core_agreements_by_group", "group_id"),
    Index("core_agreements_by_program", "program_id"),
)

#: The columns contract v2 added to `core_agreements` (a v1 store gains them on opening).
AGREEMENT_V2_COLUMNS = ("group_id", "program_id")

groups = Table(
    "core_groups",
    metadata,
    Column("group_id", ID, primary_key=True),
    Column("name", Text, nullable=True),
    Column("recorded_us", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
)

# Every recorded join and leave (contract 4), laid in recorded order (position) by
# `ledger.membership`: a member on day X as known at K when the last recorded change with
# effective_day <= X and recorded_us <= K is a join.
memberships = Table(
    "core_memberships",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_id", ID, nullable=False),
    Column("customer_id", ID, nullable=False),
    # join | leave
    Column("kind", String(8), nullable=False),
    Column("effective_day", Integer, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("event_id", String(64), nullable=False),
    Index("core_memberships_by_group", "group_id", "customer_id", "position"),
    Index("core_memberships_by_customer", "customer_id", "group_id"),
)

# Write-offs recorded with a write_off_id (contract 5): which agreement holds each.
write_offs = Table(
    "core_write_offs",
    metadata,
    Column("write_off_id", ID, primary_key=True),
    Column("agreement_id", ID, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
)

terms_changes = Table(
    "core_terms_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agreement_id", ID, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    # created | amended | forecast
    Column("kind", String(16), nullable=False),
    Column("effective_day", Integer, nullable=True),
    Column("event_id", String(64), nullable=False),
    Column("data", Text, nullable=False),
    Index("core_terms_changes_by_agreement", "agreement_id", "position"),
)

# Every recorded sale by id: for duplicate detection and reversals. Figures in millionths
# when that is exact (the text columns are then NULL), else as exact text.
sales = Table(
    "core_sales",
    metadata,
    Column("sale_id", ID, primary_key=True),
    Column("customer_id", ID, nullable=False),
    Column("product_id", ID, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("q_micro", BigInteger, nullable=True),
    Column("a_micro", BigInteger, nullable=True),
    Column("quantity", Text, nullable=True),
    Column("amount", Text, nullable=True),
    Column("invoice_day", Integer, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
    # A customer's sales in recorded order: explain lists an agreement's sale ids and diff
    # the sales recorded between two moments, by customer, without scanning the book.
    Index("core_sales_by_customer", "customer_id", "recorded_us"),
    sqlite_with_rowid=False,
)

reversals = Table(
    "core_reversals",
    metadata,
    Column("sale_id", ID, primary_key=True),
    Column("reversed_day", Integer, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
)

# One row per (customer, currency, product, invoice day, effective day, recorded time) and
# batch: sales count on their invoice day, reversals from their reversal day on. Clustered on
# the query's key, so that one agreement's sum reads one contiguous range of one B-tree.
basis = Table(
    "core_basis",
    metadata,
    Column("customer_id", ID, primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("invoice_day", Integer, primary_key=True),
    Column("effective_day", Integer, primary_key=True),
    Column("recorded_us", BigInteger, primary_key=True),
    Column("product_id", ID, primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("q_micro", BigInteger, nullable=True),
    Column("a_micro", BigInteger, nullable=True),
    Column("quantity", Text, nullable=True),
    Column("amount", Text, nullable=True),
    sqlite_with_rowid=False,
)
basis_table = basis

#: Days in one block of `core_basis_blocks`: a block is the invoice days `BLOCK_DAYS * b` to
#: `BLOCK_DAYS * (b + 1) - 1` (proleptic ordinals), so that SQL and Python agree on it by
#: integer division alone.
BLOCK_DAYS = 32
#: Recorded times in one recorded block: `BLOCK_DAYS` days of microseconds.
BLOCK_US = BLOCK_DAYS * 86_400 * 1_000_000
#: A block's sum in millionths is kept while both terms of an addition stay below this, so
#: that no addition can overflow a 64-bit integer (SQLite would turn it into a float); beyond
#: it the sum is NULL and queries add that block's `core_basis` rows exactly instead.
BLOCK_LIMIT = 1 << 61

# The basis summed per customer, currency and block of invoice days, of effective days and of
# recorded times, with the extremes of the days and times inside. A point query at (D, K)
# takes a block whole when all of it counts (latest effective day <= D, latest recorded time
# <= K), skips it when none does, and reads `core_basis` only for the blocks in between and
# the part-blocks at the ends of its period: so a group agreement's query reads about one row
# per member and month instead of every sale (issue 13's benchmark).
basis_blocks = Table(
    "core_basis_blocks",
    metadata,
    Column("customer_id", ID, primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("block", Integer, primary_key=True),
    Column("effective_block", Integer, primary_key=True),
    Column("recorded_block", BigInteger, primary_key=True),
    # NULL when some row of the block is kept as exact text or the sum grew past BLOCK_LIMIT
    Column("q_micro", BigInteger, nullable=True),
    Column("a_micro", BigInteger, nullable=True),
    Column("min_effective_day", Integer, nullable=False),
    Column("max_effective_day", Integer, nullable=False),
    Column("min_recorded_us", BigInteger, nullable=False),
    Column("max_recorded_us", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

# Claimed, approved, paid and written-off amounts by agreement and valid day.
money = Table(
    "core_money",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agreement_id", ID, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("valid_day", Integer, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Column("amount", Text, nullable=False),
    Column("claim_id", ID, nullable=True),
    Column("position", BigInteger, nullable=False),
    Column("event_id", String(64), nullable=False),
    Index("core_money_by_agreement", "agreement_id", "valid_day"),
)

claims = Table(
    "core_claims",
    metadata,
    Column("claim_id", ID, primary_key=True),
    Column("agreement_id", ID, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Index("core_claims_by_agreement", "agreement_id"),
)

# Period closes: the reported position, frozen (ledger.audit.close reads it).
closes = Table(
    "core_closes",
    metadata,
    Column("period", ID, primary_key=True),
    Column("period_start_day", Integer, nullable=False),
    Column("period_end_day", Integer, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("event_id", String(64), nullable=False),
    # the reported rows, JSON
    Column("reported", Text, nullable=False),
)

rejections = Table(
    "rejections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rejected_us", BigInteger, nullable=False),
    Column("source", Text, nullable=False),
    Column("line", Integer, nullable=False),
    Column("command_type", String(200), nullable=False),
    Column("field", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("command", Text, nullable=False),
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def upgrade_v1_tables(engine: Engine) -> None:
    """Bring a store made before contract v2 up to date before `create_all`: its
    `core_agreements` table (derived, so copied, never the events) gains `group_id` and
    `program_id` and a nullable `customer_id`. Concurrent openers serialise on SQLite's write
    lock (the loser finds it done)."""
    reshape_table(
        engine, agreements, AGREEMENT_V2_COLUMNS,
        lock_sql="UPDATE ledger_state SET writes = writes + 1 WHERE id = 1",
    )


def reshape_table(
    engine: Engine, table: Table, added: Sequence[str], *, lock_sql: str | None = None
) -> None:
    """When `table` exists without the columns `added`, copy it into its current shape (a
    derived table: the new columns start NULL). Idempotent. On PostgreSQL the table is locked;
    on SQLite `lock_sql` (a write) takes the write lock first, so that the DDL joins one
    transaction."""
    if table.name not in inspect(engine).get_table_names():
        return
    if set(added) <= {c["name"] for c in inspect(engine).get_columns(table.name)}:
        return
    old = f"{table.name}_before"
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"LOCK TABLE {table.name} IN ACCESS EXCLUSIVE MODE")
        elif lock_sql is not None:
            connection.exec_driver_sql(lock_sql)
        present = {c["name"] for c in inspect(connection).get_columns(table.name)}
        if set(added) <= present:
            return
        connection.exec_driver_sql(f"ALTER TABLE {table.name} RENAME TO {old}")
        for index in table.indexes:
            connection.exec_driver_sql(f"DROP INDEX IF EXISTS {index.name}")
        table.create(connection)
        kept = ", ".join(c.name for c in table.columns if c.name in present)
        connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({kept}) SELECT {kept} FROM {old}"
        )
        connection.exec_driver_sql(f"DROP TABLE {old}")


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (no float)."""
    assert moment.tzinfo is not None, "recorded times are timezone-aware"
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(micros: int) -> datetime:
    from datetime import timedelta

    return EPOCH + timedelta(microseconds=micros)


def day(value: date) -> int:
    return value.toordinal()


def event_id(event: LedgerEvent) -> str:
    return f"{event.originator_id}/{event.originator_version}"


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _terms_data(event: AgreementCreated | AgreementAmended) -> dict[str, Any]:
    data = event.model_dump(
        mode="json",
        exclude={"originator_id", "originator_version", "timestamp", "recorded_at",
                 "originator_topic"},
    )
    return data


class CoreProjection:
    """Applies events, in store order, to the core tables."""

    def apply(self, session: Session, recorded: Iterable[tuple[LedgerEvent, int]]) -> None:
        position = None
        for event, position in recorded:
            self._apply_one(session, event, position)
        if position is not None:
            session.execute(
                ledger_state.update().where(ledger_state.c.id == 1).values(position=position)
            )

    def _apply_one(self, session: Session, event: LedgerEvent, position: int) -> None:
        recorded_us = to_us(event.recorded_at)
        if isinstance(event, SalesRecorded):
            self._apply_sales(session, event, position)
        elif isinstance(event, AgreementCreated):
            session.execute(
                insert(agreements),
                [{
                    "agreement_id": cast(Any, event).agreement_id,
                    "customer_id": event.customer_id,
                    "group_id": event.group_id,
                    "program_id": event.program_id,
                    "currency": event.currency,
                    "recorded_us": recorded_us,
                    "position": position,
                }],
            )
            self._terms_change(session, event, position, "created", None, _terms_data(event))
        elif isinstance(event, AgreementAmended):
            self._terms_change(
                session, event, position, "amended", event.effective_from, _terms_data(event)
            )
        elif isinstance(event, ForecastRevised):
            self._terms_change(
                session, event, position, "forecast", event.effective_from,
                {"forecast_basis": str(event.forecast_basis)},
            )
        elif isinstance(event, RebateWrittenOff):
            self._money(session, event, position, "written_off", event.effective_date,
                        event.amount, None)
            if event.write_off_id is not None:
                session.execute(insert(write_offs), [{
                    "write_off_id": event.write_off_id, "agreement_id": event.agreement_id,
                    "recorded_us": recorded_us, "position": position,
                }])
        elif isinstance(event, WriteOffReversed):
            # from reversed_on on, the write-off no longer counts: its amount taken back
            self._money(session, event, position, "written_off", event.reversed_on,
                        -event.amount, None)
        elif isinstance(event, GroupCreated):
            session.execute(insert(groups), [{
                "group_id": event.group_id, "name": event.name, "recorded_us": recorded_us,
                "position": position,
            }])
        elif isinstance(event, MemberJoined | MemberLeft):
            session.execute(insert(memberships), [{
                "group_id": event.group_id, "customer_id": event.customer_id,
                "kind": "join" if isinstance(event, MemberJoined) else "leave",
                "effective_day": day(event.effective_from), "recorded_us": recorded_us,
                "position": position, "event_id": event_id(event),
            }])
        elif isinstance(event, ClaimSubmitted):
            session.execute(
                insert(claims),
                [{"claim_id": event.claim_id, "agreement_id": cast(Any, event).agreement_id,
                  "recorded_us": recorded_us}],
            )
            self._money(session, event, position, "claimed", event.submitted_on, event.amount,
                        event.claim_id)
        elif isinstance(event, ClaimApproved):
            self._money(session, event, position, "approved", event.approved_on,
                        event.approved_amount, event.claim_id)
        elif isinstance(event, ClaimSettled):
            self._money(session, event, position, "paid", event.paid_on, event.paid_amount,
                        event.claim_id)
        elif isinstance(event, ClaimRejected):
            pass  # a rejected claim moves no money
        elif isinstance(event, PeriodClosed):
            session.execute(insert(closes), [{
                "period": event.period, "period_start_day": day(event.period_start),
                "period_end_day": day(event.period_end), "recorded_us": recorded_us,
                "position": position, "event_id": event_id(event),
                "reported": orjson.dumps([r.model_dump() for r in event.reported]).decode(),
            }])
        else:  # pragma: no cover - every event type is handled above
            raise AssertionError(f"no projection for {type(event).__name__}")

    def _terms_change(
        self, session: Session, event: LedgerEvent, position: int, kind: str,
        effective: date | None, data: dict[str, Any],
    ) -> None:
        session.execute(
            insert(terms_changes),
            [{
                "agreement_id": cast(Any, event).agreement_id,
                "position": position,
                "recorded_us": to_us(event.recorded_at),
                "kind": kind,
                "effective_day": None if effective is None else day(effective),
                "event_id": event_id(event),
                "data": orjson.dumps(data).decode(),
            }],
        )

    def _money(
        self, session: Session, event: LedgerEvent, position: int, kind: str, valid: date,
        amount: Decimal, claim_id: str | None,
    ) -> None:
        session.execute(
            insert(money),
            [{
                "agreement_id": cast(Any, event).agreement_id,
                "kind": kind,
                "valid_day": day(valid),
                "recorded_us": to_us(event.recorded_at),
                "amount": str(amount),
                "claim_id": claim_id,
                "position": position,
                "event_id": event_id(event),
            }],
        )

    def _apply_sales(self, session: Session, event: SalesRecorded, position: int) -> None:
        sale_rows, reversal_rows, basis = sales_rows(event, position)
        insert_rows(session, sales, SALE_COLUMNS, sale_rows)
        insert_rows(session, reversals, REVERSAL_COLUMNS, reversal_rows)
        insert_basis(session, basis)


def sales_rows(
    event: SalesRecorded, position: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows of `core_sales`, `core_reversals` and `core_basis` a sales batch adds (a
    projection fed from Kafka inserts the rows of many batches at once)."""
    sale_rows = []
    # Sum lines that no query can tell apart: same customer, currency, product, invoice
    # day, effective day and recorded time. A group holds exact sums and, while every
    # line fits, the same sums in millionths.
    groups: dict[tuple[str, str, str, int, int, int], Group] = {}
    last_recorded, recorded_us = None, 0
    columns = event.sales
    # the columns side by side (no `SaleLine` per row: this loop runs once per sale)
    for sale_id, customer_id, product_id, quantity, amount, currency, invoice_date, \
            recorded_at in zip(columns.sale_id, columns.customer_id, columns.product_id,
                               columns.quantity, columns.amount, columns.currency,
                               columns.invoice_date, columns.recorded_at, strict=True):
        invoice_day = invoice_date.toordinal()
        if recorded_at is not last_recorded:  # most lines of a batch share one
            last_recorded, recorded_us = recorded_at, to_us(recorded_at)
        q_micro, a_micro = to_micro(quantity), to_micro(amount)
        sale_rows.append((
            sale_id, customer_id, product_id, currency, q_micro, a_micro,
            None if q_micro is not None else str(quantity),
            None if a_micro is not None else str(amount),
            invoice_day, recorded_us, position,
        ))
        key = (customer_id, currency, product_id, invoice_day, invoice_day, recorded_us)
        group = groups.get(key)
        if group is None:
            groups[key] = [quantity, amount, q_micro, a_micro]
        else:
            add_to_group(group, quantity, amount, q_micro, a_micro)
    reversal_rows = []
    for reversal in event.reversals.rows():
        recorded_us = to_us(reversal.recorded_at)
        reversed_day = reversal.reversed_on.toordinal()
        reversal_rows.append((reversal.sale_id, reversed_day, recorded_us, position))
        key = (reversal.customer_id, reversal.currency, reversal.product_id,
               reversal.invoice_date.toordinal(), reversed_day, recorded_us)
        quantity, amount = -reversal.quantity, -reversal.amount
        q_micro, a_micro = to_micro(quantity), to_micro(amount)
        group = groups.get(key)
        if group is None:
            groups[key] = [quantity, amount, q_micro, a_micro]
        else:
            add_to_group(group, quantity, amount, q_micro, a_micro)
    return sale_rows, reversal_rows, basis_rows(groups, position)


#: [quantity, amount, quantity in millionths or None, amount in millionths or None]
Group = list[Any]


def add_to_group(
    group: Group, quantity: Decimal, amount: Decimal, q_micro: int | None, a_micro: int | None
) -> None:
    group[0] = EXACT.add(group[0], quantity)
    group[1] = EXACT.add(group[1], amount)
    group[2] = None if group[2] is None or q_micro is None else to_micro(group[0])
    group[3] = None if group[3] is None or a_micro is None else to_micro(group[1])


SALE_COLUMNS = (
    "sale_id", "customer_id", "product_id", "currency", "q_micro", "a_micro", "quantity",
    "amount", "invoice_day", "recorded_us", "position",
)
REVERSAL_COLUMNS = ("sale_id", "reversed_day", "recorded_us", "position")
BASIS_COLUMNS = (
    "customer_id", "currency", "product_id", "invoice_day", "effective_day", "recorded_us",
    "q_micro", "a_micro", "quantity", "amount", "position",
)


def insert_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Bulk insert through the driver's executemany: the sale path's hot loop, where the
    ORM's per-row work would cost more than the database's."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        copy_rows(connection, table.name, columns, rows)
        return
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join([marker] * len(columns))})"
    )
    connection.exec_driver_sql(sql, list(rows))


def copy_rows(connection: Connection, table_name: str, columns: Sequence[str],
              rows: Sequence[tuple[Any, ...]]) -> None:
    """PostgreSQL: the rows through `COPY … FROM STDIN` in the connection's transaction, about
    1.5 times as fast as `executemany` for a sales batch (200k sales, one run each: 18,600
    against 12,700 sales/s, issue 11 point 2). A database error is raised as SQLAlchemy's
    (an `IntegrityError` stays one), as the insert would have raised it."""
    statement = f"COPY {table_name} ({', '.join(columns)}) FROM STDIN"
    dbapi: Any = connection.dialect.loaded_dbapi
    driver: Any = connection.connection.driver_connection
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except dbapi.Error as error:
        raise DBAPIError.instance(statement, None, error, dbapi.Error,
                                  dialect=connection.dialect) from error


#: `core_basis` rows (in `BASIS_COLUMNS` order) by customer, currency and invoice day: the
#: leading columns of the table's clustered key.
_CLUSTER_ORDER = itemgetter(0, 1, 3)


def insert_basis(session: Session, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert `core_basis` rows (in `BASIS_COLUMNS` order) and add them to their blocks in
    `core_basis_blocks`: the only way basis rows are written, so the two always agree.

    The rows go in in the table's clustered order: a batch's sales come in the order of the
    feed, every customer's scattered through it, and in feed order each row lands on another
    page of a B-tree larger than the page cache on a large book."""
    insert_rows(session, basis_table, BASIS_COLUMNS, sorted(rows, key=_CLUSTER_ORDER))
    add_to_blocks(session.connection(), block_sums(rows))


#: (customer, currency, block, effective block, recorded block)
BlockKey = tuple[str, str, int, int, int]
#: [q_micro or None, a_micro or None, min effective day, max effective day,
#:  min recorded us, max recorded us]
BlockSum = list[Any]


def block_sums(rows: Iterable[Sequence[Any]]) -> dict[BlockKey, BlockSum]:
    """`core_basis` rows (in `BASIS_COLUMNS` order) summed by block (a sum in millionths
    becomes None as soon as a part of it is None or it leaves `BLOCK_LIMIT`: `_bounded`
    and `_bounded_sum`, written out in the loop, which runs once per basis row)."""
    sums: dict[BlockKey, BlockSum] = {}
    low, high = -BLOCK_LIMIT, BLOCK_LIMIT
    for customer, currency, _product, invoice_day, effective_day, recorded_us, q, a, *_ in rows:
        key = (customer, currency, invoice_day // BLOCK_DAYS, effective_day // BLOCK_DAYS,
               recorded_us // BLOCK_US)
        found = sums.get(key)
        if found is None:
            sums[key] = [q if q is not None and low < q < high else None,
                         a if a is not None and low < a < high else None,
                         effective_day, effective_day, recorded_us, recorded_us]
            continue
        total = found[0]
        if total is not None:
            found[0] = None if q is None or not low < (total := total + q) < high else total
        total = found[1]
        if total is not None:
            found[1] = None if a is None or not low < (total := total + a) < high else total
        if effective_day < found[2]:
            found[2] = effective_day
        if effective_day > found[3]:
            found[3] = effective_day
        if recorded_us < found[4]:
            found[4] = recorded_us
        if recorded_us > found[5]:
            found[5] = recorded_us
    return sums


def _bounded(micro: int | None) -> int | None:
    return micro if micro is not None and -BLOCK_LIMIT < micro < BLOCK_LIMIT else None


def _bounded_sum(total: int | None, micro: int | None) -> int | None:
    return None if total is None or micro is None else _bounded(total + micro)


def add_to_blocks(connection: Connection, sums: dict[BlockKey, BlockSum]) -> None:
    """Add block sums to `core_basis_blocks` (an upsert of each block, in key order so that
    concurrent writers on PostgreSQL take their row locks in one order). The blocks go
    `BLOCKS_PER_STATEMENT` to a statement (their keys are distinct, so no row is met twice in
    one): PostgreSQL ran one statement per block, a round trip each (about 1,300 a chunk of
    5,000 sales)."""
    if not sums:
        return
    postgres = connection.dialect.name == "postgresql"
    marker = "%s" if postgres else "?"
    least, greatest = ("LEAST", "GREATEST") if postgres else ("min", "max")
    table = basis_blocks.name

    def added(column: str) -> str:
        return (f"CASE WHEN {table}.{column} > -{BLOCK_LIMIT} AND {table}.{column} < "
                f"{BLOCK_LIMIT} AND excluded.{column} > -{BLOCK_LIMIT} AND excluded.{column} < "
                f"{BLOCK_LIMIT} THEN {table}.{column} + excluded.{column} END")

    def extreme(function: str, column: str) -> str:
        return f"{function}({table}.{column}, excluded.{column})"

    row = f"({', '.join([marker] * 11)})"
    upsert = (
        "ON CONFLICT (customer_id, currency, block, effective_block, recorded_block) DO UPDATE "
        f"SET q_micro = {added('q_micro')}, a_micro = {added('a_micro')}, "
        f"min_effective_day = {extreme(least, 'min_effective_day')}, "
        f"max_effective_day = {extreme(greatest, 'max_effective_day')}, "
        f"min_recorded_us = {extreme(least, 'min_recorded_us')}, "
        f"max_recorded_us = {extreme(greatest, 'max_recorded_us')}"
    )
    rows = [(*key, *sums[key]) for key in sorted(sums)]
    for start in range(0, len(rows), BLOCKS_PER_STATEMENT):
        part = rows[start : start + BLOCKS_PER_STATEMENT]
        connection.exec_driver_sql(
            f"INSERT INTO {table} (customer_id, currency, block, effective_block, "
            "recorded_block, q_micro, a_micro, min_effective_day, max_effective_day, "
            f"min_recorded_us, max_recorded_us) VALUES {', '.join([row] * len(part))} {upsert}",
            tuple(chain.from_iterable(part)),
        )


#: Blocks upserted by one statement: 11 parameters each, 5,500 in all (SQLite takes 32,766,
#: PostgreSQL 65,535).
BLOCKS_PER_STATEMENT = 500


def ensure_indexes(engine: Engine) -> None:
    """A store made before an index of the core tables existed gets it (for now
    `core_sales_by_customer`), once, under the schema lock. A read-only store is left as it
    is: its queries answer the same, only slower."""
    present = set(inspect(engine).get_table_names())
    if sales.name not in present:
        return  # a new store: created with its table
    missing = [index for index in sales.indexes
               if index.name not in {i["name"] for i in inspect(engine).get_indexes(sales.name)}]
    if not missing:
        return
    try:
        with refusing_read_only(engine, "adding an index"), \
                schema_transaction(engine) as connection:
            for index in missing:
                index.create(connection, checkfirst=True)
    except StoreReadOnly:
        return


def ensure_basis_blocks(engine: Engine) -> None:
    """A store made before `core_basis_blocks` existed gets it, filled from its `core_basis`
    (derived from derived rows, so no event is read), in the one transaction that creates it,
    under the schema lock: a concurrent opener finds it done, and no writer can add rows to
    the new table before it is filled. A new store gets the table with the others."""
    present = set(inspect(engine).get_table_names())
    if basis.name not in present or basis_blocks.name in present:
        return
    with schema_transaction(engine) as connection:
        if basis_blocks.name in set(inspect(connection).get_table_names()):
            return
        basis_blocks.create(connection)
        columns = ", ".join(BASIS_COLUMNS)
        rows = connection.exec_driver_sql(
            f"SELECT {columns} FROM {basis.name}", execution_options={"yield_per": 20_000}
        )
        sums: dict[BlockKey, BlockSum] = {}
        for chunk in rows.partitions(20_000):
            for key, found in block_sums(chunk).items():
                sums[key] = found if key not in sums else _merged(sums[key], found)
        add_to_blocks(connection, sums)


def _merged(one: BlockSum, other: BlockSum) -> BlockSum:
    return [
        _bounded_sum(one[0], other[0]), _bounded_sum(one[1], other[1]),
        min(one[2], other[2]), max(one[3], other[3]), min(one[4], other[4]),
        max(one[5], other[5]),
    ]


def basis_rows(
    groups: dict[tuple[str, str, str, int, int, int], Group], position: int
) -> list[tuple[Any, ...]]:
    rows = []
    for (customer_id, currency, product_id, invoice_day, effective_day, recorded_us), (
        quantity, amount, q_micro, a_micro
    ) in groups.items():
        rows.append((
            customer_id, currency, product_id, invoice_day, effective_day, recorded_us,
            q_micro, a_micro,
            None if q_micro is not None else str(quantity),
            None if a_micro is not None else str(amount),
            position,
        ))
    return rows
