"""Events of an agreement: created, amended, forecast revised, written off."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ledger.events.base import LedgerCreated, LedgerEvent, Upcaster
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


def _v1_agreement(state: dict[str, Any]) -> dict[str, Any]:
    """v1 (contract v1) agreements were all a customer's own, from no program."""
    return {**state, "group_id": None, "program_id": None}


def _v1_write_off(state: dict[str, Any]) -> dict[str, Any]:
    """v1 write-offs had no id (they can be neither deduplicated nor reversed)."""
    return {**state, "write_off_id": None}


class AgreementCreated(LedgerCreated):
    """v2 (contract v2, section 4): exactly one of `customer_id` or `group_id`; `program_id`."""

    SCHEMA_VERSION: ClassVar[int] = 2
    UPCASTERS: ClassVar[dict[int, Upcaster]] = {1: _v1_agreement}

    agreement_id: str
    customer_id: str | None
    group_id: str | None
    program_id: str | None
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
    """v2 (contract v2, section 5): an optional `write_off_id`."""

    SCHEMA_VERSION: ClassVar[int] = 2
    UPCASTERS: ClassVar[dict[int, Upcaster]] = {1: _v1_write_off}

    agreement_id: str
    amount: Decimal
    effective_date: date
    reason: str
    write_off_id: str | None

    @property
    def valid_time(self) -> date:
        return self.effective_date


class WriteOffReversed(LedgerEvent):
    """Contract 5: the write-off `write_off_id` (of `amount`) no longer counts from
    `reversed_on` on."""

    agreement_id: str
    write_off_id: str
    amount: Decimal
    reversed_on: date
    reason: str

    @property
    def valid_time(self) -> date:
        return self.reversed_on
