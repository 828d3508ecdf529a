"""The projection runner: reads the events topic and applies it to one projection database.

It assigns every partition of `<prefix>events` (no consumer group: a projection is one
process) and keeps, WITH ITS ROWS, per partition: the next offset to read, the last
`(position, part)` applied, the highest watermark read, and the broker's cluster id. Each
polled batch is applied in ONE database transaction together with those positions, so a crash
at any moment resumes exactly where the rows stand. An envelope whose `(position, part)` is not
above the last one applied on its partition is skipped: redelivery (a relay re-sending after a
crash) and a refill (the relay republishing the whole store to a broker that came back empty)
change nothing. When the broker's cluster id differs from the stored one, the log was lost and
refilled: the runner reads every partition again from offset 0, and the skip rule keeps it
exact.

"Caught up with store position P" means: a watermark >= P has been read on every partition
(`min_watermark() >= P`), i.e. every event up to P is in the rows.

Envelope v2 (issue 12) chains each partition's records. A v2 record whose bytes do not hash to
its `link` is quarantined (altered). One whose `previous_*` is not the last record applied on
its partition follows a GAP: a record the relay sent before it never arrived (its delivery timed
out while this later one went through). Applying it would make the skip rule drop the missing
record when the relay re-sends it, so it is held: not applied, the partition's position not
moved, and its watermark held below the gap. The relay re-sends everything after its last
confirmed position (the same records, chained the same way), so reading on finds the missing
record, then the held one again, in chain order: the gap heals by re-reading. A gap still open
is named by `gaps()` and by `NotCaughtUp`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.orm import Session

from ledger.errors import LedgerError
from ledger.events import SalesRecorded
from ledger.events.codec import SCHEMA_VERSION_KEY, event_of
from ledger.events.envelope import (
    EVENT_TYPES,
    GENESIS,
    GENESIS_LINK,
    KIND_HEADER,
    WATERMARK_KIND,
    ChainHead,
    Envelope,
    Watermark,
    link_of,
    parse_record,
)
from ledger.gcpause import paused_gc
from ledger.kafka.ports import (
    EVENTS,
    Admin,
    Consumer,
    Record,
    TopicPartition,
    Transport,
    ensure_topics,
)
from ledger.kafka.settings import KafkaSettings
from ledger.projections.read_models import (
    Delivered,
    ProjectionTablesMissing,
    ReadModel,
    missing_read_tables,
)
from ledger.store import ensure_tables

LOG = logging.getLogger(__name__)

offsets_metadata = MetaData()

projection_offsets = Table(
    "projection_offsets",
    offsets_metadata,
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    # offset of the next record to read
    Column("next_offset", BigInteger, nullable=False),
    # (position, part) of the last envelope applied from this partition
    Column("position", BigInteger, nullable=False),
    Column("part", Integer, nullable=False),
    # highest watermark read on this partition
    Column("watermark", BigInteger, nullable=False),
    # the broker those offsets are for
    Column("cluster_id", String(255), nullable=True),
    # envelope v2: the link of the last envelope applied (null: v1 or none yet), and the
    # position of a record held after a gap (null: no gap open)
    Column("link", String(64), nullable=True),
    Column("gap", BigInteger, nullable=True),
)


#: A record of the events topic that is not an envelope or a watermark this runner can read
#: (not JSON, an unknown envelope or schema version, an event that does not decode): kept here
#: with the rows, in the same transaction as the positions past it, and the runner goes on.
#: While a row has no `cleared_at_position` the projection is INCOMPLETE: the record may have
#: been a stored event the rows lack, so queries answer from the core and `audit-view` names
#: it. A `replay` that applies every stored event up to position P clears the rows it holds
#: (`clear_quarantine`): the records then hid no event.
projection_quarantine = Table(
    "projection_quarantine",
    offsets_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("reason", String(1000), nullable=False),
    # the first QUARANTINE_PREFIX_BYTES of the record's value, and its whole length
    Column("value_prefix", LargeBinary, nullable=False),
    Column("value_bytes", Integer, nullable=False),
    Column("quarantined_at", DateTime(timezone=True), nullable=False),
    Column("cleared_at_position", BigInteger, nullable=True),
)

QUARANTINE_PREFIX_BYTES = 4096


class MalformedRecord(LedgerError, ValueError):
    """A record of the events topic that is neither a readable envelope nor a watermark."""


@dataclass(frozen=True)
class QuarantinedRecord:
    topic: str
    partition: int
    offset: int
    reason: str
    value_prefix: bytes
    value_bytes: int
    quarantined_at: datetime

    def describe(self) -> str:
        return f"{self.topic} partition {self.partition} offset {self.offset}: {self.reason}"


def quarantined_records(session: Session | Any) -> list[QuarantinedRecord]:
    """The records quarantined and not cleared by a replay, in topic order (none when the
    database predates the quarantine table)."""
    if not inspect(session.connection()).has_table(projection_quarantine.name):
        return []
    q = projection_quarantine.c
    rows = session.execute(
        select(q.topic, q.partition, q.offset, q.reason, q.value_prefix, q.value_bytes,
               q.quarantined_at)
        .where(q.cleared_at_position.is_(None))
        .order_by(q.topic, q.partition, q.offset)
    ).all()
    return [QuarantinedRecord(r.topic, int(r.partition), int(r.offset), r.reason,
                              bytes(r.value_prefix), int(r.value_bytes), r.quarantined_at)
            for r in rows]


def clear_quarantine(engine: Engine, position: int) -> int:
    """Mark every quarantined record cleared by a replay that applied every stored event up
    to `position`; return how many."""
    with Session(engine) as session, session.begin():
        result = session.execute(
            update(projection_quarantine)
            .where(projection_quarantine.c.cleared_at_position.is_(None))
            .values(cleared_at_position=position)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def check_read_tables(bind: Engine | Connection, model: ReadModel) -> None:
    """ProjectionTablesMissing when the projection in the database of `bind` has applied
    events (it has positions past offset 0) but lacks one of its read tables: recreating it
    empty would make figures without those events, answered as caught up."""
    with ExitStack() as stack:
        connection = bind if isinstance(bind, Connection) else stack.enter_context(
            bind.connect())
        if not inspect(connection).has_table(projection_offsets.name):
            return
        applied = connection.execute(
            select(func.count()).select_from(projection_offsets)
            .where(projection_offsets.c.next_offset > 0)
        ).scalar_one()
        missing = missing_read_tables(connection, model.required_tables) if applied else []
    if missing:
        raise ProjectionTablesMissing(model.name, missing)


class NotCaughtUp(LedgerError, TimeoutError):
    """The projection did not read a watermark >= the wanted position on every partition in
    time (no relay publishing this store to this broker?)."""


@dataclass
class PartitionState:
    next_offset: int
    position: int
    part: int
    watermark: int
    cluster_id: str | None
    link: str | None = None
    gap: int | None = None

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.position, self.part, self.link or GENESIS_LINK)


@dataclass(frozen=True)
class Gap:
    """A partition whose next records follow one that never arrived."""

    partition: int
    after_position: int
    after_part: int
    held_position: int

    def describe(self) -> str:
        return (f"partition {self.partition}: the record at store position "
                f"{self.held_position} follows one never read (after position "
                f"{self.after_position} part {self.after_part}); waiting for the relay to "
                "re-send it (it does after a failed delivery; if the record was lost after "
                f"the relay confirmed it: rebate-ledger relay --from-position "
                f"{self.after_position + 1})")


def min_watermark(session: Session | Any, topic: str) -> int | None:
    """The lowest watermark read over the partitions of `topic`; None if none is known."""
    row = session.execute(
        select(func.count(), func.min(projection_offsets.c.watermark)).where(
            projection_offsets.c.topic == topic
        )
    ).one()
    return None if not row[0] else int(row[1])


class ProjectionRunner:
    """Feeds `model` in the database of `engine` from the events topic."""

    def __init__(
        self,
        engine: Engine,
        model: ReadModel,
        transport: Transport,
        settings: KafkaSettings,
        *,
        poll_records: int = 20_000,
        poll_timeout_s: float = 0.2,
        cluster_check_s: float = 2.0,
    ) -> None:
        self.engine = engine
        self.model = model
        self.transport = transport
        self.settings = settings
        self.topic = settings.topic(EVENTS)
        self.poll_records = poll_records
        self.poll_timeout_s = poll_timeout_s
        self.cluster_check_s = cluster_check_s
        self.state: dict[int, PartitionState] = {}
        self.applied = 0  # envelopes applied since construction
        self.skipped = 0  # envelopes skipped as already applied
        self.reseeks = 0  # times the log was found replaced (new cluster id)
        self.quarantined = 0  # malformed records quarantined since construction
        self.held = 0  # v2 envelopes held after a gap since construction
        self.healed = 0  # gaps closed by the re-sent records
        # envelopes applied that are the first part of an event at store position
        # <= head_limit: a replay sets the limit and compares the count with the store's
        self.head_limit = 0
        self.heads = 0
        self._consumer: Consumer | None = None
        self._admin: Admin | None = None
        self._cluster_id: str | None = None
        self._checked_at = 0.0
        self._warned_at = -1e9
        check_read_tables(engine, model)
        model.create(engine)
        ensure_tables(engine, [projection_offsets, projection_quarantine])
        _add_chain_columns(engine)

    # --- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Connect, find the partitions, resume from the stored positions.

        When the events topic does not have as many partitions as the stored positions (a
        client auto-created it with the broker's default count on a broker that came back
        empty, before the relay recreated it), no consumer is made: the skip rule holds per
        partition, and reading a topic partitioned otherwise would apply events twice. `step`
        then waits for the relay to recreate the topic (or for `rebate-ledger replay`)."""
        if self._consumer is not None:
            return
        if self._admin is None:
            self._admin = self.transport.admin()
        partitions = ensure_topics(self._admin, self.settings)[self.topic]
        self._cluster_id = self._admin.cluster_id()
        self._checked_at = time.monotonic()
        self._load()
        if self.state and len(self.state) != partitions:
            self._partitions_differ(partitions)
            return
        with Session(self.engine) as session, session.begin():
            for partition in range(partitions):
                if partition not in self.state:
                    self.state[partition] = PartitionState(0, 0, -1, 0, self._cluster_id)
                    session.execute(insert(projection_offsets).values(
                        topic=self.topic, partition=partition, next_offset=0, position=0,
                        part=-1, watermark=0, cluster_id=self._cluster_id, link=None, gap=None,
                    ))
        if any(s.cluster_id != self._cluster_id for s in self.state.values()):
            self._log_replaced()
        self._consumer = self.transport.consumer()
        tps = [TopicPartition(self.topic, p) for p in sorted(self.state)]
        self._consumer.assign(tps)
        for tp in tps:
            self._consumer.seek(tp, self.state[tp.partition].next_offset)

    def _partitions_differ(self, partitions: int) -> None:
        if time.monotonic() - self._warned_at >= 30.0:
            self._warned_at = time.monotonic()
            LOG.warning(
                "projection %s: topic %s has %d partitions, its positions are for %d; waiting "
                "for the relay to recreate the topic with %d (if the count was changed on "
                "purpose, rebuild the projection: rebate-ledger replay %s)",
                self.model.name, self.topic, partitions, len(self.state), len(self.state),
                self.model.name,
            )

    def _load(self) -> None:
        with Session(self.engine) as session:
            rows = session.execute(
                select(projection_offsets).where(projection_offsets.c.topic == self.topic)
            ).all()
        self.state = {
            row.partition: PartitionState(
                int(row.next_offset), int(row.position), int(row.part), int(row.watermark),
                row.cluster_id, row.link, None if row.gap is None else int(row.gap),
            )
            for row in rows
        }

    def _log_replaced(self) -> None:
        """The broker is not the one the offsets are for: read everything again from 0, with a
        new consumer once the topic has the partitions the positions are for (`open`)."""
        self.reseeks += 1
        for state in self.state.values():
            state.next_offset = 0
            state.cluster_id = self._cluster_id
            state.link = state.gap = None  # the new log's chains are anchored anew
        with Session(self.engine) as session, session.begin():
            self._store(session, list(self.state))
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()

    def close(self) -> None:
        for client in (self._consumer, self._admin):
            if client is not None:
                client.close()
        self._consumer = self._admin = None

    def __enter__(self) -> ProjectionRunner:
        self.open()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- applying -------------------------------------------------------------------------

    def _store(self, session: Session, partitions: list[int]) -> None:
        table = projection_offsets
        session.execute(delete(table).where(table.c.topic == self.topic)
                        .where(table.c.partition.in_(partitions)))
        session.execute(insert(table), [
            {"topic": self.topic, "partition": p, "next_offset": s.next_offset,
             "position": s.position, "part": s.part, "watermark": s.watermark,
             "cluster_id": s.cluster_id, "link": s.link, "gap": s.gap}
            for p in partitions for s in [self.state[p]]
        ])

    def step(self, timeout_s: float | None = None) -> int:
        """Poll one batch (waiting up to `timeout_s`, default the runner's poll timeout) and
        apply it with the positions in one transaction; return the number of records read
        (0: nothing new within the timeout)."""
        self.open()
        if self._consumer is None:  # the topic's partitions differ: wait (see `open`)
            time.sleep(min(self.poll_timeout_s if timeout_s is None else timeout_s, 0.5))
            return 0
        assert self._admin is not None
        if time.monotonic() - self._checked_at >= self.cluster_check_s:
            self._checked_at = time.monotonic()
            cluster_id = self._admin.cluster_id()
            if cluster_id != self._cluster_id:
                self._cluster_id = cluster_id
                self._log_replaced()
                return 0
        records = self._consumer.poll(
            self.poll_records, self.poll_timeout_s if timeout_s is None else timeout_s
        )
        if not records:
            return 0
        # The broker may have been replaced by an empty one since the last check, and the
        # consumer may already read its refill: at the stored offsets, a refilled log holds
        # other records (the relay chunks it, and so places its watermarks, differently), and
        # applying them would make the skip rule drop the events in between. So a batch is
        # applied only once the cluster is known to be the one its offsets are for.
        cluster_id = self._admin.cluster_id()
        self._checked_at = time.monotonic()
        if cluster_id != self._cluster_id:
            self._cluster_id = cluster_id
            self._log_replaced()
            return 0
        self.apply_records(records)
        return len(records)

    def apply_records(self, records: list[Record]) -> None:
        """Apply records of the events topic (skipping what was applied) in one transaction."""
        # Decoding a batch makes millions of short-lived objects and no cycles worth chasing:
        # the cyclic collector would take 40 % of a replay (measured): ledger.gcpause.
        with paused_gc():
            self._apply_records(records)

    def _apply_records(self, records: list[Record]) -> None:
        before = {p: PartitionState(**vars(s)) for p, s in self.state.items()}
        items: list[Delivered] = []
        malformed: list[dict[str, Any]] = []
        touched: set[int] = set()
        skipped = held = healed = 0
        heads = 0
        for record in records:
            state = self.state.get(record.partition)
            if state is None or record.offset < state.next_offset or record.value is None:
                continue
            state.next_offset = record.offset + 1
            touched.add(record.partition)
            try:
                parsed, previous, head = _parse_linked(record)
            except MalformedRecord as error:
                malformed.append(self._quarantine_row(record, str(error)))
                continue
            if isinstance(parsed, Watermark):
                self._watermark(state, parsed, record.partition)
                continue
            if (parsed.position, parsed.part) <= (state.position, state.part):
                skipped += 1
                continue
            if previous is not None and head is not None:
                if not _follows(state, previous):
                    if previous[:2] == (state.position, state.part):
                        malformed.append(self._quarantine_row(record, (
                            f"chain broken: it follows position {previous.position} part "
                            f"{previous.part} with another link than the record applied "
                            "(this record or that one was altered)")))
                        continue
                    held += 1  # a gap: wait for the re-send (see the module's docstring)
                    if state.gap is None:
                        state.gap = parsed.position
                        LOG.warning("projection %s: gap on %s partition %d: %s", self.model.name,
                                    self.topic, record.partition,
                                    self._gap(record.partition, state).describe())
                    continue
                state.link = head.link
            elif state.link is not None:  # a downgrade: v1 after chained records
                malformed.append(self._quarantine_row(record, (
                    f"unchained: a v1 envelope (store position {parsed.position} part "
                    f"{parsed.part}) after chained v2 records on partition "
                    f"{record.partition}: forged, or sent by an old relay")))
                continue
            if state.gap is not None and parsed.position >= state.gap:
                state.gap = None
                healed += 1
            state.position, state.part = parsed.position, parsed.part
            if parsed.part == 0 and parsed.position <= self.head_limit:
                heads += 1
            items.append(parsed)
        if not touched:
            return
        try:
            with Session(self.engine) as session, session.begin():
                if items:
                    self.model.apply(session, items)
                if malformed:
                    session.execute(insert(projection_quarantine), malformed)
                self._store(session, sorted(touched))
        except BaseException:
            self.state = before  # the rows did not change: nor do the positions
            raise
        for row in malformed:
            LOG.error(
                "projection %s: quarantined %s partition %d offset %d (%s); the projection is "
                "incomplete until `rebate-ledger replay %s`",
                self.model.name, row["topic"], row["partition"], row["offset"], row["reason"],
                self.model.name,
            )
        self.applied += len(items)
        self.skipped += skipped
        self.quarantined += len(malformed)
        self.heads += heads
        self.held += held
        self.healed += healed

    def _watermark(self, state: PartitionState, mark: Watermark, partition: int) -> None:
        """Every event up to `mark.position` was delivered to the partition: its watermark,
        unless a gap is open there (then only what is applied, up to the gap, counts); a v2
        watermark whose chain head is past what was applied opens a gap (records missing at
        the tail)."""
        head = mark.head
        if head is not None and mark.partition == partition and state.gap is None \
                and (head.position, head.part) > (state.position, state.part):
            state.gap = head.position
            LOG.warning("projection %s: %s partition %d: the relay's watermark %d says the "
                        "chain reaches position %d part %d, the last record applied is "
                        "position %d part %d: records missing, waiting for a re-send",
                        self.model.name, self.topic, partition, mark.position, head.position,
                        head.part, state.position, state.part)
        if state.gap is None:
            state.watermark = max(state.watermark, mark.position)
        else:
            state.watermark = max(state.watermark, min(mark.position, state.gap - 1))

    def _gap(self, partition: int, state: PartitionState) -> Gap:
        assert state.gap is not None
        return Gap(partition, state.position, state.part, state.gap)

    def gaps(self) -> list[Gap]:
        """The partitions with a gap open: records held until the missing ones arrive."""
        return [self._gap(p, s) for p, s in sorted(self.state.items()) if s.gap is not None]

    def _quarantine_row(self, record: Record, reason: str) -> dict[str, Any]:
        value = bytes(record.value or b"")
        return {
            "topic": record.topic, "partition": record.partition, "offset": record.offset,
            "reason": reason[:1000], "value_prefix": value[:QUARANTINE_PREFIX_BYTES],
            "value_bytes": len(value), "quarantined_at": datetime.now(UTC),
        }

    def quarantined_records(self) -> list[QuarantinedRecord]:
        """The records this projection's database holds in quarantine, not cleared."""
        with Session(self.engine) as session:
            return quarantined_records(session)

    # --- progress -------------------------------------------------------------------------

    def min_watermark(self) -> int:
        """The lowest watermark read over every partition: the store position up to which
        every event is in the rows (0 before the first watermark on every partition)."""
        return min((s.watermark for s in self.state.values()), default=0)

    def caught_up_to(self) -> int:
        return self.min_watermark()

    def max_position(self) -> int:
        return max((s.position for s in self.state.values()), default=0)

    def caught_up(self, position: int) -> bool:
        return bool(self.state) and self.min_watermark() >= position

    def run_until(
        self,
        position: int,
        *,
        timeout_s: float = 600.0,
        on_progress: Callable[[ProjectionRunner], None] | None = None,
    ) -> None:
        """Apply until a watermark >= `position` has been read on every partition."""
        self.open()
        deadline = time.monotonic() + timeout_s
        while not self.caught_up(position):
            if time.monotonic() > deadline:
                gaps = "; ".join(gap.describe() for gap in self.gaps())
                raise NotCaughtUp(
                    f"projection {self.model.name}: no watermark >= {position} on every "
                    f"partition of {self.topic} within {timeout_s:.0f} s (watermarks "
                    f"{ {p: s.watermark for p, s in self.state.items()} }); "
                    + (f"gaps on the log: {gaps}" if gaps else
                       "is a relay publishing this store to this broker?")
                )
            self.step()
            if on_progress is not None:
                on_progress(self)

    def run(self, stop: threading.Event, *, until_idle_s: float | None = None) -> None:
        """Apply until `stop` is set (or nothing new arrived for `until_idle_s`)."""
        self.open()
        idle_since = time.monotonic()
        while not stop.is_set():
            if self.step():
                idle_since = time.monotonic()
            elif until_idle_s is not None and time.monotonic() - idle_since >= until_idle_s:
                return


