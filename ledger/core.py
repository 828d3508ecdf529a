"""The public facade: `Ledger`, the one front door for the CLI, the HTTP API and the intakes."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, Engine, insert, inspect, select, text
from sqlalchemy.orm import Session

from ledger import commands as c
from ledger.application import LedgerApplication
from ledger.audit.chain import chain_metadata
from ledger.config import Settings
from ledger.errors import (
    CoreTablesMissing,
    InvalidCommand,
    Rejection,
    Stopped,
    StoreDamaged,
    StoreReadOnly,
)
from ledger.gcpause import paused_gc
from ledger.handlers import DUPLICATE, Batch, RejectionRecord
from ledger.liability import LiabilityRow, liability_rows
from ledger.projections.core import (
    CoreProjection,
    basis,
    basis_blocks,
    ensure_basis_blocks,
    ensure_indexes,
    from_us,
    ledger_state,
    metadata,
    rejections,
    to_us,
    upgrade_v1_tables,
)
from ledger.store import (
    ENGINE_KEY,
    ensure_tables,
    factory_topic,
    lock_writer,
    make_engine,
    refusing_read_only,
    register_engine,
    unregister_engine,
)

Clock = Callable[[], datetime]

#: A command line as the appliers see it: (line number, text, the command or None, why it is
#: rejected before applying or None, the source kept with a rejection or None: the batch's).
Parsed = tuple[int, bytes | str, c.Command | None, Rejection | None, str | None]

#: The commands that name a sale, whose ids a chunk looks up in one go.
_SALE_COMMANDS = frozenset({c.RecordSale, c.ReverseSale})


#: What runs inside each transaction of `Ledger.apply_lines`: (skip_applied, before_commit), as
#: `Ledger.apply_records` takes them.
TransactionHooks = tuple[
    Callable[[Session], Collection[int]] | None,
    Callable[[Session, list[RejectionRecord]], None] | None,
]


class _DryRun(Exception):  # noqa: N818 -- a signal, not an error
    """Raised at the end of a dry run's transaction so that nothing of it is committed."""


class SourcedCommand(NamedTuple):
    """One command for `Ledger.apply_records`, from a source that names each record (a Kafka
    record: `source` "kafka:rebate.sales/2@1234", `number` its offset)."""

    number: int  # kept with a rejection as its line number
    line: bytes | str  # the command's text, kept with a rejection
    command: c.Command | None  # parsed by the caller (`commands.parse_line`); None: `problem`
    problem: Rejection | None  # why it is rejected without being applied (None: apply it)
    source: str  # kept with a rejection


@dataclass
class ApplyReport:
    """What one `apply` did: every line is accepted, a duplicate, or rejected with a reason."""

    accepted: int = 0
    #: (line, command type, the id that made it a duplicate)
    duplicates: list[tuple[int, str, str]] = field(default_factory=list)
    rejected: list[RejectionRecord] = field(default_factory=list)
    by_type: Counter[str] = field(default_factory=Counter)
    #: The line `apply_lines` stopped at on an internal error (`ApplyStopped`), with the error.
    stopped_at: int | None = None
    stopped_by: str = ""

    @property
    def lines(self) -> int:
        return self.accepted + len(self.duplicates) + len(self.rejected)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": len(self.duplicates),
            "rejected": len(self.rejected),
            "by_type": dict(self.by_type),
            "duplicate_lines": [
                {"line": n, "command": kind, "id": ident} for n, kind, ident in self.duplicates
            ],
            "rejections": [
                {"line": r.line, "command": r.command_type, "field": r.field,
                 "reason": r.reason}
                for r in self.rejected
            ],
            **({} if self.stopped_at is None else
               {"stopped": {"line": self.stopped_at, "error": self.stopped_by}}),
        }


