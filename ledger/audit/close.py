"""Period close: `rebate-ledger close-period --period 2025-Q4` records a `PeriodClosed` event
that freezes the reported position (the liability at the period's end as known at the close).
Later changes to a closed period show as post-close adjustments in `diff` and `reconcile`.

Periods: `2025` (a year), `2025-Q4` (a quarter), `2025-11` (a month), or any range given as
`--from D1 --to D2` (label `D1..D2`, or the year's, quarter's or month's label when the
range is exactly one, so that a period cannot be closed twice under two names).
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.core import Ledger
from ledger.errors import RuleViolation
from ledger.liability import FOREVER_US
from ledger.projections.core import closes, from_us, to_us


def parse_period(label: str | None, start: date | None = None,
                 end: date | None = None) -> tuple[str, date, date]:
    """(label, first day, last day) of `--period` or of `--from`/`--to`."""
    if label is None:
        if start is None or end is None:
            raise RuleViolation("period", "give --period (2025, 2025-Q4, 2025-11) or both "
                                "--from and --to")
        if end < start:
            raise RuleViolation("period", f"--to {end} is before --from {start}")
        return _canonical(start, end), start, end
    text = label.strip()
    if m := re.fullmatch(r"(\d{4})", text):
        year = int(m.group(1))
        return text, date(year, 1, 1), date(year, 12, 31)
    if m := re.fullmatch(r"(\d{4})-Q([1-4])", text, re.IGNORECASE):
        year, quarter = int(m.group(1)), int(m.group(2))
        first = 3 * quarter - 2
        return f"{year}-Q{quarter}", date(year, first, 1), date(
            year, first + 2, monthrange(year, first + 2)[1])
    if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
        year, month = int(m.group(1)), int(m.group(2))
        if 1 <= month <= 12:
            return text, date(year, month, 1), date(year, month, monthrange(year, month)[1])
    raise RuleViolation("period", f"{label!r} is not a year (2025), quarter (2025-Q4) or month "
                        "(2025-11); for any range use --from and --to")


def _canonical(start: date, end: date) -> str:
    """A range that is exactly a year, quarter or month gets that period's label, so that one
    period cannot be closed twice under two names."""
    if start.day == 1 and end.day == monthrange(end.year, end.month)[1] \
            and start.year == end.year:
        months = end.month - start.month + 1
        if months == 12:
            return f"{start.year}"
        if months == 3 and start.month % 3 == 1:
            return f"{start.year}-Q{(start.month + 2) // 3}"
        if months == 1:
            return f"{start.year}-{start.month:02d}"
    return f"{start}..{end}"


@dataclass(frozen=True)
class PeriodClose:
    period: str
    start: date
    end: date
    closed_at: datetime
    event_id: str
    position: int
    reported: dict[str, dict[str, str]]  # agreement id -> reported row

    def reported_liability(self, agreement_id: str) -> Decimal | None:
        row = self.reported.get(agreement_id)
        return None if row is None else Decimal(row["liability"])


def period_closes(ledger: Ledger, known_at: datetime | None = None) -> list[PeriodClose]:
    """Every close recorded up to K, in recorded order."""
    known_us = FOREVER_US if known_at is None else to_us(known_at)
    with Session(ledger.engine) as session:
        rows = session.execute(
            select(closes).where(closes.c.recorded_us <= known_us)
            .order_by(closes.c.recorded_us, closes.c.position)
        ).all()
    return [
        PeriodClose(r.period, date.fromordinal(r.period_start_day),
                    date.fromordinal(r.period_end_day), from_us(r.recorded_us), r.event_id,
                    int(r.position),
                    {row["agreement_id"]: row for row in orjson.loads(r.reported)})
        for r in rows
    ]


def close_covering(ledger: Ledger, as_of: date,
                   known_at: datetime | None = None) -> PeriodClose | None:
    """The latest close (as known at K) of a period that contains D."""
    found = [c for c in period_closes(ledger, known_at) if c.start <= as_of <= c.end]
    return found[-1] if found else None


def last_close_ending_by(ledger: Ledger, as_of: date,
                         known_at: datetime | None = None) -> PeriodClose | None:
    """The close (as known at K) of the latest period that ended on or before D."""
    found = [c for c in period_closes(ledger, known_at) if c.end <= as_of]
    return max(found, key=lambda c: (c.end, c.closed_at)) if found else None
