"""`python -m bench`: the ledger's benchmark (issue 2, point 7), every ratio from one run.

1. apply throughput of the ledger on N sales over the agreements, against a naive eventsourcing
   baseline (on a prefix of the same file) and a raw SQLite ceiling (on the whole file);
2. peak RSS of apply at N/10 and at N sales (each in its own process);
3. one agreement's point-in-time liability with N sales versus with a small book.

Prints each figure and each target as PASS or MISS, and writes them all to results.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.apply_bench import indexed_ceiling, naive_baseline, raw_ceiling, run_ledger_child
from bench.generate import SEED, agreement_id, write_book
from bench.query_bench import time_liability

#: Targets of issue 2, point 7.
BASELINE_RATIO_MIN = 10.0
CEILING_RATIO_MIN = 0.25
#: issue 11 point 2: apply against the indexed ceiling (the tables the ledger must keep)
INDEXED_CEILING_RATIO_MIN = 0.6
#: "Peak memory does not grow with the input": ten times the sales may cost at most a quarter
#: more peak memory (SQLite's page cache, bounded at 64 MiB per connection, fills further on a
#: larger database; anything held per sale would show as a ratio near 10).
RSS_RATIO_MAX = 1.25
LIABILITY_RATIO_MAX = 3.0

#: The valid time of the point-in-time query: the end of Q3, with sales after it in the book.
AS_OF = date(2025, 9, 30)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=1_000_000, help="N (default 1,000,000)")
    parser.add_argument("--agreements", type=int, default=1000,
                        help="agreements, one per customer (default 1,000)")
    parser.add_argument("--baseline-lines", type=int, default=20_000,
                        help="prefix of the file the naive baseline applies (default 20,000)")
    parser.add_argument("--small-sales", type=int, default=10_000,
                        help="sales of the small book for the liability ratio (default 10,000)")
    parser.add_argument("--repeats", type=int, default=50,
                        help="liability calls timed per case (default 50)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out",
                        help="folder for the generated files, databases and results.json")
    parser.add_argument("--keep-databases", action="store_true",
                        help="keep the SQLite files (they are deleted at the end otherwise)")
    parser.add_argument("--quick", action="store_true",
                        help="a small run (2,000 sales, 20 agreements) that proves it works")
    args = parser.parse_args(argv)
    if args.quick:
        args.sales, args.agreements = 2000, 20
        args.baseline_lines, args.small_sales, args.repeats = 500, 200, 5
    args.baseline_lines = min(args.baseline_lines, args.sales)
    return args


def say(text: str) -> None:
    print(text, flush=True)


def fresh(path: Path) -> Path:
    """A database path with no leftovers of an earlier run (main file, WAL, shared memory)."""
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    return path


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    n, small_n = args.sales, args.small_sales
    results: dict[str, Any] = {
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "config": {
            "sales": n, "agreements": args.agreements, "baseline_lines": args.baseline_lines,
            "small_sales": small_n, "repeats": args.repeats, "seed": args.seed,
            "quick": args.quick, "as_of": AS_OF.isoformat(),
        },
        "machine": {
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(), "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
        },
    }

    say(f"generating {n:,} sales over {args.agreements:,} agreements and a book of "
        f"{small_n:,} sales (seed {args.seed}) in {out}")
    started = time.perf_counter()
    book = write_book(out, sales=n, agreements=args.agreements, seed=args.seed, name="book")
    small = write_book(out, sales=small_n, agreements=args.agreements, seed=args.seed,
                       name="small")
    say(f"  {time.perf_counter() - started:.1f} s; {book.sales_path.stat().st_size:,} bytes "
        f"of sales")

    tenth = max(1, n // 10)
    say(f"ledger apply of {tenth:,} sales (N/10) in a child process, for its peak memory ...")
    at_tenth = run_ledger_child(fresh(out / "ledger-tenth.db"), book.agreements_path,
                                book.sales_path, limit=tenth)
    say(f"ledger apply of {n:,} sales in a child process ...")
    ledger = run_ledger_child(fresh(out / "ledger.db"), book.agreements_path, book.sales_path)
    say(f"  {ledger['sales_per_s']:,.0f} sales/s")
    say(f"ledger apply of the small book ({small_n:,} sales) ...")
    ledger_small = run_ledger_child(fresh(out / "ledger-small.db"), small.agreements_path,
                                    small.sales_path)
    say(f"naive eventsourcing baseline on the first {args.baseline_lines:,} lines ...")
    baseline = naive_baseline(fresh(out / "baseline.db"), book.sales_path, args.baseline_lines)
    say(f"  {baseline['sales_per_s']:,.0f} sales/s")
    say(f"raw SQLite ceiling on all {n:,} lines ...")
    ceiling = raw_ceiling(fresh(out / "ceiling.db"), book.sales_path, ledger["chunk_lines"])
    say(f"  {ceiling['sales_per_s']:,.0f} sales/s")
    say(f"indexed SQLite ceiling (the ledger's sale-by-id and basis tables) on all {n:,} "
        "lines ...")
    indexed = indexed_ceiling(fresh(out / "indexed.db"), book.sales_path,
                              ledger["chunk_lines"])
    say(f"  {indexed['sales_per_s']:,.0f} sales/s")

    agreement = agreement_id(0)
    say(f"liability of {agreement} as of {AS_OF}, {args.repeats} calls per case ...")
    queries = {}
    for label, db, applied in (("large", "ledger.db", ledger),
                               ("small", "ledger-small.db", ledger_small)):
        url = f"sqlite:///{out / db}"
        known_at = datetime.fromisoformat(applied["known_at_half"])
        queries[label] = {
            "everything": time_liability(url, agreement, AS_OF, None, args.repeats),
            "known_at": time_liability(url, agreement, AS_OF, known_at, args.repeats),
            "known_at_value": applied["known_at_half"],
        }

    baseline_ratio = ledger["sales_per_s"] / baseline["sales_per_s"]
    ceiling_ratio = ledger["sales_per_s"] / ceiling["sales_per_s"]
    indexed_ratio = ledger["sales_per_s"] / indexed["sales_per_s"]
    rss_ratio = ledger["peak_rss_kib"] / at_tenth["peak_rss_kib"]
    liability_ratio = (queries["large"]["everything"]["median_ms"]
                       / queries["small"]["everything"]["median_ms"])
    known_ratio = (queries["large"]["known_at"]["median_ms"]
                   / queries["small"]["known_at"]["median_ms"])
    targets = {
        "ledger_over_baseline": {"ratio": baseline_ratio, "target": f">= {BASELINE_RATIO_MIN}",
                                 "pass": baseline_ratio >= BASELINE_RATIO_MIN},
        "ledger_over_ceiling": {"ratio": ceiling_ratio, "target": f">= {CEILING_RATIO_MIN}",
                                "pass": ceiling_ratio >= CEILING_RATIO_MIN},
        "ledger_over_indexed_ceiling": {"ratio": indexed_ratio,
                                        "target": f">= {INDEXED_CEILING_RATIO_MIN}",
                                        "pass": indexed_ratio >= INDEXED_CEILING_RATIO_MIN},
        "peak_rss_n_over_tenth": {"ratio": rss_ratio, "target": f"<= {RSS_RATIO_MAX}",
                                  "pass": rss_ratio <= RSS_RATIO_MAX},
        "liability_large_over_small": {"ratio": liability_ratio,
                                       "target": f"<= {LIABILITY_RATIO_MAX}",
                                       "pass": liability_ratio <= LIABILITY_RATIO_MAX},
        "liability_known_at_large_over_small": {"ratio": known_ratio,
                                                "target": f"<= {LIABILITY_RATIO_MAX}",
                                                "pass": known_ratio <= LIABILITY_RATIO_MAX},
    }
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results.update(
        ledger=ledger, ledger_tenth=at_tenth, ledger_small=ledger_small, baseline=baseline,
        ceiling=ceiling, indexed_ceiling=indexed,
        liability={"agreement_id": agreement, **queries}, targets=targets,
    )

    large, little = queries["large"], queries["small"]
    say("")
    say(f"== apply throughput: {n:,} sales over {args.agreements:,} agreements "
        f"(SQLite file, WAL, synchronous=FULL) ==")
    say(f"ledger    {ledger['sales']:>11,} sales in {ledger['seconds']:8.2f} s = "
        f"{ledger['sales_per_s']:>10,.0f} sales/s  (Ledger.apply_lines, chunks of "
        f"{ledger['chunk_lines']:,}; first tenth {ledger['first_tenth_sales_per_s']:,.0f}/s, "
        f"last tenth {ledger['last_tenth_sales_per_s']:,.0f}/s)")
    say(f"baseline  {baseline['sales']:>11,} sales in {baseline['seconds']:8.2f} s = "
        f"{baseline['sales_per_s']:>10,.0f} sales/s  (eventsourcing + eventsourcing-sqlalchemy, "
        f"one aggregate and one save() per sale; run on the first {args.baseline_lines:,} lines "
        f"only, because at a few thousand sales/s all {n:,} would take too long)")
    say(f"ceiling   {ceiling['sales']:>11,} sales in {ceiling['seconds']:8.2f} s = "
        f"{ceiling['sales_per_s']:>10,.0f} sales/s  (orjson + executemany into one plain "
        f"table, commit every {ledger['chunk_lines']:,})")
    say(f"indexed   {indexed['sales']:>11,} sales in {indexed['seconds']:8.2f} s = "
        f"{indexed['sales_per_s']:>10,.0f} sales/s  (orjson + executemany into the ledger's "
        f"core_sales and core_basis, no validation, commit every {ledger['chunk_lines']:,})")
    say(f"ratio ledger/baseline = {baseline_ratio:.2f} (target >= {BASELINE_RATIO_MIN:g}): "
        f"{verdict(targets['ledger_over_baseline']['pass'])}")
    say(f"ratio ledger/ceiling = {ceiling_ratio:.3f} (target >= {CEILING_RATIO_MIN:g}): "
        f"{verdict(targets['ledger_over_ceiling']['pass'])}")
    say(f"ratio ledger/indexed ceiling = {indexed_ratio:.3f} (target >= "
        f"{INDEXED_CEILING_RATIO_MIN:g}): "
        f"{verdict(targets['ledger_over_indexed_ceiling']['pass'])}")
    # Not a target: the same ratio in CPU seconds of each process (user and system), which the
    # machine's other work moves less than the wall-clock rates measured minutes apart.
    cpu_ratio = indexed["cpu_seconds"] / ledger["cpu_seconds"]
    results["ledger_over_indexed_ceiling_cpu"] = cpu_ratio
    say(f"  in CPU seconds: ledger {ledger['cpu_seconds']:.1f} s, indexed ceiling "
        f"{indexed['cpu_seconds']:.1f} s, ratio {cpu_ratio:.3f} (load average "
        f"{results['machine']['load_average_at_start'][0]:.1f} at the start, "
        f"{results['machine']['load_average_at_end'][0]:.1f} at the end)")
    say("")
    say("== peak memory of apply (child process ru_maxrss) ==")
    say(f"at N/10 = {at_tenth['sales']:>11,} sales: {at_tenth['peak_rss_kib'] / 1024:8.1f} MiB")
    say(f"at N    = {ledger['sales']:>11,} sales: {ledger['peak_rss_kib'] / 1024:8.1f} MiB")
    say(f"ratio peak RSS N/(N/10) = {rss_ratio:.2f} (target <= {RSS_RATIO_MAX:g}): "
        f"{verdict(targets['peak_rss_n_over_tenth']['pass'])}")
    if ledger["sqlite_heap_peak_kib"] and at_tenth["sqlite_heap_peak_kib"]:
        # Not a target: what is left once SQLite's own heap (its page cache, bounded by
        # ledger/store.py's cache_size) is set aside, i.e. what the ledger's Python side holds.
        own = [r["peak_rss_kib"] - r["sqlite_heap_peak_kib"] for r in (at_tenth, ledger)]
        results["peak_rss_less_sqlite_heap_ratio"] = own[1] / own[0]
        say(f"  of which SQLite's heap (page cache): {at_tenth['sqlite_heap_peak_kib'] / 1024:.1f}"
            f" MiB at N/10, {ledger['sqlite_heap_peak_kib'] / 1024:.1f} MiB at N; the rest: "
            f"{own[0] / 1024:.1f} MiB and {own[1] / 1024:.1f} MiB, "
            f"ratio {own[1] / own[0]:.2f} (information, no target)")
    say("")
    say(f"== liability of {agreement} as of {AS_OF}: median of {args.repeats} calls ==")
    say(f"{n:>9,} sales: {large['everything']['median_ms']:8.3f} ms;  known at "
        f"{large['known_at_value']}: {large['known_at']['median_ms']:8.3f} ms  "
        f"(basis {large['everything']['row']['basis']})")
    say(f"{small_n:>9,} sales: {little['everything']['median_ms']:8.3f} ms;  known at "
        f"{little['known_at_value']}: {little['known_at']['median_ms']:8.3f} ms  "
        f"(basis {little['everything']['row']['basis']})")
    say(f"ratio liability {n:,}/{small_n:,} sales = {liability_ratio:.2f} "
        f"(target <= {LIABILITY_RATIO_MAX:g}): "
        f"{verdict(targets['liability_large_over_small']['pass'])}")
    say(f"ratio liability known_at {n:,}/{small_n:,} sales = {known_ratio:.2f} "
        f"(target <= {LIABILITY_RATIO_MAX:g}): "
        f"{verdict(targets['liability_known_at_large_over_small']['pass'])}")

    load = results["machine"]
    say("")
    say(f"load average at start {load['load_average_at_start'][0]:.2f}, at end "
        f"{load['load_average_at_end'][0]:.2f} on {load['cpus']} CPUs (other work on the "
        "machine slows every figure)")
    results_path = out / "results.json"
    results_path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    say("")
    say(f"figures written to {results_path}")
    if not args.keep_databases:
        for name in ("ledger-tenth.db", "ledger.db", "ledger-small.db", "baseline.db",
                     "ceiling.db", "indexed.db"):
            fresh(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
