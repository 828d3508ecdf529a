"""The read tables checked against the events: `verify` re-derives every core read table from
the stored events and names each row that differs.

The hash chain (`ledger.audit.chain`) proves the events were not altered; every figure,
though, is read from the core tables (`ledger.projections.core`), which a database
administrator can edit without touching an event. So the events are re-projected, page by page
of the notification log, by the same `CoreProjection` into a scratch SQLite file, and each
table is compared with the stored one by an ordered merge of two streams (both sorted by the
row's key, byte order for text on both databases): memory stays bounded by a page of events and
a window of rows, whatever the size of the book.

A row's key is its primary key, or, for the tables keyed by a surrogate `id` (an autoincrement
number that says nothing about the row), the store position of the event it comes from (each of
those events adds exactly one row). The surrogate `id` is not compared.

Not checked, because they are not derived from the events alone: `rejections` (the rejected
commands, which by design leave no event) and `ledger_state` (counters of accepted and rejected
commands and the watermark of recorded times, kept beside the events).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    RowMapping,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.orm import Session

from ledger.audit.chain import events_table
from ledger.projections.core import (
    CoreProjection,
    agreements,
    basis,
    basis_blocks,
    claims,
    closes,
    groups,
    ledger_state,
    memberships,
    metadata,
    money,
    reversals,
    sales,
    terms_changes,
    write_offs,
)
from ledger.projections.core import (
    rejections as rejections_table,
)

#: The tables re-derived and compared, in this order.
CHECKED: tuple[Table, ...] = (
    agreements, terms_changes, sales, reversals, basis, basis_blocks, money, claims, closes,
    groups, memberships, write_offs,
)
#: Derived tables keyed by a surrogate id: their rows are matched by event position instead.
SURROGATE = "id"
#: Events read from the notification log per page, at most; a page is also kept near
#: PAGE_BYTES of stored events (one sales batch can hold thousands of sales).
PAGE = 500
PAGE_BYTES = 4 << 20
#: Rows fetched per round trip from each side of a comparison.
WINDOW = 2000
#: Differences kept to be named (the count goes on past it).
KEPT = 10_000
#: The `column` of a difference that is a whole table missing from the store.
TABLE_MISSING = "table"


@dataclass(frozen=True)
class RowDifference:
    table: str
    key: dict[str, Any]
    #: the column that differs; "row" when the row is missing or extra
    column: str
    stored: Any  # None with column "row": the row is missing from the stored table
    derived: Any  # None with column "row": the stored row is not derived from any event

    @property
    def what(self) -> str:
        if self.column == TABLE_MISSING:
            return (f"the table is missing from the store (dropped behind the ledger); "
                    f"{self.derived} row(s) derived from the events: rebuild with "
                    "`rebate-ledger rebuild-tables --yes`")
        if self.column != "row":
            return "differs"
        return "missing from the stored table" if self.stored is None else \
            "extra: not derived from any event"

    def to_dict(self) -> dict[str, Any]:
        # plain str keys: a whole row's column names come as SQLAlchemy's str subclass, which
        # orjson refuses as a key (verify --format json crashed on an extra row)
        return {"table": self.table, "key": _plain(self.key), "column": self.column,
                "stored": _plain(self.stored), "derived": _plain(self.derived),
                "what": self.what}

    def line(self) -> str:
        key = ", ".join(f"{k}={v}" for k, v in self.key.items())
        if self.column == TABLE_MISSING:
            return f"{self.table}: {self.what}"
        if self.column == "row":
            return f"{self.table} [{key}]: {self.what}"
        return (f"{self.table} [{key}] {self.column}: stored {self.stored!r}, derived from "
                f"the events {self.derived!r}")


def _plain(value: Any) -> Any:
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value


@dataclass
class TablesResult:
    events: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # table -> stored rows compared
    differences: list[RowDifference] = field(default_factory=list)
    count: int = 0  # all differences (only the first KEPT are kept)
    undecodable: dict[int, str] = field(default_factory=dict)  # position -> why

    @property
    def ok(self) -> bool:
        return self.count == 0 and not self.undecodable

    def add(self, difference: RowDifference) -> None:
        self.count += 1
        if len(self.differences) < KEPT:
            self.differences.append(difference)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "tables": self.rows,
                "differences": self.count,
                "undecodable_events": {str(p): why for p, why in self.undecodable.items()},
                "rows": [d.to_dict() for d in self.differences],
                "not_checked": {"rejections": "rejected commands leave no event",
                                "ledger_state": "counters and the watermark, not events"}}


def key_columns(table: Table) -> list[str]:
    primary = [c.name for c in table.primary_key.columns]
    return ["position"] if primary == [SURROGATE] else primary


def _scratch_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _fast(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()  # a throwaway file: no journal, no fsync
        cursor.execute("PRAGMA journal_mode=OFF")
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    return engine


#: The tables `verify` derives as plain heaps (no primary key, no index): the projection only
#: appends to them, and the comparison reads them sorted by key. Inserting a million sales and
#: basis rows into B-trees keyed by sale and by customer touched pages all over a scratch file
#: far larger than its page cache; appending and sorting once costs less (issue 11, point 1).
UNKEYED: tuple[Table, ...] = (sales, basis)


def _unkeyed(table: Table) -> Table:
    """`table`'s columns alone, in a metadata of their own: no key, no index, no constraint."""
    return Table(table.name, MetaData(),
                 *(Column(c.name, c.type, nullable=True) for c in table.c))


