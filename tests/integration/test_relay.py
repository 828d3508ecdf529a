"""The relay on the real embedded broker: store order and keying, the envelope, watermarks,
restarts, `kill -9` at random moments, and a broker that comes back empty; both clients, and
SQLite and PostgreSQL where the store matters."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import update

from consumers.relay import Relay, RelayError, relay_state, sales_records
from consumers.topics import EVENTS, read_until_watermark
from consumers.transport import Record, Transport, TransportError, transport
from ledger import Ledger
from ledger.config import Settings
from ledger.events import SalesRecorded
from ledger.events.codec import decode_event, encode_event
from ledger.events.envelope import (
    ENVELOPE_KIND,
    KIND_HEADER,
    WATERMARK_KIND,
    Envelope,
    Watermark,
    envelope_bytes,
    parse_record,
    split_sales,
)
from ledger.kafka.broker import EmbeddedBroker
from ledger.kafka.settings import KafkaSettings
from tests.contract import helpers as h

from .conftest import settings_for

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
READ_TIMEOUT_S = 60.0
_PREFIXES = itertools.count(1)


def unique_settings(client: str, **overrides: object) -> KafkaSettings:
    """Test settings with a topic prefix no other test uses (the session broker is shared)."""
    prefix = f"relay{os.getpid()}x{next(_PREFIXES)}."
    values: dict[str, object] = {"partitions": PARTITIONS, **overrides}
    return settings_for(client, topic_prefix=prefix, **values)


# --- a book with every event type, several customers per sales batch ---------------------

CUSTOMERS = ("C1", "C2", "C3", "C4", "C5")


def book(sales_per_customer: int = 6, first_sale: int = 1) -> list[h.Command]:
    """Agreements for five customers, then amendments, forecasts, claims, write-offs and
    sales interleaved over the customers (so each sales batch holds several of them)."""
    commands: list[h.Command] = []
    for number, customer in enumerate(CUSTOMERS, start=1):
        commands.append(
            h.agreement(f"A{number}", customer_id=customer, tiers=(("0", "1"), ("10", "2")))
        )
    commands.append(h.amend("A2", "2025-04-01", tiers=h.tier_list((("0", "3"),))))
    commands.append(h.forecast("A3", "100", "2025-02-01"))
    sale_number = first_sale
    for round_ in range(sales_per_customer):
        for number, customer in enumerate(CUSTOMERS, start=1):
            commands.append(
                h.sale(
                    f"S{sale_number}", "5", "50",
                    (date(2025, 3, 1) + timedelta(days=round_ % 60)).isoformat(),
                    customer_id=customer, product_id=f"P{number}",
                )
            )
            sale_number += 1
    commands.append(h.reversal(f"S{first_sale}", "2025-05-01"))
    commands.append(h.submit("K1", "2", agreement_id="A1"))
    commands.append(h.approve("K1"))
    commands.append(h.settle("K1"))
    commands.append(h.submit("K2", "5", agreement_id="A4"))
    commands.append(h.reject("K2"))
    commands.append(h.write_off("1", "2025-06-30", agreement_id="A5"))
    return commands


def more_sales(first: int, count: int) -> list[h.Command]:
    return [
        h.sale(
            f"S{n}", "1", "10", f"2025-04-{n % 28 + 1:02d}",
            customer_id=CUSTOMERS[n % len(CUSTOMERS)], product_id="P9",
        )
        for n in range(first, first + count)
    ]


def small_chunks_ledger(url: str, chunk_lines: int = 7) -> Ledger:
    """A ledger committing every `chunk_lines` commands: many notifications, several sales
    batches each spanning customers."""
    return Ledger(url, settings=Settings(chunk_lines=chunk_lines))


def apply_clean(ledger: Ledger, commands: list[h.Command]) -> None:
    report = ledger.apply(commands)
    assert not report.rejected, report.to_dict()["rejections"]
    assert report.accepted == len(commands)


def store_end(ledger: Ledger) -> int:
    """The store's last position."""
    end = ledger.app.recorder.max_notification_id()
    assert isinstance(end, int) and end >= 1, end
    return end


