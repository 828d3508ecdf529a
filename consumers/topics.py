"""The ledger's topics, all named `<LEDGER_KAFKA_TOPIC_PREFIX><name>`:

- `events`: every stored event in an envelope, and the relay's watermarks
  (`ledger.events.envelope`); keyed by customer id.
- `sales`: sales from an ERP, one contract `record_sale` or `reverse_sale` per record.
- `commands`: any contract command, one per record.
- `rejected`: records intake could not apply: the original bytes as the value, the reason and
  the source topic, partition and offset in headers.
"""

from __future__ import annotations

import time
from typing import Any

from ledger.events.envelope import Watermark, parse_record
from ledger.kafka.ports import (  # noqa: F401 - the topic names, re-exported
    ALL,
    COMMANDS,
    EVENTS,
    REJECTED,
    SALES,
    Admin,
    Record,
    TopicPartition,
    Transport,
    ensure_topics,
)


def read_until_watermark(
    kafka: Transport, topic: str, position: int, partitions: int, timeout_s: float = 300.0
) -> list[Record]:
    """Every record of the events topic `topic` (its `partitions` partitions, from offset 0)
    until each partition has carried a relay watermark >= `position`: the only sure sign of
    having read everything up to a store position (never an end offset: the embedded
    broker's are unreliable, docs/kafka-notes.md). Raises TimeoutError after `timeout_s`."""
    consumer = kafka.consumer()
    records: list[Record] = []
    marks: dict[int, int] = {}
    deadline = time.monotonic() + timeout_s
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        while not all(marks.get(p, 0) >= position for p in range(partitions)):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{topic}: no watermark >= {position} on every partition within "
                    f"{timeout_s:.0f} s (watermarks {marks}); is the relay publishing?")
            for record in consumer.poll(10_000, 0.5):
                records.append(record)
                if record.value is not None:
                    message = parse_record(record.value)
                    if isinstance(message, Watermark):
                        marks[record.partition] = max(marks.get(record.partition, 0),
                                                      message.position)
    finally:
        consumer.close()
    return records


def read_events_log(kafka: Any, settings: Any, position: int,
                    timeout_s: float = 300.0) -> list[Any]:
    """Every record of the events topic from offset 0 until each partition has carried a
    watermark >= `position`."""
    topic = settings.topic(EVENTS)
    admin = kafka.admin()
    try:
        partitions = admin.list_topics()[topic]
    finally:
        admin.close()
    return read_until_watermark(kafka, topic, position, partitions, timeout_s)
