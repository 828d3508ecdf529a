"""An example downstream subscriber of the ledger's events topic (see docs/events.md).

It joins a consumer group, prints every event once (type, key, position, valid and recorded
time), and applies the contract's idempotency rule: on each partition, a record whose
`(position, part)` is not above the last one applied there is a duplicate (the relay re-sends
after a crash, and refills a broker that came back empty) and is skipped. Watermarks are not
printed; `--until-position P` stops once every assigned partition has carried a watermark of
at least P, i.e. once everything the store held up to position P has been read.

Envelope v2 records are also checked by their chain (`ledger.events.envelope.LogChain`, see
docs/events.md): an altered record, a record missing from a partition (a gap not healed by the
relay's re-send) or one out of order is printed to standard error as `CHAIN ...`, the event
is not applied, and the exit status is 2.

A real subscriber stores the last `(position, part)` (and, for v2, `link`) of each partition in
its own database, in the same transaction as what it does with the event; this example keeps
them in memory.

    python examples/subscriber.py --group my-team [--bootstrap HOST:PORT] [--until-position P]

Kafka settings come from the `LEDGER_KAFKA_*` variables (ledger/kafka/settings.py); without
`--bootstrap` or `LEDGER_KAFKA_BOOTSTRAP`, the running `rebate-ledger broker` is used.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# runnable from a checkout without installing: the repository root on the path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consumers.topics import EVENTS  # noqa: E402
from consumers.transport import TopicPartition, transport  # noqa: E402
from ledger.events.envelope import Envelope, LogChain, Watermark, parse_record  # noqa: E402
from ledger.kafka.settings import KafkaSettings  # noqa: E402


def bootstrap_of(given: str | None, settings: KafkaSettings) -> str:
    if given:
        return given
    if settings.bootstrap:
        return settings.bootstrap
    from ledger.config import Settings
    from ledger.kafka.broker import find_running_broker

    running = find_running_broker(Settings().home)
    if running is None:
        raise SystemExit(
            "no Kafka to read: give --bootstrap HOST:PORT, set LEDGER_KAFKA_BOOTSTRAP, "
            "or start `rebate-ledger broker`"
        )
    return running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", required=True, help="consumer group id")
    parser.add_argument("--bootstrap", help="host:port (default: LEDGER_KAFKA_BOOTSTRAP)")
    parser.add_argument(
        "--until-position", type=int, default=None,
        help="exit once every assigned partition carried a watermark >= this store position",
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="exit with status 1 after this many seconds"
    )
    args = parser.parse_args(argv)

    settings = KafkaSettings()
    topic = settings.topic(EVENTS)
    consumer = transport(settings, bootstrap_of(args.bootstrap, settings)).consumer(args.group)
    applied: dict[TopicPartition, tuple[int, int]] = {}  # last (position, part) per partition
    watermarks: dict[TopicPartition, int] = {}
    chain = LogChain(anchor=True)  # resuming at the committed offset: trust where it starts
    reported = 0

    def on_revoke(partitions: list[TopicPartition]) -> None:
        for partition in partitions:  # another member may advance them now
            applied.pop(partition, None)
            watermarks.pop(partition, None)
            chain.forget(partition.partition)

    consumer.subscribe([topic], on_revoke=on_revoke)
    printed = duplicates = 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    status = 0
    try:
        while True:
            if deadline is not None and time.monotonic() > deadline:
                print(f"timeout after {args.timeout} s", file=sys.stderr)
                status = 1
                break
            records = consumer.poll(1000, 0.5)
            offsets: dict[TopicPartition, int] = {}
            for record in records:
                partition = record.topic_partition
                offsets[partition] = record.offset + 1
                if record.value is None:
                    continue
                verdict = chain.add(record.partition, record.offset, record.value)
                for problem in chain.problems[reported:]:
                    print(f"CHAIN {problem.line()}", file=sys.stderr, flush=True)
                    status = 2
                reported = len(chain.problems)
                if verdict in (LogChain.HELD, LogChain.PROBLEM):
                    continue  # held: the relay's re-send brings it again after the gap
                message = parse_record(record.value)
                if isinstance(message, Watermark):
                    watermarks[partition] = max(watermarks.get(partition, 0), message.position)
                    continue
                assert isinstance(message, Envelope)
                if partition in applied and message.order <= applied[partition]:
                    duplicates += 1
                    continue
                applied[partition] = message.order
                printed += 1
                print(
                    f"{message.type} key={message.key} position={message.position} "
                    f"part={message.part}/{message.parts} valid={message.valid_time} "
                    f"recorded={message.recorded_time.isoformat()} "
                    f"partition={record.partition} offset={record.offset}",
                    flush=True,
                )
            consumer.commit(offsets)  # after the effects; a real subscriber stores them too
            if args.until_position is not None:
                assigned = consumer.assignment()
                if assigned and all(
                    watermarks.get(p, -1) >= args.until_position for p in assigned
                ):
                    break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    for problem in chain.finish()[reported:]:
        print(f"CHAIN {problem.line()}", file=sys.stderr, flush=True)
        status = 2
    print(f"done: {printed} events, {duplicates} duplicates skipped", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
