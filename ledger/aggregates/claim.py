"""A claim: submitted → approved → settled (in one or more payments), or submitted → rejected."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import BaseAggregate, event

from ledger.errors import ClaimStateError, RuleViolation
from ledger.events import base as _base
from ledger.events.claims import ClaimApproved, ClaimRejected, ClaimSettled, ClaimSubmitted
from ledger.money import ZERO

SUBMITTED = "submitted"
APPROVED = "approved"
SETTLED = "settled"
REJECTED = "rejected"


def claim_uuid(claim_id: str) -> UUID:
    return uuid5(NAMESPACE_URL, "rebate-ledger:claim:" + claim_id)


class Claim(BaseAggregate[UUID]):
    Event = _base.LedgerEvent
    Created = _base.LedgerCreated
    ClaimSubmitted = ClaimSubmitted
    ClaimApproved = ClaimApproved
    ClaimRejected = ClaimRejected
    ClaimSettled = ClaimSettled

    @staticmethod
    def create_id(claim_id: str, **_: Any) -> UUID:
        return claim_uuid(claim_id)

    @event(ClaimSubmitted)
    def __init__(
        self, claim_id: str, agreement_id: str, amount: Decimal, submitted_on: date,
        recorded_at: datetime,
    ) -> None:
        self.claim_id = claim_id
        self.agreement_id = agreement_id
        self.amount = amount
        self.submitted_on = submitted_on
        self.status = SUBMITTED
        self.approved_amount: Decimal | None = None
        self.paid_amount = ZERO
        #: settlements by payment_ref: (paid_on, paid_amount) (contract 5)
        self.settlements: dict[str, tuple[date, Decimal]] = {}

    def check_status(self, expected: str, move: str) -> None:
        """Refuse a move the claim state machine does not allow from the current status."""
        if self.status != expected:
            raise ClaimStateError(
                "claim_id",
                f"claim {self.claim_id!r} is {self.status}; only {article(expected)} {expected} "
                f"claim can be "
                f"{move} (submitted → approved → settled, or submitted → rejected)",
            )

    def approve(self, approved_amount: Decimal, approved_on: date, recorded_at: datetime) -> None:
        self.check_status(SUBMITTED, "approved")
        if approved_amount > self.amount:
            raise RuleViolation(
                "approved_amount",
                f"approved_amount {approved_amount} is more than the claimed amount "
                f"{self.amount}",
            )
        self._approved(
            claim_id=self.claim_id,
            agreement_id=self.agreement_id,
            approved_amount=approved_amount,
            approved_on=approved_on,
            recorded_at=recorded_at,
        )

    @event(ClaimApproved)
    def _approved(
        self, claim_id: str, agreement_id: str, approved_amount: Decimal, approved_on: date,
        recorded_at: datetime,
    ) -> None:
        self.status = APPROVED
        self.approved_amount = approved_amount

    def reject(self, rejected_on: date, reason: str, recorded_at: datetime) -> None:
        self.check_status(SUBMITTED, "rejected")
        self._rejected(
            claim_id=self.claim_id,
            agreement_id=self.agreement_id,
            rejected_on=rejected_on,
            reason=reason,
            recorded_at=recorded_at,
        )

    @event(ClaimRejected)
    def _rejected(
        self, claim_id: str, agreement_id: str, rejected_on: date, reason: str,
        recorded_at: datetime,
    ) -> None:
        self.status = REJECTED

    @property
    def unpaid(self) -> Decimal:
        assert self.approved_amount is not None
        return self.approved_amount - self.paid_amount

    def is_settlement_resent(
        self, paid_amount: Decimal | None, paid_on: date, payment_ref: str
    ) -> bool:
        """Contract 5: True when a settlement with this `payment_ref` was recorded with the
        same fields (a duplicate: nothing to do); RuleViolation when it was recorded with
        different ones; False when the reference is new on this claim. A resend without
        `paid_amount` matches the amount that was paid under the reference."""
        known = self.settlements.get(payment_ref)
        if known is None:
            return False
        known_on, known_amount = known
        if known_on == paid_on and (paid_amount is None or paid_amount == known_amount):
            return True
        raise RuleViolation(
            "payment_ref",
            f"payment_ref {payment_ref!r} was already settled on claim {self.claim_id!r} "
            f"with paid_on {known_on} and paid_amount {known_amount}; a payment reference "
            "pays once: send a new payment_ref for another payment",
        )

    def settle(
        self, paid_amount: Decimal | None, paid_on: date, payment_ref: str, recorded_at: datetime
    ) -> None:
        self.check_status(APPROVED, "settled")
        amount = self.unpaid if paid_amount is None else paid_amount
        assert amount > 0, "an approved claim with nothing left to pay is settled"
        if amount > self.unpaid:
            raise RuleViolation(
                "paid_amount",
                f"paid_amount {amount} is more than what is left to pay on claim "
                f"{self.claim_id!r} ({self.unpaid} of {self.approved_amount} approved)",
            )
        self._settled(
            claim_id=self.claim_id,
            agreement_id=self.agreement_id,
            paid_amount=amount,
            paid_on=paid_on,
            payment_ref=payment_ref,
            recorded_at=recorded_at,
        )

    @event(ClaimSettled)
    def _settled(
        self, claim_id: str, agreement_id: str, paid_amount: Decimal, paid_on: date,
        payment_ref: str, recorded_at: datetime,
    ) -> None:
        self.paid_amount += paid_amount
        self.settlements[payment_ref] = (paid_on, paid_amount)
        assert self.approved_amount is not None and self.paid_amount <= self.approved_amount
        if self.paid_amount == self.approved_amount:
            self.status = SETTLED


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
