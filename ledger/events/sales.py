"""Sales arrive by the million, so one event records a batch of them: `SalesRecorded` holds
every sale line and sale reversal accepted in one batch, each still addressable by its id.
Each line carries its own valid time (invoice date, reversal date) and recorded time."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from ledger.events.base import LedgerCreated


class SaleLine(BaseModel):
    """A sale (or, with negative quantity and amount, a return or credit note)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    sale_id: str
    customer_id: str
    product_id: str
    quantity: Decimal
    amount: Decimal
    currency: str
    invoice_date: date
    recorded_at: datetime


class SaleReversal(BaseModel):
    """A sale taken back as of `reversed_on`, with the reversed sale's figures repeated so that
    a reader of the log needs no other state to apply it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    sale_id: str
    reversed_on: date
    recorded_at: datetime
    customer_id: str
    product_id: str
    quantity: Decimal
    amount: Decimal
    currency: str
    invoice_date: date


class SalesRecorded(LedgerCreated):
    sales: tuple[SaleLine, ...]
    reversals: tuple[SaleReversal, ...]

    @property
    def valid_time(self) -> date:
        """The latest valid date among the lines (each line carries its own)."""
        dates = [s.invoice_date for s in self.sales] + [r.reversed_on for r in self.reversals]
        assert dates, "a sales batch is never empty"
        return max(dates)
