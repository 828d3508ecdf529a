"""Read your writes: answer from a projection only once it has caught up with the store.

A query first takes the store position P (the highest notification id, i.e. every command
committed before the query started), then opens the live generation of the projection and
reads, in one read transaction, its lowest watermark over all partitions of the events topic.
If that is >= P the projection holds everything the store held when the query started and it
answers; otherwise (or if there is no projection, or it vanished in a swap) the core answers.
Both give the same rows: the liability projection has the core's tables and code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ledger.core import Ledger
from ledger.kafka.ports import EVENTS
from ledger.kafka.settings import KafkaSettings
from ledger.liability import LiabilityRow, liability_rows
from ledger.projections.generations import live_generation
from ledger.projections.read_models import ClaimRow, claim_rows, model
from ledger.projections.runner import (
    QuarantinedRecord,
    check_read_tables,
    min_watermark,
    quarantined_records,
)

CORE = "core"
T = TypeVar("T")


def store_position(ledger: Ledger) -> int:
    """The store's position: the highest notification id (0 for an empty store). One indexed
    `max(id)`: the recorder's `max_notification_id` loads the whole last record, stored state
    included (about 1 ms on a store of sales batches, on every read of a projection)."""
    events = ledger.app.recorder.tables[0]  # type: ignore[attr-defined]
    with ledger.engine.connect() as connection:
        return int(connection.execute(select(func.max(events.c.id))).scalar() or 0)


def _events_topic(settings: KafkaSettings | None) -> str:
    return (settings or KafkaSettings()).topic(EVENTS)


def from_projection(
    ledger: Ledger,
    name: str,
    query: Callable[[Session], T],
    *,
    settings: KafkaSettings | None = None,
) -> tuple[T, str] | None:
    """`query` on the live generation of projection `name` if it has caught up with the
    store, with the name of the source (`projection <name> g<N>`); else None."""
    try:
        generation = live_generation(ledger.engine, name)
    except SQLAlchemyError:
        return None
    if generation is None or not generation.exists(ledger.engine):
        return None
    position = store_position(ledger)
    engine = generation.engine(read_only=True)
    try:
        with Session(engine) as session, session.begin():
            check_read_tables(session.connection(), model(name))
            watermark = min_watermark(session, _events_topic(settings))
            if watermark is None or watermark < position:
                return None
            if quarantined_records(session):  # incomplete until a replay: not trusted
                return None
            return query(session), f"projection {name} g{generation.number}"
    except SQLAlchemyError:  # swapped out and dropped between pointer and read
        return None
    finally:
        engine.dispose()


def quarantine_of(ledger: Ledger, name: str) -> tuple[str, list[QuarantinedRecord]] | None:
    """The live generation of projection `name` (`projection <name> gN`) and the records it
    quarantined and no replay cleared (it is incomplete when there is any); None when there is
    no live generation."""
    try:
        generation = live_generation(ledger.engine, name)
    except SQLAlchemyError:
        return None
    if generation is None or not generation.exists(ledger.engine):
        return None
    engine = generation.engine(read_only=True)
    try:
        with Session(engine) as session, session.begin():
            return f"projection {name} g{generation.number}", quarantined_records(session)
    except SQLAlchemyError:  # swapped out and dropped between pointer and read
        return None
    finally:
        engine.dispose()


def liability_answer(
    ledger: Ledger,
    as_of: date,
    known_at: datetime | None = None,
    *,
    agreement_id: str | None = None,
    customer_id: str | None = None,
    group_id: str | None = None,
    program_id: str | None = None,
    settings: KafkaSettings | None = None,
) -> tuple[list[LiabilityRow], str]:
    """The liability rows and where they came from (`core` or `projection liability gN`)."""
    filters = {"agreement_id": agreement_id, "customer_id": customer_id, "group_id": group_id,
               "program_id": program_id}
    answer = from_projection(
        ledger, "liability",
        lambda session: liability_rows(session, as_of, known_at, **filters),
        settings=settings,
    )
    if answer is not None:
        return answer
    return ledger.liability(as_of, known_at, **filters), CORE


def claims_answer(
    ledger: Ledger,
    *,
    agreement_id: str | None = None,
    customer_id: str | None = None,
    settings: KafkaSettings | None = None,
) -> tuple[list[ClaimRow], str] | None:
    """The claims register from its projection once caught up; None when it is not (the
    core keeps no register: the caller says so rather than answer stale)."""
    return from_projection(
        ledger, "claims",
        lambda session: claim_rows(session, agreement_id=agreement_id, customer_id=customer_id),
        settings=settings,
    )