def derive(app: Any, source: Connection, engine: Engine,
           undecodable: dict[int, str], unkeyed: tuple[Table, ...] = ()) -> int:
    """Project every stored event (read through `source`), in store order, into the empty core
    tables of `engine`; return the number of events. An event that does not decode is left
    out and named in `undecodable` (position: why): the rows it would derive then show as
    differences too. The tables in `unkeyed` are made without key or index (`UNKEYED`):
    only for reading back sorted, as `verify` does; a row given twice is then kept twice
    (and shows as an extra row) instead of failing the derivation."""
    metadata.create_all(engine, tables=[t for t in metadata.sorted_tables
                                        if t not in unkeyed])
    for table in unkeyed:
        _unkeyed(table).create(engine)
    projection = CoreProjection()
    recorder, mapper = app.recorder, app.mapper
    with Session(engine) as session:
        session.execute(insert(ledger_state).values(
            id=1, watermark_us=0, accepted=0, rejected=0, position=0, writes=0))
        session.commit()
    stored = events_table(recorder)
    count, last = 0, 0
    while True:
        # the next page: up to PAGE events, as many as fit PAGE_BYTES (at least one)
        sizes = source.execute(
            select(stored.c.id, func.length(stored.c.state)).where(stored.c.id > last)
            .order_by(stored.c.id).limit(PAGE)).all()
        if not sizes:
            return count
        total, taken = 0, 0
        for _, size in sizes:
            if taken and total + int(size) > PAGE_BYTES:
                break
            total, taken = total + int(size), taken + 1
        page = recorder.select_notifications(start=last + 1, limit=taken,
                                             stop=int(sizes[taken - 1][0]))
        decoded = []
        for n in page:
            try:
                decoded.append((mapper.to_domain_event(n), int(n.id)))
            except Exception as error:  # an event edited into bytes that no longer decode
                undecodable[int(n.id)] = f"{type(error).__name__}: {error}"[:300]
        with Session(engine) as session:
            projection.apply(session, decoded)
            session.commit()
        count += len(page)
        last = int(sizes[taken - 1][0])
        del page, decoded


def _ordered(engine: Engine, table: Table) -> Iterator[RowMapping]:
    keys = key_columns(table)
    order = []
    for name in keys:
        column = table.c[name]
        text = isinstance(column.type, String | Text)
        order.append(column.collate("C") if text and engine.dialect.name == "postgresql"
                     else column)
    columns = [c for c in table.c if c.name != SURROGATE or keys == [c.name]]
    with engine.connect() as connection:
        yield from connection.execution_options(yield_per=WINDOW).execute(
            select(*columns).order_by(*order)).mappings()


def compare_table(stored: Engine, derived: Engine, table: Table,
                  result: TablesResult) -> None:
    """Merge the stored and the derived rows, both in key order; name every difference."""
    keys = key_columns(table)
    name = str(table.name)
    if not inspect(stored).has_table(name):  # dropped: one difference names it
        with derived.connect() as connection:
            count = connection.execute(select(func.count()).select_from(table)).scalar()
        result.add(RowDifference(name, {}, TABLE_MISSING, None, int(count or 0)))
        result.rows[name] = 0
        return
    mine, theirs = _ordered(stored, table), _ordered(derived, table)
    s, d = next(mine, None), next(theirs, None)
    seen = 0
    while s is not None or d is not None:
        s_key = None if s is None else tuple(s[k] for k in keys)
        d_key = None if d is None else tuple(d[k] for k in keys)
        if s is not None and s_key is not None and (d_key is None or s_key < d_key):
            result.add(RowDifference(name, dict(zip(keys, s_key, strict=True)), "row",
                                     dict(s), None))
            s, seen = next(mine, None), seen + 1
        elif d is not None and d_key is not None and (s_key is None or d_key < s_key):
            result.add(RowDifference(name, dict(zip(keys, d_key, strict=True)), "row", None,
                                     dict(d)))
            d = next(theirs, None)
        elif s is not None and d is not None and s_key is not None:
            for column in s:
                if s[column] != d[column]:
                    result.add(RowDifference(name, dict(zip(keys, s_key, strict=True)),
                                             column, s[column], d[column]))
            s, d, seen = next(mine, None), next(theirs, None), seen + 1
    result.rows[name] = seen


