"""The relay: publishes every stored event, in store order, to the events topic.

It reads the store's notification log (`recorder.select_notifications`) from the position it
last confirmed, wraps each event in an envelope (`ledger.events.envelope`; a `SalesRecorded`
batch split per customer into parts), keys it by customer id, and sends it. Once Kafka has
acknowledged every record of a chunk (`flush`), it sends a watermark `{"control": "watermark",
"position": P}` to EVERY partition of the events topic, flushes again, and only then stores P in
the `relay_state` table of the store. A crash therefore re-sends (consumers skip what they
have seen by `(position, part)`), and never loses.

Envelope v2 (issue 12): the relay sends each record to the partition Kafka's partitioner gives
its key (`ledger.kafka.ports.partition_of`, explicitly, so it knows which partition's chain the
record extends), and chains it to the record it sent before to that partition
(`ledger.events.envelope.link_record`), with the event's store hash from the store's chain. The
head of each partition's chain is stored in `relay_heads` with the confirmed position, in one
transaction, so a re-send after a failed delivery or a crash repeats the very same records: a
consumer that saw a later record before an earlier one that timed out (a gap) finds the missing
one in the re-send, in the chain's order, and dedupes the rest.

A broker that came back empty is detected on every `run_once`: the cluster id differs from the
one stored with the position (the embedded broker gets a new id at every start), or the events
topic is missing. The relay then republishes the whole store from position 1 (a refill).

The store serialises its writers (`ledger.store.lock_writer`; eventsourcing also locks the
events table on PostgreSQL), so notification ids become visible in increasing order and a
position read once never has a smaller one committed behind it.

Run one relay per store: a second one is harmless (each sends every event in store order, so a
consumer's dedup rule only sees duplicates) but doubles the traffic.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from eventsourcing.utils import get_topic
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError

from consumers.topics import EVENTS, ensure_topics
from consumers.transport import Admin, Producer, Transport, TransportError
from ledger.audit.chain import event_chain
from ledger.core import Ledger
from ledger.events import LedgerEvent, SalesRecorded
from ledger.events.codec import SCHEMA_VERSION_KEY, decode_event, encode_event
from ledger.events.envelope import (
    ENVELOPE_KIND,
    GENESIS,
    KIND_HEADER,
    WATERMARK_KIND,
    ChainHead,
    envelope_bytes,
    event_id_of,
    link_record,
    split_sales,
    watermark_bytes,
)
from ledger.kafka.ports import partition_of
from ledger.kafka.settings import KafkaSettings
from ledger.projections.core import agreements
from ledger.store import ensure_tables

LOG = logging.getLogger("consumers.relay")

EVENT_HEADERS = [(KIND_HEADER, ENVELOPE_KIND)]
WATERMARK_HEADERS = [(KIND_HEADER, WATERMARK_KIND)]

#: Notifications read from the store per query (a SalesRecorded holds up to a chunk of sales).
READ_NOTIFICATIONS = 100
#: Records sent before the relay flushes, sends watermarks and stores its position.
CHUNK_RECORDS = 50_000
#: While idle, `run` asks the broker whether it was reset at most this often (seconds)
BROKER_CHECK_S = 5.0

relay_metadata = MetaData()

relay_state = Table(
    "relay_state",
    relay_metadata,
    # the full name of the topic the position is for (e.g. `rebate.events`)
    Column("topic", String(255), primary_key=True),
    # the last store position whose events (and a watermark) Kafka has acknowledged
    Column("position", BigInteger, nullable=False),
    # the cluster those records went to: a different one now means the log was lost
    Column("cluster_id", String(255), nullable=True),
    # the events topic's partition count when the position was stored: per-partition order
    # (and the projections' skip rule) holds only while it stays the same
    Column("partitions", Integer, nullable=True),
    # when the row was last written, µs since the Unix epoch (UTC)
    Column("updated_us", BigInteger, nullable=False),
)

#: The head of each partition's chain (envelope v2) at the position stored in relay_state,
#: written in the same transaction; none for a partition nothing was sent to yet.
relay_heads = Table(
    "relay_heads",
    relay_metadata,
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("position", BigInteger, nullable=False),
    Column("part", Integer, nullable=False),
    Column("link", String(64), nullable=False),
)


class RelayError(RuntimeError):
    """The relay cannot publish an event (its partition key cannot be found)."""


@dataclass(frozen=True)
class RelayPosition:
    position: int
    cluster_id: str | None
    partitions: int | None = None


def _now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


class Relay:
    """Publishes the store's events to `<prefix>events`.

    It reads `ledger`'s notification log (`ledger.app.recorder`) and keeps its position in
    the `relay_state` table of the same database (`ledger.engine`). It keeps one producer and
    one admin client, made by `transport`; `close()` releases them (not the ledger).
    """

    def __init__(
        self,
        ledger: Ledger,
        transport: Transport,
        settings: KafkaSettings,
        *,
        chunk_records: int = CHUNK_RECORDS,
        read_notifications: int = READ_NOTIFICATIONS,
        flush_timeout_s: float | None = None,
    ) -> None:
        assert 1 <= chunk_records <= 1_000_000, chunk_records
        assert 1 <= read_notifications <= 10_000, read_notifications
        self.ledger = ledger
        self.engine: Engine = ledger.engine
        self.recorder: Any = ledger.app.recorder
        self.transport = transport
        self.settings = settings
        self.topic = settings.topic(EVENTS)
        self.chunk_records = chunk_records
        self.read_notifications = read_notifications
        delivery_s = max(settings.send_timeout_ms, settings.request_timeout_ms) / 1000
        self.flush_timeout_s = flush_timeout_s or min(delivery_s + 30.0, 600.0)
        self._producer: Producer | None = None
        self._producer_cluster: str | None = None  # the cluster id it was made for
        self._admin: Admin | None = None
        self._customers: dict[str, str] = {}  # agreement id -> customer id
        #: Totals since construction: events (records) published, refills done.
        self.published = 0
        self.refills = 0
        self._partition_of: dict[tuple[bytes, int], int] = {}
        ensure_tables(self.engine, [relay_state, relay_heads])
        columns = {c["name"] for c in inspect(self.engine).get_columns("relay_state")}
        if "partitions" not in columns:  # a store made before the column existed
            with self.engine.begin() as connection:
                connection.execute(text("ALTER TABLE relay_state ADD COLUMN partitions INTEGER"))

    # --- the stored position --------------------------------------------------------------

    def stored(self) -> RelayPosition:
        """The position (and cluster id) last stored for the events topic; 0 if none."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(
                    relay_state.c.position, relay_state.c.cluster_id, relay_state.c.partitions
                ).where(relay_state.c.topic == self.topic)
            ).first()
        if row is None:
            return RelayPosition(0, None)
        return RelayPosition(int(row.position), row.cluster_id, row.partitions)

    def _store(self, position: int, cluster_id: str | None, partitions: int,
               heads: dict[int, ChainHead] | None = None) -> None:
        """Store the position; with `heads`, the partitions' chain heads at it (position 0:
        none, every chain starts again)."""
        values = {"position": position, "cluster_id": cluster_id, "partitions": partitions,
                  "updated_us": _now_us()}
        with self.engine.begin() as connection:
            done = connection.execute(
                update(relay_state).where(relay_state.c.topic == self.topic).values(**values)
            )
            if done.rowcount == 0:
                connection.execute(insert(relay_state).values(topic=self.topic, **values))
            if heads is not None or position == 0:
                connection.execute(relay_heads.delete().where(relay_heads.c.topic == self.topic))
            rows = [{"topic": self.topic, "partition": p, "position": h.position,
                     "part": h.part, "link": h.link}
                    for p, h in sorted((heads or {}).items()) if h != GENESIS]
            if rows:
                connection.execute(insert(relay_heads), rows)

    def heads(self, partitions: int) -> dict[int, ChainHead]:
        """The head of each partition's chain at the stored position (GENESIS where none)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(relay_heads).where(relay_heads.c.topic == self.topic)).all()
        heads = dict.fromkeys(range(partitions), GENESIS)
        for row in rows:
            if row.partition < partitions:
                heads[int(row.partition)] = ChainHead(int(row.position), int(row.part), row.link)
        return heads

    def rewind(self, position: int) -> int:
        """Make the next run re-send every event after store `position` (heal a gap a
        consumer names: records lost from the log after the relay had confirmed them). The
        partitions' chain heads at `position` are recomputed from the store (no record is
        sent), so the re-sent records are the very ones sent before: consumers dedupe what
        they have and take what they lacked. Returns the position rewound to."""
        stored = self.stored()
        assert position >= 0, position
        position = min(position, stored.position)
        partitions = stored.partitions
        if partitions is None:  # nothing published with a known partition count yet
            return 0
        if position == 0:
            self._store(0, stored.cluster_id, partitions)
            return 0
        heads = dict.fromkeys(range(partitions), GENESIS)
        last = 0
        while last < position:
            notifications = self.recorder.select_notifications(
                start=last + 1, limit=self.read_notifications, stop=position)
            if not notifications:
                break
            hashes = self._store_hashes(notifications[0].id, notifications[-1].id)
            for n in notifications:
                for part, (key, unlinked) in enumerate(self.records(n.id, n.topic, n.state)):
                    partition = self._partition(key, partitions)
                    _, link = link_record(unlinked, heads[partition], hashes.get(n.id))
                    heads[partition] = ChainHead(n.id, part, link)
                last = n.id
        self._store(position, stored.cluster_id, partitions, heads)
        return position

    def _store_hashes(self, first: int, last: int) -> dict[int, str]:
        """The store chain's hash of each position from `first` to `last`."""
        with self.engine.connect() as connection:
            return {int(p): h for p, h in connection.execute(
                select(event_chain.c.position, event_chain.c.store_hash)
                .where(event_chain.c.position.between(first, last)))}

    # --- Kafka clients --------------------------------------------------------------------

    def _get_admin(self) -> Admin:
        if self._admin is None:
            self._admin = self.transport.admin()
        return self._admin

    def _get_producer(self, cluster_id: str | None) -> Producer:
        if self._producer is not None and self._producer_cluster != cluster_id:
            # made for a cluster that is gone: it could never deliver (docs/kafka-notes.md,
            # quirk 2), and would only time out
            producer, self._producer = self._producer, None
            producer.close()
        if self._producer is None:
            self._producer = self.transport.producer()
            self._producer_cluster = cluster_id
        return self._producer

    def _drop_clients(self) -> None:
        """After a failure: a producer that outlived a broker restart can never deliver again
        (docs/kafka-notes.md, quirk 2), so both clients are made anew on the next run."""
        producer, admin = self._producer, self._admin
        self._producer = self._admin = None
        for client in (producer, admin):
            if client is not None:
                try:
                    client.close()
                except Exception:  # closing a broken client must not hide the first error
                    LOG.debug("closing a Kafka client failed", exc_info=True)

    def close(self) -> None:
        self._drop_clients()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- publishing -----------------------------------------------------------------------

    def _customer_of(self, event: LedgerEvent) -> str:
        period = getattr(event, "period", None)
        if isinstance(period, str) and getattr(event, "agreement_id", None) is None:
            return f"period:{period}"  # a period close: ledger-wide, keyed by its period
        customer = getattr(event, "customer_id", None)
        agreement_id = getattr(event, "agreement_id", None)
        group = getattr(event, "group_id", None)
        if not isinstance(customer, str) and isinstance(group, str):
            customer = f"group:{group}"  # a group and its agreements: keyed by the group
        if isinstance(customer, str):
            if isinstance(agreement_id, str):
                self._customers[agreement_id] = customer
            return customer
        if not isinstance(agreement_id, str):
            raise RelayError(
                f"event {event.event_type()} {event.originator_id}/{event.originator_version} "
                "has neither customer_id nor agreement_id: no partition key"
            )
        customer = self._customers.get(agreement_id)
        if customer is None:
            with self.engine.connect() as connection:
                found = connection.execute(
                    select(agreements.c.customer_id, agreements.c.group_id).where(
                        agreements.c.agreement_id == agreement_id
                    )
                ).first()
            if found is not None:
                customer = found[0] if found[0] is not None else f"group:{found[1]}"
            if customer is None:
                raise RelayError(
                    f"agreement_id {agreement_id!r} of event {event.event_type()} is not in "
                    "core_agreements: the store's core projection is incomplete; rebuild it"
                )
            self._customers[agreement_id] = customer
        return customer

    def records(self, position: int, topic: str, state: bytes) -> list[tuple[bytes, bytes]]:
        """The (key, value) records of one stored event at `position`."""
        if topic == SALES_TOPIC and state.startswith(SALES_CURRENT):
            return sales_records(position, state)
        event = decode_event(topic, state)
        if isinstance(event, SalesRecorded):
            parts = split_sales(event)
            count = len(parts)
            return [
                (
                    customer.encode(),
                    envelope_bytes(
                        part, encode_event(part), position, customer, part=index, parts=count
                    ),
                )
                for index, (customer, part) in enumerate(parts)
            ]
        key = self._customer_of(event)
        current = b'{"%s":%d,' % (SCHEMA_VERSION_KEY.encode(), type(event).SCHEMA_VERSION)
        if not state.startswith(current):  # stored at an older version: publish it upcast
            state = encode_event(event)
        return [(key.encode(), envelope_bytes(event, state, position, key))]

    def _broker_check(self, stored: RelayPosition) -> tuple[str | None, int, bool]:
        """The cluster id, the events topic's partition count, and whether the broker lost
        what was published to it (and must be refilled). Creates missing topics."""
        admin = self._get_admin()
        cluster_id = admin.cluster_id()
        topic_exists = self.topic in admin.list_topics()
        lost = stored.position > 0 and (
            not topic_exists
            or (
                stored.cluster_id is not None
                and cluster_id is not None
                and cluster_id != stored.cluster_id
            )
        )
        partitions = ensure_topics(admin, self.settings).get(self.topic)
        if not partitions:
            raise TransportError(f"topic {self.topic} still missing after creating it")
        if admin.cluster_id() != cluster_id:
            # the broker was replaced between the two questions (seen in CI: the id came from
            # the old broker, the partition count from the new one, which a consumer's metadata
            # request had just given the broker's default count): ask again on the next run
            raise TransportError(f"the cluster behind {self.topic} changed during the check")
        wanted = stored.partitions
        if wanted is not None and partitions != wanted:
            if not (lost or stored.position == 0):
                raise RelayError(
                    f"topic {self.topic} has {partitions} partitions, but this store's events "
                    f"were published to {wanted}: each customer's order and the projections' "
                    f"positions hold only while the count stays the same. Give the topic back "
                    f"its {wanted} partitions, or delete it: the relay then republishes the "
                    "store and the projections read it again"
                )
            # Nothing of ours is on this log: a client made the topic with the broker's
            # default count (the embedded broker creates a topic on any metadata request for
            # it, whatever the client asks) before the relay could.
            LOG.warning(
                "topic %s has %d partitions on the new broker, the ledger publishes to %d: "
                "recreating it", self.topic, partitions, wanted,
            )
            admin.delete_topics([self.topic])
            admin.create_topics([self.topic], wanted)
            partitions = admin.list_topics().get(self.topic)
            if partitions != wanted:
                raise TransportError(
                    f"topic {self.topic}: recreated with {wanted} partitions, found "
                    f"{partitions}; retrying"
                )
        return cluster_id, partitions, lost

    def run_once(self, max_notifications: int | None = None) -> int:
        """Publish every event stored up to now (at most `max_notifications` of them) after
        the stored position; return how many records (events and parts) were published.
        Refills a broker that came back empty. Raises TransportError when Kafka fails; the
        position is then where the last confirmed chunk left it."""
        assert max_notifications is None or max_notifications >= 1, max_notifications
        try:
            return self._run_once(max_notifications)
        except BaseException:
            self._drop_clients()
            raise

    def _run_once(self, max_notifications: int | None) -> int:
        stored = self.stored()
        cluster_id, partitions, lost = self._broker_check(stored)
        position = stored.position
        if lost:
            LOG.warning(
                "topic %s lost its records (cluster %s, stored %s, position %d): "
                "republishing the store from position 1",
                self.topic, cluster_id, stored.cluster_id, stored.position,
            )
            self.refills += 1
            position = 0
            self._store(0, cluster_id, partitions)
        elif stored.cluster_id != cluster_id or stored.partitions != partitions:
            self._store(position, cluster_id, partitions)
        end = self.recorder.max_notification_id() or 0
        if max_notifications is not None:
            end = min(end, position + max_notifications)
        # (a store position can be skipped by PostgreSQL's sequence; `end` bounds the work)
        producer = self._get_producer(cluster_id)
        # the chains as confirmed: a re-send from there repeats exactly the same records
        heads = self.heads(partitions) if position > 0 else dict.fromkeys(
            range(partitions), GENESIS)
        published = pending = 0
        last = confirmed = position
        while last < end:
            notifications = self.recorder.select_notifications(
                start=last + 1, limit=self.read_notifications, stop=end
            )
            if not notifications:
                break
            hashes = self._store_hashes(notifications[0].id, notifications[-1].id)
            for n in notifications:
                store_hash = hashes.get(n.id)
                for part, (key, unlinked) in enumerate(self.records(n.id, n.topic, n.state)):
                    partition = self._partition(key, partitions)
                    value, link = link_record(unlinked, heads[partition], store_hash)
                    heads[partition] = ChainHead(n.id, part, link)
                    producer.send(self.topic, key, value, EVENT_HEADERS, partition=partition)
                    pending += 1
                last = n.id
            if pending >= self.chunk_records:
                self._confirm(producer, last, partitions, cluster_id, heads)
                published, pending, confirmed = published + pending, 0, last
        if last > confirmed:
            self._confirm(producer, last, partitions, cluster_id, heads)
            published += pending
        self.published += published
        return published

    def has_new(self) -> bool:
        """Whether the store holds an event after the stored position (two small queries;
        no broker call)."""
        return (self.recorder.max_notification_id() or 0) > self.stored().position

    def _partition(self, key: bytes, partitions: int) -> int:
        found = self._partition_of.get((key, partitions))
        if found is None:
            if len(self._partition_of) >= 100_000:  # bounded: customers are many at scale
                self._partition_of.clear()
            found = self._partition_of[(key, partitions)] = partition_of(key, partitions)
        return found

    def _confirm(
        self, producer: Producer, position: int, partitions: int, cluster_id: str | None,
        heads: dict[int, ChainHead],
    ) -> None:
        """Wait for every record sent, then watermark `position` on every partition (with the
        head of its chain), wait, and store `position` with the heads."""
        producer.flush(self.flush_timeout_s)
        for partition in range(partitions):
            mark = watermark_bytes(position, partition, heads[partition])
            producer.send(self.topic, None, mark, WATERMARK_HEADERS, partition=partition)
        producer.flush(self.flush_timeout_s)
        self._store(position, cluster_id, partitions, heads)

    def run(
        self,
        stop: threading.Event,
        idle_sleep_s: float = 0.2,
        *,
        on_published: Callable[[int, int], None] | None = None,
        retry_sleep_s: float = 1.0,
    ) -> None:
        """Publish until `stop` is set: whatever is new, then wait `idle_sleep_s` when nothing
        was. Kafka and database outages are logged and retried after `retry_sleep_s` (with new
        Kafka clients);
        `on_published(records, position)` is called after each run that published."""
        assert 0 <= idle_sleep_s <= 60, idle_sleep_s
        checked = -math.inf  # when run_once last asked the broker (monotonic seconds)
        while not stop.is_set():
            try:
                # Idle, the broker is asked at most every BROKER_CHECK_S (a refill after a
                # broker reset waits that long at most): its five admin calls per loop cost
                # a tenth of a core while the relay had nothing to publish
                if time.monotonic() - checked < BROKER_CHECK_S and not self.has_new():
                    stop.wait(idle_sleep_s)
                    continue
                checked = time.monotonic()
                count = self.run_once()
            except (TransportError, OperationalError) as error:
                # Kafka or the database is away: nothing was stored past what was confirmed
                LOG.warning("relay: %s; retrying in %.1f s", error, retry_sleep_s)
                checked = -math.inf
                stop.wait(retry_sleep_s)
                continue
            if count and on_published is not None:
                on_published(count, self.stored().position)
            if not count:
                stop.wait(idle_sleep_s)


