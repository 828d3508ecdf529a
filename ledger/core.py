"""The public facade: `Ledger`, the one front door for the CLI, the HTTP API and the intakes."""

from __future__ import annotations

import gc
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import insert, select

from ledger import commands as c
from ledger.application import LedgerApplication
from ledger.config import Settings
from ledger.errors import InvalidCommand, Rejection
from ledger.handlers import DUPLICATE, Batch, RejectionRecord
from ledger.liability import LiabilityRow, liability_rows
from ledger.projections.core import (
    CoreProjection,
    from_us,
    ledger_state,
    metadata,
    rejections,
)
from ledger.store import (
    ENGINE_KEY,
    factory_topic,
    lock_writer,
    make_engine,
    register_engine,
    unregister_engine,
)

Clock = Callable[[], datetime]


@dataclass
class ApplyReport:
    """What one `apply` did: every line is accepted, a duplicate, or rejected with a reason."""

    accepted: int = 0
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    rejected: list[RejectionRecord] = field(default_factory=list)
    by_type: Counter[str] = field(default_factory=Counter)

    @property
    def lines(self) -> int:
        return self.accepted + len(self.duplicates) + len(self.rejected)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": len(self.duplicates),
            "rejected": len(self.rejected),
            "by_type": dict(self.by_type),
            "duplicate_lines": [{"line": n, "sale_id": s} for n, s in self.duplicates],
            "rejections": [
                {"line": r.line, "command": r.command_type, "field": r.field,
                 "reason": r.reason}
                for r in self.rejected
            ],
        }


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
    ) -> None:
        self.settings = settings or Settings()
        self.database_url = self.settings.resolved_database_url(database_url)
        self.clock = clock
        self.engine = make_engine(self.database_url)
        self._engine_key = register_engine(self.engine)
        self.app = LedgerApplication(
            env={
                "PERSISTENCE_MODULE": factory_topic(),
                ENGINE_KEY: self._engine_key,
                # Ignore eventsourcing variables a user may have set for other applications.
                "SQLALCHEMY_URL": "",
            }
        )
        self.projection = CoreProjection()
        self._create_tables()

    def _create_tables(self) -> None:
        metadata.create_all(self.engine)
        with self.engine.begin() as connection:
            if connection.execute(select(ledger_state.c.id)).first() is None:
                connection.execute(
                    insert(ledger_state).values(
                        id=1, watermark_us=0, accepted=0, rejected=0, position=0, writes=0
                    )
                )

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
    ) -> ApplyReport:
        """Apply JSON Lines in order. A bad line is rejected with its reason and kept; the
        lines around it still apply. Each chunk of lines commits as one transaction."""
        report = ApplyReport()
        chunk: list[tuple[int, bytes | str]] = []
        chunk_bytes = 0
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            chunk.append((number, line))
            chunk_bytes += len(line) + 1
            if len(chunk) >= self.settings.chunk_lines:
                self._apply_chunk(chunk, source, report)
                if on_progress is not None:
                    on_progress(chunk_bytes)
                chunk, chunk_bytes = [], 0
        if chunk:
            self._apply_chunk(chunk, source, report)
            if on_progress is not None:
                on_progress(chunk_bytes)
        return report

    def apply(self, commands: Iterable[dict[str, Any] | str | bytes]) -> ApplyReport:
        """Apply commands given as dicts (or JSON text), in order."""

        def lines() -> Iterator[bytes | str]:
            for item in commands:
                yield item if isinstance(item, str | bytes) else orjson.dumps(
                    item, default=str
                )

        return self.apply_lines(lines(), source="api")

    def _apply_chunk(
        self, chunk: list[tuple[int, bytes | str]], source: str, report: ApplyReport
    ) -> None:
        # The sale path allocates many short-lived objects and no cycles worth chasing; the
        # cyclic collector would otherwise run every few hundred lines (a quarter of the time).
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._apply_chunk_now(chunk, source, report)
        finally:
            if collecting:
                gc.enable()

    def _apply_chunk_now(
        self, chunk: list[tuple[int, bytes | str]], source: str, report: ApplyReport
    ) -> None:
        parsed: list[tuple[int, bytes | str, c.Command | None, Rejection | None]] = []
        sale_ids: list[str] = []
        for number, line in chunk:
            try:
                valid = c.parse_line(line)
            except InvalidCommand as error:
                parsed.append((number, line, None, error))
                continue
            if isinstance(valid, c.RecordSale | c.ReverseSale):
                sale_ids.append(valid.sale_id)
            parsed.append((number, line, valid, None))

        with self.app.recorder.transaction(commit=True) as session:  # type: ignore[attr-defined]
            lock_writer(session)
            batch = Batch(
                session=session,
                app=self.app,
                projection=self.projection,
                now=self.clock(),
                source=source,
            )
            batch.load_state()
            batch.prefetch_sales(sale_ids)
            outcomes: list[tuple[int, str, str]] = []
            for number, line, command, invalid in parsed:
                problem: Rejection | None = invalid
                if command is not None:
                    try:
                        outcome = batch.handle(command)
                    except Rejection as rejection:
                        problem = rejection
                    else:
                        outcomes.append((number, outcome, getattr(command, "sale_id", "")))
                        report.by_type[command.kind] += 1
                        continue
                assert problem is not None
                batch.reject(number, line, c.command_type_of_line(line), problem)
            batch.finish()
        # Only once the transaction has committed does the report count the chunk.
        for number, outcome, sale_id in outcomes:
            if outcome == DUPLICATE:
                report.duplicates.append((number, sale_id))
            else:
                report.accepted += 1
        report.rejected.extend(batch.rejected)

    # Reading -----------------------------------------------------------------------------

    def liability(
        self,
        as_of: date,
        known_at: datetime | None = None,
        *,
        agreement_id: str | None = None,
        customer_id: str | None = None,
    ) -> list[LiabilityRow]:
        with self.app.recorder.transaction(commit=False) as session:  # type: ignore[attr-defined]
            return liability_rows(
                session, as_of, known_at, agreement_id=agreement_id, customer_id=customer_id
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


def default_database_url() -> str:
    return Settings().resolved_database_url(os.environ.get("LEDGER_DATABASE_URL"))