def verify_tables(ledger: Any) -> TablesResult:
    """Re-derive the core read tables from the stored events into a scratch SQLite file and
    compare them with the stored ones, table by table."""
    result = TablesResult()
    with tempfile.TemporaryDirectory(prefix="ledger-verify-") as scratch:
        engine = _scratch_engine(Path(scratch) / "derived.db")
        try:
            with ledger.engine.connect() as source:
                result.events = derive(ledger.app, source, engine, result.undecodable,
                                       unkeyed=UNKEYED)
            for table in CHECKED:
                compare_table(ledger.engine, engine, table, result)
        finally:
            engine.dispose()
    return result


def verify_document(result: Any, tables: Any) -> dict[str, Any]:
    """What `verify` answers, as JSON, the same for the CLI, the API and the evidence pack:
    the verdict, the chains' result (`chain.VerifyResult`) and the read tables'."""
    verdict = ("verified" if result.ok and tables.ok else
               "BROKEN" if result.breaks else
               "DIGEST FAILED" if result.digest_ok is False else "READ TABLES DIFFER")
    return {"verdict": verdict, **result.to_dict(), "ok": result.ok and tables.ok,
            "chain_ok": result.ok, "tables": tables.to_dict()}


def rebuild_tables(ledger: Any) -> dict[str, int]:
    """`rebate-ledger rebuild-tables`: re-derive every core read table from the stored events
    (into a scratch SQLite file, as `verify` does) and put them in the store in place of what
    is there, in one transaction under the schema lock; `rejections` and `ledger_state` (not
    derived from events) are kept, or made anew when missing (the watermark from the last
    stored event, the counters from what is left). Returns the rows written per table."""
    from ledger.audit.chain import last_recorded_us
    from ledger.store import schema_transaction

    written: dict[str, int] = {}
    undecodable: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="ledger-rebuild-") as scratch:
        engine = _scratch_engine(Path(scratch) / "derived.db")
        try:
            with ledger.engine.connect() as source:
                derive(ledger.app, source, engine, undecodable)
            if undecodable:
                position, why = next(iter(undecodable.items()))
                from ledger.errors import StoreDamaged

                raise StoreDamaged(
                    f"rebuild-tables refused: the event at position {position} does not decode "
                    f"({why}); the read tables cannot be derived. Run `rebate-ledger verify`")
            with schema_transaction(ledger.engine) as connection:
                for table in CHECKED:
                    table.drop(connection, checkfirst=True)
                    table.create(connection)
                    written[str(table.name)] = _copy(engine, connection, table)
                for table in (rejections_table, ledger_state):
                    table.create(connection, checkfirst=True)
                # the read tables changed with no event stored: a server's kept answers
                # (ledger.answers, keyed on position and this count) must not be served again
                connection.execute(update(ledger_state).where(ledger_state.c.id == 1).values(
                    writes=ledger_state.c.writes + 1))
                if connection.execute(select(ledger_state.c.id)).first() is None:
                    stored = events_table(ledger.app.recorder)
                    last = connection.execute(select(func.max(stored.c.id))).scalar() or 0
                    refused = connection.execute(
                        select(func.count()).select_from(rejections_table)).scalar() or 0
                    connection.execute(insert(ledger_state).values(
                        # made anew: a count no earlier stamp can have held
                        id=1, position=int(last), accepted=0, rejected=int(refused),
                        writes=time.time_ns() // 1000,
                        watermark_us=last_recorded_us(connection, ledger.app.recorder)))
        finally:
            engine.dispose()
    return written


def _copy(source: Engine, connection: Connection, table: Table) -> int:
    count = 0
    with source.connect() as reading:
        rows = reading.execution_options(yield_per=WINDOW).execute(select(table)).mappings()
        for chunk in rows.partitions(WINDOW):
            connection.execute(insert(table), [dict(row) for row in chunk])
            count += len(chunk)
    return count
