"""Intake: applies the commands that arrive on Kafka, exactly once in effect.

It reads two topics in one consumer group (default `<prefix>intake`, e.g. `rebate.intake`: the
workers of one ledger share it, ledgers with other topic prefixes never do):

- `<prefix>sales`: sales from an ERP, one contract `record_sale` or `reverse_sale` per record;
  any other command there is rejected (the rule: the sales topic carries sales only);
- `<prefix>commands`: any contract command, one per record.

Each polled batch is applied through `Ledger.apply_records` in ONE database transaction that
also stores, in the table `intake_positions` of the store, the next offset to read of every
partition in the batch. Inside that transaction, after the writer lock, the stored positions
are read again and records below them are skipped: two workers that both hold a partition for
a moment during a rebalance, or a worker that reads again what it applied before a crash,
never apply a record twice. On (re)assignment the consumer starts each partition at its stored
position; offsets are also committed to Kafka after each batch, for monitoring only.

A record that cannot be applied (empty, not JSON, not an object, not a valid command, a broken
rule, not a sale on the sales topic, or one whose handling raised) is kept in the ledger's
`rejections` table with source `kafka:<topic>/<partition>@<offset>`, and produced to
`<prefix>rejected` with its original bytes as value, its key, and headers `ledger-reason`,
`ledger-field`, `ledger-command-type`, `ledger-source-topic`, `ledger-source-partition`,
`ledger-source-offset`. Those records are flushed before the database commit, so none is
lost; a crash in between re-sends them (at least once), with the same source headers, by
which a reader recognises a repeat. Intake never stops or stalls on a bad record: when
applying a batch raises anything but an outage (Kafka or the database unreachable, retried as
a whole), the batch is rolled back and applied again in halves, down to the one record that
raises, which is rejected with the error as its reason (issue 15: one record with a
`recorded_at` out of range put intake in a crash loop, and the good records polled with it
never applied).

Positions carry the cluster id of the broker they were read from: the embedded broker starts
EMPTY with a new id after a restart (docs/kafka-notes.md), and positions of a log that is gone
must not hide the new log's records, so positions of another cluster count as 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from consumers.topics import COMMANDS, REJECTED, SALES, ensure_topics
from consumers.transport import (
    Admin,
    Consumer,
    Producer,
    Record,
    TopicPartition,
    Transport,
    TransportError,
)
from ledger import commands as c
from ledger.core import ApplyReport, Ledger, SourcedCommand
from ledger.errors import InvalidCommand, Rejection, RuleViolation, StoreDamaged
from ledger.gcpause import paused_gc
from ledger.handlers import RejectionRecord
from ledger.kafka.settings import KafkaSettings
from ledger.store import ensure_tables

LOG = logging.getLogger("consumers.intake")

def intake_group(settings: KafkaSettings) -> str:
    """The default consumer group of the intake workers (they share the partitions of both
    topics): named after the topic prefix, so two ledgers on one cluster never share one."""
    return f"{settings.topic_prefix}intake"

#: The command types the sales topic carries.
SALE_TYPES = frozenset({"record_sale", "reverse_sale"})
#: How often an idle intake asks the broker for its cluster id (a change: the log is new); it
#: also asks after every poll that returned records, before applying them.
CLUSTER_CHECK_S = 5.0
#: How long `run(until_idle_s=…)` waits for a first assignment before counting idle time.
JOIN_WAIT_S = 30.0
#: How long records may wait, unapplied, with no position in the store moving (by this worker
#: or any other of the group), before intake reports its group stalled (issue 15: after a
#: broker restart a group applied nothing for minutes while 22,000 records waited).
STALL_S = 60.0
#: How often an idle intake compares the store's positions with the partitions' high-water
#: marks (and how long it must have been idle first).
WAITING_CHECK_S = 5.0
#: Exit status of `rebate-ledger intake` when its group is stalled (1 and 2 mean input errors).
EXIT_STALLED = 3
#: How long closing the Kafka clients may take when intake stops (a client of a stuck group
#: can wait on the coordinator for minutes; Ctrl-C must not).
CLOSE_TIMEOUT_S = 3.0
#: The rejections table keeps a line number as a 32-bit integer; larger offsets keep 0 there
#: (the source `…@offset` still names the record).
LINE_NUMBER_MAX = 2**31 - 1
#: How much of an error's text a rejection keeps, when handling a record raised.
ERROR_TEXT_MAX = 500

REASON_HEADER = "ledger-reason"
FIELD_HEADER = "ledger-field"
TYPE_HEADER = "ledger-command-type"
SOURCE_TOPIC_HEADER = "ledger-source-topic"
SOURCE_PARTITION_HEADER = "ledger-source-partition"
SOURCE_OFFSET_HEADER = "ledger-source-offset"

intake_metadata = MetaData()

intake_positions = Table(
    "intake_positions",
    intake_metadata,
    # the full topic name (e.g. `rebate.sales`) and partition the position is for
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    # the offset of the next record to apply: every record below it is applied (or rejected)
    Column("next_offset", BigInteger, nullable=False),
    # the cluster the offsets are of: positions of another cluster (a lost log) count as 0
    Column("cluster_id", String(255), nullable=True),
    # when the row was last written, µs since the Unix epoch (UTC)
    Column("updated_us", BigInteger, nullable=False),
)


class IntakeStalled(RuntimeError):
    """Records wait on the intake topics and no position in the store has moved for
    `STALL_S`: the group applies nothing (a stuck rebalance, a member that never polls)."""


def source_of(record: Record) -> str:
    """How a rejection names its record: `kafka:<topic>/<partition>@<offset>`."""
    return f"kafka:{record.topic}/{record.partition}@{record.offset}"


def line_number(offset: int) -> int:
    """A record's number in the report and its rejection (the `line` of a file's): its offset,
    or 0 when the offset is beyond what a line number holds."""
    return offset if offset <= LINE_NUMBER_MAX else 0


def _now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


@dataclass
class IntakeCounters:
    """Totals since the intake was made."""

    records: int = 0  # records polled
    applied: int = 0  # commands accepted (duplicates included)
    duplicates: int = 0  # sales sent again with identical fields
    rejected: int = 0  # records rejected (and produced to the rejected topic)
    skipped: int = 0  # records below the stored position: applied by an earlier transaction
    gaps: int = 0  # batches that started above the stored position of a partition
    batches: int = 0  # transactions committed
    reopened: int = 0  # times the Kafka clients were made anew (errors, a new cluster)
    stalls: int = 0  # times records waited with no position moving for the stall time
    unhandled: int = 0  # records rejected because handling them raised (counted in rejected)
    by_type: dict[str, int] = field(default_factory=dict)


class Intake:
    """Applies the sales and commands topics of `settings` to the store of `ledger`.

    `group_id`: the consumer group its workers share. `poll_records`: records per poll and per
    transaction (default `LEDGER_KAFKA_INTAKE_POLL_RECORDS`, 50,000). `commit_to_kafka`: also
    commit offsets to the group after each batch (for monitoring; the positions in the store
    are the truth).
    """

    def __init__(
        self,
        ledger: Ledger,
        transport: Transport,
        settings: KafkaSettings,
        *,
        group_id: str | None = None,
        poll_records: int | None = None,
        poll_timeout_s: float = 0.5,
        commit_to_kafka: bool = True,
        flush_timeout_s: float | None = None,
    ) -> None:
        poll_records = poll_records or settings.intake_poll_records
        assert 1 <= poll_records <= 100_000, poll_records
        assert 0 <= poll_timeout_s <= 60, poll_timeout_s
        group_id = group_id or intake_group(settings)
        self.ledger = ledger
        self.engine: Engine = ledger.engine
        self.transport = transport
        self.settings = settings
        self.group_id = group_id
        self.poll_records = poll_records
        self.poll_timeout_s = poll_timeout_s
        self.commit_to_kafka = commit_to_kafka
        delivery_s = max(settings.send_timeout_ms, settings.request_timeout_ms) / 1000
        self.flush_timeout_s = flush_timeout_s or min(delivery_s + 30.0, 600.0)
        self.sales_topic = settings.topic(SALES)
        self.commands_topic = settings.topic(COMMANDS)
        self.rejected_topic = settings.topic(REJECTED)
        self.counters = IntakeCounters()
        #: Every partition this worker was ever assigned (for tests and monitoring).
        self.assigned_ever: set[TopicPartition] = set()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._admin: Admin | None = None
        self._cluster_id: str | None = None
        self._cluster_checked = 0.0
        self._assign_error: Exception | None = None
        self._positions_seen: dict[TopicPartition, int] | None = None
        self._positions_moved = time.monotonic()
        self._waiting_checked = 0.0
        #: Records polled by `wait_for_assignment`: the next `run_once` applies them first.
        self._early: list[Record] = []
        ensure_tables(self.engine, [intake_positions])

    # --- positions in the store -----------------------------------------------------------

    def stored_positions(self) -> dict[TopicPartition, int]:
        """The next offset to apply of every partition the store has applied records of
        (positions of another cluster than the current one included, as stored)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    intake_positions.c.topic,
                    intake_positions.c.partition,
                    intake_positions.c.next_offset,
                )
            )
            return {TopicPartition(r.topic, r.partition): int(r.next_offset) for r in rows}

    def _read_positions(
        self, connection: Any, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, tuple[int, str | None]]:
        wanted = list(partitions)
        if not wanted:
            return {}
        rows = connection.execute(
            select(
                intake_positions.c.topic,
                intake_positions.c.partition,
                intake_positions.c.next_offset,
                intake_positions.c.cluster_id,
            ).where(
                or_(
                    *(
                        and_(
                            intake_positions.c.topic == p.topic,
                            intake_positions.c.partition == p.partition,
                        )
                        for p in wanted
                    )
                )
            )
        )
        return {
            TopicPartition(r.topic, r.partition): (int(r.next_offset), r.cluster_id)
            for r in rows
        }

    def _start_of(self, stored: tuple[int, str | None] | None) -> int:
        """Where a partition resumes: its stored position, 0 if none or of another cluster."""
        if stored is None:
            return 0
        offset, cluster_id = stored
        known = cluster_id is not None and self._cluster_id is not None
        return 0 if known and cluster_id != self._cluster_id else offset

    def waiting(self) -> dict[TopicPartition, int]:
        """Records that wait unapplied, per partition of the sales and commands topics: the
        partition's high-water mark, fetched for each partition from the broker, less the
        store's position (the truth, whichever worker applied them). The embedded broker's
        marks can be too small, never too large, so what this finds waits for certain; what
        sits in a partition's last record batch past its first offset can go unseen."""
        self.open()
        assert self._admin is not None
        topics = self._admin.list_topics()
        partitions = [
            TopicPartition(topic, partition)
            for topic in (self.sales_topic, self.commands_topic)
            for partition in range(topics.get(topic, 0))
        ]
        checker = self.transport.consumer()
        try:
            marks = checker.end_offsets(partitions)
        finally:
            checker.close()
        with self.engine.connect() as connection:
            stored = self._read_positions(connection, partitions)
        waiting = {p: marks[p] - self._start_of(stored.get(p)) for p in partitions}
        return {p: count for p, count in waiting.items() if count > 0}

    def _positions_moved_since(self, now: float) -> float:
        """Seconds since a position in the store last moved (as seen at each call)."""
        positions = self.stored_positions()
        if positions != self._positions_seen:
            self._positions_seen, self._positions_moved = positions, now
        return now - self._positions_moved

    def _stalled(self, waiting: Mapping[TopicPartition, int], still_s: float) -> IntakeStalled:
        shown = ", ".join(f"{p.topic}/{p.partition}: {n:,}" for p, n in sorted(waiting.items()))
        return IntakeStalled(
            f"intake group {self.group_id} is stalled: at least {sum(waiting.values()):,} "
            f"records wait ({shown}) and no position in the store moved for {still_s:.0f} s "
            f"(this worker holds {len(self.assignment())} partitions); check the broker and "
            "the group's members, then restart intake"
        )

    def _on_assign(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.assigned_ever.update(partitions)
        try:
            with self.engine.connect() as connection:
                stored = self._read_positions(connection, partitions)
        except Exception as error:
            # Raised inside the client's callback, an error is mangled (librdkafka: a
            # SystemError) or only logged (kafka-python); `run_once` raises it after the poll,
            # before applying anything read from positions that were not set
            self._assign_error = error
            return {}
        starts = {p: self._start_of(stored.get(p)) for p in partitions}
        LOG.info("intake %s: assigned %s", self.group_id, sorted(starts.items()))
        return starts

    # --- Kafka clients --------------------------------------------------------------------

    def open(self) -> None:
        """Make the clients (if not made yet): creates missing topics, joins the group."""
        if self._consumer is not None:
            return
        admin = self._admin = self.transport.admin()
        self._cluster_id = admin.cluster_id()
        self._cluster_checked = time.monotonic()
        ensure_topics(admin, self.settings)
        # made now: librdkafka's idempotent producer needs 0.5-1 s for its producer id, which
        # a first rejection would otherwise wait for while holding the writer lock
        self._get_producer()
        consumer = self.transport.consumer(self.group_id)
        consumer.subscribe(
            [self.sales_topic, self.commands_topic], on_assign=self._on_assign
        )
        self._consumer = consumer

    def _get_producer(self) -> Producer:
        if self._producer is None:
            self._producer = self.transport.producer()
        return self._producer

    def close(self, timeout_s: float | None = None) -> None:
        """Leave the group and release the clients (not the ledger); `open` or the next
        `run_once` makes new ones. `timeout_s`: give up waiting after that long (the clients
        are then left to the process's exit: a stuck group's coordinator can hold a close for
        minutes)."""
        consumer, producer, admin = self._consumer, self._producer, self._admin
        self._consumer = self._producer = self._admin = None
        self._early = []  # a new consumer reads them again from the stored positions

        def close_all() -> None:
            for client in (consumer, producer, admin):
                if client is not None:
                    try:
                        client.close()
                    except Exception:  # closing a broken client must not hide the first error
                        LOG.debug("closing a Kafka client failed", exc_info=True)

        if timeout_s is None:
            close_all()
            return
        closing = threading.Thread(target=close_all, name="intake-close", daemon=True)
        closing.start()
        closing.join(timeout_s)
        if closing.is_alive():
            LOG.warning("intake: the Kafka clients did not close within %.0f s", timeout_s)

    def reopen(self) -> None:
        """After a failure: new clients. The new consumer starts from the stored positions, so
        a batch that was polled but not committed is read again."""
        self.close(CLOSE_TIMEOUT_S)
        self.counters.reopened += 1

    def __enter__(self) -> Intake:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def assignment(self) -> set[TopicPartition]:
        return self._consumer.assignment() if self._consumer is not None else set()

    def wait_for_assignment(self, timeout_s: float = 120.0) -> int:
        """Make the clients and poll until the group has assigned this worker its partitions,
        as a service does once when it starts (the embedded broker's join takes about 5 s:
        docs/kafka-notes.md). The polls ask for one record each; what they return (a
        record at most per poll) is kept, in order, and applied first by the next `run_once`
        (`run`), so nothing is skipped; closing the clients drops it (the next consumer reads
        it again from the stored positions). Returns how many records were kept. Raises
        `TimeoutError` after `timeout_s` without an assignment: the group's coordinator does
        not answer, or other members hold every partition."""
        started = time.monotonic()
        self.open()
        while not self.assignment():
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(
                    f"intake: group {self.group_id} assigned no partition of "
                    f"{self.sales_topic} or {self.commands_topic} in {timeout_s:.0f} s; check "
                    f"the broker, or that the group has fewer members than partitions"
                )
            assert self._consumer is not None
            self._early += self._consumer.poll(1, 0.2)
        return len(self._early)

    def _cluster_changed(self) -> bool:
        """Whether the broker now reports another cluster id than when the clients were made
        (the embedded broker came back empty); the clients are then dropped."""
        assert self._admin is not None
        self._cluster_checked = time.monotonic()
        cluster_id = self._admin.cluster_id()
        if cluster_id is None or self._cluster_id is None or cluster_id == self._cluster_id:
            return False
        LOG.warning(
            "intake: cluster id %s -> %s: the broker's log is new; rejoining",
            self._cluster_id, cluster_id,
        )
        self.reopen()
        return True

    # --- applying -------------------------------------------------------------------------

    def _command_of(self, record: Record, plain_tried: bool = False) -> SourcedCommand:
        """`plain_tried`: `commands.plain_sale` has had the value and left it (the rest of
        `parse_line` reads it)."""
        value = record.value
        source = source_of(record)
        number = line_number(record.offset)
        if not value:
            problem: Rejection = InvalidCommand(
                "", f"the record has no value; a record on {record.topic} is one JSON command"
            )
            return SourcedCommand(number, b"", None, problem, source)
        try:
            command = c.validated_line(value) if plain_tried else c.parse_line(value)
        except InvalidCommand as error:
            kind = c.command_type_of_line(value) if record.topic == self.sales_topic else ""
            if kind in c.COMMAND_TYPES and kind not in SALE_TYPES:  # the first thing wrong
                return SourcedCommand(number, value, None, self._not_a_sale(kind), source)
            return SourcedCommand(number, value, None, error, source)
        if record.topic == self.sales_topic and command.kind not in SALE_TYPES:
            return SourcedCommand(number, value, None, self._not_a_sale(command.kind), source)
        return SourcedCommand(number, value, command, None, source)

    def _not_a_sale(self, kind: str) -> RuleViolation:
        return RuleViolation(
            "type",
            f"{kind} is not a sale: the sales topic {self.sales_topic} carries record_sale "
            f"and reverse_sale only; send other commands to {self.commands_topic}",
        )

    def _command_or_unhandled(self, record: Record, plain_tried: bool = False
                              ) -> SourcedCommand:
        """`_command_of`, or the record rejected with the error if reading it raised."""
        try:
            return self._command_of(record, plain_tried)
        except Exception as error:
            if is_outage(error):
                raise
            return self._unhandled(record, error)

    def _unhandled(self, record: Record, error: BaseException, *,
                   safe_text: bool = False) -> SourcedCommand:
        """`record` rejected because handling it raised `error`; `safe_text`: its text kept
        with backslash escapes (no NUL, no invalid UTF-8) for a store that refused the raw
        text too."""
        LOG.warning("intake: %s could not be applied: %r", source_of(record), error)
        value = record.value or b""
        line: bytes | str = value
        if safe_text:
            line = value.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
        # the error's text may quote the record: no NUL or lone surrogate reaches the store
        said = str(error)[:ERROR_TEXT_MAX].replace("\x00", "\\x00")
        said = said.encode("utf-8", "backslashreplace").decode("utf-8")
        problem = InvalidCommand(
            "", f"the record could not be applied ({type(error).__name__}: {said}); it is "
            f"kept on {self.rejected_topic} and intake went on"
        )
        return SourcedCommand(line_number(record.offset), line, None, problem,
                              source_of(record))

    def apply(self, records: list[Record]) -> ApplyReport:
        """Apply one polled batch in one transaction with its positions; produce its
        rejections to the rejected topic before the commit. Records below the stored
        positions are skipped. Offsets are committed to Kafka afterwards (best effort).

        If the transaction raises anything but an outage (`is_outage`), nothing of it is
        kept and the batch is applied again in two halves, in order, recursively: the one
        record that raises is rejected with the error as its reason and every other record
        applies, so a poison record costs about 2·log2(batch) transactions."""
        # the parse too, as `apply_lines` pauses it for its chunks (the transaction's own
        # pause began after it): with the collector on, parsing 50,000 sales lines took
        # 0.63 s of CPU against 0.45-0.53 s paused, and parsing is about half of intake's work
        with paused_gc(self.ledger.settings.pause_gc_in_batches):
            return self._apply_or_split(records, self._commands_of(records))

    def _commands_of(self, records: list[Record]) -> list[SourcedCommand]:
        """`_command_or_unhandled` of every record; an ordinary sale line (the bulk of the
        sales topic) is taken by `commands.plain_sale` here, what `parse_line` would do first,
        without the calls around it (the rest as one record at a time). A sale is welcome on
        both topics."""
        plain_sale_tried, make = c.plain_sale_tried, SourcedCommand
        commands: list[SourcedCommand] = []
        append = commands.append
        for record in records:
            value = record.value
            sale, plain_tried = plain_sale_tried(value)
            if sale is not None:  # then `value` is bytes
                append(make(line_number(record.offset), value, sale, None,  # type: ignore[arg-type]
                            source_of(record)))
                continue
            append(self._command_or_unhandled(record, plain_tried))
        return commands

    def _apply_or_split(
        self, records: list[Record], commands: list[SourcedCommand]
    ) -> ApplyReport:
        try:
            return self._apply_batch(records, commands)
        except Exception as error:
            if is_outage(error):
                raise
            if len(records) > 1:
                LOG.warning("intake: a batch of %d records raised %r; applying it in halves",
                            len(records), error)
                half = len(records) // 2
                report = self._apply_or_split(records[:half], commands[:half])
                merge_reports(report, self._apply_or_split(records[half:], commands[half:]))
                return report
            record, = records
            try:
                report = self._apply_batch(records, [self._unhandled(record, error)])
            except Exception as again:  # the store refused even its text: keep it escaped
                if is_outage(again):
                    raise
                report = self._apply_batch(
                    records, [self._unhandled(record, error, safe_text=True)]
                )
            self.counters.unhandled += 1
            return report

    def _apply_batch(
        self, records: list[Record], commands: list[SourcedCommand]
    ) -> ApplyReport:
        # the lowest and the next offset of every partition in the batch (keyed by plain
        # tuples in the loop, which runs once per record: a TopicPartition equals its tuple)
        lowest: dict[tuple[str, int], int] = {}
        highest: dict[tuple[str, int], int] = {}
        for topic, partition, offset, *_ in records:
            key = (topic, partition)
            if offset > highest.get(key, -1):
                highest[key] = offset
            if offset < lowest.get(key, offset + 1):
                lowest[key] = offset
        batch_next = {TopicPartition(*key): offset + 1 for key, offset in highest.items()}
        batch_first = {TopicPartition(*key): offset for key, offset in lowest.items()}
        skipped = 0

        def skip_applied(session: Session) -> Collection[int]:
            nonlocal skipped
            connection = session.connection()
            stored = self._read_positions(connection, batch_next)
            starts = {tp: self._start_of(stored.get(tp)) for tp in batch_next}
            for tp, first in batch_first.items():
                if first > starts[tp]:
                    # Kafka offsets may have holes (transaction markers, compaction); from
                    # the ledger's own producers they should not: say so
                    self.counters.gaps += 1
                    LOG.warning(
                        "intake: %s/%d resumes at %d but the store's position is %d",
                        tp.topic, tp.partition, first, starts[tp],
                    )
            # no record below its partition's stored position (the usual batch): none to look
            # for one by one
            skip = set() if all(first >= starts[tp] for tp, first in batch_first.items()) else {
                index
                for index, record in enumerate(records)
                if record.offset < starts[TopicPartition(record.topic, record.partition)]
            }
            skipped = len(skip)
            now_us = _now_us()
            for tp, next_offset in batch_next.items():
                values = {
                    "next_offset": max(next_offset, starts[tp]),
                    "cluster_id": self._cluster_id,
                    "updated_us": now_us,
                }
                if tp in stored:
                    connection.execute(
                        update(intake_positions)
                        .where(intake_positions.c.topic == tp.topic)
                        .where(intake_positions.c.partition == tp.partition)
                        .values(**values)
                    )
                else:
                    connection.execute(
                        insert(intake_positions).values(
                            topic=tp.topic, partition=tp.partition, **values
                        )
                    )
            return skip

        def before_commit(_: Session, rejected: list[RejectionRecord]) -> None:
            if rejected:
                by_source = {
                    command.source: record
                    for command, record in zip(commands, records, strict=True)
                }
                self._produce_rejections(rejected, by_source)

        report = self.ledger.apply_records(
            commands, skip_applied=skip_applied, before_commit=before_commit
        )
        counters = self.counters
        counters.batches += 1
        counters.records += len(records)
        counters.skipped += skipped
        counters.applied += report.accepted + len(report.duplicates)
        counters.duplicates += len(report.duplicates)
        counters.rejected += len(report.rejected)
        for kind, count in report.by_type.items():
            counters.by_type[kind] = counters.by_type.get(kind, 0) + count
        if self.commit_to_kafka and self._consumer is not None:
            try:
                self._consumer.commit(batch_next)
            except TransportError as error:  # monitoring only: the store has the truth
                LOG.info("intake: offsets not committed to Kafka: %s", error)
        return report

    def _produce_rejections(
        self, rejected: list[RejectionRecord], by_source: Mapping[str, Record]
    ) -> None:
        producer = self._get_producer()
        for rejection in rejected:
            record = by_source[rejection.source]
            headers = [
                (REASON_HEADER, rejection.reason.encode()),
                (FIELD_HEADER, rejection.field.encode()),
                (TYPE_HEADER, rejection.command_type.encode()),
                (SOURCE_TOPIC_HEADER, record.topic.encode()),
                (SOURCE_PARTITION_HEADER, str(record.partition).encode()),
                (SOURCE_OFFSET_HEADER, str(record.offset).encode()),
            ]
            producer.send(self.rejected_topic, record.key, record.value or b"", headers)
        producer.flush(self.flush_timeout_s)

    def run_once(self, timeout_s: float | None = None) -> int:
        """One poll (waiting up to `timeout_s`, default `poll_timeout_s`) and one transaction;
        return the records read (0: nothing new). On any error the clients are dropped (the
        next call rejoins and resumes from the stored positions) and the error raised."""
        try:
            self.open()
            assert self._consumer is not None
            if self._early:  # polled while waiting for the assignment: read before the rest
                records, self._early = self._early, []
            else:
                records = self._consumer.poll(
                    self.poll_records, self.poll_timeout_s if timeout_s is None else timeout_s
                )
            if self._assign_error is not None:
                error, self._assign_error = self._assign_error, None
                raise error
            # Checked after the poll and before applying: records from a broker that came back
            # empty would otherwise be taken for the old log's (their offsets start again at
            # 0), and when idle, since a consumer may stall on the new cluster
            idle_check = time.monotonic() - self._cluster_checked >= CLUSTER_CHECK_S
            if (records or idle_check) and self._cluster_changed():
                return 0  # not applied: the new consumer reads them again
            if records:
                self.apply(records)
            return len(records)
        except BaseException:
            self.reopen()
            raise

    def run(
        self,
        stop: threading.Event,
        *,
        until_idle_s: float | None = None,
        retry_sleep_s: float = 1.0,
        on_batch: Callable[[Intake], None] | None = None,
        stall_s: float = STALL_S,
        on_stall: Callable[[IntakeStalled], None] | None = None,
    ) -> None:
        """Apply until `stop` is set, or (with `until_idle_s`) until no record came for that
        long once partitions were assigned (or for `JOIN_WAIT_S` more without any) AND no
        record waits (`waiting`). Kafka and database outages are logged and retried after
        `retry_sleep_s` with new clients; the stored positions make the retry exact.

        Records that wait while no position in the store moves for `stall_s` mean a stalled
        group: with `until_idle_s`, `IntakeStalled` is raised (never a quiet exit with records
        unread); without, `on_stall` is told and the clients are made anew (a rejoin)."""
        started = idle_since = time.monotonic()
        self._positions_seen, self._positions_moved = None, started
        joined = False
        while not stop.is_set():
            try:
                count = self.run_once()
            except (TransportError, OperationalError) as error:
                LOG.warning("intake: %s; retrying in %.1f s", error, retry_sleep_s)
                stop.wait(retry_sleep_s)
                continue
            now = time.monotonic()
            if not joined and self.assignment():
                joined, idle_since = True, now
            if count:
                idle_since = now
                if on_batch is not None:
                    on_batch(self)
                continue
            idle_done = until_idle_s is not None and (
                (joined and now - idle_since >= until_idle_s)
                or (not joined and now - started >= until_idle_s + JOIN_WAIT_S)
            )
            # a worker about to exit checks every second; one that idles, every few seconds
            interval = 1.0 if idle_done else min(WAITING_CHECK_S, stall_s)
            if now - self._waiting_checked < interval or (
                    not idle_done and now - idle_since < interval):
                continue
            self._waiting_checked = now
            try:
                waiting = self.waiting()
                still_s = self._positions_moved_since(now)
            except (TransportError, OperationalError) as error:
                LOG.warning("intake: cannot compare positions with the topics: %s", error)
                continue
            if not waiting:
                if idle_done:
                    return
                continue
            if still_s < stall_s:
                continue
            self.counters.stalls += 1
            stalled = self._stalled(waiting, still_s)
            if until_idle_s is not None:
                raise stalled
            LOG.warning("%s", stalled)
            if on_stall is not None:
                on_stall(stalled)
            self.reopen()
            self._positions_moved = now


# --- the ERP stand-in: JSON Lines to a topic ----------------------------------------------


class KeyMemory:
    """Partition keys for commands, so that what must stay in order lands on one partition:
    `agreement_id` when the command has one, else the agreement of its claim (from the
    `submit_claim` seen before), else `group_id`, else `customer_id`, else the customer of
    its sale (from the `record_sale` seen before), else its `sale_id`/`claim_id`; None for a
    line that is not a JSON object."""

    ENTRIES_MAX = 10_000_000

    def __init__(self) -> None:
        self.sale_customers: dict[str, str] = {}
        self.claim_agreements: dict[str, str] = {}

    def key(self, line: bytes) -> bytes | None:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict):
            return None
        agreement_id, customer_id = obj.get("agreement_id"), obj.get("customer_id")
        sale_id, claim_id = obj.get("sale_id"), obj.get("claim_id")
        remember = len(self.sale_customers) + len(self.claim_agreements) < self.ENTRIES_MAX
        if isinstance(agreement_id, str):
            if isinstance(claim_id, str) and remember:
                self.claim_agreements[claim_id] = agreement_id
            return agreement_id.encode()
        group_id = obj.get("group_id")
        if isinstance(group_id, str):  # a group's joins and leaves stay in recorded order
            return group_id.encode()
        if isinstance(claim_id, str):
            return self.claim_agreements.get(claim_id, claim_id).encode()
        if isinstance(customer_id, str):
            if isinstance(sale_id, str) and remember:
                self.sale_customers[sale_id] = customer_id
            return customer_id.encode()
        if isinstance(sale_id, str):
            return self.sale_customers.get(sale_id, sale_id).encode()
        return None