_HEAD_TYPES: dict[str, type] = {
    "event_id": str, "type": str, "schema_version": int, "aggregate_id": str,
    "aggregate_version": int, "valid_time": str, "recorded_time": str, "position": int,
    "part": int, "parts": int, "key": str, "payload": dict,
}


def _follows(state: PartitionState, previous: ChainHead) -> bool:
    """Whether a v2 record whose predecessor is `previous` comes next on the partition. With no
    link known (v1 records applied before, or a log replaced since) the chain is anchored at
    the first v2 record that follows what was applied, or starts a chain."""
    if state.link is None:
        return previous == GENESIS or previous[:2] == (state.position, state.part)
    return previous == state.head


def _add_chain_columns(engine: Engine) -> None:
    """projection_offsets of a database made before envelope v2 gains `link` and `gap`."""
    columns = {c["name"] for c in inspect(engine).get_columns(projection_offsets.name)}
    missing = [name for name in ("link", "gap") if name not in columns]
    if missing:
        kinds = {"link": "VARCHAR(64)", "gap": "BIGINT"}
        with engine.begin() as connection:
            for name in missing:
                connection.exec_driver_sql(
                    f"ALTER TABLE {projection_offsets.name} ADD COLUMN {name} {kinds[name]}")


Linked = tuple[Watermark | Delivered, ChainHead | None, ChainHead | None]


