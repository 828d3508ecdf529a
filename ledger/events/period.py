"""The close of a reporting period: the position reported at the close, frozen."""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ledger.events.base import LedgerCreated, Upcaster


class ReportedRow(BaseModel):
    """One agreement's position at the period's end as reported at the close (contract row
    figures, money as strings with two decimals)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agreement_id: str
    customer_id: str | None
    group_id: str | None
    program_id: str | None
    currency: str
    accrued: str
    approved: str
    paid: str
    written_off: str
    liability: str


def _v1_close(state: dict[str, Any]) -> dict[str, Any]:
    """v1 closes reported customers' own agreements only."""
    rows = [{**row, "group_id": None, "program_id": None} for row in state["reported"]]
    return {**state, "reported": rows}


class PeriodClosed(LedgerCreated):
    """Finance closed `period` (`period_start` to `period_end`): the liability at the period's
    end as known at the close (`recorded_at`) is the reported position. Later events that
    change it are post-close adjustments, never silent rewrites. One close per period label."""

    SCHEMA_VERSION: ClassVar[int] = 2
    UPCASTERS: ClassVar[dict[int, Upcaster]] = {1: _v1_close}

    period: str
    period_start: date
    period_end: date
    reported: tuple[ReportedRow, ...]

    @property
    def valid_time(self) -> date:
        return self.period_end
