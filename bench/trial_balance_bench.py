"""`python -m bench.trial_balance_bench --store DIR`: the trial balance's totals at D on a
store (the web benchmark's, `bench/web_bench.py --store DIR`), computed the way the /audit page
does now (`ledger.audit.balances`) and, as the baseline in the same run, from every posting of
the journal (`trial_balance(iter_postings(...))`, the code before); both must be equal.
Prints the milliseconds of each, as known now and as known at the diff's K1, and the ratio."""

from __future__ import annotations

import argparse
import time
from datetime import date, datetime
from pathlib import Path

import orjson

from ledger import Ledger
from ledger.audit.balances import balances
from ledger.audit.journal import iter_postings, trial_balance

AS_OF = date(2025, 9, 30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args(argv)
    k1 = datetime.fromisoformat(
        orjson.loads((args.store / "web-bench-store.json").read_bytes())["k1"])
    status = 0
    with Ledger(f"sqlite:///{args.store / 'web-bench.db'}") as ledger:
        for label, known in (("now", None), ("K1", k1)):
            started = time.perf_counter()
            fast = balances(ledger, AS_OF, known)
            fast_ms = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            slow = trial_balance(iter_postings(ledger, AS_OF, known, with_events=False))
            slow_ms = (time.perf_counter() - started) * 1000
            same = fast == slow
            status |= not same
            print(f"as known {label}: balances {fast_ms:,.0f} ms, from the postings "
                  f"{slow_ms:,.0f} ms, ratio {fast_ms / slow_ms:.2f}, "
                  f"{'equal' if same else 'DIFFERENT'}", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
