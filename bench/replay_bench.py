"""Replay of the events topic into the liability projection, against the raw consume rate.

    python -m bench.replay_bench [--sales 1000000] [--agreements 1000]
                                 [--clients confluent,kafka-python] [--database URL]

A synthetic book (bench.generate) is applied to a store and published once by the relay to the
events topic of an embedded broker. Then, for each client, on that same topic:

- raw: `bench.kafka_raw.consume_only`, every record read and orjson-decoded;
- replay: `replay.rebuild.replay_projection(ledger, "liability", ...)`, a fresh generation built
  from offset 0 until the store's position is reached on every partition, swapped in, the old
  one dropped; then the projection's answer is checked equal to the core's for every agreement
  at two valid dates.

Prints records/s (envelopes, sales parts and watermarks) and sales/s for both, their ratio, and
the targets of issue 3 (replay under 60 s; at least 30 % of the raw consume rate), and writes
them to `<out>/replay-results.json`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.orm import Session

from bench.generate import write_book
from bench.kafka_raw import consume_only
from consumers.relay import Relay
from consumers.transport import transport
from ledger import Ledger
from ledger.kafka.broker import EmbeddedBroker
from ledger.kafka.settings import KafkaSettings
from ledger.liability import liability_rows
from replay.rebuild import replay_projection

REPLAY_SECONDS_MAX = 60.0
RAW_RATIO_MIN = 0.30
CHECK_DATES = (date(2025, 9, 30), date(2025, 12, 31))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=1_000_000)
    parser.add_argument("--agreements", type=int, default=1000)
    parser.add_argument("--clients", default="confluent,kafka-python")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--database", help="SQLAlchemy URL of an EMPTY store (default: SQLite)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = parser.parse_args(argv)
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]

    work = Path(tempfile.mkdtemp(prefix="replay-bench-"))
    book = write_book(work, sales=args.sales, agreements=args.agreements)
    url = args.database or f"sqlite:///{work / 'ledger.db'}"
    results: dict[str, Any] = {"sales": args.sales, "agreements": args.agreements,
                               "partitions": args.partitions, "clients": {}}
    with Ledger(url) as ledger, EmbeddedBroker(work) as broker:
        began = time.perf_counter()
        for path in (book.agreements_path, book.sales_path):
            with path.open("rb") as lines:
                report = ledger.apply_lines(lines)
            assert not report.rejected, report.to_dict()["rejections"][:3]
        position = int(ledger.app.recorder.max_notification_id() or 0)
        print(f"store: {args.sales:,} sales, {args.agreements:,} agreements, {position:,} "
              f"notifications, applied in {time.perf_counter() - began:.1f} s", flush=True)

        publisher = KafkaSettings(client="confluent", topic_prefix="replay.", bootstrap=None,
                                  partitions=args.partitions)
        began = time.perf_counter()
        with Relay(ledger, transport(publisher, broker.bootstrap), publisher) as relay:
            published = relay.run_once()
        print(f"relay: {published:,} records in {time.perf_counter() - began:.1f} s",
              flush=True)
        results["records"] = published
        topic = publisher.topic("events")

        for client in clients:
            settings = publisher.model_copy(update={"client": client})
            kafka = transport(settings, broker.bootstrap)
            raw = consume_only(kafka, topic, published)
            print(f"{client:12s} raw consume+decode: {raw['records']:,} records in "
                  f"{raw['seconds']:.2f} s: {raw['records_per_s']:,.0f} records/s", flush=True)
            began = time.perf_counter()
            generation = replay_projection(ledger, "liability", kafka, settings, publish=False)
            seconds = time.perf_counter() - began
            engine = generation.engine(read_only=True)
            try:
                with Session(engine) as session:
                    for as_of in CHECK_DATES:
                        mine = liability_rows(session, as_of)
                        assert mine == ledger.liability(as_of), f"projection != core at {as_of}"
                        assert len(mine) == args.agreements
            finally:
                engine.dispose()
            replay = {
                "seconds": seconds,
                "records_per_s": published / seconds,
                "sales_per_s": args.sales / seconds,
                "generation": generation.number,
            }
            ratio = replay["records_per_s"] / raw["records_per_s"]
            results["clients"][client] = {"raw": raw, "replay": replay, "ratio": ratio,
                                          "under_60_s": seconds < REPLAY_SECONDS_MAX,
                                          "ratio_met": ratio >= RAW_RATIO_MIN}
            print(
                f"{client:12s} replay: {seconds:.2f} s, {replay['records_per_s']:,.0f} "
                f"records/s, {replay['sales_per_s']:,.0f} sales/s; "
                f"{ratio:.1%} of raw consume "
                f"[{'PASS' if seconds < REPLAY_SECONDS_MAX else 'MISS'} < 60 s, "
                f"{'PASS' if ratio >= RAW_RATIO_MIN else 'MISS'} >= 30 %]; projection == core",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "replay-results.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2)
    )
    return results


if __name__ == "__main__":
    main()
