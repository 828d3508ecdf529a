"""`apply` throughput: the ledger, a naive eventsourcing baseline, and a raw SQLite ceiling.

All three read the same JSONL file line by line (never the whole file in memory), decode each
line, and write to a fresh SQLite file database with WAL and synchronous=FULL.

- ledger: `Ledger.apply_lines` in a child process (so that its peak RSS is its own), after the
  agreements are created; run as `python -m bench.apply_bench ledger ...`, it prints one JSON
  object with its figures.
- naive baseline: an `eventsourcing` application on eventsourcing-sqlalchemy that does what the
  library's tutorials do for each command: one aggregate per sale (`NaiveSale`, id derived from
  `sale_id`), created by one `Recorded` event, one `save()` (one transaction) per command. A
  repeated `sale_id` fails on the store's unique (id, version) constraint, which is how it would
  detect duplicates.
- raw ceiling: orjson-decode each line and `executemany` its fields into one plain table (no
  index, no checks), committing every `chunk_lines` lines like the ledger.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import ctypes
import itertools
import os
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from uuid import NAMESPACE_URL, UUID, uuid5

import orjson
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Transcoding

REPO = Path(__file__).resolve().parent.parent

#: The ledger's SQLite pragmas (ledger/store.py), repeated for the raw ceiling.
CEILING_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA busy_timeout=60000",
    "PRAGMA cache_size=-65536",
)


def sales_lines(path: Path, limit: int | None = None) -> Iterator[bytes]:
    """Stream the file's lines (at most `limit`)."""
    with path.open("rb") as handle:
        yield from itertools.islice(handle, limit)


