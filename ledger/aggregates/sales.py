"""A batch of sales: one aggregate, one event, for every sale and reversal accepted together.

One event per sale would cost a database round trip per sale; a batch keeps the sale path at
the speed of bulk inserts while every sale stays addressable by its id (the core projection
indexes sale ids to the batch that holds them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import BaseAggregate, event

from ledger.events import base as _base
from ledger.events.sales import ReversalColumns, SaleColumns, SalesRecorded

#: Most lines (sales plus reversals) one batch event holds.
BATCH_LINES_MAX = 5000


class SalesBatch(BaseAggregate[UUID]):
    Event = _base.LedgerEvent
    Created = _base.LedgerCreated
    SalesRecorded = SalesRecorded

    @staticmethod
    def create_id(**_: Any) -> UUID:
        return uuid4()

    @event(SalesRecorded)
    def __init__(
        self,
        sales: SaleColumns,
        reversals: ReversalColumns,
        recorded_at: datetime,
    ) -> None:
        assert 0 < len(sales) + len(reversals) <= BATCH_LINES_MAX
        self.sales = sales
        self.reversals = reversals