def expected_orders(ledger: Ledger) -> dict[tuple[int, int], str]:
    """Every (position, part) the store holds, with its key, computed from the store alone."""
    expected: dict[tuple[int, int], str] = {}
    for n in ledger.app.recorder.select_notifications(start=1, limit=1_000_000):
        event = decode_event(n.topic, n.state)
        if isinstance(event, SalesRecorded):
            for part, (buyer, _) in enumerate(split_sales(event)):
                expected[(n.id, part)] = buyer
        else:
            # the book's agreement An belongs to customer number n
            agreement = int(getattr(event, "agreement_id", "A0")[1:])
            expected[(n.id, 0)] = getattr(event, "customer_id", None) or CUSTOMERS[agreement - 1]
    return expected


# --- reading the topic --------------------------------------------------------------------


def read_topic(
    kafka: Transport,
    topic: str,
    until_position: int,
    timeout_s: float = READ_TIMEOUT_S,
    partitions: int = PARTITIONS,
) -> list[Record]:
    """Every record of `topic` (all partitions, from the start) up to the point where each
    partition has carried a watermark >= `until_position`: never an end offset (Tansu's are
    wrong, docs/kafka-notes.md quirk 4)."""
    assert until_position > 0, until_position
    records = read_until_watermark(kafka, topic, until_position, partitions, timeout_s)
    assert all(record.value is not None for record in records)
    return records


def envelopes(records: list[Record]) -> list[tuple[Record, Envelope]]:
    found = []
    for record in records:
        assert record.value is not None
        message = parse_record(record.value)
        if isinstance(message, Envelope):
            found.append((record, message))
    return found


def dedup_apply(records: list[Record]) -> list[tuple[int, Envelope]]:
    """What a consumer following the contract applies: per partition, in offset order, an
    envelope only if its (position, part) is above the last one applied there."""
    by_partition: dict[int, list[Record]] = defaultdict(list)
    for record in records:
        by_partition[record.partition].append(record)
    applied: list[tuple[int, Envelope]] = []
    for partition, items in by_partition.items():
        last = (0, -1)
        for record in sorted(items, key=lambda r: r.offset):
            assert record.value is not None
            message = parse_record(record.value)
            if isinstance(message, Envelope) and message.order > last:
                last = message.order
                applied.append((partition, message))
    return applied


def check_exactly_once_in_order(
    records: list[Record], expected: dict[tuple[int, int], str]
) -> None:
    """Every stored (position, part) is on the topic; the dedup rule applies each exactly once,
    under its customer's key, and in store order per key."""
    on_topic = {envelope.order for _, envelope in envelopes(records)}
    missing = sorted(set(expected) - on_topic)
    assert not missing, f"{len(missing)} stored events never reached the topic: {missing[:5]}"
    applied = dedup_apply(records)
    orders = [envelope.order for _, envelope in applied]
    assert len(orders) == len(set(orders)), "an event was applied twice"
    assert set(orders) == set(expected)
    per_key: dict[str, list[tuple[int, int]]] = defaultdict(list)
    partition_of_key: dict[str, set[int]] = defaultdict(set)
    for partition, envelope in applied:
        assert envelope.key == expected[envelope.order]
        per_key[envelope.key].append(envelope.order)
        partition_of_key[envelope.key].add(partition)
    for key, orders_of_key in per_key.items():
        assert orders_of_key == sorted(orders_of_key), f"{key} out of store order"
        assert len(partition_of_key[key]) == 1, f"{key} on several partitions"


# --- tests --------------------------------------------------------------------------------


def test_the_fast_sales_split_writes_the_same_bytes_as_the_envelope_module(
    sqlite_url: str,
) -> None:
    """The relay builds sales parts from the stored JSON; they must be byte for byte what
    `envelope_bytes` makes of `split_sales` of the decoded event."""
    with small_chunks_ledger(sqlite_url, chunk_lines=40) as ledger:
        apply_clean(ledger, book())
        compared = with_reversals = 0
        for n in ledger.app.recorder.select_notifications(start=1, limit=1000):
            event = decode_event(n.topic, n.state)
            if not isinstance(event, SalesRecorded):
                continue
            parts = split_sales(event)
            slow = [
                (c.encode(), envelope_bytes(p, encode_event(p), n.id, c, part=i, parts=len(parts)))
                for i, (c, p) in enumerate(parts)
            ]
            assert sales_records(n.id, n.state) == slow
            compared += len(parts)
            with_reversals += sum(1 for _, part in parts if len(part.reversals))
        assert compared >= len(CUSTOMERS)
        assert with_reversals == 1


