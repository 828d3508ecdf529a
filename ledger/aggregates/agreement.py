"""An agreement: its creation terms, the amendments and forecast revisions laid over them over
valid time, and its write-offs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import BaseAggregate, event

from ledger.errors import RuleViolation
from ledger.events import base as _base
from ledger.events.agreement import (
    AgreementAmended,
    AgreementCreated,
    ForecastRevised,
    RebateWrittenOff,
    TierTerm,
    WriteOffReversed,
)
from ledger.terms import TermsChange, changes_of, check_amendment, check_terms, terms_of


def agreement_uuid(agreement_id: str) -> UUID:
    """Agreement ids are unique: the aggregate id is derived from it, so the event store's
    unique (id, version) index also refuses a second creation."""
    return uuid5(NAMESPACE_URL, "rebate-ledger:agreement:" + agreement_id)


class Agreement(BaseAggregate[UUID]):
    Event = _base.LedgerEvent
    Created = _base.LedgerCreated
    AgreementCreated = AgreementCreated
    AgreementAmended = AgreementAmended
    ForecastRevised = ForecastRevised
    RebateWrittenOff = RebateWrittenOff
    WriteOffReversed = WriteOffReversed

    @staticmethod
    def create_id(agreement_id: str, **_: Any) -> UUID:
        return agreement_uuid(agreement_id)

    @event(AgreementCreated)
    def __init__(
        self,
        agreement_id: str,
        customer_id: str | None,
        currency: str,
        period_start: date,
        period_end: date,
        basis: str,
        tier_method: str,
        rate_kind: str,
        tiers: Sequence[TierTerm],
        products: Sequence[str] | None,
        cap: Decimal | None,
        accrual_method: str,
        forecast_basis: Decimal | None,
        recorded_at: datetime,
        group_id: str | None = None,
        program_id: str | None = None,
    ) -> None:
        self.agreement_id = agreement_id
        self.created_terms = terms_of({
            "agreement_id": agreement_id, "customer_id": customer_id, "currency": currency,
            "period_start": period_start, "period_end": period_end, "basis": basis,
            "tier_method": tier_method, "rate_kind": rate_kind, "tiers": tiers,
            "products": products, "cap": cap, "accrual_method": accrual_method,
            "forecast_basis": forecast_basis, "group_id": group_id, "program_id": program_id,
        })
        check_terms(self.created_terms)
        self.amendments: list[TermsChange] = []
        self.forecasts: list[TermsChange] = []
        self.written_off: list[tuple[date, Decimal]] = []
        #: write-offs recorded with a write_off_id (contract 5), by id
        self.write_offs: dict[str, WriteOffEntry] = {}

    @property
    def customer_id(self) -> str | None:
        return self.created_terms.customer_id

    def amend(
        self, effective_from: date, changes: dict[str, Any], recorded_at: datetime
    ) -> None:
        """Lay new terms over the agreement from `effective_from` on; refused (RuleViolation)
        when the terms would be invalid at any date."""
        change = TermsChange(
            seq=self.version + 1, effective_from=effective_from, changes=changes, source=""
        )
        check_amendment(self.created_terms, self.amendments, change)
        fields: dict[str, Any] = dict(changes)
        if "tiers" in fields:
            fields["tiers"] = tuple(TierTerm.of(t) for t in fields["tiers"])
        if fields.get("products") is not None:
            fields["products"] = tuple(fields["products"])
        self._amended(
            agreement_id=self.agreement_id,
            effective_from=effective_from,
            changed=tuple(sorted(changes)),
            recorded_at=recorded_at,
            **fields,
        )

    @event(AgreementAmended)
    def _amended(
        self,
        agreement_id: str,
        effective_from: date,
        changed: tuple[str, ...],
        recorded_at: datetime,
        tiers: tuple[TierTerm, ...] | None = None,
        cap: Decimal | None = None,
        products: tuple[str, ...] | None = None,
        period_end: date | None = None,
        basis: str | None = None,
        tier_method: str | None = None,
        rate_kind: str | None = None,
        accrual_method: str | None = None,
        forecast_basis: Decimal | None = None,
    ) -> None:
        values = {
            "tiers": tiers,
            "cap": cap,
            "products": products,
            "period_end": period_end,
            "basis": basis,
            "tier_method": tier_method,
            "rate_kind": rate_kind,
            "accrual_method": accrual_method,
            "forecast_basis": forecast_basis,
        }
        self.amendments.append(
            TermsChange(
                seq=self.version,
                effective_from=effective_from,
                changes=changes_of(changed, values),
                source="",
            )
        )

    @event(ForecastRevised)
    def revise_forecast(
        self, agreement_id: str, forecast_basis: Decimal, effective_from: date,
        recorded_at: datetime,
    ) -> None:
        self.forecasts.append(
            TermsChange(
                seq=self.version,
                effective_from=effective_from,
                changes={"forecast_basis": forecast_basis},
                source="",
            )
        )

    @event(RebateWrittenOff)
    def write_off(
        self, agreement_id: str, amount: Decimal, effective_date: date, reason: str,
        recorded_at: datetime, write_off_id: str | None = None,
    ) -> None:
        self.written_off.append((effective_date, amount))
        if write_off_id is not None:
            self.write_offs[write_off_id] = WriteOffEntry(amount, effective_date, reason)

    def reverse_write_off(
        self, write_off_id: str, reversed_on: date, reason: str, recorded_at: datetime
    ) -> None:
        """Contract 5: the write-off must exist here, not be reversed already, and
        `reversed_on` must not be before its `effective_date`."""
        entry = self.write_offs.get(write_off_id)
        if entry is None:  # the caller found the agreement by the id: a stale index
            raise RuleViolation(
                "write_off_id", f"no write-off {write_off_id!r} on agreement "
                f"{self.agreement_id!r}; nothing to reverse"
            )
        if entry.reversed_on is not None:
            raise RuleViolation(
                "write_off_id",
                f"write-off {write_off_id!r} is already reversed (from {entry.reversed_on}); "
                "a reversal is final: write off again under a new write_off_id if needed",
            )
        if reversed_on < entry.effective_date:
            raise RuleViolation(
                "reversed_on",
                f"reversed_on {reversed_on} is before the write-off's effective_date "
                f"{entry.effective_date}",
            )
        self._write_off_reversed(
            agreement_id=self.agreement_id, write_off_id=write_off_id, amount=entry.amount,
            reversed_on=reversed_on, reason=reason, recorded_at=recorded_at,
        )

    @event(WriteOffReversed)
    def _write_off_reversed(
        self, agreement_id: str, write_off_id: str, amount: Decimal, reversed_on: date,
        reason: str, recorded_at: datetime,
    ) -> None:
        self.write_offs[write_off_id].reversed_on = reversed_on


class WriteOffEntry:
    """A write-off recorded with an id: what a resend must equal, and its reversal."""

    __slots__ = ("amount", "effective_date", "reason", "reversed_on")

    def __init__(self, amount: Decimal, effective_date: date, reason: str) -> None:
        self.amount = amount
        self.effective_date = effective_date
        self.reason = reason
        self.reversed_on: date | None = None
