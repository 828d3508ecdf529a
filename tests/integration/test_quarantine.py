"""A malformed record on the events topic (not JSON, an unknown envelope version, an event that
does not decode) is quarantined with its topic, partition and offset; the runner applies the
good records around it; the projection is incomplete (queries answer from the core,
`audit-view` names it) until a replay that finds every stored event rebuilds it. Real broker."""

from __future__ import annotations

import time
from datetime import date

import orjson
from sqlalchemy.orm import Session

from consumers.transport import TopicPartition, Transport, transport
from ledger import Ledger
from ledger.events.envelope import ENVELOPE_KIND, KIND_HEADER
from ledger.kafka.broker import EmbeddedBroker
from ledger.kafka.settings import KafkaSettings
from ledger.liability import liability_rows
from ledger.projections.generations import live_or_new
from ledger.projections.reader import CORE, liability_answer
from ledger.projections.runner import quarantined_records
from replay.rebuild import audit_view, replay_projection

from .test_projections import apply_clean, book, feed, live, publish, read, unique_settings


def garbage(position: int) -> list[tuple[bytes, str]]:
    """Three records no reader can use, with the start of the reason each must get."""
    head = {
        "envelope_version": 1, "event_id": "x/1", "type": "SalesRecorded", "schema_version": 1,
        "aggregate_id": "00000000-0000-0000-0000-000000000001", "aggregate_version": 1,
        "valid_time": "2025-01-01", "recorded_time": "2025-01-01T00:00:00+00:00",
        "position": position + 1000, "part": 0, "parts": 1, "key": "C1",
    }
    return [
        (b"\x00\x01 this is not JSON {", "not JSON"),
        (orjson.dumps({**head, "envelope_version": 9, "payload": {}}), "envelope_version 9"),
        (orjson.dumps({**head, "payload": {"bogus": 1}}), "not a readable envelope"),
    ]


def offsets_of(kafka: Transport, settings: KafkaSettings, values: list[bytes]) -> list[int]:
    """The offsets of `values` on partition 0 of the events topic, read back independently."""
    consumer = kafka.consumer()
    tp = TopicPartition(settings.topic("events"), 0)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    found: dict[bytes, int] = {}
    deadline = time.monotonic() + 30
    try:
        while len(found) < len(values) and time.monotonic() < deadline:
            for record in consumer.poll(500, 0.5):
                if record.value in values:
                    found[record.value] = record.offset
    finally:
        consumer.close()
    assert len(found) == len(values), found
    return [found[v] for v in values]


def test_malformed_records_are_quarantined_and_the_projection_incomplete_until_replay(
    sqlite_ledger: Ledger, kafka_broker: EmbeddedBroker
) -> None:
    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    commands = book(rounds=3)
    half = len(commands) // 2
    apply_clean(sqlite_ledger, commands[:half])
    position = publish(sqlite_ledger, kafka, settings)
    bad = garbage(position)
    producer = kafka.producer()
    for value, _ in bad:
        headers = [] if value.startswith(b"\x00") else [(KIND_HEADER, ENVELOPE_KIND)]
        producer.send(settings.topic("events"), b"C1", value, headers, partition=0)
    producer.flush(30)
    producer.close()
    apply_clean(sqlite_ledger, commands[half:])  # good records after the bad ones
    position = publish(sqlite_ledger, kafka, settings)

    runner = feed(live_or_new(sqlite_ledger.engine, "liability"), "liability", kafka, settings,
                  position)
    assert runner.quarantined == 3
    generation = live(sqlite_ledger, "liability")
    records = read(generation, quarantined_records)
    offsets = offsets_of(kafka, settings, [v for v, _ in bad])
    assert [(r.topic, r.partition, r.offset) for r in records] == [
        (settings.topic("events"), 0, offset) for offset in offsets
    ]
    for record, (value, reason) in zip(records, bad, strict=True):
        assert record.reason.startswith(reason), record.reason
        assert record.value_prefix == value and record.value_bytes == len(value)
        assert record.quarantined_at.tzinfo is not None or sqlite_ledger.engine.name == "sqlite"
    # the good records on both sides were applied: the rows equal the core's
    for as_of in (date(2025, 3, 31), date(2025, 12, 31)):
        mine = read(generation, lambda s, a=as_of: liability_rows(s, a, None))
        assert [r.to_dict() for r in mine] == [
            r.to_dict() for r in sqlite_ledger.liability(as_of)
        ]
    # incomplete: queries do not trust it, audit-view names it
    assert liability_answer(sqlite_ledger, date(2025, 12, 31), settings=settings)[1] == CORE
    result = audit_view(sqlite_ledger, kafka, settings, date(2025, 12, 31), None)
    assert not result.clean and result.differences == []
    assert list(result.incomplete) == [f"projection liability g{generation.number}"]
    assert [r.offset for r in result.incomplete[f"projection liability g{generation.number}"]
            ] == offsets
    # a replay reads the same log, finds every stored event, and the rebuilt one is complete
    rebuilt = replay_projection(sqlite_ledger, "liability", kafka, settings, timeout_s=60)
    engine = rebuilt.engine()
    try:
        with Session(engine) as session:
            assert quarantined_records(session) == []
    finally:
        engine.dispose()
    result = audit_view(sqlite_ledger, kafka, settings, date(2025, 12, 31), None)
    assert result.clean, (result.incomplete, result.projection_differences)
    assert liability_answer(sqlite_ledger, date(2025, 12, 31), settings=settings)[1] == (
        f"projection liability g{rebuilt.number}"
    )
