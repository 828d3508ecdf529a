"""Events of a claim: submitted, then approved and settled, or rejected."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from ledger.events.base import LedgerCreated, LedgerEvent


class ClaimSubmitted(LedgerCreated):
    claim_id: str
    agreement_id: str
    amount: Decimal
    submitted_on: date

    @property
    def valid_time(self) -> date:
        return self.submitted_on


class ClaimApproved(LedgerEvent):
    claim_id: str
    agreement_id: str
    approved_amount: Decimal
    approved_on: date

    @property
    def valid_time(self) -> date:
        return self.approved_on


class ClaimRejected(LedgerEvent):
    claim_id: str
    agreement_id: str
    rejected_on: date
    reason: str

    @property
    def valid_time(self) -> date:
        return self.rejected_on


class ClaimSettled(LedgerEvent):
    claim_id: str
    agreement_id: str
    paid_amount: Decimal
    paid_on: date
    payment_ref: str

    @property
    def valid_time(self) -> date:
        return self.paid_on
