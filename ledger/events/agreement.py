"""Events of an agreement: created, amended, forecast revised, written off."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from ledger.events.base import LedgerCreated, LedgerEvent
from ledger.rules import Tier


class TierTerm(BaseModel):
    """One row of a tier table: reached when the basis is ≥ `from`."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True,
        serialize_by_alias=True,
    )
    threshold: Decimal = Field(alias="from")
    rate: Decimal

    @classmethod
    def of(cls, tier: Tier) -> TierTerm:
        return cls.model_validate({"from": tier.threshold, "rate": tier.rate})

    def to_tier(self) -> Tier:
        return Tier(threshold=self.threshold, rate=self.rate)


class AgreementCreated(LedgerCreated):
    agreement_id: str
    customer_id: str
    currency: str
    period_start: date
    period_end: date
    basis: str
    tier_method: str
    rate_kind: str
    tiers: tuple[TierTerm, ...]
    products: tuple[str, ...] | None
    cap: Decimal | None
    accrual_method: str
    forecast_basis: Decimal | None

    @property
    def valid_time(self) -> date:
        return self.period_start


class AgreementAmended(LedgerEvent):
    """New terms from `effective_from` on. `changed` lists the fields the amendment sets, so
    that `cap: null` (the cap removed) differs from a cap left as it was."""

    agreement_id: str
    effective_from: date
    changed: tuple[str, ...]
    tiers: tuple[TierTerm, ...] | None = None
    cap: Decimal | None = None
    products: tuple[str, ...] | None = None
    period_end: date | None = None
    basis: str | None = None
    tier_method: str | None = None
    rate_kind: str | None = None
    accrual_method: str | None = None
    forecast_basis: Decimal | None = None

    @property
    def valid_time(self) -> date:
        return self.effective_from


class ForecastRevised(LedgerEvent):
    agreement_id: str
    forecast_basis: Decimal
    effective_from: date

    @property
    def valid_time(self) -> date:
        return self.effective_from


class RebateWrittenOff(LedgerEvent):
    agreement_id: str
    amount: Decimal
    effective_date: date
    reason: str

    @property
    def valid_time(self) -> date:
        return self.effective_date
