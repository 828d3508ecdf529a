"""One stored event, as an auditor asks for it (`rebate-ledger event ID`): its type, valid and
recorded times, the business ids it is about (sale, claim, amendment, ...), the payload as
stored, and its place in the hash chains (issue 14, point 7).

`business_ref` is the one place that names an event's business ids, so that every report
printing an event id can print them beside it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.audit.chain import event_chain, events_table

#: how an event id is printed in every report: `<aggregate id>/<version>`
EVENT_ID = re.compile(r"^([0-9a-fA-F-]{32,36})/([0-9]{1,18})$")
#: how many sale ids of one batch are named before "and N more"
NAMED_SALES = 3


@dataclass(frozen=True)
class Reference:
    """What the user asked for: a store position or an event id."""

    position: int | None = None
    aggregate_id: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        return (str(self.position) if self.position is not None
                else f"{self.aggregate_id}/{self.version}")


def parse_reference(text: str) -> Reference | None:
    """`42` (a store position) or `<aggregate id>/<version>`; None when it is neither."""
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return Reference(position=int(text))
    match = EVENT_ID.match(text)
    if match is None:
        return None
    try:
        aggregate = UUID(match.group(1))
    except ValueError:
        return None
    return Reference(aggregate_id=str(aggregate), version=int(match.group(2)))


def _sales(ids: list[str], what: str) -> str:
    if len(ids) == 1:
        return f"{what} {ids[0]}"
    named = ", ".join(ids[:NAMED_SALES])
    more = f" and {len(ids) - NAMED_SALES} more" if len(ids) > NAMED_SALES else ""
    return f"{len(ids)} {what}s: {named}{more}"


def business_ref(event: Any) -> str:
    """The business ids an event is about, in the ledger's words: `sale S-1`, `claim CL-7 of
    A1`, `amendment of A1 from 2025-03-01`, `close of 2025-Q2`, ..."""
    name = type(event).__name__
    sales = getattr(event, "sales", None)
    if sales is not None:
        parts = []
        if len(sales):
            parts.append(_sales(list(sales.sale_id), "sale"))
        if len(event.reversals):
            parts.append(_sales(list(event.reversals.sale_id), "return of sale"))
        return "; ".join(parts)
    agreement = getattr(event, "agreement_id", None)
    claim = getattr(event, "claim_id", None)
    if claim is not None:
        return f"claim {claim} of {agreement}"
    write_off = getattr(event, "write_off_id", None)
    if name == "WriteOffReversed":
        return f"reversal of write-off {write_off} of {agreement}"
    if name == "RebateWrittenOff":
        return f"write-off {write_off} of {agreement}" if write_off else \
            f"write-off of {agreement}"
    if name == "AgreementAmended":
        return f"amendment of {agreement} from {event.effective_from}"
    if name == "ForecastRevised":
        return f"forecast of {agreement}"
    if agreement is not None:
        return f"agreement {agreement}"
    group = getattr(event, "group_id", None)
    if name == "MemberJoined":
        return f"{event.customer_id} joins group {group}"
    if name == "MemberLeft":
        return f"{event.customer_id} leaves group {group}"
    if group is not None:
        return f"group {group}"
    period = getattr(event, "period", None)
    if period is not None:
        return f"close of {period}"
    return name


def find_stored(session: Session, recorder: Any, reference: Reference) -> Any | None:
    """The event table's row (position, aggregate, version, topic, stored bytes) or None."""
    table = events_table(recorder)
    query = select(table.c.id, table.c.originator_id, table.c.originator_version,
                   table.c.topic, table.c.state)
    if reference.position is not None:
        query = query.where(table.c.id == reference.position)
    else:
        query = query.where(table.c.originator_id == UUID(str(reference.aggregate_id)),
                            table.c.originator_version == reference.version)
    return session.execute(query).first()


def chain_place(session: Session, position: int) -> dict[str, Any] | None:
    """The event's hashes and the store hash it extends (the previous position's)."""
    row = session.execute(select(event_chain).where(event_chain.c.position == position)).first()
    if row is None:
        return None
    previous = session.execute(
        select(event_chain.c.position, event_chain.c.store_hash)
        .where(event_chain.c.position < position)
        .order_by(event_chain.c.position.desc()).limit(1)).first()
    return {
        "content_hash": row.content_hash,
        "stream_hash": row.stream_hash,
        "store_hash": row.store_hash,
        "previous_position": int(previous.position) if previous else 0,
        "previous_store_hash": previous.store_hash if previous else "0" * 64,
    }


def store_span(session: Session, recorder: Any) -> tuple[int, int]:
    """The first and last store positions (0, 0 for an empty store)."""
    from sqlalchemy import func

    table = events_table(recorder)
    first, last = session.execute(select(func.min(table.c.id), func.max(table.c.id))).one()
    return int(first or 0), int(last or 0)
