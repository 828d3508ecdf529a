"""`python -m bench.export_bench`: the Excel and general-ledger exports (issue 10, points 4
and 5) against the CSV of the same command, in one run, at two book sizes.

For each size (`--sizes`, sales; default 100,000 and 1,000,000) it writes the synthetic book of
`bench.generate`, applies it in a child process, then runs as their own processes (as
`bench.scale` does, peak memory from each child's rusage):

- `journal --format csv --out` (the baseline) and `journal --format xlsx --out`;
- `gl-export --format csv --out` and `gl-export --format xlsx --out` for the year.

It prints each time and peak, the ratio xlsx / csv of each (time and memory, same store, same
run) and the ratio of each command's peak memory between the two sizes. The workbook is
written in openpyxl's write-only mode, row by row: target, its peak memory at most 1.25x the
CSV's of the same command on the same store (exit 1 if missed). Between the sizes the CSV's
peak grows too (SQLite's page cache, bounded at 64 MiB, filling up: README, Performance).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from bench.apply_bench import run_ledger_child
from bench.generate import SEED, write_book
from bench.scale import fresh, run_measured, say

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = ROOT / "examples" / "gl" / "accounts.toml"
MEMORY_RATIO_MAX = 1.25


def commands(out: Path, accounts: Path) -> dict[str, list[str]]:
    year = ["--from", "2025-01-01", "--to", "2025-12-31", "--accounts", str(accounts)]
    return {
        "journal csv": ["journal", "--as-of", "2025-12-31", "--format", "csv"],
        "journal xlsx": ["journal", "--as-of", "2025-12-31", "--format", "xlsx"],
        "gl-export csv": ["gl-export", *year, "--format", "csv"],
        "gl-export xlsx": ["gl-export", *year, "--format", "xlsx"],
    }


def measure(args: argparse.Namespace, sales: int) -> dict[str, Any]:
    out: Path = args.out / f"export-{sales}"
    out.mkdir(parents=True, exist_ok=True)
    say(f"-- {sales:,} sales over {args.agreements:,} agreements")
    book = write_book(out, sales=sales, agreements=args.agreements, seed=args.seed,
                      name="book")
    database = fresh(out / "ledger.db")
    applied = run_ledger_child(database, book.agreements_path, book.sales_path)
    say(f"   apply: {applied['seconds']:.1f} s")
    # the generated book's customers are not in the example's [customers]: no such table
    accounts = out / "accounts.toml"
    text = ACCOUNTS.read_text()
    accounts.write_text(text[:text.index("[customers]")] + text[text.index("[document]"):])
    figures: dict[str, Any] = {}
    for name, command in commands(out, accounts).items():
        target = out / name.replace(" ", ".")
        target.unlink(missing_ok=True)
        result = run_measured([*command, "--out", str(target), "--database",
                               f"sqlite:///{database}"], out / f"{name.replace(' ', '-')}.log")
        result["file_bytes"] = target.stat().st_size if target.exists() else 0
        figures[name] = result
        say(f"   {name:<16} {result['seconds']:8.2f} s {result['peak_rss_kib'] / 1024:8.1f} MiB"
            f"  exit {result['exit']}  {result['file_bytes']:,} bytes")
        if result["exit"] != 0:
            say(f"     stderr: {result['stderr'].strip()[-500:]}")
    if not args.keep_databases:
        fresh(database)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000",
                        help="two book sizes in sales, smallest first")
    parser.add_argument("--agreements", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    parser.add_argument("--keep-databases", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if len(sizes) != 2 or sizes[0] >= sizes[1]:
        parser.error("--sizes: two sizes, smallest first, e.g. 100000,1000000")
    say(f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    runs = {size: measure(args, size) for size in sizes}
    say("-- xlsx against csv, same store, same run (time, peak memory)")
    for size, figures in runs.items():
        for what in ("journal", "gl-export"):
            x, c = figures[f"{what} xlsx"], figures[f"{what} csv"]
            say(f"   {size:>10,} {what:<10} time {x['seconds'] / c['seconds']:5.2f}x  "
                f"memory {x['peak_rss_kib'] / c['peak_rss_kib']:5.2f}x")
    say(f"-- target: the workbook's peak memory <= {MEMORY_RATIO_MAX}x the CSV's, same store")
    failed = False
    for size, figures in runs.items():
        for what in ("journal", "gl-export"):
            ratio = figures[f"{what} xlsx"]["peak_rss_kib"] / figures[f"{what} csv"][
                "peak_rss_kib"]
            ok = ratio <= MEMORY_RATIO_MAX
            failed |= not ok
            say(f"   {size:>10,} {what:<10} {ratio:5.2f}  {'PASS' if ok else 'MISS'}")
    small, large = runs[sizes[0]], runs[sizes[1]]
    say(f"-- peak memory at {sizes[1]:,} against {sizes[0]:,} sales (for information: the CSV "
        "grows as much, SQLite's page cache filling up; README, Performance)")
    for name in small:
        ratio = large[name]["peak_rss_kib"] / small[name]["peak_rss_kib"]
        say(f"   {name:<16} {ratio:5.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
