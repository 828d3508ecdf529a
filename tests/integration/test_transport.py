"""The transport on the real embedded broker, with each client library; and the broker's
quirks, pinned down so that a change of broker version that alters them is noticed."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from consumers.transport import (
    Consumer,
    Record,
    TopicPartition,
    Transport,
    TransportError,
    confluent_config,
    kafka_python_config,
    transport,
)
from ledger.kafka.broker import EmbeddedBroker
from ledger.kafka.settings import KafkaSettings

from .conftest import CLIENTS, settings_for

PARTITIONS = 4
POLL_WAIT_S = 20.0


def partitions_of(topic: str, count: int = PARTITIONS) -> list[TopicPartition]:
    return [TopicPartition(topic, number) for number in range(count)]


def produce(kafka: Transport, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = kafka.producer()
    try:
        for key, value in records:
            producer.send(topic, key, value)
        producer.flush(10.0)
    finally:
        producer.close()


def consume(consumer: Consumer, count: int, timeout_s: float = POLL_WAIT_S) -> list[Record]:
    """Poll until `count` records arrived (or the time is up), then poll once more to show
    that nothing beyond them is delivered."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        records += consumer.poll(1_000, 0.5)
    records += consumer.poll(1_000, 0.2)
    return records


def keyed_records(keys: int, per_key: int) -> list[tuple[bytes, bytes]]:
    """`per_key` records for each of `keys` keys, interleaved; the value carries the sequence
    number of the record within its key."""
    return [
        (f"agreement-{key}".encode(), f"{key}:{sequence}".encode())
        for sequence in range(per_key)
        for key in range(keys)
    ]


def create(kafka: Transport, topic: str, partitions: int = PARTITIONS) -> None:
    admin = kafka.admin()
    try:
        admin.create_topics([topic], partitions)
    finally:
        admin.close()


# --- settings: no broker needed ------------------------------------------------------------


