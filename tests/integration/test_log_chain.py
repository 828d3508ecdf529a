"""Envelope v2 on the real embedded broker (issue 12 point 2): a record whose delivery timed
out while a later one of its partition went through leaves a gap that the projection detects
from the envelope and heals from the relay's re-send; a subscriber finds a removed or an
altered record from the log alone (no store), with both client libraries; verify --log names
them."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from consumers.relay import Relay, chain_breaks
from consumers.topics import EVENTS, read_events_log, read_until_watermark
from consumers.transport import Record, TransportError, transport
from ledger import Ledger
from ledger.config import Settings
from ledger.events.envelope import ENVELOPE_KIND, KIND_HEADER, Envelope, LogChain, parse_record
from ledger.kafka.broker import EmbeddedBroker
from ledger.kafka.settings import KafkaSettings
from ledger.projections.generations import live_or_new
from ledger.projections.read_models import model
from ledger.projections.runner import NotCaughtUp, ProjectionRunner
from tests.integration.test_projections import apply_clean, book, check_equal, feed

from .conftest import settings_for

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 3
_PREFIXES = itertools.count(1)


def unique_settings(client: str) -> KafkaSettings:
    prefix = f"chain{os.getpid()}x{next(_PREFIXES)}."
    return settings_for(client, topic_prefix=prefix, partitions=PARTITIONS)


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_a_record_that_timed_out_behind_a_later_one_is_a_gap_healed_by_the_resend(
    client: str, kafka_broker: EmbeddedBroker, sqlite_url: str
) -> None:
    settings = unique_settings(client)
    kafka = transport(settings, kafka_broker.bootstrap)
    with Ledger(sqlite_url, settings=Settings(chunk_lines=7)) as ledger:
        commands = book()
        apply_clean(ledger, commands)
        with Relay(ledger, kafka, settings) as relay:
            producer = relay._get_producer(kafka_broker.cluster_id)
            real_send, real_flush = producer.send, producer.flush
            sent: Counter[int] = Counter()
            dropped: list[bytes] = []

            def send(topic, key, value, headers=None, partition=None):  # type: ignore[no-untyped-def]
                if partition is not None and key is not None:
                    sent[partition] += 1
                    if partition == 0 and sent[0] == 3:  # its delivery times out...
                        dropped.append(value)
                        return
                real_send(topic, key, value, headers, partition)  # ...the later ones arrive

            def flush(timeout_s: float) -> None:
                real_flush(timeout_s)
                if dropped and len(dropped) == 1:
                    dropped.append(b"")
                    raise TransportError("injected: one record was not acknowledged in time")

            producer.send = send  # type: ignore[method-assign]
            producer.flush = flush  # type: ignore[method-assign]
            with pytest.raises(TransportError, match="injected"):
                relay.run_once()
            assert relay.stored().position == 0 and sent[0] > 3
            relay.run_once()  # a new producer: re-sends everything after position 0
            position = relay.stored().position
        missing = parse_record(dropped[0])
        assert isinstance(missing, Envelope)
        runner = feed(live_or_new(ledger.engine, "liability"), "liability", kafka, settings,
                      position)
        for name in ("claims", "sales"):
            feed(live_or_new(ledger.engine, name), name, kafka, settings, position)
        check_equal(ledger, commands)  # nothing lost (v1's skip rule lost the late record)
        # the record after the missing one was held, not applied; the re-send healed it
        assert runner.held >= 1 and runner.healed >= 1 and runner.gaps() == []
        assert runner.quarantined == 0
        # the log read whole: the gap healed, nothing to name
        records = read_events_log(kafka, settings, position)
    chain = LogChain()
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.value is not None
        chain.add(record.partition, record.offset, record.value)
    assert chain.finish() == [] and chain.healed >= 1


def feed_within(gen, kafka, settings: KafkaSettings, position: int,  # type: ignore[no-untyped-def]
                timeout_s: float) -> None:
    engine = gen.engine()
    try:
        with ProjectionRunner(engine, model("liability"), kafka, settings,
                              poll_records=50) as runner:
            runner.run_until(position, timeout_s=timeout_s)
    finally:
        engine.dispose()


def copy_log(kafka, records: list[Record], topic: str, drop: int, alter: int) -> None:  # type: ignore[no-untyped-def]
    """The records on `topic`, each on its partition, in order, without the `drop`-th event
    record of partition 0 and with the `alter`-th one's payload edited."""
    producer = kafka.producer()
    events = 0
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.value is not None
        value = record.value
        if record.partition == 0 and record.key is not None:
            events += 1
            if events == drop:
                continue
            if events == alter:
                data = orjson.loads(value)
                assert "payload" in data
                value = value.replace(b'"recorded_at":"2025', b'"recorded_at":"2024', 1)
                assert value != record.value
        producer.send(topic, record.key, value, list(record.headers) or
                      [(KIND_HEADER, ENVELOPE_KIND)], partition=record.partition)
    producer.flush(30)
    producer.close()


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_a_subscriber_finds_a_removed_and_an_altered_record_without_the_store(
    client: str, kafka_broker: EmbeddedBroker, sqlite_url: str, tmp_path: Path
) -> None:
    settings = unique_settings(client)
    kafka = transport(settings, kafka_broker.bootstrap)
    with Ledger(sqlite_url, settings=Settings(chunk_lines=7)) as ledger:
        apply_clean(ledger, book())
        with Relay(ledger, kafka, settings) as relay:
            relay.run_once()
            position = relay.stored().position
        records = read_events_log(kafka, settings, position)
    assert chain_breaks(records) == []  # the relay's own log is whole
    on_zero = [r for r in records if r.partition == 0 and r.key is not None]
    assert len(on_zero) >= 6
    copy = unique_settings(client)  # another prefix: the tampered copy of the log
    admin = kafka.admin()
    admin.create_topics([copy.topic(EVENTS)], PARTITIONS)
    admin.close()
    copy_log(kafka, records, copy.topic(EVENTS), drop=2, alter=5)
    # read back with this client: the store is not consulted
    tampered = read_until_watermark(kafka, copy.topic(EVENTS), position, PARTITIONS)
    problems = [b.what for b in chain_breaks(tampered)]
    first, removed = (parse_record(r.value or b"") for r in on_zero[:2])
    assert isinstance(first, Envelope) and isinstance(removed, Envelope)
    assert len(problems) == 2, problems
    gap = next(p for p in problems if "gap" in p)
    assert gap.startswith("log chain: partition 0 offset ")
    assert (f"after position {first.position} part {first.part}, the records up to position "
            f"{removed.position} part {removed.part} are missing") in gap
    assert any("altered: its bytes do not hash to its link" in p for p in problems)
    if client != "confluent":
        return
    # the example subscriber, on the tampered copy, says so and exits 2
    env = {**os.environ, "LEDGER_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
           "LEDGER_KAFKA_TOPIC_PREFIX": copy.topic_prefix, "LEDGER_KAFKA_CLIENT": client,
           "LEDGER_KAFKA_SESSION_TIMEOUT_MS": "3000",
           "LEDGER_KAFKA_HEARTBEAT_INTERVAL_MS": "500", "LEDGER_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "subscriber.py"), "--group", "tamper",
         "--until-position", str(position), "--timeout", "60"],
        env=env, capture_output=True, timeout=90, text=True,
    )
    assert done.returncode == 2, (done.stdout[-1000:], done.stderr[-2000:])
    chain_lines = [line for line in done.stderr.splitlines() if line.startswith("CHAIN ")]
    assert len(chain_lines) == 2, done.stderr
    assert any("altered" in line for line in chain_lines)
    assert any("gap" in line and f"position {removed.position}" in line for line in chain_lines)


