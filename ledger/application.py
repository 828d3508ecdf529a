"""The eventsourcing application: the one front door to the aggregates and the event store.

Its verbs load an aggregate, call it, and save it; each save returns the recorded events with
their positions in the notification log, which the caller hands to the core projection in the
same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.utils import get_topic

from ledger.aggregates import (
    Agreement,
    Claim,
    Group,
    SalesBatch,
    agreement_uuid,
    claim_uuid,
    group_uuid,
)
from ledger.errors import RuleViolation, UnknownAgreement, UnknownClaim, UnknownGroup
from ledger.events import (
    LedgerEvent,
    ReversalColumns,
    SaleColumns,
    SaleLine,
    SaleReversal,
)
from ledger.events.agreement import TierTerm
from ledger.events.codec import OrjsonTranscoder, PydanticMapper
from ledger.terms import check_new_terms

Recorded = list[tuple[LedgerEvent, int]]


class LedgerApplication(Application[UUID]):
    name = "Ledger"
    env: ClassVar[dict[str, str]] = {
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
        "MAPPER_TOPIC": get_topic(PydanticMapper),
    }

    def _save(self, *aggregates: Any) -> Recorded:
        recordings = self.save(*aggregates)
        return [(r.domain_event, r.notification.id) for r in recordings]  # type: ignore[misc]

    # Agreements ---------------------------------------------------------------------------

    def get_agreement(self, agreement_id: str) -> Agreement:
        try:
            return self.repository.get(agreement_uuid(agreement_id))  # type: ignore[return-value]
        except AggregateNotFoundError:
            raise UnknownAgreement(agreement_id) from None

    def agreement_exists(self, agreement_id: str) -> bool:
        return bool(self.recorder.select_events(agreement_uuid(agreement_id), limit=1))

    def create_agreement(self, recorded_at: datetime, **terms: Any) -> Recorded:
        if self.agreement_exists(terms["agreement_id"]):
            raise RuleViolation(
                "agreement_id",
                f"agreement {terms['agreement_id']!r} already exists; agreement ids are "
                "unique (use amend_agreement to change its terms)",
            )
        if terms.get("group_id") is not None and not self.group_exists(terms["group_id"]):
            raise UnknownGroup(terms["group_id"])
        tiers = [TierTerm.of(t) for t in terms.pop("tiers")]
        products = terms.pop("products")
        agreement = Agreement(
            tiers=tiers,
            products=tuple(products) if products is not None else None,
            recorded_at=recorded_at,
            **terms,
        )
        check_new_terms(agreement.created_terms)
        return self._save(agreement)

    def amend_agreement(
        self, agreement_id: str, effective_from: date, changes: dict[str, Any],
        recorded_at: datetime,
    ) -> Recorded:
        agreement = self.get_agreement(agreement_id)
        agreement.amend(effective_from, changes, recorded_at)
        return self._save(agreement)

    def revise_forecast(
        self, agreement_id: str, forecast_basis: Decimal, effective_from: date,
        recorded_at: datetime,
    ) -> Recorded:
        agreement = self.get_agreement(agreement_id)
        agreement.revise_forecast(
            agreement_id=agreement_id,
            forecast_basis=forecast_basis,
            effective_from=effective_from,
            recorded_at=recorded_at,
        )
        return self._save(agreement)

    def write_off(
        self, agreement_id: str, amount: Decimal, effective_date: date, reason: str,
        recorded_at: datetime, write_off_id: str | None = None,
    ) -> Recorded:
        agreement = self.get_agreement(agreement_id)
        agreement.write_off(
            agreement_id=agreement_id,
            amount=amount,
            effective_date=effective_date,
            reason=reason,
            recorded_at=recorded_at,
            write_off_id=write_off_id,
        )
        return self._save(agreement)

    def reverse_write_off(
        self, agreement_id: str, write_off_id: str, reversed_on: date, reason: str,
        recorded_at: datetime,
    ) -> Recorded:
        agreement = self.get_agreement(agreement_id)
        agreement.reverse_write_off(write_off_id, reversed_on, reason, recorded_at)
        return self._save(agreement)

    # Buying groups (contract 4) ------------------------------------------------------------

    def group_exists(self, group_id: str) -> bool:
        return bool(self.recorder.select_events(group_uuid(group_id), limit=1))

    def get_group(self, group_id: str) -> Group:
        try:
            return self.repository.get(group_uuid(group_id))  # type: ignore[return-value]
        except AggregateNotFoundError:
            raise UnknownGroup(group_id) from None

    def create_group(self, group_id: str, name: str | None, recorded_at: datetime) -> Recorded:
        if self.group_exists(group_id):
            raise RuleViolation(
                "group_id", f"group {group_id!r} already exists; group ids are unique"
            )
        return self._save(Group(group_id=group_id, name=name, recorded_at=recorded_at))

    def join_group(
        self, group_id: str, customer_id: str, effective_from: date, recorded_at: datetime
    ) -> Recorded:
        group = self.get_group(group_id)
        group.join(group_id=group_id, customer_id=customer_id, effective_from=effective_from,
                   recorded_at=recorded_at)
        return self._save(group)

    def leave_group(
        self, group_id: str, customer_id: str, effective_from: date, recorded_at: datetime
    ) -> Recorded:
        group = self.get_group(group_id)
        group.leave(customer_id, effective_from, recorded_at)
        return self._save(group)

    # Claims -------------------------------------------------------------------------------

    def get_claim(self, claim_id: str) -> Claim:
        try:
            return self.repository.get(claim_uuid(claim_id))  # type: ignore[return-value]
        except AggregateNotFoundError:
            raise UnknownClaim(claim_id) from None

    def submit_claim(
        self, claim_id: str, agreement_id: str, amount: Decimal, submitted_on: date,
        recorded_at: datetime,
    ) -> Recorded:
        if not self.agreement_exists(agreement_id):
            raise UnknownAgreement(agreement_id)
        if self.recorder.select_events(claim_uuid(claim_id), limit=1):
            raise RuleViolation(
                "claim_id", f"claim {claim_id!r} already exists; claim ids are unique"
            )
        claim = Claim(
            claim_id=claim_id,
            agreement_id=agreement_id,
            amount=amount,
            submitted_on=submitted_on,
            recorded_at=recorded_at,
        )
        return self._save(claim)

    def close_period(
        self, period: str, period_start: date, period_end: date,
        reported: tuple[Any, ...], recorded_at: datetime,
    ) -> Recorded:
        from ledger.aggregates.period import PeriodClose, period_uuid

        if self.recorder.select_events(period_uuid(period), limit=1):
            raise RuleViolation(
                "period", f"period {period!r} is already closed; a close is final (later "
                "changes show as post-close adjustments in diff and reconcile)"
            )
        close = PeriodClose(period=period, period_start=period_start, period_end=period_end,
                            reported=reported, recorded_at=recorded_at)
        return self._save(close)

    def save_claim(self, claim: Claim) -> Recorded:
        return self._save(claim)

    # Sales --------------------------------------------------------------------------------

    def record_sales(
        self, sales: Sequence[SaleLine], reversals: Sequence[SaleReversal],
        recorded_at: datetime,
    ) -> Recorded:
        batch = SalesBatch(
            sales=SaleColumns.of(list(sales)),
            reversals=ReversalColumns.of(list(reversals)),
            recorded_at=recorded_at,
        )
        return self._save(batch)