class ApplyStopped(Stopped):  # noqa: N818 -- it is what happened, not an error class
    """`apply_lines` stopped on a failure that is not a rejection: a bug, not bad input.

    Every line before `report.stopped_at` is applied and committed (and counted in `report`);
    that line and every line after it are not."""

    def __init__(self, report: ApplyReport, line: int, cause: BaseException) -> None:
        report.stopped_at = line
        report.stopped_by = f"{type(cause).__name__}: {cause}"
        super().__init__(
            f"apply stopped at line {line} by an error that is not a rejection "
            f"({report.stopped_by}); "
            f"{report.lines} lines before it were applied (accepted {report.accepted}, "
            f"duplicate {len(report.duplicates)}, rejected {len(report.rejected)}); line "
            f"{line} and the lines after it were not"
        )
        self.report = report
        self.line = line


@dataclass
class _Cursor:
    """Where `_apply_parsed` is: the index of the command it handles, len(parsed) once it is
    finishing the transaction, -1 before the first."""

    index: int = -1


def missing_core_tables(engine: Engine, recorder: Any) -> list[str]:
    """The core read tables a store that holds events lacks (none for a new or empty store).
    `core_basis_blocks` is not named alone: a store made before it gets it filled from
    `core_basis` on opening (`ensure_basis_blocks`)."""
    names = set(inspect(engine).get_table_names())
    events = recorder.tables[0]
    if events.name not in names:
        return []
    wanted = [t.name for t in metadata.sorted_tables if t.name not in names]
    if wanted == [basis_blocks.name] and basis.name in names:
        return []
    if not wanted:
        return []
    with engine.connect() as connection:
        if connection.execute(select(events.c.id).limit(1)).first() is None:
            return []
    return sorted(wanted)


