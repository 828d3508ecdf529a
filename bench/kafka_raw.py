"""Raw Kafka yardsticks measured with the ledger's own transport, on the same records:

- `consume_reproduce`: read every record of a topic and produce it again to another topic,
  then flush (the ceiling of a sales-topic-to-anything pipeline with that client);
- `consume_only`: read and orjson-decode every record of a topic (the ceiling of replay).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson

from consumers.transport import TopicPartition, Transport

POLL_RECORDS = 10_000
IDLE_S = 5.0


def produce_lines(
    kafka: Transport, topic: str, lines: Iterable[bytes], key_field: str = "customer_id"
) -> int:
    """Produce JSON lines keyed by one of their fields; return how many."""
    producer = kafka.producer()
    count = 0
    try:
        for line in lines:
            key = orjson.loads(line).get(key_field)
            producer.send(topic, str(key).encode() if key is not None else None, line)
            count += 1
        producer.flush(120.0)
    finally:
        producer.close()
    return count


def _assigned_consumer(kafka: Transport, topic: str) -> Any:
    admin = kafka.admin()
    try:
        partitions = admin.list_topics()[topic]
    finally:
        admin.close()
    consumer = kafka.consumer()
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    return consumer


def consume_reproduce(kafka: Transport, source: str, target: str, expected: int) -> dict[str, Any]:
    """Read `expected` records of `source`, produce each to `target` (created with as many
    partitions as `source` if missing), flush: records/s."""
    admin = kafka.admin()
    try:
        admin.create_topics([target], admin.list_topics()[source])
    finally:
        admin.close()
    consumer = _assigned_consumer(kafka, source)
    producer = kafka.producer()
    try:
        seen = 0
        started = time.perf_counter()
        while seen < expected:
            records = consumer.poll(POLL_RECORDS, IDLE_S)
            if not records:
                raise RuntimeError(f"{source}: only {seen} of {expected} records arrived")
            for record in records:
                assert record.value is not None
                producer.send(target, record.key, record.value)
            seen += len(records)
        producer.flush(120.0)
        seconds = time.perf_counter() - started
    finally:
        producer.close()
        consumer.close()
    return {"records": seen, "seconds": seconds, "records_per_s": seen / seconds}


def consume_only(kafka: Transport, topic: str, expected: int) -> dict[str, Any]:
    """Read and decode `expected` records of `topic`: records/s."""
    consumer = _assigned_consumer(kafka, topic)
    try:
        seen = 0
        started = time.perf_counter()
        while seen < expected:
            records = consumer.poll(POLL_RECORDS, IDLE_S)
            if not records:
                raise RuntimeError(f"{topic}: only {seen} of {expected} records arrived")
            for record in records:
                assert record.value is not None
                orjson.loads(record.value)
            seen += len(records)
        seconds = time.perf_counter() - started
    finally:
        consumer.close()
    return {"records": seen, "seconds": seconds, "records_per_s": seen / seconds}
