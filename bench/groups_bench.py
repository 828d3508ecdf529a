"""Buying groups at scale (contract v2): `apply` rate and one group agreement's point-in-time
liability on a large book against a small one, and again after 1,000 membership changes.

Two books from `bench.generate` (1,000 customers with one agreement each; by default 1,000,000
and 10,000 sales), plus 20 buying groups of 50 members each with one group agreement per group
(retroactive percent of the members' purchases). The point query of a group agreement reads the
group's joins and leaves and one indexed range sum per member span, so its cost should follow the
members' rows in the period, not the whole history: target ≤ 3× from the small book to the large
one (as for a customer's own agreement, `bench/query_bench.py`). Then 1,000 joins and leaves
(late, recorded after the sales) are applied to both books and the ratio measured again.

    python -m bench.groups_bench [--sales 1000000] [--out DIR]
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.generate import customer_id, write_book
from bench.query_bench import time_liability
from ledger import Ledger

GROUPS, MEMBERS = 20, 50
AGREEMENTS = GROUPS * MEMBERS
CHANGES = 1000
TARGET = 3.0
AS_OF = date(2025, 12, 31)


def group_lines() -> list[bytes]:
    lines = []
    for g in range(GROUPS):
        group_id = f"G{g + 1:02d}"
        lines.append(orjson.dumps({"type": "create_group", "group_id": group_id}))
        for m in range(MEMBERS):
            lines.append(orjson.dumps({
                "type": "join_group", "group_id": group_id,
                "customer_id": customer_id(g * MEMBERS + m), "effective_from": "2025-01-01"}))
        lines.append(orjson.dumps({
            "type": "create_agreement", "agreement_id": f"GA{g + 1:02d}", "group_id": group_id,
            "currency": "EUR", "period_start": "2025-01-01", "period_end": "2025-12-31",
            "basis": "amount", "tier_method": "retroactive", "rate_kind": "percent",
            "tiers": [{"from": "0", "rate": "0.005"}, {"from": "5000000", "rate": "0.01"}]}))
    return lines


def membership_changes(seed: int = 7) -> list[bytes]:
    """Joins and leaves of members of other groups (a customer in two groups) and leaves
    (and re-joins) of the group's own, effective any day of 2025."""
    rng = random.Random(seed)
    lines = []
    for _ in range(CHANGES):
        group = rng.randrange(GROUPS)
        customer = rng.randrange(AGREEMENTS)
        own = customer // MEMBERS == group
        kind = rng.choice(["leave_group", "join_group"]) if own else "join_group"
        day = date(2025, 1, 1) + timedelta(days=rng.randrange(365))
        lines.append(orjson.dumps({
            "type": kind, "group_id": f"G{group + 1:02d}", "customer_id": customer_id(customer),
            "effective_from": day.isoformat()}))
    return lines


def build(folder: Path, sales: int) -> tuple[str, float]:
    """A store with the book and the groups; returns its URL and the apply rate (sales/s)."""
    book = write_book(folder, sales=sales, agreements=AGREEMENTS, name=f"book-{sales}")
    url = f"sqlite:///{folder / f'groups-{sales}.db'}"
    with Ledger(url) as ledger, book.agreements_path.open("rb") as agreements:
        report = ledger.apply_lines(agreements)
        report_groups = ledger.apply_lines(group_lines())
        assert not report.rejected and not report_groups.rejected, report_groups.to_dict()
        started = time.perf_counter()
        with book.sales_path.open("rb") as lines:
            applied = ledger.apply_lines(lines)
        seconds = time.perf_counter() - started
        assert not applied.rejected, applied.rejected[:3]
    return url, sales / seconds


def measure(url: str, repeats: int) -> dict[str, Any]:
    return time_liability(url, "GA01", AS_OF, None, repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None,
                        help="write results.json here (default: print only)")
    args = parser.parse_args(argv)
    small_sales = max(1000, args.sales // 100)
    folder = Path(tempfile.mkdtemp(prefix="groups-bench-"))
    results: dict[str, Any] = {"sales": args.sales, "small_sales": small_sales}
    try:
        large_url, large_rate = build(folder, args.sales)
        small_url, small_rate = build(folder, small_sales)
        print(f"apply {args.sales:,} sales with {GROUPS} groups of {MEMBERS}: "
              f"{large_rate:,.0f} sales/s ({small_sales:,}: {small_rate:,.0f} sales/s)")
        results["apply_sales_per_s"] = {"large": large_rate, "small": small_rate}
        for stage in ("", " after 1,000 membership changes"):
            if stage:
                for url in (large_url, small_url):
                    with Ledger(url) as ledger:
                        report = ledger.apply_lines(membership_changes())
                        assert not report.rejected, report.rejected[:3]
            large, small = measure(large_url, args.repeats), measure(small_url, args.repeats)
            ratio = large["median_ms"] / small["median_ms"]
            verdict = "PASS" if ratio <= TARGET else "MISS"
            print(f"group liability GA01 at {AS_OF}{stage}: {large['median_ms']:.2f} ms at "
                  f"{args.sales:,} sales, {small['median_ms']:.2f} ms at {small_sales:,}")
            print(f"ratio group liability {args.sales:,}/{small_sales:,} sales{stage} = "
                  f"{ratio:.2f} (target <= {TARGET:.2f}): {verdict}")
            results["after_changes" if stage else "before_changes"] = {
                "large_ms": large["median_ms"], "small_ms": small["median_ms"], "ratio": ratio,
                "pass": ratio <= TARGET, "row": large["row"]}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "groups-results.json").write_bytes(
            orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