def peak_rss_kib() -> int:
    """This process's peak resident set size (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def sqlite_heap_peak_kib() -> int | None:
    """SQLite's own peak heap in this process (page caches included), from the C library's
    `sqlite3_memory_highwater`; None where the symbol cannot be reached. It tells the bounded
    page cache apart from memory the ledger itself holds."""
    import _sqlite3

    with contextlib.suppress(OSError, AttributeError):
        highwater = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_highwater
        highwater.restype, highwater.argtypes = ctypes.c_int64, [ctypes.c_int]
        return int(highwater(0)) // 1024
    return None


# The ledger (child process) ----------------------------------------------------------------


def ledger_apply(
    database: Path, agreements: Path, sales: Path, limit: int | None, profile: Path | None
) -> dict[str, Any]:
    """Create the agreements, then time `apply_lines` over the sales file."""
    from ledger import Ledger  # imported here: the parent process needs none of it

    url = f"sqlite:///{database}"
    with Ledger(url) as ledger:
        with agreements.open("rb") as handle:
            created = ledger.apply_lines(handle, source="bench-agreements")
        assert not created.rejected, created.rejected[:3]
        chunk_lines = ledger.settings.chunk_lines
        expected = sum(1 for _ in sales_lines(sales, limit))
        # Known-at K for the query benchmark: a moment when half the sales were committed.
        known_at_half: datetime | None = None
        # When each chunk committed, to see whether the rate holds up as the database grows.
        chunk_done_s: list[float] = []

        def progress(_: int) -> None:
            nonlocal known_at_half
            chunk_done_s.append(time.perf_counter())
            if known_at_half is None and len(chunk_done_s) * chunk_lines >= expected / 2:
                known_at_half = datetime.now(UTC)

        profiler = cProfile.Profile() if profile else None
        started, cpu_started = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        report = ledger.apply_lines(
            sales_lines(sales, limit), source="bench-sales", on_progress=progress
        )
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        if profiler is not None and profile is not None:
            profiler.dump_stats(profile)
    assert report.accepted == expected and not report.rejected, (
        report.accepted, expected, report.rejected[:3],
    )
    first, last = tenth_rates([started, *chunk_done_s], chunk_lines, report.accepted)
    return {
        "sales": report.accepted,
        "seconds": seconds,
        "sales_per_s": report.accepted / seconds,
        # the process's own CPU time (user and system): what the code costs, apart from the
        # waits (fsync) and from the other work the machine runs meanwhile
        "cpu_seconds": cpu_seconds,
        "first_tenth_sales_per_s": first,
        "last_tenth_sales_per_s": last,
        "chunk_lines": chunk_lines,
        "known_at_half": known_at_half.isoformat() if known_at_half else None,
        "peak_rss_kib": peak_rss_kib(),
        "sqlite_heap_peak_kib": sqlite_heap_peak_kib(),
        "database_bytes": database_bytes(database),
    }


def tenth_rates(marks_s: list[float], chunk_lines: int, total: int) -> tuple[float, float]:
    """Sales/s over the first and the last tenth of the chunks (at least one chunk each);
    `marks_s` is the start time followed by each chunk's commit time."""
    chunks = len(marks_s) - 1
    assert chunks >= 1
    span = max(1, chunks // 10)
    last_chunk_lines = total - chunk_lines * (chunks - 1)
    first_lines = chunk_lines * span if span < chunks else total
    last_lines = chunk_lines * (span - 1) + last_chunk_lines
    first = first_lines / (marks_s[span] - marks_s[0])
    last = last_lines / (marks_s[-1] - marks_s[-1 - span])
    return first, last


def database_bytes(database: Path) -> int:
    return sum(
        p.stat().st_size for p in database.parent.glob(database.name + "*") if p.is_file()
    )


def run_ledger_child(
    database: Path, agreements: Path, sales: Path, limit: int | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Run `ledger_apply` in a fresh interpreter and return its figures."""
    command = [
        sys.executable, "-m", "bench.apply_bench", "ledger",
        "--database", str(database), "--agreements", str(agreements), "--sales", str(sales),
    ]
    if limit is not None:
        command += ["--limit", str(limit)]
    if profile is not None:
        command += ["--profile", str(profile)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ledger child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


# The naive baseline ------------------------------------------------------------------------

SALES_NAMESPACE = uuid5(NAMESPACE_URL, "https://example.invalid/bench/sales")


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class NaiveSale(Aggregate):
    """One sale, one aggregate, one event."""

    @staticmethod
    def create_id(sale_id: str, **_: Any) -> UUID:
        return uuid5(SALES_NAMESPACE, sale_id)

    @event("Recorded")
    def __init__(
        self, sale_id: str, customer_id: str, product_id: str, quantity: Decimal,
        amount: Decimal, currency: str, invoice_date: date,
    ) -> None:
        self.sale_id = sale_id
        self.customer_id = customer_id
        self.product_id = product_id
        self.quantity = quantity
        self.amount = amount
        self.currency = currency
        self.invoice_date = invoice_date


class NaiveSalesApplication(Application[UUID]):
    name = "NaiveSales"

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def record_sale(self, line: bytes) -> bool:
        """Apply one JSONL line; False when the sale id was recorded before."""
        data = orjson.loads(line)
        sale = NaiveSale(
            sale_id=data["sale_id"],
            customer_id=data["customer_id"],
            product_id=data["product_id"],
            quantity=Decimal(data["quantity"]),
            amount=Decimal(data["amount"]),
            currency=data["currency"],
            invoice_date=date.fromisoformat(data["invoice_date"]),
        )
        try:
            self.save(sale)
        except IntegrityError:
            return False
        return True


def naive_baseline(database: Path, sales: Path, limit: int) -> dict[str, Any]:
    app = NaiveSalesApplication(
        env={
            "PERSISTENCE_MODULE": "eventsourcing_sqlalchemy",
            "SQLALCHEMY_URL": f"sqlite:///{database}",
        }
    )
    recorded = 0
    started = time.perf_counter()
    for line in sales_lines(sales, limit):
        recorded += app.record_sale(line)
    seconds = time.perf_counter() - started
    with sqlite3.connect(database) as check:
        journal = check.execute("PRAGMA journal_mode").fetchone()[0]
        stored = check.execute("SELECT count(*) FROM naivesales_events").fetchone()[0]
    check.close()
    assert stored == recorded, (stored, recorded)
    return {
        "sales": recorded,
        "seconds": seconds,
        "sales_per_s": recorded / seconds,
        "journal_mode": journal,
        "design": "one NaiveSale aggregate per sale, one Recorded event, one save() each",
    }


# The raw ceiling ---------------------------------------------------------------------------


def raw_ceiling(database: Path, sales: Path, chunk_lines: int) -> dict[str, Any]:
    connection = sqlite3.connect(database)
    for pragma in CEILING_PRAGMAS:
        connection.execute(pragma)
    connection.execute(
        "CREATE TABLE sales (sale_id TEXT, customer_id TEXT, product_id TEXT, quantity TEXT,"
        " amount TEXT, currency TEXT, invoice_date TEXT)"
    )
    connection.commit()
    insert = "INSERT INTO sales VALUES (?, ?, ?, ?, ?, ?, ?)"
    count = 0
    started = time.perf_counter()
    with sales.open("rb") as handle:
        while chunk := list(itertools.islice(handle, chunk_lines)):
            rows = []
            for line in chunk:
                d = orjson.loads(line)
                rows.append((d["sale_id"], d["customer_id"], d["product_id"], d["quantity"],
                             d["amount"], d["currency"], d["invoice_date"]))
            connection.executemany(insert, rows)
            connection.commit()
            count += len(rows)
    seconds = time.perf_counter() - started
    stored = connection.execute("SELECT count(*) FROM sales").fetchone()[0]
    connection.close()
    assert stored == count
    return {"sales": count, "seconds": seconds, "sales_per_s": count / seconds}


# The indexed ceiling -----------------------------------------------------------------------


def indexed_ceiling(database: Path, sales: Path, chunk_lines: int) -> dict[str, Any]:
    """The same lines, orjson-decoded and not validated, into the two indexed tables the
    ledger must keep, made from its own definitions (`core_sales`: the sale by id, with its
    index by customer; `core_basis`: the point-in-time basis clustered by customer and day),
    one basis row per line, committing every `chunk_lines` lines (issue 11, point 2)."""
    from sqlalchemy import create_engine

    from ledger.projections.core import BASIS_COLUMNS, SALE_COLUMNS, basis
    from ledger.projections.core import sales as sales_table

    engine = create_engine(f"sqlite:///{database}")
    with engine.begin() as made:
        sales_table.create(made)
        basis.create(made)
    engine.dispose()
    connection = sqlite3.connect(database)
    for pragma in CEILING_PRAGMAS:
        connection.execute(pragma)
    insert_sale = (f"INSERT INTO core_sales ({', '.join(SALE_COLUMNS)}) "
                   f"VALUES ({', '.join('?' * len(SALE_COLUMNS))})")
    insert_basis = (f"INSERT INTO core_basis ({', '.join(BASIS_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(BASIS_COLUMNS))})")
    count = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    recorded_us = int(time.time() * 1_000_000)
    with sales.open("rb") as handle:
        while chunk := list(itertools.islice(handle, chunk_lines)):
            sale_rows, basis_rows = [], []
            for line in chunk:
                d = orjson.loads(line)
                day = date.fromisoformat(d["invoice_date"]).toordinal()
                quantity, amount = str(d["quantity"]), str(d["amount"])
                sale_rows.append((d["sale_id"], d["customer_id"], d["product_id"],
                                  d["currency"], None, None, quantity, amount, day,
                                  recorded_us, count))
                basis_rows.append((d["customer_id"], d["currency"], d["product_id"], day, day,
                                   recorded_us, None, None, quantity, amount, count))
                count += 1
            connection.executemany(insert_sale, sale_rows)
            connection.executemany(insert_basis, basis_rows)
            connection.commit()
            recorded_us += 1
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    stored = connection.execute("SELECT count(*) FROM core_sales").fetchone()[0]
    connection.close()
    assert stored == count
    return {"sales": count, "seconds": seconds, "sales_per_s": count / seconds,
            "cpu_seconds": cpu_seconds}


def main(argv: list[str] | None = None, out: IO[str] = sys.stdout) -> None:
    parser = argparse.ArgumentParser(description="the ledger's side of the apply benchmark")
    parser.add_argument("what", choices=["ledger"])
    parser.add_argument("--database", type=Path, required=True)
    parser.add_argument("--agreements", type=Path, required=True)
    parser.add_argument("--sales", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--profile", type=Path, default=None,
                        help="write cProfile stats of the timed apply to this file")
    args = parser.parse_args(argv)
    result = ledger_apply(args.database, args.agreements, args.sales, args.limit, args.profile)
    out.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