def test_a_record_lost_after_the_relay_confirmed_it_is_named_and_healed_by_rewinding(
    kafka_broker: EmbeddedBroker, sqlite_url: str
) -> None:
    settings = unique_settings("confluent")
    kafka = transport(settings, kafka_broker.bootstrap)
    with Ledger(sqlite_url, settings=Settings(chunk_lines=7)) as ledger:
        commands = book()
        apply_clean(ledger, commands)
        with Relay(ledger, kafka, settings) as relay:
            producer = relay._get_producer(kafka_broker.cluster_id)
            real_send = producer.send
            sent: Counter[int] = Counter()

            def send(topic, key, value, headers=None, partition=None):  # type: ignore[no-untyped-def]
                if partition is not None and key is not None:
                    sent[partition] += 1
                    if partition == 0 and sent[0] == 2:
                        return  # lost without an error: the relay confirms past it
                real_send(topic, key, value, headers, partition)

            producer.send = send  # type: ignore[method-assign]
            relay.run_once()
            position = relay.stored().position
            with pytest.raises(NotCaughtUp) as waited:
                feed_within(live_or_new(ledger.engine, "liability"), kafka, settings,
                            position, timeout_s=8)
            assert "gaps on the log: partition 0: the record at store position" in \
                str(waited.value)
            found = re.search(r"rebate-ledger relay --from-position (\d+)", str(waited.value))
            assert found is not None
            producer.send = real_send  # type: ignore[method-assign]
            assert relay.rewind(int(found.group(1)) - 1) == int(found.group(1)) - 1
            relay.run_once()
        runner = feed(live_or_new(ledger.engine, "liability"), "liability", kafka, settings,
                      position)
        assert runner.gaps() == []
        for name in ("claims", "sales"):
            feed(live_or_new(ledger.engine, name), name, kafka, settings, position)
        check_equal(ledger, commands)