SALES_TOPIC = get_topic(SalesRecorded)
SALES_CURRENT = b'{"%s":%d,' % (SCHEMA_VERSION_KEY.encode(), SalesRecorded.SCHEMA_VERSION)


def sales_records(position: int, state: bytes) -> list[tuple[bytes, bytes]]:
    """The records of a stored `SalesRecorded` at the current schema version, split per
    customer: the same bytes as `envelope_bytes(part, encode_event(part), ...)` for each part
    of `split_sales(decode_event(...))` (a test holds them equal), made from the stored JSON
    directly, which is 4 times faster than validating and re-encoding the batch."""
    data = orjson.loads(state)
    data.pop(SCHEMA_VERSION_KEY)
    sales, reversals = data["sales"], data["reversals"]
    groups: dict[str, tuple[list[int], list[int]]] = {}
    for index, customer in enumerate(sales["customer_id"]):
        groups.setdefault(customer, ([], []))[0].append(index)
    for index, customer in enumerate(reversals["customer_id"]):
        groups.setdefault(customer, ([], []))[1].append(index)
    invoice_dates, reversal_dates = sales["invoice_date"], reversals["reversed_on"]
    aggregate_id, version = data["originator_id"], data["originator_version"]
    head: dict[str, Any] = {
        "envelope_version": 1,
        "event_id": event_id_of(aggregate_id, version),
        "type": SalesRecorded.event_type(),
        "schema_version": SalesRecorded.SCHEMA_VERSION,
        "aggregate_id": aggregate_id,
        "aggregate_version": version,
        "valid_time": None,
        # as pydantic parses it, so that orjson writes it as envelope_bytes does
        "recorded_time": datetime.fromisoformat(data["recorded_at"]),
        "position": position,
        "part": 0,
        "parts": len(groups),
        "key": None,
        "payload": None,
    }
    records = []
    for part, (customer, (rows, reversed_rows)) in enumerate(groups.items()):
        payload = dict(data)
        payload["sales"] = {name: [column[i] for i in rows] for name, column in sales.items()}
        payload["reversals"] = {
            name: [column[i] for i in reversed_rows] for name, column in reversals.items()
        }
        # ISO dates order as text the way the dates do
        valid = max(
            max((invoice_dates[i] for i in rows), default=""),
            max((reversal_dates[i] for i in reversed_rows), default=""),
        )
        head["valid_time"], head["part"], head["key"] = valid, part, customer
        head["payload"] = payload
        records.append((customer.encode(), orjson.dumps(head)))
    return records


