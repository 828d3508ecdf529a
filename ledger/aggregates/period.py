"""A reporting period's close: one aggregate per period label, so a period closes once."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import BaseAggregate, event

from ledger.events import base as _base
from ledger.events.period import PeriodClosed, ReportedRow


def period_uuid(period: str) -> UUID:
    return uuid5(NAMESPACE_URL, "rebate-ledger:period:" + period)


class PeriodClose(BaseAggregate[UUID]):
    Event = _base.LedgerEvent
    Created = _base.LedgerCreated
    PeriodClosed = PeriodClosed

    @staticmethod
    def create_id(period: str, **_: Any) -> UUID:
        return period_uuid(period)

    @event(PeriodClosed)
    def __init__(
        self, period: str, period_start: date, period_end: date,
        reported: tuple[ReportedRow, ...], recorded_at: datetime,
    ) -> None:
        self.period = period
        self.period_start = period_start
        self.period_end = period_end
        self.reported = reported