def _parse_linked(record: Record) -> Linked:
    """The record as a watermark or a delivered event, and for a v2 envelope its predecessor
    and itself as chain heads, its link checked; MalformedRecord (with the reason) for anything
    else, and for a v2 record whose bytes do not hash to its link (altered)."""
    assert record.value is not None
    try:
        kind = _kind(record)
        if kind == WATERMARK_KIND:
            return Watermark.model_validate_json(record.value), None, None
        if kind is None:
            parsed = parse_record(record.value)
            if isinstance(parsed, Watermark):
                return parsed, None, None
            _check_schema_version(parsed.type, parsed.schema_version)
            linked: Linked = (
                Delivered(parsed.position, parsed.part, parsed.key, parsed.event_id,
                          parsed.event()), parsed.previous, parsed.head)
        else:
            linked = delivered_linked(record.value)
    except MalformedRecord:
        raise
    except orjson.JSONDecodeError as error:
        raise MalformedRecord(f"not JSON: {error}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        reason = " ".join(str(error).split())
        raise MalformedRecord(f"not a readable envelope: {reason[:600]}") from None
    delivered, _, head = linked
    if head is not None and link_of(record.value) != head.link:
        assert isinstance(delivered, Delivered)
        raise MalformedRecord(
            f"altered: the bytes of the record for store position {delivered.position} part "
            f"{delivered.part} do not hash to its link")
    return linked


def _parse(record: Record) -> Watermark | Delivered:
    """The record as a watermark or a delivered event; MalformedRecord (with the reason) for
    anything else."""
    return _parse_linked(record)[0]


def _check_schema_version(event_type: str, version: int) -> None:
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise MalformedRecord(f"unknown event type {event_type!r}")
    if not 1 <= version <= cls.SCHEMA_VERSION:
        raise MalformedRecord(
            f"{event_type} schema_version {version} unknown to this reader (it reads 1 to "
            f"{cls.SCHEMA_VERSION}: upgrade rebate-ledger)"
        )


_V2_TYPES: dict[str, type] = {
    "previous_position": int, "previous_part": int, "previous_link": str, "link": str,
}
_HEAD_NAMES, _HEAD_KINDS = tuple(_HEAD_TYPES), tuple(_HEAD_TYPES.values())
_V2_NAMES, _V2_KINDS = tuple(_V2_TYPES), tuple(_V2_TYPES.values())


def delivered_of(value: bytes) -> Delivered:
    """What a projection needs of an envelope record (v1 or v2): the head's types checked
    here, the payload validated when it is decoded into its event; a record of any other shape
    goes through the envelope's full validation (and its error)."""
    return delivered_linked(value)[0]


def delivered_linked(value: bytes) -> tuple[Delivered, ChainHead | None, ChainHead | None]:
    """`delivered_of`, with a v2 envelope's predecessor and itself as chain heads (the link
    is not checked here: `_parse_linked` does)."""
    data = orjson.loads(value)
    version = data.get("envelope_version", 1) if isinstance(data, dict) else 1
    if version not in (1, 2):
        raise MalformedRecord(
            f"envelope_version {version!r} unknown to this reader (it reads 1 and 2: upgrade "
            "rebate-ledger)"
        )
    # each head value's exact type, as `type(value) is kind` name by name, in C (`map`): a
    # class equals only itself, so the tuples are equal exactly when every type is the kind
    if not (
        isinstance(data, dict)
        and data.get("envelope_version") == version
        and len(data) == len(_HEAD_TYPES) + 1 + (len(_V2_TYPES) + 1 if version == 2 else 0)
        and tuple(map(type, map(data.get, _HEAD_NAMES))) == _HEAD_KINDS
        and data["position"] >= 1 and data["part"] >= 0
        and (version == 1 or (
            tuple(map(type, map(data.get, _V2_NAMES))) == _V2_KINDS
            and type(data.get("store_hash", 0)) in (str, type(None))
            and data["previous_position"] >= 0 and data["previous_part"] >= -1))
    ):
        envelope = Envelope.model_validate(data)
        _check_schema_version(envelope.type, envelope.schema_version)
        return (Delivered(envelope.position, envelope.part, envelope.key, envelope.event_id,
                          envelope.event()), envelope.previous, envelope.head)
    _check_schema_version(data["type"], data["schema_version"])
    cls = EVENT_TYPES[data["type"]]
    # `decode_event` without resolving a topic (the envelope's type names the class)
    event = event_of(cls, {SCHEMA_VERSION_KEY: data["schema_version"], **data["payload"]})
    if isinstance(event, SalesRecorded):
        _share_recorded_times(event, data["payload"])
    delivered = Delivered(data["position"], data["part"], data["key"], data["event_id"], event)
    if version == 1:
        return delivered, None, None
    previous = ChainHead(data["previous_position"], data["previous_part"],
                         data["previous_link"])
    return delivered, previous, ChainHead(data["position"], data["part"], data["link"])


def _share_recorded_times(event: SalesRecorded, payload: dict[str, Any]) -> None:
    """Lines of a sales batch whose recorded times were the same text share one datetime, as
    in the batch `apply` made (decoding made one per line): the projection's row building
    converts a recorded time to microseconds once per run of lines sharing it (`to_us` took
    about 7 % of the liability projection's CPU, once per line, profiled on 200k sales).
    The values are unchanged: equal text decodes to equal datetimes."""
    columns = payload.get("sales")
    texts = columns.get("recorded_at") if isinstance(columns, dict) else None
    times = event.sales.recorded_at
    if not isinstance(texts, list) or len(texts) != len(times):
        return  # an older schema's shape (upcast): nothing shared
    for i in range(1, len(times)):
        if texts[i] == texts[i - 1]:
            times[i] = times[i - 1]


def _kind(record: Record) -> bytes | None:
    for name, value in record.headers:
        if name == KIND_HEADER:
            return value
    return None
