"""Replay and audit views: projections rebuilt purely from the events topic.

- `replay_projection`: a fresh generation of a projection, read from offset 0 of every
  partition until it has caught up with the store position taken at the start, then swapped in
  with one UPDATE of the pointer row (`ledger.projections.generations`), the old one dropped.
- `audit_view`: the liability at (as_of, known_at) rebuilt from the log alone into an in-memory
  SQLite database with the core tables, compared row by row, field by field with the core's
  answer and with the live liability projection's (when one has caught up with the store:
  the answer `liability` queries then get); every difference is returned.
- `run_projections`: the three live projections fed from the topic (`rebate-ledger project`).

Every function takes the transport of an existing broker. Before reading, `publish_store` runs
the relay once: it refills a broker that is empty and publishes what is new, so the watermarks
the readers wait for exist.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Engine, func, select

from consumers.projector import PROJECTIONS, Projector
from consumers.transport import Transport
from ledger.core import Ledger
from ledger.kafka.settings import KafkaSettings
from ledger.liability import LiabilityRow, liability_rows
from ledger.projections.generations import (
    Generation,
    new_generation,
    scratch_engine,
    swap_in,
)
from ledger.projections.read_models import LiabilityModel, model
from ledger.projections.reader import from_projection, quarantine_of, store_position
from ledger.projections.runner import ProjectionRunner, QuarantinedRecord, clear_quarantine

Progress = Callable[[ProjectionRunner, int], None]


def publish_store(ledger: Ledger, kafka: Transport, settings: KafkaSettings) -> int:
    """Run the relay once (refill an empty broker, publish what is new); return the store
    position every reader may then wait for."""
    from consumers.relay import Relay

    position = store_position(ledger)
    with Relay(ledger, kafka, settings) as relay:
        relay.run_once()
    return position


def replay_projection(
    ledger: Ledger,
    name: str,
    kafka: Transport,
    settings: KafkaSettings,
    *,
    on_progress: Progress | None = None,
    timeout_s: float = 3600.0,
    publish: bool = True,
) -> Generation:
    """Rebuild projection `name` from the start of the log into a new generation, swap it in
    atomically and drop the old one; return the new generation."""
    position = publish_store(ledger, kafka, settings) if publish else store_position(ledger)
    generation = new_generation(ledger.engine, name)
    engine = generation.engine()
    try:
        with ProjectionRunner(engine, model(name), kafka, settings) as runner:
            runner.head_limit = position
            runner.run_until(
                position, timeout_s=timeout_s,
                on_progress=None if on_progress is None
                else lambda r: on_progress(r, position),
            )
            # every stored event up to `position` applied: the records quarantined on the way
            # hid none of them, and the rebuilt projection is complete
            if runner.quarantined and runner.heads == stored_events(ledger, position):
                clear_quarantine(engine, position)
    except BaseException:
        engine.dispose()
        generation.drop(ledger.engine)
        raise
    engine.dispose()
    old = swap_in(ledger.engine, generation)
    if old is not None:
        old.drop(ledger.engine)
    return generation


def stored_events(ledger: Ledger, position: int) -> int:
    """How many events the store holds up to `position`."""
    table = ledger.app.recorder.tables[0]  # type: ignore[attr-defined]
    with ledger.engine.connect() as connection:
        return int(connection.execute(
            select(func.count()).select_from(table).where(table.c.id <= position)
        ).scalar_one())


@dataclass(frozen=True)
class Difference:
    agreement_id: str
    field: str
    log: str | None  # None: the row is missing from the log's view
    core: str | None  # None: the row is missing from the core's answer

    def to_dict(self, other: str = "core") -> dict[str, str | None]:
        """As a dict; `other` names the answer compared with the log (`core`, `projection`)."""
        return {"agreement_id": self.agreement_id, "field": self.field, "log": self.log,
                other: self.core}


def compare(
    log_rows: Sequence[LiabilityRow], core_rows: Sequence[LiabilityRow]
) -> list[Difference]:
    """Every field of every row that differs (a missing row is one difference, field `row`)."""
    logs = {row.agreement_id: row.to_dict() for row in log_rows}
    cores = {row.agreement_id: row.to_dict() for row in core_rows}
    differences = []
    for agreement in sorted(logs.keys() | cores.keys()):
        mine, theirs = logs.get(agreement), cores.get(agreement)
        if mine is None or theirs is None:
            differences.append(Difference(
                agreement, "row", None if mine is None else "present",
                None if theirs is None else "present",
            ))
            continue
        for field, value in mine.items():
            if theirs[field] != value:
                differences.append(Difference(agreement, field, value, theirs[field]))
    return differences


@dataclass
class AuditResult:
    as_of: date
    known_at: datetime | None
    position: int
    log_rows: list[LiabilityRow]
    core_rows: list[LiabilityRow]
    differences: list[Difference]
    #: the live liability projection that `liability` queries read (`projection liability
    #: gN`), when one has caught up with the store; None: they answer from the core
    projection_source: str | None = None
    projection_rows: list[LiabilityRow] | None = None
    #: log against that projection (`Difference.core` holds the projection's value)
    projection_differences: list[Difference] = dataclasses.field(default_factory=list)
    #: per source that read a record it could not and quarantined it (`log`, the view rebuilt
    #: here, and `projection <name> gN` for every live projection): the records. Each is
    #: incomplete until a replay rebuilds it.
    incomplete: dict[str, list[QuarantinedRecord]] = dataclasses.field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return (not self.differences and not self.projection_differences
                and not self.incomplete)

    def table(self) -> list[dict[str, str | None]]:
        """Every (agreement, field) that differs anywhere, with the log's, the core's and the
        live projection's value (None when there is no live projection)."""
        rows: dict[tuple[str, str], dict[str, str | None]] = {}
        for d in self.differences:
            rows[(d.agreement_id, d.field)] = {
                "agreement_id": d.agreement_id, "field": d.field, "log": d.log, "core": d.core,
                "projection": d.log if self.projection_source is not None else None,
            }
        for d in self.projection_differences:
            row = rows.setdefault((d.agreement_id, d.field), {
                "agreement_id": d.agreement_id, "field": d.field, "log": d.log, "core": d.log,
            })
            row["projection"] = d.core
        return [rows[key] for key in sorted(rows)]