class Ledger:
    """Applies contract commands and answers point-in-time questions.

    `database_url`: a SQLAlchemy URL (SQLite file or PostgreSQL); default from
    `LEDGER_DATABASE_URL`, else the embedded SQLite file under `LEDGER_HOME`.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        clock: Clock = c.utc_now,
        settings: Settings | None = None,
        check_tables: bool = True,
    ) -> None:
        """`check_tables` False: open a store whose core read tables are missing without
        refusing (CoreTablesMissing) and without making them (`verify` names them,
        `rebuild-tables` re-derives them); `missing_tables` lists them."""
        self.settings = settings or Settings()
        self.database_url = self.settings.resolved_database_url(database_url)
        self.clock = clock
        self.engine = make_engine(self.database_url, self.settings.pool_connections)
        self._engine_key = register_engine(self.engine)
        self.app = LedgerApplication(
            env={
                "PERSISTENCE_MODULE": factory_topic(),
                ENGINE_KEY: self._engine_key,
                # Ignore eventsourcing variables a user may have set for other applications.
                "SQLALCHEMY_URL": "",
                # Its tables are made with the ledger's, under the schema lock (_create_tables).
                "CREATE_TABLE": "no",
            }
        )
        self.projection = CoreProjection()
        self.missing_tables: list[str] = []
        self._create_tables(check_tables)

    def _create_tables(self, check_tables: bool = True) -> None:
        """The event store's tables, the ledger's and the row of `ledger_state`: made once,
        under the schema lock, by whichever process opens a new store first; a store that has
        them all is only read. A store made before contract v2 is brought up to date first.
        A store that holds events but lacks core read tables is refused (CoreTablesMissing)
        rather than given empty ones (issue 12 point 7)."""
        self.missing_tables = missing_core_tables(self.engine, self.app.recorder)
        if self.missing_tables:
            if check_tables:
                self.close()
                raise CoreTablesMissing(self.missing_tables)
            return  # left as it is, for verify and rebuild-tables
        upgrade_v1_tables(self.engine)
        ensure_basis_blocks(self.engine)
        ensure_indexes(self.engine)

        def seeded(connection: Connection) -> bool:
            return connection.execute(select(ledger_state.c.id)).first() is not None

        def seed(connection: Connection) -> None:
            connection.execute(
                insert(ledger_state).values(
                    id=1, watermark_us=0, accepted=0, rejected=0, position=0, writes=0
                )
            )

        tables = [
            *self.app.recorder.tables,  # type: ignore[attr-defined]
            *metadata.sorted_tables,
            *chain_metadata.sorted_tables,
        ]
        ensure_tables(self.engine, tables, seeded=seeded, seed=seed)

    def close(self) -> None:
        unregister_engine(self._engine_key)
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # Writing -----------------------------------------------------------------------------

    def apply_lines(
        self,
        lines: Iterable[bytes | str],
        *,
        source: str = "-",
        on_progress: Callable[[int], None] | None = None,
        hooks: TransactionHooks | None = None,
        first_line: int = 1,
    ) -> ApplyReport:
        """Apply JSON Lines in order. A bad line is rejected with its reason and kept; the
        lines around it still apply. Each chunk of lines commits as one transaction; `hooks`
        run inside each (as `apply_records`' `skip_applied` and `before_commit`: the service
        records who applied the lines with them). `first_line` is the number of the first line
        in its file, when `lines` continue a file applied in parts."""
        report = ApplyReport()
        chunk: list[tuple[int, bytes | str]] = []
        chunk_bytes = 0
        chunk_lines = self.settings.chunk_lines
        for number, line in enumerate(lines, start=first_line):
            if not line or line.isspace():  # a blank line (`isspace` stops at the first "{")
                continue
            chunk.append((number, line))
            chunk_bytes += len(line) + 1
            if len(chunk) >= chunk_lines:
                self._apply_chunk_or_stop(chunk, source, report, hooks)
                if on_progress is not None:
                    on_progress(chunk_bytes)
                chunk, chunk_bytes = [], 0
        if chunk:
            self._apply_chunk_or_stop(chunk, source, report, hooks)
            if on_progress is not None:
                on_progress(chunk_bytes)
        return report

    def _apply_chunk_or_stop(
        self, chunk: list[tuple[int, bytes | str]], source: str, report: ApplyReport,
        hooks: TransactionHooks | None = None,
    ) -> None:
        """Apply a chunk; on a failure that is not a rejection (a bug: bad input is rejected
        line by line and never gets here) the chunk rolls back, the lines before the one that
        failed are applied again in a transaction of their own, and `ApplyStopped` says where
        the batch stopped."""
        at = _Cursor()
        try:
            self._apply_chunk(chunk, source, report, at, hooks)
        except (StoreDamaged, StoreReadOnly):
            raise  # not a line's fault: the store refuses every write (restored / writable)
        except Exception as exc:
            failed = at.index if 0 <= at.index < len(chunk) else 0
            if failed > 0:
                try:
                    self._apply_chunk(chunk[:failed], source, report, None, hooks)
                except Exception:  # the prefix fails too: nothing of the chunk is applied
                    failed = 0
            raise ApplyStopped(report, chunk[failed][0], exc) from exc

    def apply(self, commands: Iterable[dict[str, Any] | str | bytes]) -> ApplyReport:
        """Apply commands given as dicts (or JSON text), in order."""

        def lines() -> Iterator[bytes | str]:
            for item in commands:
                yield item if isinstance(item, str | bytes) else orjson.dumps(
                    item, default=str
                )

        return self.apply_lines(lines(), source="api")

    def _apply_chunk(
        self,
        chunk: list[tuple[int, bytes | str]],
        source: str,
        report: ApplyReport,
        at: _Cursor | None = None,
        hooks: TransactionHooks | None = None,
    ) -> None:
        # many short-lived objects and no cycles worth chasing: ledger.gcpause
        with paused_gc(self.settings.pause_gc_in_batches):
            self._apply_chunk_now(chunk, source, report, at, hooks)

    def _apply_chunk_now(
        self,
        chunk: list[tuple[int, bytes | str]],
        source: str,
        report: ApplyReport,
        at: _Cursor | None,
        hooks: TransactionHooks | None = None,
    ) -> None:
        parsed: list[Parsed] = []
        sale_ids: list[str] = []
        plain_sale_tried = c.plain_sale_tried
        for number, line in chunk:
            # an ordinary sale line straight to `plain_sale` (what `parse_line` does first)
            sale, plain_tried = plain_sale_tried(line)
            if sale is not None:
                sale_ids.append(sale.sale_id)
                parsed.append((number, line, sale, None, None))
                continue
            valid, error = parse_applied_line(line, plain_tried=plain_tried)
            if valid is None:
                parsed.append((number, line, None, error, None))
                continue
            if type(valid) in _SALE_COMMANDS:
                sale_ids.append(valid.sale_id)  # type: ignore[attr-defined]
            parsed.append((number, line, valid, None, None))
        skip_applied, before_commit = hooks if hooks is not None else (None, None)
        self._apply_parsed(parsed, sale_ids, source, report, at=at, skip_applied=skip_applied,
                           before_commit=before_commit)

    @contextlib.contextmanager
    def dry_run(self) -> Iterator[None]:
        """One transaction around any number of `apply_records` calls, rolled back at the end:
        a dry run of a file of any size (`LedgerService.import_rows`). Each call runs inside it
        as it would run alone (its own transaction nests in this one and commits nothing), so
        a command sees the effects of the calls before it (a duplicate of, a reversal of or a
        claim on an earlier line); nothing is visible to another connection, and at the end
        nothing is left (a failure inside rolls it back too and propagates). The writer lock
        is held from the start to the rollback: other writers wait, readers do not (they see
        the store as it was). Memory stays that of one call: each call's objects go with it,
        the uncommitted rows are the database's.

        On PostgreSQL a rolled-back insert still takes its id from the sequence; the event
        store's notification sequence (the store positions the chain, the relays and the
        projections follow) is set back to where it stood before the rollback, so the next real
        write gets the positions it would have got without the dry run. Nothing else can take
        a position meanwhile: every event write holds the writer lock. The ids of the ledger's
        own tables (rejections, ...) are left with a gap, as any rolled-back write leaves."""
        with contextlib.suppress(_DryRun), \
                refusing_read_only(self.engine, "a dry run (it writes, then rolls back)"), \
                self.app.recorder.transaction(commit=True) as session:  # type: ignore[attr-defined]
            lock_writer(session)
            sequence = _notification_sequence(session, self.app.recorder)
            yield
            if sequence is not None:
                _restore_sequence(session, *sequence)
            raise _DryRun  # rolls the transaction back

    def apply_records(
        self,
        records: Sequence[SourcedCommand],
        *,
        skip_applied: Callable[[Session], Collection[int]] | None = None,
        before_commit: Callable[[Session, list[RejectionRecord]], None] | None = None,
        dry_run: bool = False,
    ) -> ApplyReport:
        """Apply `records` (parsed by the caller, each naming its own source) in order, in ONE
        transaction, as `apply_lines` applies a chunk: for consumers that keep their position
        in the store with their effects (the Kafka intake).

        `skip_applied(session)` runs inside the transaction right after the writer lock, before
        any record applies, and returns the indexes (into `records`) of those to leave out,
        because an earlier transaction applied them; it may write rows of its own (positions),
        which commit or roll back with the records' effects. `before_commit(session, rejected)`
        runs after the last record, before the commit, with the rejections of this call (each
        with its record's `source`); if it raises, nothing of the call is committed.

        `dry_run`: the report says what would be accepted, duplicated and rejected, and the
        transaction is rolled back (nothing stored, no rejection kept). Inside `Ledger.dry_run`
        the call's transaction is that one's (nothing commits until it rolls back)."""
        assert len(records) <= 100_000, len(records)
        report = ApplyReport()
        if not records:
            return report
        sale_ids = [
            r.command.sale_id
            for r in records
            if isinstance(r.command, c.RecordSale | c.ReverseSale)
        ]
        with paused_gc(self.settings.pause_gc_in_batches):
            self._apply_parsed(
                [(r.number, r.line, r.command, r.problem, r.source) for r in records],
                sale_ids, "-", report, skip_applied=skip_applied, before_commit=before_commit,
                dry_run=dry_run,
            )
        return report

    def _apply_parsed(
        self,
        parsed: list[Parsed],
        sale_ids: list[str],
        source: str,
        report: ApplyReport,
        *,
        skip_applied: Callable[[Session], Collection[int]] | None = None,
        before_commit: Callable[[Session, list[RejectionRecord]], None] | None = None,
        at: _Cursor | None = None,
        dry_run: bool = False,
    ) -> None:
        at = at or _Cursor()
        with contextlib.suppress(_DryRun) if dry_run else contextlib.nullcontext(), \
                refusing_read_only(self.engine, "applying commands"), \
                self.app.recorder.transaction(commit=True) as session:  # type: ignore[attr-defined]
            lock_writer(session)
            if skip_applied is not None:
                skip = skip_applied(session)
                if skip:
                    parsed = [p for index, p in enumerate(parsed) if index not in skip]
            batch = Batch(
                session=session,
                app=self.app,
                projection=self.projection,
                now=self.clock(),
                source=source,
            )
            batch.load_state()
            batch.prefetch_sales(sale_ids)
            # what the report counts once the transaction commits: the commands handled (for
            # their types), and the duplicates among them with their lines
            handled: list[c.Command] = []
            duplicates: list[tuple[int, c.Command]] = []
            handle = batch.handle
            for index, (number, line, command, invalid, line_source) in enumerate(parsed):
                at.index = index
                problem: Rejection | None = invalid
                if command is not None:
                    try:
                        outcome = handle(command)
                    except Rejection as rejection:
                        problem = rejection
                    else:
                        handled.append(command)
                        if outcome == DUPLICATE:
                            duplicates.append((number, command))
                        continue
                assert problem is not None
                batch.reject(
                    number, line, c.command_type_of_line(line), problem, source=line_source
                )
            at.index = len(parsed)
            batch.finish()
            if before_commit is not None:
                before_commit(session, batch.rejected)
            if dry_run:
                raise _DryRun  # rolls the transaction back; the report still counts it
        # Only once the transaction has committed does the report count the chunk.
        for number, command in duplicates:
            report.duplicates.append((number, command.kind, duplicate_id(command)))
        report.accepted += len(handled) - len(duplicates)
        kinds: Counter[type[c.Command]] = Counter(map(type, handled))
        for command_type, count in kinds.items():
            report.by_type[command_type.kind] += count
        report.rejected.extend(batch.rejected)

    # Closing a period ----------------------------------------------------------------------

    def close_period(
        self, period: str, start: date, end: date, recorded_at: datetime | None = None
    ) -> tuple[str, int, datetime, list[LiabilityRow]]:
        """Record the close of `period` (`start` to `end`): the liability at `end` as known at
        the close (`recorded_at`, default now; the same rules as a command's) is frozen in a
        `PeriodClosed` event. Returns (event id, store position, closed at, reported rows).
        Raises `RuleViolation` (field `period` or `recorded_at`) when refused."""
        from ledger.errors import RuleViolation
        from ledger.events.period import ReportedRow

        if end < start:
            raise RuleViolation("period", f"ends {end} before it starts {start}")
        with refusing_read_only(self.engine, "closing a period"), \
                self.app.recorder.transaction(commit=True) as session:  # type: ignore[attr-defined]
            lock_writer(session)
            batch = Batch(session=session, app=self.app, projection=self.projection,
                          now=self.clock(), source="close-period")
            batch.load_state()
            moment = batch.recorded_time(
                c.CloseStandIn(recorded_at=recorded_at)  # the command rules of recorded_at
            )
            if moment.astimezone(UTC).date() <= end:
                raise RuleViolation(
                    "period",
                    f"{period!r} ends {end}, but the close would be recorded at "
                    f"{moment.astimezone(UTC).isoformat()}, before it has ended: close a "
                    f"period on or after {end + timedelta(days=1)} (UTC), or give a recorded_at "
                    "after its end when loading a past close")
            rows = liability_rows(session, end, moment)
            reported = tuple(ReportedRow.model_validate(
                {k: v for k, v in r.to_dict().items() if k != "basis"}) for r in rows)
            recorded = self.app.close_period(period, start, end, reported, moment)
            batch.project(recorded)
            batch.watermark_us = max(batch.watermark_us, to_us(moment))
            batch.finish()
        (event, position), = recorded
        return f"{event.originator_id}/{event.originator_version}", position, moment, rows

    # Reading -----------------------------------------------------------------------------

    def liability(
        self,
        as_of: date,
        known_at: datetime | None = None,
        *,
        agreement_id: str | None = None,
        customer_id: str | None = None,
        group_id: str | None = None,
        program_id: str | None = None,
    ) -> list[LiabilityRow]:
        with self.app.recorder.transaction(commit=False) as session:  # type: ignore[attr-defined]
            return liability_rows(
                session, as_of, known_at, agreement_id=agreement_id, customer_id=customer_id,
                group_id=group_id, program_id=program_id,
            )

    def rejections(self, *, limit: int | None = None) -> list[RejectionRecord]:
        query = select(rejections).order_by(rejections.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [
                RejectionRecord(
                    line=row.line,
                    command_type=row.command_type,
                    field=row.field,
                    reason=row.reason,
                    command=row.command,
                    source=row.source,
                    rejected_at=from_us(row.rejected_us),
                )
                for row in connection.execute(query)
            ]

    def state(self) -> dict[str, Any]:
        with self.engine.connect() as connection:
            row = connection.execute(select(ledger_state)).one()
        return {
            "accepted": row.accepted,
            "rejected": row.rejected,
            "position": row.position,
            "watermark": from_us(row.watermark_us) if row.watermark_us else None,
        }


def _notification_sequence(session: Session,
                           recorder: Any) -> tuple[str, str, int, bool] | None:
    """PostgreSQL: the event table, its id sequence and where it stands (last value, called);
    None on SQLite (rolled back with the transaction) or when the ids are not a sequence."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    table = recorder.tables[0]
    name = table.name if table.schema is None else f"{table.schema}.{table.name}"
    sequence = session.execute(text("SELECT pg_get_serial_sequence(:table, 'id')"),
                               {"table": name}).scalar()
    if sequence is None:
        return None
    last, called = session.execute(
        text(f"SELECT last_value, is_called FROM {sequence}")).one()
    return name, str(sequence), int(last), bool(called)


def _restore_sequence(session: Session, table: str, sequence: str, last: int,
                      called: bool) -> None:
    """Set `sequence` back to (last, called) unless it stands there (setval is not rolled
    back: this outlives the dry run's rollback)."""
    session.execute(text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))  # held already if written
    now = session.execute(text(f"SELECT last_value, is_called FROM {sequence}")).one()
    if (int(now[0]), bool(now[1])) != (last, called):
        session.execute(text("SELECT setval(:sequence, :last, :called)"),
                        {"sequence": sequence, "last": last, "called": called})


def parse_applied_line(
    line: bytes | str, *, plain_tried: bool = False
) -> tuple[c.Command | None, InvalidCommand | None]:
    """A line of `apply` as a command, or why it is rejected: what `apply_lines` does with
    each line (shared with the dry run of `apply`, `LedgerService.load`). `plain_tried`: the
    caller has already given these bytes to `plain_sale`, which did not take them, so they go
    straight to `validated_line` (the rest of `parse_line`) instead of being read twice."""
    try:
        if plain_tried and type(line) is bytes:
            return c.validated_line(line), None
        return c.parse_line(line), None
    except InvalidCommand as error:
        return None, error
    except Exception as exc:  # a line that cannot be read at all: rejected alone
        return None, InvalidCommand(
            "", f"the line cannot be read as a command ({type(exc).__name__}: {exc})")


def duplicate_id(command: c.Command) -> str:
    """What made a command a duplicate: its sale, write-off or payment reference."""
    if isinstance(command, c.SettleClaim):
        return f"{command.claim_id} payment_ref {command.payment_ref}"
    for name in ("sale_id", "write_off_id"):
        value = getattr(command, name, None)
        if isinstance(value, str):
            return value
    return ""


def default_database_url() -> str:
    return Settings().resolved_database_url(os.environ.get("LEDGER_DATABASE_URL"))
