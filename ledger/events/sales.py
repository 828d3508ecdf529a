"""Sales arrive by the million, so one event records a batch of them: `SalesRecorded` holds
every sale and sale reversal accepted in one batch, column by column (the compact shape of a
table: one list per field, row i of every list is line i), each still addressable by its id.
Each line carries its own valid time (invoice date, reversal date) and recorded time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, model_validator

from ledger.events.base import LedgerCreated


class SaleLine(NamedTuple):
    """A sale (or, with negative quantity and amount, a return or credit note)."""

    sale_id: str
    customer_id: str
    product_id: str
    quantity: Decimal
    amount: Decimal
    currency: str
    invoice_date: date
    recorded_at: datetime


class SaleReversal(NamedTuple):
    """A sale taken back as of `reversed_on`, with the reversed sale's figures repeated so that
    a reader of the log needs no other state to apply it."""

    sale_id: str
    reversed_on: date
    recorded_at: datetime
    customer_id: str
    product_id: str
    quantity: Decimal
    amount: Decimal
    currency: str
    invoice_date: date


class SaleColumns(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sale_id: list[str]
    customer_id: list[str]
    product_id: list[str]
    quantity: list[Decimal]
    amount: list[Decimal]
    currency: list[str]
    invoice_date: list[date]
    recorded_at: list[datetime]

    @model_validator(mode="after")
    def _same_length(self) -> SaleColumns:
        assert len({len(getattr(self, f)) for f in type(self).model_fields}) == 1
        return self

    @classmethod
    def of(cls, lines: list[SaleLine]) -> SaleColumns:
        columns: list[Any] = (
            list(zip(*lines, strict=True)) if lines else [() for _ in SaleLine._fields]
        )
        values = {name: list(c) for name, c in zip(SaleLine._fields, columns, strict=True)}
        return cls.model_construct(None, **values)

    def __len__(self) -> int:
        return len(self.sale_id)

    def rows(self) -> Iterator[SaleLine]:
        for values in zip(*(getattr(self, f) for f in SaleLine._fields), strict=True):
            yield SaleLine(*values)


class ReversalColumns(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sale_id: list[str]
    reversed_on: list[date]
    recorded_at: list[datetime]
    customer_id: list[str]
    product_id: list[str]
    quantity: list[Decimal]
    amount: list[Decimal]
    currency: list[str]
    invoice_date: list[date]

    @model_validator(mode="after")
    def _same_length(self) -> ReversalColumns:
        assert len({len(getattr(self, f)) for f in type(self).model_fields}) == 1
        return self

    @classmethod
    def of(cls, lines: list[SaleReversal]) -> ReversalColumns:
        columns: list[Any] = (
            list(zip(*lines, strict=True)) if lines else [() for _ in SaleReversal._fields]
        )
        values = {name: list(c) for name, c in zip(SaleReversal._fields, columns, strict=True)}
        return cls.model_construct(None, **values)

    def __len__(self) -> int:
        return len(self.sale_id)

    def rows(self) -> Iterator[SaleReversal]:
        for values in zip(*(getattr(self, f) for f in SaleReversal._fields), strict=True):
            yield SaleReversal(*values)


class SalesRecorded(LedgerCreated):
    sales: SaleColumns
    reversals: ReversalColumns

    @property
    def valid_time(self) -> date:
        """The latest valid date among the lines (each line carries its own)."""
        dates = [*self.sales.invoice_date, *self.reversals.reversed_on]
        assert dates, "a sales batch is never empty"
        return max(dates)