def test_security_settings_reach_both_client_libraries() -> None:
    settings = KafkaSettings.model_validate(
        {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "ledger",
            "sasl_password": "s3cret",
            "ssl_cafile": "/etc/kafka/ca.pem",
            "ssl_certfile": "/etc/kafka/client.pem",
            "ssl_keyfile": "/etc/kafka/client.key",
        }
    )
    confluent = confluent_config(settings, "k1:9093,k2:9093")
    assert confluent["bootstrap.servers"] == "k1:9093,k2:9093"
    assert confluent["security.protocol"] == "SASL_SSL"
    assert confluent["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (confluent["sasl.username"], confluent["sasl.password"]) == ("ledger", "s3cret")
    assert confluent["ssl.ca.location"] == "/etc/kafka/ca.pem"
    assert confluent["ssl.certificate.location"] == "/etc/kafka/client.pem"
    assert confluent["ssl.key.location"] == "/etc/kafka/client.key"
    python = kafka_python_config(settings, "k1:9093,k2:9093")
    assert python["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    assert python["security_protocol"] == "SASL_SSL"
    assert python["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (python["sasl_plain_username"], python["sasl_plain_password"]) == ("ledger", "s3cret")
    assert python["ssl_cafile"] == "/etc/kafka/ca.pem"
    assert python["ssl_certfile"] == "/etc/kafka/client.pem"
    assert python["ssl_keyfile"] == "/etc/kafka/client.key"
    assert "s3cret" not in repr(settings)


def test_plaintext_settings_pass_no_credentials() -> None:
    settings = KafkaSettings.model_validate({})
    assert not any(key.startswith(("sasl", "ssl")) for key in confluent_config(settings, "b:1"))
    assert not any(key.startswith(("sasl", "ssl")) for key in kafka_python_config(settings, "b:1"))


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs sasl_mechanism"),
        ({"sasl_mechanism": "PLAIN"}, "needs a SASL_"),
        ({"ssl_certfile": "/c.pem"}, "go together"),
        ({"client": "pykafka"}, "client"),
        ({"partitions": 0}, "partitions"),
        ({"session_timeout_ms": 3_000, "heartbeat_interval_ms": 1_500}, "a third"),
    ],
)
def test_inconsistent_settings_are_refused(values: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        KafkaSettings.model_validate(values)


def test_settings_come_from_ledger_kafka_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("LEDGER_KAFKA_CLIENT", "kafka-python")
    monkeypatch.setenv("LEDGER_KAFKA_TOPIC_PREFIX", "acme.")
    monkeypatch.setenv("LEDGER_KAFKA_PARTITIONS", "12")
    settings = KafkaSettings()
    assert (settings.bootstrap, settings.client) == ("kafka:9092", "kafka-python")
    assert settings.topic("events") == "acme.events"
    assert settings.partitions == 12


def test_defaults_are_the_embedded_broker_and_the_faster_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("BOOTSTRAP", "CLIENT", "TOPIC_PREFIX", "PARTITIONS"):
        monkeypatch.delenv(f"LEDGER_KAFKA_{name}", raising=False)
    settings = KafkaSettings()
    assert settings.bootstrap is None
    assert settings.client == "confluent"
    assert settings.topic("events") == "rebate.events"
    assert settings.partitions == PARTITIONS


# --- the transport, with each client -------------------------------------------------------


@pytest.mark.kafka
def test_topics_are_created_once_with_the_partition_count(
    kafka: Transport, topic_name: str
) -> None:
    admin = kafka.admin()
    try:
        assert admin.create_topics([topic_name, f"{topic_name}.b"], 3) == [
            topic_name,
            f"{topic_name}.b",
        ]
        assert admin.create_topics([topic_name, f"{topic_name}.c"], 5) == [f"{topic_name}.c"]
        topics = admin.list_topics()
    finally:
        admin.close()
    # the second call left the existing topic as it was: 3 partitions, not 5
    assert topics[topic_name] == 3
    assert topics[f"{topic_name}.b"] == 3
    assert topics[f"{topic_name}.c"] == 5


@pytest.mark.kafka
def test_round_trip_keeps_every_record_and_each_keys_order(
    kafka: Transport, topic_name: str
) -> None:
    create(kafka, topic_name)
    sent = keyed_records(keys=24, per_key=50)
    produce(kafka, topic_name, sent)
    consumer = kafka.consumer()
    try:
        consumer.assign(partitions_of(topic_name))
        received = consume(consumer, len(sent))
    finally:
        consumer.close()
    assert sorted((r.key, r.value) for r in received) == sorted(sent)  # each exactly once
    partitions_by_key: dict[bytes | None, set[int]] = defaultdict(set)
    sequences_by_key: dict[bytes | None, list[int]] = defaultdict(list)
    for record in received:
        assert record.key is not None and record.value is not None
        partitions_by_key[record.key].add(record.partition)
        sequences_by_key[record.key].append(int(record.value.split(b":")[1]))
    assert all(len(partitions) == 1 for partitions in partitions_by_key.values())
    assert {p for partitions in partitions_by_key.values() for p in partitions} == set(
        range(PARTITIONS)
    )
    assert all(sequence == list(range(50)) for sequence in sequences_by_key.values())


@pytest.mark.kafka
def test_headers_and_missing_keys_survive_the_round_trip(kafka: Transport, topic_name: str) -> None:
    create(kafka, topic_name, partitions=1)
    producer = kafka.producer()
    producer.send(topic_name, None, b"no key", [("type", b"SaleRecorded"), ("v", b"2")])
    producer.send(topic_name, b"k", b"", None)
    producer.flush(10.0)
    producer.close()
    consumer = kafka.consumer()
    try:
        consumer.assign(partitions_of(topic_name, 1))
        first, second = consume(consumer, 2)
    finally:
        consumer.close()
    assert (first.key, first.value, first.offset) == (None, b"no key", 0)
    assert first.headers == (("type", b"SaleRecorded"), ("v", b"2"))
    assert (second.key, second.value, second.headers, second.offset) == (b"k", b"", (), 1)


@pytest.mark.kafka
def test_a_key_lands_on_the_same_partition_whichever_client_produced_it(
    kafka_broker: EmbeddedBroker, unique_topic: str
) -> None:
    # the relay may run one library and a downstream producer the other: murmur2 in both
    sent = keyed_records(keys=40, per_key=1)
    partition_of: dict[str, dict[bytes | None, int]] = {}
    for client in CLIENTS:
        kafka = transport(settings_for(client), kafka_broker.bootstrap)
        topic = f"{unique_topic}.{client}"
        create(kafka, topic)
        produce(kafka, topic, sent)
        consumer = kafka.consumer()
        try:
            consumer.assign(partitions_of(topic))
            partition_of[client] = {r.key: r.partition for r in consume(consumer, len(sent))}
        finally:
            consumer.close()
    assert len(partition_of["confluent"]) == len(sent)
    assert partition_of["confluent"] == partition_of["kafka-python"]


@pytest.mark.kafka
def test_seek_reads_a_partition_again_from_the_given_offset(
    kafka: Transport, topic_name: str
) -> None:
    create(kafka, topic_name, partitions=2)
    producer = kafka.producer()
    for number in range(10):
        producer.send(topic_name, b"a", b"a%d" % number)  # all on one partition
    producer.flush(10.0)
    producer.close()
    consumer = kafka.consumer()
    try:
        consumer.assign(partitions_of(topic_name, 2))
        first = consume(consumer, 10)
        partition = first[0].topic_partition
        consumer.seek(partition, 7)
        again = consume(consumer, 3)
        consumer.seek(partition, 2)  # backwards, then forwards past the records above
        consumer.seek(partition, 9)
        last = consume(consumer, 1)
    finally:
        consumer.close()
    assert [r.offset for r in first] == list(range(10))
    assert [(r.offset, r.value) for r in again] == [(7, b"a7"), (8, b"a8"), (9, b"a9")]
    assert [(r.offset, r.value) for r in last] == [(9, b"a9")]


@pytest.mark.kafka
def test_an_assigned_consumer_resumes_at_the_groups_committed_offsets(
    kafka: Transport, topic_name: str
) -> None:
    create(kafka, topic_name)
    sent = keyed_records(keys=8, per_key=10)
    produce(kafka, topic_name, sent)
    group = f"{topic_name}.group"
    first = kafka.consumer(group)
    try:
        first.assign(partitions_of(topic_name))
        read = consume(first, len(sent))
        # commit only the first half of each partition: the rest must come again
        by_partition: dict[TopicPartition, list[Record]] = defaultdict(list)
        for record in read:
            by_partition[record.topic_partition].append(record)
        committed = {tp: len(records) // 2 for tp, records in by_partition.items()}
        first.commit(committed)
        assert first.committed(partitions_of(topic_name)) == committed
    finally:
        first.close()
    second = kafka.consumer(group)
    try:
        second.assign(partitions_of(topic_name))
        resumed = consume(second, len(sent) - sum(committed.values()))
    finally:
        second.close()
    expected = [(r.partition, r.offset) for r in read if r.offset >= committed[r.topic_partition]]
    assert sorted((r.partition, r.offset) for r in resumed) == sorted(expected)


@pytest.mark.kafka
def test_a_group_member_resumes_at_the_committed_offsets_after_a_restart(
    kafka: Transport, topic_name: str
) -> None:
    create(kafka, topic_name)
    produce(kafka, topic_name, keyed_records(keys=8, per_key=5))
    group = f"{topic_name}.group"
    first = kafka.consumer(group)
    try:
        first.subscribe([topic_name])
        read = consume(first, 40)  # waits out the group join (~2 s here)
        assert first.assignment() == set(partitions_of(topic_name))
        committed = {tp: 2 for tp in partitions_of(topic_name)}
        first.commit(committed)
    finally:
        first.close()
    produce(kafka, topic_name, [(b"agreement-0", b"later")])
    second = kafka.consumer(group)
    try:
        second.subscribe([topic_name])
        resumed = consume(second, 40 - 2 * PARTITIONS + 1)
    finally:
        second.close()
    assert len(read) == 40
    expected = sorted((r.partition, r.offset) for r in read if r.offset >= 2)
    later = [r for r in resumed if r.value == b"later"]
    assert len(later) == 1
    assert sorted((r.partition, r.offset) for r in resumed if r.value != b"later") == expected


@pytest.mark.kafka
def test_a_group_member_starts_where_its_on_assign_callback_says(
    kafka: Transport, topic_name: str
) -> None:
    # how a projection resumes from the positions stored with its rows, not the group's
    create(kafka, topic_name, partitions=2)
    produce(kafka, topic_name, keyed_records(keys=6, per_key=4))
    told: list[list[TopicPartition]] = []

    def on_assign(partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        told.append(sorted(partitions))
        return {TopicPartition(topic_name, 0): 3}  # partition 1: the group's (none: earliest)

    consumer = kafka.consumer(f"{topic_name}.group")
    try:
        consumer.subscribe([topic_name], on_assign=on_assign)
        records = consume(consumer, 24 - 3)
    finally:
        consumer.close()
    assert told == [partitions_of(topic_name, 2)]
    first_offsets = {p: min(r.offset for r in records if r.partition == p) for p in (0, 1)}
    assert first_offsets == {0: 3, 1: 0}
    assert len(records) == 24 - 3


@pytest.mark.kafka
def test_poll_returns_at_most_max_records(kafka: Transport, topic_name: str) -> None:
    create(kafka, topic_name, partitions=1)
    produce(kafka, topic_name, keyed_records(keys=1, per_key=30))
    consumer = kafka.consumer()
    try:
        consumer.assign(partitions_of(topic_name, 1))
        sizes: list[int] = []
        deadline = time.monotonic() + POLL_WAIT_S
        while sum(sizes) < 30 and time.monotonic() < deadline:
            sizes.append(len(consumer.poll(7, 0.5)))
    finally:
        consumer.close()
    assert sum(sizes) == 30
    assert max(sizes) == 7


# --- the broker's behaviour across a restart -----------------------------------------------


@pytest.fixture
def own_broker(tmp_path: Path) -> EmbeddedBroker:
    """A broker of the test's own, to stop and restart."""
    broker = EmbeddedBroker(tmp_path)
    broker.start()
    return broker


@pytest.mark.kafka
def test_a_restarted_broker_comes_back_empty(
    client: str, own_broker: EmbeddedBroker, make_settings: Callable[..., KafkaSettings]
) -> None:
    # the embedded log lives in memory: topics, records and group offsets are all gone,
    # which the relay must detect (and refill from the store)
    kafka = transport(make_settings(client), own_broker.bootstrap)
    create(kafka, "events")
    admin = kafka.admin()
    cluster_before = admin.cluster_id()
    admin.close()
    produce(kafka, "events", keyed_records(keys=4, per_key=5))
    consumer = kafka.consumer("projection")
    consumer.assign(partitions_of("events"))
    assert len(consume(consumer, 20)) == 20
    consumer.commit({tp: 5 for tp in partitions_of("events")})
    consumer.close()
    port = own_broker.port
    own_broker.stop()
    with EmbeddedBroker(own_broker.log_dir, port=port) as restarted:
        admin = kafka.admin()  # the same address: clients cannot tell by it
        try:
            assert "events" not in admin.list_topics()
            cluster_after = admin.cluster_id()
        finally:
            admin.close()
        # ...but by the cluster id: each start of the embedded broker has a new one
        assert cluster_before == own_broker.cluster_id
        assert cluster_after == restarted.cluster_id != cluster_before
        reader = kafka.consumer("projection")
        try:
            assert reader.committed(partitions_of("events")) == {
                tp: None for tp in partitions_of("events")
            }
        finally:
            reader.close()
        assert restarted.bootstrap == f"127.0.0.1:{port}"


@pytest.mark.kafka
def test_a_producer_that_outlives_a_broker_restart_fails_loudly_and_a_new_one_works(
    client: str, own_broker: EmbeddedBroker, make_settings: Callable[..., KafkaSettings]
) -> None:
    # idempotent producers: the restarted broker knows no producer id (kafka-python fails at
    # once with UnknownProducerId; librdkafka, seeing a new cluster id, holds the record
    # until the flush gives up) instead of silently writing into the empty broker.
    kafka = transport(make_settings(client, send_timeout_ms=2_000), own_broker.bootstrap)
    create(kafka, "events")
    producer = kafka.producer()
    producer.send("events", b"k", b"before")
    producer.flush(10.0)
    port = own_broker.port
    own_broker.stop()
    with EmbeddedBroker(own_broker.log_dir, port=port):
        create(kafka, "events")
        producer.send("events", b"k", b"after (stale producer)")
        started = time.monotonic()
        with pytest.raises(TransportError):
            producer.flush(3.0)
        assert time.monotonic() - started < 6.0
        producer.close()  # drops the record: it must never arrive later
        fresh = kafka.producer()
        fresh.send("events", b"k", b"after")
        fresh.flush(10.0)
        fresh.close()
        consumer = kafka.consumer()
        try:
            consumer.assign(partitions_of("events"))
            records = consume(consumer, 1)
            time.sleep(1.0)  # give a leaked record time to show up
            records += consumer.poll(100, 0.5)
        finally:
            consumer.close()
    assert [(r.value, r.offset) for r in records] == [(b"after", 0)]


@pytest.mark.kafka
def test_flush_fails_within_the_send_timeout_when_the_broker_is_gone(
    client: str, own_broker: EmbeddedBroker, make_settings: Callable[..., KafkaSettings]
) -> None:
    settings = make_settings(client, send_timeout_ms=2_000, request_timeout_ms=1_000)
    kafka = transport(settings, own_broker.bootstrap)
    create(kafka, "events")
    producer = kafka.producer()
    producer.send("events", b"k", b"first")
    producer.flush(10.0)
    own_broker.stop()
    started = time.monotonic()
    with pytest.raises(TransportError):
        producer.send("events", b"k", b"lost")  # kafka-python may already refuse here
        producer.flush(10.0)
    elapsed_s = time.monotonic() - started
    producer.close()
    assert elapsed_s < 8.0  # bounded by send_timeout_ms (2 s), not by the flush's 10 s


# --- broker quirks, checked with the client libraries directly -----------------------------


@pytest.mark.kafka
def test_quirk_end_offset_is_the_last_batchs_base_offset_plus_one(
    kafka_broker: EmbeddedBroker, unique_topic: str
) -> None:
    """Tansu reports as high watermark (end offset) the base offset of the partition's last
    record batch plus one, not the offset after its last record. It is exact only when the
    last batch holds one record. Nothing may compare record counts with end offsets."""
    import confluent_kafka
    import kafka as kafka_python

    kafka = transport(settings_for("confluent"), kafka_broker.bootstrap)
    create(kafka, unique_topic, partitions=1)
    produce(kafka, unique_topic, keyed_records(keys=1, per_key=10))  # one batch: offsets 0-9
    python = kafka_python.KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    confluent = confluent_kafka.Consumer(
        {"bootstrap.servers": kafka_broker.bootstrap, "group.id": "quirk"}
    )
    try:
        partition = kafka_python.TopicPartition(unique_topic, 0)

        def end_offsets() -> tuple[int, int]:
            low_high = confluent.get_watermark_offsets(
                confluent_kafka.TopicPartition(unique_topic, 0), timeout=10, cached=False
            )
            return python.end_offsets([partition])[partition], low_high[1]

        assert end_offsets() == (1, 1)  # a correct broker says 10
        produce(kafka, unique_topic, [(b"k", b"alone")])  # a batch of one at offset 10
        assert end_offsets() == (11, 11)  # now right
    finally:
        python.close()
        confluent.close()


@pytest.mark.kafka
def test_end_offsets_per_partition_never_exceed_and_prove_what_waits(
    kafka: Transport, topic_name: str
) -> None:
    """What intake's stall check relies on (issue 15), through the transport of each client:
    `end_offsets` is asked per partition; on this broker it may be too small (the quirk
    above) but never larger than the offset after the last record, and above a position only
    when records wait there."""
    create(kafka, topic_name, partitions=2)
    produce(kafka, topic_name, [(b"k", b"v%d" % n) for n in range(10)])  # one key: one partition
    consumer = kafka.consumer()
    try:
        tps = [TopicPartition(topic_name, p) for p in range(2)]
        marks = consumer.end_offsets(tps)
        filled = next(tp for tp in tps if marks[tp] > 0)  # 10 records wait at position 0
        empty = next(tp for tp in tps if tp != filled)
        assert 1 <= marks[filled] <= 10 and marks[empty] == 0
        produce(kafka, topic_name, [(b"k", b"alone")])
        assert consumer.end_offsets([filled]) == {filled: 11}
    finally:
        consumer.close()


@pytest.mark.kafka
def test_quirk_read_committed_consumers_see_aborted_transactions(
    kafka_broker: EmbeddedBroker, unique_topic: str
) -> None:
    """Tansu ignores isolation.level: a read_committed consumer gets the records of an
    aborted transaction too. The ledger must not rely on Kafka transactions to hide work."""
    import confluent_kafka

    kafka = transport(settings_for("confluent"), kafka_broker.bootstrap)
    create(kafka, unique_topic, partitions=1)
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": kafka_broker.bootstrap, "transactional.id": unique_topic}
    )
    producer.init_transactions(10)
    for value, commit in ((b"committed", True), (b"aborted", False), (b"committed too", True)):
        producer.begin_transaction()
        producer.produce(unique_topic, value=value)
        if commit:
            producer.commit_transaction(10)
        else:
            producer.flush(10)
            producer.abort_transaction(10)
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": kafka_broker.bootstrap,
            "group.id": f"{unique_topic}.group",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([confluent_kafka.TopicPartition(unique_topic, 0, 0)])
        seen: list[tuple[int | None, bytes | None]] = []
        deadline = time.monotonic() + POLL_WAIT_S
        while len(seen) < 3 and time.monotonic() < deadline:
            seen += [(m.offset(), m.value()) for m in consumer.consume(10, 0.5) if not m.error()]
    finally:
        consumer.close()
    # Kafka would hide "aborted"; the transaction markers take offsets 1, 3 and 5, as in Kafka
    assert seen == [(0, b"committed"), (2, b"aborted"), (4, b"committed too")]


@pytest.mark.kafka
def test_quirk_producing_to_a_missing_topic_creates_it(
    kafka_broker: EmbeddedBroker, unique_topic: str
) -> None:
    """Tansu auto-creates a topic on first produce (Kafka does too unless
    auto.create.topics.enable=false): after an empty restart, a producer that does not check
    would silently start the log again at offset 0."""
    kafka = transport(settings_for("kafka-python"), kafka_broker.bootstrap)
    produce(kafka, unique_topic, [(b"k", b"v")])
    admin = kafka.admin()
    try:
        topics = admin.list_topics()
    finally:
        admin.close()
    assert unique_topic in topics