def test_store_order_keys_envelopes_and_watermarks(
    client: str, kafka_broker: EmbeddedBroker, database_url: str
) -> None:
    settings = unique_settings(client)
    kafka = transport(settings, kafka_broker.bootstrap)
    topic = settings.topic(EVENTS)
    with small_chunks_ledger(database_url) as ledger, Relay(ledger, kafka, settings) as relay:
        apply_clean(ledger, book())
        stored = {n.id: n for n in ledger.app.recorder.select_notifications(1, 10_000)}
        last = max(stored)
        # in two steps: a bounded run, then the rest
        first = relay.run_once(max_notifications=3)
        assert relay.stored().position == 3
        assert relay.stored().cluster_id == kafka_broker.cluster_id
        rest = relay.run_once()
        assert relay.stored().position == last
        assert relay.run_once() == 0  # nothing new: nothing sent
        expected = expected_orders(ledger)
        assert first + rest == len(expected)
        records = read_topic(kafka, topic, last)

    check_exactly_once_in_order(records, expected)
    # nothing re-sent: every record on the topic is there once
    assert len(envelopes(records)) == len(expected)
    for record, envelope in envelopes(records):
        assert record.headers == ((KIND_HEADER, ENVELOPE_KIND),)
        assert record.key == envelope.key.encode()
        n = stored[envelope.position]
        event = decode_event(n.topic, n.state)
        assert envelope.type == type(event).__name__
        assert envelope.schema_version == type(event).SCHEMA_VERSION
        assert envelope.aggregate_id == n.originator_id
        assert envelope.aggregate_version == n.originator_version
        assert envelope.event_id == f"{n.originator_id}/{n.originator_version}"
        assert envelope.recorded_time == event.recorded_at
        published = envelope.event()
        if isinstance(event, SalesRecorded):
            assert envelope.parts == len(split_sales(event))
            assert isinstance(published, SalesRecorded)
            lines = list(published.sales.rows()) + list(published.reversals.rows())
            assert {line.customer_id for line in lines} == {envelope.key}
            assert envelope.valid_time == published.valid_time
        else:
            assert (envelope.part, envelope.parts) == (0, 1)
            assert published.model_dump() == event.model_dump()
            assert envelope.valid_time == event.valid_time
    # every sale of the store is in exactly one part
    sale_ids = [
        sale_id
        for _, envelope in envelopes(records)
        if envelope.type == "SalesRecorded"
        for sale_id in envelope.payload["sales"]["sale_id"]
    ]
    assert sorted(sale_ids) == sorted(c["sale_id"] for c in book() if c["type"] == "record_sale")
    # watermarks: on every partition, after that partition's events of each step
    marks: dict[int, list[int]] = defaultdict(list)
    for record in records:
        assert record.value is not None
        message = parse_record(record.value)
        if isinstance(message, Watermark):
            assert record.headers == ((KIND_HEADER, WATERMARK_KIND),)
            assert record.key is None
            marks[record.partition].append(message.position)
        else:
            assert isinstance(message, Envelope)
            # an event never comes after a watermark that claims it delivered
            assert all(message.position > mark for mark in marks[record.partition])
    assert {p: m for p, m in marks.items()} == {p: [3, last] for p in range(PARTITIONS)}


def test_a_restarted_relay_resumes_where_it_stopped(
    client: str, kafka_broker: EmbeddedBroker, database_url: str
) -> None:
    settings = unique_settings(client)
    kafka = transport(settings, kafka_broker.bootstrap)
    with small_chunks_ledger(database_url) as ledger:
        apply_clean(ledger, book())
        with Relay(ledger, kafka, settings) as relay:
            relay.run_once()
            middle = relay.stored().position
        apply_clean(ledger, more_sales(1000, 30))
        with Relay(ledger, kafka, settings) as relay:  # a new process, in effect
            assert relay.stored().position == middle
            relay.run_once()
            last = relay.stored().position
        assert last > middle
        expected = expected_orders(ledger)
    records = read_topic(kafka, settings.topic(EVENTS), last)
    check_exactly_once_in_order(records, expected)
    assert len(envelopes(records)) == len(expected)  # resumed: nothing sent twice