def test_a_log_of_v1_records_then_v2_records_is_read_whole(
    kafka_broker: EmbeddedBroker, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relay upgraded in place: the log holds v1 records (unchained), then v2 records whose
    chains start at the zeros; projections and LogChain read both, nothing is lost or named."""
    import consumers.relay as relay_module
    from ledger.events.envelope import GENESIS_LINK

    settings = unique_settings("kafka-python")
    kafka = transport(settings, kafka_broker.bootstrap)
    with Ledger(sqlite_url, settings=Settings(chunk_lines=7)) as ledger:
        commands = book()
        apply_clean(ledger, commands)
        with Relay(ledger, kafka, settings) as relay, monkeypatch.context() as old:
            old.setattr(relay_module, "link_record",
                        lambda unlinked, previous, store_hash: (unlinked, GENESIS_LINK))
            relay.run_once(max_notifications=9)  # the old relay: v1 envelopes
            with ledger.engine.begin() as connection:  # it kept no chain heads
                connection.execute(relay_module.relay_heads.delete())
        with Relay(ledger, kafka, settings) as relay:
            relay.run_once()  # the new one: v2 from there on
            position = relay.stored().position
        records = read_events_log(kafka, settings, position)
        versions = Counter(orjson.loads(r.value or b"{}").get("envelope_version")
                           for r in records if r.key is not None)
        assert versions[1] >= 3 and versions[2] >= 3, versions
        for name in ("liability", "claims", "sales"):
            runner = feed(live_or_new(ledger.engine, name), name, kafka, settings, position)
            assert runner.held == 0 and runner.quarantined == 0
        check_equal(ledger, commands)
    assert chain_breaks(records) == []


def test_a_v1_record_after_chained_ones_is_quarantined_not_applied(sqlite_url: str) -> None:
    """A downgrade: an unchained (v1) envelope on a partition whose records are chained is
    forged or from an old relay; the projection quarantines it and reads on."""
    from ledger.events.envelope import GENESIS, ChainHead, link_record
    from ledger.projections.runner import PartitionState

    settings = unique_settings("confluent")
    with Ledger(sqlite_url) as ledger:
        apply_clean(ledger, book()[:3])  # three agreements
        relay = Relay.__new__(Relay)  # only its record making: no Kafka
        relay.engine, relay._customers = ledger.engine, {}
        head, values = GENESIS, []
        for n in ledger.app.recorder.select_notifications(start=1, limit=3):
            ((key, unlinked),) = relay.records(n.id, n.topic, n.state)
            value, link = link_record(unlinked, head, None)
            head = ChainHead(n.id, 0, link)
            values.append((key, unlinked, value))
        engine = live_or_new(ledger.engine, "liability").engine()
        try:
            runner = ProjectionRunner(engine, model("liability"), None,  # type: ignore[arg-type]
                                      settings)
            runner.state[0] = PartitionState(0, 0, -1, 0, None)
            topic = settings.topic(EVENTS)
            sent = [values[0][2], values[1][2], values[2][1], values[2][2]]  # v1 copy of #3
            runner.apply_records([Record(topic, 0, offset, values[0][0], value,
                                         ((KIND_HEADER, ENVELOPE_KIND),))
                                  for offset, value in enumerate(sent)])
            (quarantined,) = runner.quarantined_records()
            assert quarantined.offset == 2
            assert quarantined.reason.startswith("unchained: a v1 envelope (store position")
            assert runner.applied == 3 and runner.state[0].position == 3
        finally:
            engine.dispose()