def main_relay(
    ledger: Ledger,
    settings: KafkaSettings,
    home: Path,
    *,
    once: bool = False,
    echo: Callable[[str], None] = print,
    from_position: int | None = None,
) -> int:
    """`rebate-ledger relay`: publish `ledger`'s events to the configured cluster, else the
    running `rebate-ledger broker` of `home`, else an embedded broker of its own (refilled from
    the store, and stopped on exit); once, or until Ctrl-C / SIGTERM. Returns the exit status."""
    from consumers.transport import transport
    from ledger.kafka.broker import broker_bootstrap

    with broker_bootstrap(settings.bootstrap, home) as bootstrap:
        relay = Relay(ledger, transport(settings, bootstrap), settings)
        with relay:
            if from_position is not None:
                rewound = relay.rewind(max(from_position - 1, 0))
                echo(f"relay: re-sending every event after store position {rewound}")
            echo(
                f"relay: store position {relay.stored().position} -> {relay.topic} at "
                f"{bootstrap} ({settings.client})"
            )
            if once:
                count = relay.run_once()
                echo(f"relay: published {count} records; store position {relay.stored().position}")
                return 0
            stop = threading.Event()
            previous = signal.getsignal(signal.SIGTERM)
            # SIGTERM as Ctrl-C: a handler that set `stop` could deadlock on the event's own
            # lock, held by the main thread when the signal arrives inside `stop.wait`
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            echo("relay: running; Ctrl-C stops it")
            try:
                relay.run(
                    stop,
                    on_published=lambda count, position: echo(
                        f"relay: published {count} records; store position {position}"
                    ),
                )
            except KeyboardInterrupt:
                pass
            finally:
                signal.signal(signal.SIGTERM, previous)
            echo(f"relay: stopped at store position {relay.stored().position}")
    return 0