def produce_lines(
    producer: Producer,
    topic: str,
    lines: Iterable[bytes],
    *,
    key_field: str | None = None,
    constant_key: bytes | None = None,
    flush_timeout_s: float = 120.0,
    on_record: Callable[[int], None] | None = None,
) -> int:
    """Send every non-blank line (line ending removed) as one record to `topic`, in order,
    then wait until Kafka has them all; return the records sent. Key: `constant_key` if
    given (every record on one partition: the file's order kept across commands), else the
    line's `key_field` (a `reverse_sale` without it: its sale's, from the line that recorded
    it), else `KeyMemory`'s. `on_record(bytes)` after each line read."""
    memory = KeyMemory()
    count = 0
    for line in lines:
        value = line.rstrip(b"\r\n")
        if value.strip():
            if constant_key is not None:
                key: bytes | None = constant_key
            elif key_field is not None:
                key = _field_key(value, key_field, memory)
            else:
                key = memory.key(value)
            producer.send(topic, key, value)
            count += 1
        if on_record is not None:
            on_record(len(line))
    producer.flush(flush_timeout_s)
    return count


def _field_key(value: bytes, name: str, memory: KeyMemory) -> bytes | None:
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    key, sale_id = obj.get(name), obj.get("sale_id")
    if isinstance(key, str):
        if isinstance(sale_id, str) and len(memory.sale_customers) < memory.ENTRIES_MAX:
            memory.sale_customers[sale_id] = key
        return key.encode()
    if isinstance(sale_id, str):
        return memory.sale_customers.get(sale_id, sale_id).encode()
    return None


