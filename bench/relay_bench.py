"""The relay's publish rate: a synthetic book applied to a store, then published by the relay to
a fresh events topic of the embedded broker, with each client, several rounds.

    python -m bench.relay_bench [--sales 200000] [--agreements 1000] [--rounds 3]
                                [--database URL]

Each round times one `Relay.run_once()` over the whole store (reading the notification log,
splitting each sales batch per customer, sending, flushing, watermarks, storing the position),
after a warm-up `run_once(max_notifications=1)` has connected the producer. It prints records
(events and sales parts) per second and sales per second, and the median of each client.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.generate import write_book
from consumers.relay import Relay
from consumers.transport import transport
from ledger import Ledger
from ledger.kafka.broker import EmbeddedBroker
from ledger.kafka.settings import ClientName, KafkaSettings

CLIENTS: tuple[ClientName, ...] = ("confluent", "kafka-python")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=200_000)
    parser.add_argument("--agreements", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", help="SQLAlchemy URL of an EMPTY store (default: SQLite)")
    args = parser.parse_args()
    assert 1 <= args.rounds <= 20, args.rounds

    work = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    book = write_book(work, sales=args.sales, agreements=args.agreements)
    url = args.database or f"sqlite:///{work / 'ledger.db'}"
    with Ledger(url) as ledger, EmbeddedBroker(work) as broker:
        started = time.perf_counter()
        for path in (book.agreements_path, book.sales_path):
            with path.open("rb") as lines:
                report = ledger.apply_lines(lines)
            assert not report.rejected, report.to_dict()["rejections"][:3]
        notifications = ledger.app.recorder.max_notification_id()
        print(
            f"store: {args.sales:,} sales, {args.agreements:,} agreements, {notifications:,} "
            f"notifications, applied in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        rates: dict[str, list[float]] = {client: [] for client in CLIENTS}
        for round_ in range(args.rounds):
            for client in CLIENTS:
                settings = KafkaSettings(
                    client=client, topic_prefix=f"bench{round_}.{client}.", bootstrap=None
                )
                with Relay(ledger, transport(settings, broker.bootstrap), settings) as relay:
                    warm = relay.run_once(max_notifications=1)
                    began = time.perf_counter()
                    records = relay.run_once()
                    seconds = time.perf_counter() - began
                records += warm
                rates[client].append(args.sales / seconds)
                print(
                    f"round {round_ + 1} {client:12s} {records:,} records in {seconds:.2f} s: "
                    f"{records / seconds:,.0f} records/s, {args.sales / seconds:,.0f} sales/s",
                    flush=True,
                )
        for name, values in rates.items():
            print(f"median {name:12s} {statistics.median(values):,.0f} sales/s "
                  f"(min {min(values):,.0f}, max {max(values):,.0f})")


if __name__ == "__main__":
    main()
