"""Point-in-time liability of one agreement: how its cost grows with the history.

The same query runs against two books with the same agreements, one with many more sales; the
median of repeated calls is compared. The ledger answers from the agreement's own few terms
rows and one indexed range sum over its customer's basis rows, so the cost should follow that
customer's rows inside the period, not the whole history.
"""

from __future__ import annotations

import statistics
import time
from datetime import date, datetime
from typing import Any

from ledger import Ledger


def time_liability(
    database_url: str,
    agreement_id: str,
    as_of: date,
    known_at: datetime | None,
    repeats: int,
) -> dict[str, Any]:
    """Median and spread of `repeats` calls, after one warm-up call (connection, page cache)."""
    with Ledger(database_url) as ledger:
        (row,) = ledger.liability(as_of, known_at, agreement_id=agreement_id)
        timings_s = []
        for _ in range(repeats):
            started = time.perf_counter()
            rows = ledger.liability(as_of, known_at, agreement_id=agreement_id)
            timings_s.append(time.perf_counter() - started)
            assert rows == [row], "the same question must get the same answer"
    return {
        "median_ms": statistics.median(timings_s) * 1000,
        "min_ms": min(timings_s) * 1000,
        "max_ms": max(timings_s) * 1000,
        "repeats": repeats,
        "row": row.to_dict(),
    }