# --- the commands ---------------------------------------------------------------------------


def main_intake(
    ledger: Ledger,
    settings: KafkaSettings,
    home: Path,
    *,
    group_id: str | None = None,
    until_idle_s: float | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """`rebate-ledger intake`: apply the sales and commands topics of the configured cluster
    (else the running `rebate-ledger broker` of `home`, else an embedded broker of its own)
    until Ctrl-C / SIGTERM, or until idle for `until_idle_s`. Returns the exit status."""
    from consumers.transport import transport
    from ledger.kafka.broker import broker_bootstrap

    with broker_bootstrap(settings.bootstrap, home) as bootstrap:
        intake = Intake(ledger, transport(settings, bootstrap), settings, group_id=group_id)
        with intake:
            echo(
                f"intake: {intake.sales_topic} and {intake.commands_topic} at {bootstrap} "
                f"({settings.client}), group {intake.group_id}"
            )
            shown = [time.monotonic()]

            def progress(part: Intake) -> None:
                if time.monotonic() - shown[0] >= 2.0:
                    shown[0] = time.monotonic()
                    echo(_summary(part))

            stop = threading.Event()
            previous = signal.getsignal(signal.SIGTERM)
            # SIGTERM as Ctrl-C (a handler that set `stop` could deadlock on the event's lock)
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            if until_idle_s is None:
                echo("intake: running; Ctrl-C stops it")
            status = 0
            try:
                intake.run(stop, until_idle_s=until_idle_s, on_batch=progress,
                           on_stall=lambda stalled: echo(f"intake: {stalled}"))
            except KeyboardInterrupt:
                pass
            except IntakeStalled as stalled:
                echo(f"intake: {stalled}")
                status = EXIT_STALLED
            finally:
                signal.signal(signal.SIGTERM, previous)
                intake.close(CLOSE_TIMEOUT_S)  # Ctrl-C is not held up by a stuck group
            echo(_summary(intake) + ("; stopped" if status == 0 else "; STALLED"))
    return status


def is_outage(error: BaseException) -> bool:
    """Whether `error` says Kafka or the database is unreachable, not that a record is bad: an
    outage is retried with the whole batch (the stored positions make that exact); anything
    else raised while applying is the records' fault and is isolated to the one record. A
    store that refuses every write (StoreDamaged: its chain emptied, a read table dropped) is
    no record's fault either: the batch is not rejected record by record, the error stops the
    worker with what to do (issue 12 point 7)."""
    if isinstance(error, StoreDamaged):
        return True
    if isinstance(error, TransportError | OperationalError | InterfaceError | DisconnectionError
                  | TimeoutError | ConnectionError):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


def merge_reports(report: ApplyReport, other: ApplyReport) -> None:
    """Add `other`'s counts to `report` (the halves of a split batch)."""
    report.accepted += other.accepted
    report.duplicates.extend(other.duplicates)
    report.rejected.extend(other.rejected)
    report.by_type.update(other.by_type)


def _summary(intake: Intake) -> str:
    n = intake.counters
    return (
        f"intake: {n.records:,} records: {n.applied:,} applied ({n.duplicates:,} duplicates), "
        f"{n.rejected:,} rejected to {intake.rejected_topic}, {n.skipped:,} already applied"
    )
