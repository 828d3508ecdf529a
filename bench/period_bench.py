"""The books of a period (issue 10, point 6) against the cumulative trial balance at its end.

`trial-balance --from D1 --to D2` derives two positions (the day before D1 and D2) where
`trial-balance --as-of D2` derives one, so its cost should stay within about twice the
cumulative one's; the journal of the period adds the event ids of the period's postings.
Everything is measured in the same run on the same store (bench/generate.py's book):

    .venv/bin/python -m bench.period_bench [--sales 100000] [--agreements 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from bench.generate import write_book
from ledger import Ledger
from ledger.audit.journal import trial_balance_report
from ledger.audit.period import period_journal_report, period_trial_balance_report

Q2 = (date(2025, 4, 1), date(2025, 6, 30))


def best_of(repeats: int, call: Callable[[], Any]) -> float:
    """The fastest of `repeats` calls, in seconds (after one untimed warm-up call)."""
    call()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=100_000)
    parser.add_argument("--agreements", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="period-bench-") as folder:
        book = write_book(Path(folder), sales=options.sales, agreements=options.agreements)
        with Ledger(f"sqlite:///{Path(folder) / 'ledger.db'}") as ledger:
            with book.agreements_path.open("rb") as lines:
                ledger.apply_lines(lines)
            with book.sales_path.open("rb") as lines:
                ledger.apply_lines(lines)
            start, end = Q2
            baseline = best_of(options.repeats, lambda: trial_balance_report(ledger, end))
            figures = {
                "trial-balance --from --to": best_of(
                    options.repeats, lambda: period_trial_balance_report(ledger, start, end)),
                "journal --from --to": best_of(
                    options.repeats, lambda: period_journal_report(ledger, start, end)),
            }
    print(f"{options.sales:,} sales over {options.agreements:,} agreements, period {start} "
          f"to {end}; best of {options.repeats}")
    print(f"  baseline trial-balance --as-of {end}: {baseline * 1000:,.0f} ms")
    for name, seconds in figures.items():
        ratio = seconds / baseline
        verdict = "PASS" if ratio <= 2.5 else "MISS"
        print(f"  {name}: {seconds * 1000:,.0f} ms = {ratio:.2f} x the baseline "
              f"(target <= 2.5 x): {verdict}")


if __name__ == "__main__":
    main()
