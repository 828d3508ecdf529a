"""The base of every ledger event: immutable, versioned, with its valid and recorded time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import CanInitAggregate, CanMutateAggregate
from pydantic import BaseModel, ConfigDict

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class LedgerEvent(BaseModel, CanMutateAggregate[UUID]):
    """A fact in the past tense. Never edited: a change of shape is a new `SCHEMA_VERSION`
    with an upcaster in `UPCASTERS` from the version before it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Version of this event's shape; stored beside its state.
    SCHEMA_VERSION: ClassVar[int] = 1
    #: Upcasters by the version they upgrade *from*: `UPCASTERS[1]` turns v1 state into v2.
    UPCASTERS: ClassVar[dict[int, Upcaster]] = {}

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    #: When the ledger learned the fact (transaction time), timezone-aware UTC.
    recorded_at: datetime

    @property
    def valid_time(self) -> date:
        """When the fact is true in the business (invoice date, effective date, paid on, …)."""
        raise NotImplementedError

    @classmethod
    def event_type(cls) -> str:
        """The public name of the event type, as used on Kafka and in the docs."""
        return cls.__name__


class LedgerCreated(LedgerEvent, CanInitAggregate[UUID]):
    """The first event of an aggregate."""

    originator_topic: str


def upcast(cls: type[LedgerEvent], state: dict[str, Any], version: int) -> dict[str, Any]:
    """Bring stored state of `version` up to the class's current version."""
    assert 1 <= version <= cls.SCHEMA_VERSION, (cls, version)
    while version < cls.SCHEMA_VERSION:
        state = cls.UPCASTERS[version](state)
        version += 1
    return state
