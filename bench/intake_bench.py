"""`python -m bench.intake_bench`: intake throughput, sales from the sales topic into the store.

For each client: a fresh embedded broker topic prefix and a fresh database; the book's
agreements are applied directly, its N sales produced to the sales topic (untimed, keyed by
customer as an ERP would); then one `Intake` runs until the positions it stored cover every
record. Timed from the first polled batch (the ~2-3 s group join left out) to the last commit.
With `--profile DIR`, each run is profiled (cProfile) into DIR/intake-<client>.prof and the
top functions by own time printed.

Prints sales/s per client and writes bench/out/intake-results.json.
"""

from __future__ import annotations

import argparse
import cProfile
import platform
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select

from bench.generate import write_book
from consumers.intake import Intake, intake_positions, produce_lines
from consumers.topics import SALES
from consumers.transport import transport
from ledger.core import Ledger
from ledger.kafka.broker import EmbeddedBroker
from ledger.kafka.settings import KafkaSettings
from ledger.projections.core import sales as core_sales

OUT = Path(__file__).parent / "out"


def stored_total(ledger: Ledger, topic: str) -> int:
    with ledger.engine.connect() as connection:
        total = connection.execute(
            select(func.coalesce(func.sum(intake_positions.c.next_offset), 0)).where(
                intake_positions.c.topic == topic
            )
        ).scalar_one()
    return int(total)


def run_one(
    client: str, bootstrap: str, book_dir: Path, sales: int, database_url: str,
    profile_dir: Path | None,
) -> dict[str, Any]:
    settings = KafkaSettings.model_validate({
        "client": client, "topic_prefix": f"bench-intake-{client}-{time.time_ns()}.",
        "session_timeout_ms": 3000, "heartbeat_interval_ms": 500,
    })
    kafka = transport(settings, bootstrap)
    topic = settings.topic(SALES)
    with Ledger(database_url) as ledger:
        ledger.apply_lines((book_dir / "book-agreements.jsonl").read_bytes().splitlines())
        producer = kafka.producer()
        started = time.perf_counter()
        with (book_dir / "book-sales.jsonl").open("rb") as lines:
            produced = produce_lines(producer, topic, lines, key_field="customer_id")
        produce_s = time.perf_counter() - started
        producer.close()
        assert produced == sales, (produced, sales)
        profiler = cProfile.Profile() if profile_dir is not None else None
        with Intake(ledger, kafka, settings) as intake:
            first = None
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline:
                if profiler is not None and first is not None:
                    profiler.enable()
                count = intake.run_once()
                if profiler is not None:
                    profiler.disable()
                if count and first is None:
                    first = time.perf_counter()
                if intake.counters.records >= produced and stored_total(ledger, topic) >= (
                    produced
                ):
                    break
            seconds = time.perf_counter() - (first or time.perf_counter())
            counters = intake.counters
        with ledger.engine.connect() as connection:
            stored_sales = connection.execute(
                select(func.count()).select_from(core_sales)
            ).scalar_one()
    if profiler is not None and profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        path = profile_dir / f"intake-{client}.prof"
        profiler.dump_stats(str(path))
        print(f"--- {client}: top functions by own time ({path})")
        pstats.Stats(str(path)).sort_stats("tottime").print_stats(18)
    result = {
        "client": client,
        "sales": produced,
        "produce_s": round(produce_s, 2),
        "intake_s": round(seconds, 2),
        "sales_per_s": round(produced / seconds) if seconds else None,
        "batches": counters.batches,
        "applied": counters.applied,
        "rejected": counters.rejected,
        "core_sales": stored_sales,
    }
    print(
        f"{client:12s} {produced:,} sales: produced in {produce_s:.1f} s; intake "
        f"{seconds:.1f} s = {result['sales_per_s']:,} sales/s ({counters.batches} batches, "
        f"{stored_sales:,} in core_sales)", flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=200_000)
    parser.add_argument("--agreements", type=int, default=1000)
    parser.add_argument("--clients", default="confluent,kafka-python")
    parser.add_argument("--database", default=None,
                        help="a PostgreSQL admin URL is not supported: SQLite files only "
                        "unless a URL of an EMPTY database is given (used for one client)")
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    write_book(work, sales=args.sales, agreements=args.agreements)
    results = []
    with EmbeddedBroker(work) as broker:
        for client in args.clients.split(","):
            url = args.database or f"sqlite:///{work / f'{client}.db'}"
            results.append(
                run_one(client, broker.bootstrap, work, args.sales, url, args.profile)
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "intake-results.json").write_bytes(
        orjson.dumps(
            {"machine": platform.platform(), "results": results}, option=orjson.OPT_INDENT_2
        )
    )


if __name__ == "__main__":
    main()
