"""Events of a buying group (contract v2, section 4): created, a customer joined, a customer
left. Membership is bitemporal: `effective_from` is valid time, `recorded_at` when the ledger
learned it, so a join recorded late changes past figures only as known from then on."""

from __future__ import annotations

from datetime import date

from ledger.events.base import LedgerCreated, LedgerEvent


class GroupCreated(LedgerCreated):
    group_id: str
    name: str | None

    @property
    def valid_time(self) -> date:
        return self.recorded_at.date()


class MemberJoined(LedgerEvent):
    group_id: str
    customer_id: str
    effective_from: date

    @property
    def valid_time(self) -> date:
        return self.effective_from


class MemberLeft(LedgerEvent):
    """`effective_from` is the first day the customer is no longer a member."""

    group_id: str
    customer_id: str
    effective_from: date

    @property
    def valid_time(self) -> date:
        return self.effective_from