def check_events_log(ledger: Any) -> tuple[list[Any], int]:
    """`verify --log`: publish the store to the events topic (the embedded broker unless one
    is configured), read the topic back and check every record against what the relay
    publishes for its stored position. The breaks, and how many records were read."""
    from sqlalchemy.orm import Session

    from consumers.topics import read_events_log
    from consumers.transport import transport
    from ledger.audit.chain import verify_log
    from ledger.config import Settings
    from ledger.kafka.broker import broker_bootstrap
    from ledger.kafka.settings import KafkaSettings
    from replay.rebuild import publish_store

    settings = KafkaSettings()
    with broker_bootstrap(settings.bootstrap, Settings().home) as bootstrap:
        kafka = transport(settings, bootstrap)
        position = publish_store(ledger, kafka, settings)
        records = read_events_log(kafka, settings, position)
        with Relay(ledger, kafka, settings) as relay, Session(ledger.engine) as session:
            breaks = verify_log(session, ledger.app.recorder, records, relay.records)
    breaks.extend(chain_breaks(records))
    breaks.sort(key=lambda b: b.position)
    return breaks, len(records)


def chain_breaks(records: list[Any]) -> list[Any]:
    """The events topic checked by its own chain (envelope v2), without the store: every
    altered record, gap (a record missing from a partition) and record out of order, as
    `verify` breaks that name the partition and offset."""
    from ledger.audit.chain import Break
    from ledger.events.envelope import LogChain

    chain = LogChain()
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.value is not None:
            chain.add(record.partition, record.offset, record.value)
    return [Break(problem.position, "?", None, None, f"log chain: {problem.line()}")
            for problem in chain.finish()]