def test_the_relay_thread_publishes_while_the_store_grows(
    kafka_broker: EmbeddedBroker, sqlite_url: str
) -> None:
    settings = unique_settings("confluent")
    kafka = transport(settings, kafka_broker.bootstrap)
    with small_chunks_ledger(sqlite_url) as ledger, Relay(ledger, kafka, settings) as relay:
        stop = threading.Event()
        worker = threading.Thread(target=relay.run, args=(stop, 0.05))
        worker.start()
        try:
            apply_clean(ledger, book())
            for first in range(1000, 1100, 20):
                apply_clean(ledger, more_sales(first, 20))
            last = store_end(ledger)
            records = read_topic(kafka, settings.topic(EVENTS), last)
        finally:
            stop.set()
            worker.join(30)
        assert not worker.is_alive()
        check_exactly_once_in_order(records, expected_orders(ledger))


# --- kill -9 ------------------------------------------------------------------------------


def relay_env(settings: KafkaSettings, bootstrap: str, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "LEDGER_HOME": str(home),
            "LEDGER_KAFKA_BOOTSTRAP": bootstrap,
            "LEDGER_KAFKA_CLIENT": settings.client,
            "LEDGER_KAFKA_TOPIC_PREFIX": settings.topic_prefix,
            "LEDGER_KAFKA_PARTITIONS": str(PARTITIONS),
            "LEDGER_KAFKA_REQUEST_TIMEOUT_MS": "10000",
            "LEDGER_KAFKA_SEND_TIMEOUT_MS": "10000",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


#: the installed `rebate-ledger` command of this interpreter's environment
CLI = str(Path(sys.executable).parent / "rebate-ledger")


def relay_command(database_url: str, *extra: str) -> list[str]:
    return [CLI, "relay", "--database", database_url, *extra]


@pytest.fixture
def writer_thread() -> Iterator[list[threading.Thread]]:
    threads: list[threading.Thread] = []
    yield threads
    for thread in threads:
        thread.join(60)


def test_relay_killed_at_random_moments_loses_nothing(
    client: str,
    kafka_broker: EmbeddedBroker,
    database_url: str,
    tmp_path: Path,
) -> None:
    """`rebate-ledger relay` killed with SIGKILL at random moments while the store grows,
    then restarted: every stored (position, part) is on the topic, and the dedup rule sees
    each exactly once, in store order per key."""
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    settings = unique_settings(client)
    kafka = transport(settings, kafka_broker.bootstrap)
    env = relay_env(settings, kafka_broker.bootstrap, tmp_path / "home")
    trials = 4
    with small_chunks_ledger(database_url, chunk_lines=50) as ledger:
        apply_clean(ledger, book(sales_per_customer=200))
        writing = threading.Event()
        writing.set()
        failures: list[BaseException] = []

        def write() -> None:
            first = 10_000
            try:
                while writing.is_set():
                    apply_clean(ledger, more_sales(first, 100))
                    first += 100
                    time.sleep(0.02)
            except BaseException as error:  # surfaced by the test below
                failures.append(error)

        writer = threading.Thread(target=write)
        writer.start()
        positions: list[int] = []
        try:
            for _ in range(trials):
                time.sleep(rng.uniform(0.1, 0.6))  # a backlog builds up while it is down
                process = subprocess.Popen(
                    relay_command(database_url), env=env, cwd=tmp_path,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                )
                assert process.stdout is not None
                if rng.random() < 0.6:
                    # most kills land around its first publication of the backlog: the first
                    # line comes as it starts, then it connects (librdkafka takes 0.5-1 s for
                    # its producer id) and sends
                    first = process.stdout.readline()
                    assert first.startswith(b"relay: store position"), first
                    time.sleep(rng.uniform(0.2, 1.5))
                else:  # any moment: starting, publishing, confirming, idle
                    time.sleep(rng.uniform(0.3, 3.0))
                assert process.poll() is None, process.communicate()[1].decode()[-2000:]
                os.kill(process.pid, signal.SIGKILL)
                process.wait(10)
                process.stdout.close()
                assert process.stderr is not None
                process.stderr.close()
                with Relay(ledger, kafka, settings) as probe:
                    positions.append(probe.stored().position)
        finally:
            writing.clear()
            writer.join(60)
        assert not failures, failures
        done = subprocess.run(
            relay_command(database_url, "--once"), env=env, cwd=tmp_path,
            capture_output=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        last = store_end(ledger)
        expected = expected_orders(ledger)
    records = read_topic(kafka, settings.topic(EVENTS), last)
    print(f"seed {seed}: positions stored after each kill {positions}, store ends at {last}, "
          f"{len(envelopes(records))} envelopes on the topic for {len(expected)} stored")
    check_exactly_once_in_order(records, expected)


# --- a broker that comes back empty -------------------------------------------------------


@pytest.mark.parametrize("relay_client", ["confluent", "kafka-python"])
def test_a_broker_that_comes_back_empty_is_refilled(
    relay_client: str, tmp_path: Path, sqlite_url: str
) -> None:
    settings = unique_settings(relay_client)
    topic = settings.topic(EVENTS)
    broker = EmbeddedBroker(tmp_path / "kafka")
    broker.start()
    port, first_cluster = broker.port, broker.cluster_id
    try:
        kafka = transport(settings, broker.bootstrap)
        with small_chunks_ledger(sqlite_url) as ledger, Relay(ledger, kafka, settings) as relay:
            apply_clean(ledger, book())
            stop = threading.Event()
            worker = threading.Thread(target=relay.run, args=(stop, 0.05))
            worker.start()
            try:
                last = store_end(ledger)
                read_topic(kafka, topic, last)
                # the broker dies and a new, empty one takes its port
                broker.stop()
                broker = EmbeddedBroker(tmp_path / "kafka", port=port)
                broker.start()
                assert broker.cluster_id != first_cluster
                apply_clean(ledger, more_sales(5000, 15))  # and the store moves on meanwhile
                last = store_end(ledger)
                records = read_topic(kafka, topic, last)
            finally:
                stop.set()
                worker.join(60)
            assert not worker.is_alive()
            assert relay.refills == 1
            assert relay.stored().cluster_id == broker.cluster_id
            check_exactly_once_in_order(records, expected_orders(ledger))
    finally:
        broker.stop()


def test_an_events_topic_auto_created_on_the_new_broker_is_recreated_with_the_ledgers_count(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The embedded broker creates a topic with its default 4 partitions on any metadata
    request for it (a kafka-python consumer's, whatever it asks): when one reaches a broker
    that came back empty before the relay, the refill must still go to a topic partitioned as
    before, or the projections' per-partition positions would count events twice."""
    settings = unique_settings("confluent", partitions=2)
    topic = settings.topic(EVENTS)
    broker = EmbeddedBroker(tmp_path / "kafka")
    broker.start()
    port = broker.port
    try:
        kafka = transport(settings, broker.bootstrap)
        with small_chunks_ledger(sqlite_url) as ledger, Relay(ledger, kafka, settings) as relay:
            apply_clean(ledger, book())
            relay.run_once()
            assert relay.stored().partitions == 2
            broker.stop()
            broker = EmbeddedBroker(tmp_path / "kafka", port=port)
            broker.start()
            import kafka as kafka_python

            consumer = kafka_python.KafkaConsumer(
                bootstrap_servers=broker.bootstrap, allow_auto_create_topics=False
            )
            consumer.assign([kafka_python.TopicPartition(topic, 0)])
            consumer.poll(500)
            consumer.close()
            admin = kafka.admin()
            try:
                assert admin.list_topics()[topic] == 4  # what the test is about
                relay.run_once()
                assert admin.list_topics()[topic] == 2
            finally:
                admin.close()
            assert relay.refills == 1
            expected = expected_orders(ledger)
            records = read_topic(kafka, topic, store_end(ledger), partitions=2)
            assert {record.partition for record in records} == {0, 1}
            check_exactly_once_in_order(records, expected)
    finally:
        broker.stop()


class _SwapOnFirstList:
    """An admin that lets `swap()` replace the broker just before its first topic listing:
    the relay then asks the old broker for the cluster id and the new one for the topics."""

    def __init__(self, inner: object, swap: Callable[[], None]) -> None:
        self._inner = inner
        self._swap: Callable[[], None] | None = swap

    def list_topics(self) -> dict[str, int]:
        if self._swap is not None:
            swap, self._swap = self._swap, None
            swap()
        return self._inner.list_topics()  # type: ignore[attr-defined, no-any-return]

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def test_a_broker_replaced_in_the_middle_of_the_relays_check_is_checked_again(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The CI failure this guards against: the relay read the cluster id from the old broker
    and the topic list from the new one, where a consumer had just made the events topic with
    the broker's default count; it took the topic for its own, repartitioned, and stopped.
    Now a cluster id that changes during the check makes the relay ask again, and the refill
    goes to a topic with the ledger's count."""
    settings = unique_settings("confluent", partitions=2)
    topic = settings.topic(EVENTS)
    broker = EmbeddedBroker(tmp_path / "kafka")
    broker.start()
    port = broker.port
    brokers = [broker]

    def swap() -> None:
        brokers[-1].stop()
        new = EmbeddedBroker(tmp_path / "kafka", port=port)
        new.start()
        brokers.append(new)
        admin = kafka.admin()
        try:
            admin.create_topics([topic], 4)  # as a consumer's metadata request would
        finally:
            admin.close()

    try:
        kafka = transport(settings, broker.bootstrap)
        with small_chunks_ledger(sqlite_url) as ledger, Relay(ledger, kafka, settings) as relay:
            apply_clean(ledger, book())
            relay.run_once()
            relay._admin = _SwapOnFirstList(kafka.admin(), swap)  # type: ignore[assignment]
            with pytest.raises(TransportError, match="changed during the check"):
                relay.run_once()
            relay.run_once()
            assert relay.refills == 1
            admin = kafka.admin()
            try:
                assert admin.list_topics()[topic] == 2
            finally:
                admin.close()
            expected = expected_orders(ledger)
            records = read_topic(kafka, topic, store_end(ledger), partitions=2)
            check_exactly_once_in_order(records, expected)
    finally:
        for each in brokers:
            each.stop()


def test_a_repartitioned_events_topic_stops_the_relay_with_what_to_do(
    kafka_broker: EmbeddedBroker, sqlite_url: str
) -> None:
    """Same cluster, records published, and the topic now has another partition count: the
    relay refuses to publish (and says how to recover) rather than break each customer's
    order."""
    settings = unique_settings("confluent", partitions=2)
    topic = settings.topic(EVENTS)
    kafka = transport(settings, kafka_broker.bootstrap)
    with small_chunks_ledger(sqlite_url) as ledger, Relay(ledger, kafka, settings) as relay:
        apply_clean(ledger, book())
        relay.run_once()
        admin = kafka.admin()
        try:
            admin.delete_topics([topic])
            admin.create_topics([topic], 3)
        finally:
            admin.close()
        apply_clean(ledger, more_sales(7000, 3))
        with pytest.raises(RelayError, match="has 3 partitions.*published to 2.*delete it"):
            relay.run_once()


def test_a_stored_position_on_a_missing_topic_is_refilled(
    kafka_broker: EmbeddedBroker, sqlite_url: str
) -> None:
    """Same cluster, but the events topic is gone (a new prefix stands in for a deleted
    topic): the relay republishes from position 1."""
    settings = unique_settings("kafka-python")
    kafka = transport(settings, kafka_broker.bootstrap)
    with small_chunks_ledger(sqlite_url) as ledger:
        apply_clean(ledger, book(sales_per_customer=2))
        last = store_end(ledger)
        with Relay(ledger, kafka, settings) as relay:
            relay._store(last, kafka_broker.cluster_id, settings.partitions)  # as if published
            published = relay.run_once()
            assert relay.refills == 1
        expected = expected_orders(ledger)
    assert published == len(expected)
    check_exactly_once_in_order(read_topic(kafka, settings.topic(EVENTS), last), expected)


# --- the example subscriber ---------------------------------------------------------------


def test_the_example_subscriber_prints_each_event_once(
    kafka_broker: EmbeddedBroker, sqlite_url: str, tmp_path: Path
) -> None:
    settings = unique_settings("confluent")
    kafka = transport(settings, kafka_broker.bootstrap)
    with small_chunks_ledger(sqlite_url) as ledger:
        apply_clean(ledger, book(sales_per_customer=2))
        with Relay(ledger, kafka, settings) as relay:
            relay.run_once()
            last = relay.stored().position
            # as if the relay had crashed before storing its position: all of it again
            with ledger.engine.begin() as connection:
                connection.execute(update(relay_state).values(position=0))
            resent = relay.run_once()
        expected = expected_orders(ledger)
        stored = {n.id: n for n in ledger.app.recorder.select_notifications(1, 10_000)}
    assert resent == len(expected)
    env = relay_env(settings, kafka_broker.bootstrap, tmp_path / "home")
    env.update({"LEDGER_KAFKA_SESSION_TIMEOUT_MS": "3000",
                "LEDGER_KAFKA_HEARTBEAT_INTERVAL_MS": "500"})
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "subscriber.py"), "--group", "example",
         "--until-position", str(last), "--timeout", "60"],
        env=env, capture_output=True, timeout=90, text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == f"done: {len(expected)} events, {len(expected)} duplicates skipped"
    seen: dict[tuple[int, int], dict[str, str]] = {}
    for line in lines[:-1]:
        kind, *fields = line.split(" ")
        values = dict(field.split("=", 1) for field in fields)
        part, parts = (int(x) for x in values["part"].split("/"))
        order = (int(values["position"]), part)
        assert order not in seen, f"printed twice: {line}"
        seen[order] = values
        event = decode_event(stored[order[0]].topic, stored[order[0]].state)
        assert kind == type(event).__name__
        assert values["key"] == expected[order]
        assert values["recorded"] == event.recorded_at.isoformat()
        if not isinstance(event, SalesRecorded):
            assert values["valid"] == event.valid_time.isoformat()
    assert set(seen) == set(expected)


def test_schema_command_writes_every_type(tmp_path: Path) -> None:
    from ledger.events import ALL_EVENT_TYPES

    out = tmp_path / "schema"
    done = subprocess.run(
        [CLI, "schema", "--out", str(out)],
        capture_output=True, timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr.decode()
    index = orjson.loads((out / "index.json").read_bytes())
    names = {cls.event_type() for cls in ALL_EVENT_TYPES} | {"Envelope", "Watermark"}
    assert set(index["schemas"]) == names
    for name in names:
        schema = orjson.loads((out / index["schemas"][name]["file"]).read_bytes())
        assert schema["title"] == name
    for cls in ALL_EVENT_TYPES:
        schema = orjson.loads((out / f"{cls.event_type()}.schema.json").read_bytes())
        assert set(schema["properties"]) == {
            field.serialization_alias or name for name, field in cls.model_fields.items()
        }
        assert index["schemas"][cls.event_type()]["schema_version"] == cls.SCHEMA_VERSION
    envelope = orjson.loads((out / "Envelope.schema.json").read_bytes())
    assert set(envelope["required"]) >= {"event_id", "type", "position", "key", "payload"}
    printed = subprocess.run(
        [CLI, "schema"],
        capture_output=True, timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert printed.returncode == 0
    assert set(orjson.loads(printed.stdout)) == names


# --- the command line ---------------------------------------------------------------------


def test_relay_once_without_kafka_configured_uses_a_broker_of_its_own(
    sqlite_url: str, tmp_path: Path
) -> None:
    with small_chunks_ledger(sqlite_url) as ledger:
        apply_clean(ledger, book(sales_per_customer=2))
        expected = expected_orders(ledger)
        last = store_end(ledger)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_KAFKA_")}
    env["LEDGER_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        relay_command(sqlite_url, "--once"), env=env, cwd=tmp_path, capture_output=True,
        text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"published {len(expected)} records; store position {last}" in done.stdout
    assert (tmp_path / "home" / "broker.log").exists()  # its own broker ran, and stopped


def test_relay_uses_the_running_rebate_ledger_broker(
    client: str, sqlite_url: str, tmp_path: Path
) -> None:
    from ledger.kafka.broker import find_running_broker

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_KAFKA_")}
    env.update({"LEDGER_HOME": str(home), "LEDGER_KAFKA_CLIENT": client})
    broker = subprocess.Popen([CLI, "broker"], env=env, cwd=tmp_path, stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        bootstrap = None
        while bootstrap is None:
            assert time.monotonic() < deadline, "rebate-ledger broker did not register"
            assert broker.poll() is None
            time.sleep(0.1)
            bootstrap = find_running_broker(home)
        with small_chunks_ledger(sqlite_url) as ledger:
            apply_clean(ledger, book(sales_per_customer=2))
            expected = expected_orders(ledger)
            last = store_end(ledger)
        done = subprocess.run(
            relay_command(sqlite_url, "--once"), env=env, cwd=tmp_path, capture_output=True,
            text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert bootstrap in done.stdout
        settings = settings_for(client)  # the default prefix, as the command used
        records = read_topic(transport(settings, bootstrap), settings.topic(EVENTS), last)
        check_exactly_once_in_order(records, expected)
    finally:
        broker.send_signal(signal.SIGINT)
        broker.wait(20)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_the_relay_command_runs_until_interrupted(
    stop_signal: signal.Signals, kafka_broker: EmbeddedBroker, sqlite_url: str, tmp_path: Path
) -> None:
    settings = unique_settings("confluent")
    with small_chunks_ledger(sqlite_url) as ledger:
        apply_clean(ledger, book(sales_per_customer=2))
        last = store_end(ledger)
        process = subprocess.Popen(
            relay_command(sqlite_url), env=relay_env(settings, kafka_broker.bootstrap, tmp_path),
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            read_topic(transport(settings, kafka_broker.bootstrap), settings.topic(EVENTS), last)
            apply_clean(ledger, more_sales(900, 5))  # it keeps publishing what comes
            read_topic(
                transport(settings, kafka_broker.bootstrap), settings.topic(EVENTS),
                store_end(ledger),
            )
        finally:
            process.send_signal(stop_signal)
            out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err[-2000:]
        assert f"relay: stopped at store position {store_end(ledger)}" in out


def test_chunks_are_confirmed_one_by_one_and_a_failed_flush_stores_nothing_past_them(
    client: str, kafka_broker: EmbeddedBroker, sqlite_url: str
) -> None:
    """Small chunks: a watermark on every partition after each, the position stored after
    each; a flush that fails mid-run leaves the position at the last confirmed chunk, and the
    next run re-sends from there."""
    from consumers.transport import TransportError

    settings = unique_settings(client)
    kafka = transport(settings, kafka_broker.bootstrap)
    with small_chunks_ledger(sqlite_url) as ledger:
        apply_clean(ledger, book())
        last = store_end(ledger)
        with Relay(ledger, kafka, settings, chunk_records=10, read_notifications=3) as relay:
            stored_at_flush: list[int] = []
            real_producer = relay._get_producer(kafka_broker.cluster_id)
            real_flush = real_producer.flush
            flushes = itertools.count(1)

            def failing_flush(timeout_s: float) -> None:
                stored_at_flush.append(relay.stored().position)
                if next(flushes) == 5:  # the first flush of the third chunk
                    raise TransportError("injected: the broker did not acknowledge")
                real_flush(timeout_s)

            real_producer.flush = failing_flush  # type: ignore[method-assign]
            with pytest.raises(TransportError, match="injected"):
                relay.run_once()
            confirmed = relay.stored().position
            assert stored_at_flush[4] == confirmed  # the two chunks before it, no more
            assert 0 < confirmed < last
            relay.run_once()  # a new producer (the failed one was dropped)
            assert relay.stored().position == last
        records = read_topic(kafka, settings.topic(EVENTS), last)
        expected = expected_orders(ledger)
    check_exactly_once_in_order(records, expected)
    marks: dict[int, list[int]] = defaultdict(list)
    for record in records:
        assert record.value is not None
        message = parse_record(record.value)
        if isinstance(message, Watermark):
            marks[record.partition].append(message.position)
    chunks = marks[0]
    assert len(chunks) >= 3 and chunks == sorted(chunks) and len(set(chunks)) == len(chunks)
    assert chunks[-1] == last and confirmed in chunks
    assert all(marks[p] == chunks for p in range(PARTITIONS))
    # (the failed chunk's records may or may not have left before the producer was dropped:
    # duplicates, if any, were absorbed by the dedup rule above)
