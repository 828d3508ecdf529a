"""A buying group (contract v2, section 4): its members' joins and leaves, as recorded.

The aggregate keeps the rules a command must pass (the group exists, a leave follows a
recorded join of that customer); who is a member on a date as known at K is derived from the
recorded joins and leaves (`ledger.membership`), read from the core projection."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import BaseAggregate, event

from ledger.errors import RuleViolation
from ledger.events import base as _base
from ledger.events.group import GroupCreated, MemberJoined, MemberLeft


def group_uuid(group_id: str) -> UUID:
    """Group ids are unique: the aggregate id is derived from it."""
    return uuid5(NAMESPACE_URL, "rebate-ledger:group:" + group_id)


class Group(BaseAggregate[UUID]):
    Event = _base.LedgerEvent
    Created = _base.LedgerCreated
    GroupCreated = GroupCreated
    MemberJoined = MemberJoined
    MemberLeft = MemberLeft

    @staticmethod
    def create_id(group_id: str, **_: Any) -> UUID:
        return group_uuid(group_id)

    @event(GroupCreated)
    def __init__(self, group_id: str, name: str | None, recorded_at: datetime) -> None:
        self.group_id = group_id
        self.name = name
        #: customers with at least one recorded join (a leave needs one)
        self.joined: set[str] = set()

    @event(MemberJoined)
    def join(
        self, group_id: str, customer_id: str, effective_from: date, recorded_at: datetime
    ) -> None:
        self.joined.add(customer_id)

    def leave(self, customer_id: str, effective_from: date, recorded_at: datetime) -> None:
        if customer_id not in self.joined:
            raise RuleViolation(
                "customer_id",
                f"customer {customer_id!r} has no recorded join_group to group "
                f"{self.group_id!r}; a leave_group needs an earlier join_group",
            )
        self._left(group_id=self.group_id, customer_id=customer_id,
                   effective_from=effective_from, recorded_at=recorded_at)

    @event(MemberLeft)
    def _left(
        self, group_id: str, customer_id: str, effective_from: date, recorded_at: datetime
    ) -> None:
        pass