def audit_view(
    ledger: Ledger,
    kafka: Transport,
    settings: KafkaSettings,
    as_of: date,
    known_at: datetime | None,
    *,
    on_progress: Progress | None = None,
    timeout_s: float = 3600.0,
    publish: bool = True,
) -> AuditResult:
    """The liability at (as_of, known_at) rebuilt from the log only, against the core's
    answer and against the live liability projection's (when one has caught up: the one
    `liability` queries then read)."""
    position = publish_store(ledger, kafka, settings) if publish else store_position(ledger)
    scratch = tempfile.TemporaryDirectory(prefix="rebate-ledger-audit-view-")
    engine: Engine = scratch_engine(Path(scratch.name) / "log-view.db")
    try:
        with ProjectionRunner(engine, LiabilityModel(), kafka, settings) as runner:
            runner.head_limit = position
            runner.run_until(
                position, timeout_s=timeout_s,
                on_progress=None if on_progress is None
                else lambda r: on_progress(r, position),
            )
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            log_rows = liability_rows(session, as_of, known_at)
        # records the log view could not read hid no stored event when it applied them all
        log_quarantined = (
            runner.quarantined_records()
            if runner.quarantined and runner.heads != stored_events(ledger, position) else []
        )
    finally:
        engine.dispose()
        scratch.cleanup()
    core_rows = ledger.liability(as_of, known_at)
    result = AuditResult(as_of, known_at, position, log_rows, core_rows,
                         compare(log_rows, core_rows))
    if log_quarantined:
        result.incomplete["log"] = log_quarantined
    for name in PROJECTIONS:
        quarantine = quarantine_of(ledger, name)
        if quarantine is not None and quarantine[1]:
            result.incomplete[quarantine[0]] = quarantine[1]
    live = from_projection(
        ledger, "liability", lambda session: liability_rows(session, as_of, known_at),
        settings=settings,
    )
    if live is not None:
        result.projection_rows, result.projection_source = live
        result.projection_differences = compare(log_rows, result.projection_rows)
    return result


def run_projections(
    ledger: Ledger,
    kafka: Transport,
    settings: KafkaSettings,
    stop: threading.Event,
    *,
    names: Sequence[str] = PROJECTIONS,
    until_idle_s: float | None = None,
    poll_records: int = 20_000,
    on_step: Callable[[Projector], None] | None = None,
) -> dict[str, dict[str, int]]:
    """Feed the live generation of each projection (made if missing) until `stop` is set or
    nothing new came for `until_idle_s` (`consumers.projector.Projector`); return its
    counters per projection."""
    with Projector(ledger, kafka, settings, names=names, poll_records=poll_records) as worker:
        worker.run(stop, until_idle_s=until_idle_s, on_step=on_step)
        return worker.counters()
