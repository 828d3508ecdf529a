"""What the ledger publishes on Kafka: every stored event in an envelope, plus watermarks.

The events topic carries two kinds of record, both orjson objects:

- an **envelope**, one stored event (or one customer's part of a sales batch):
  `event_id`, `type`, `schema_version`, `aggregate_id`, `aggregate_version`, `valid_time`,
  `recorded_time`, `position` (the event's position in the store's notification log),
  `part` and `parts` (a `SalesRecorded` batch is split by customer so that every customer's
  events keep their order on one partition; other events are part 0 of 1), `key` (the
  partition key: the customer id), and `payload` (the event's state exactly as stored);
- a **watermark** (`{"control": "watermark", "position": P}`), sent by the relay to every
  partition once every event up to store position P has been delivered: a consumer that has
  read a watermark P on every partition has read every event up to P.

Records are keyed by customer id: an agreement belongs to one customer, so each agreement's
and each customer's events keep their store order within one partition. Within a partition
`(position, part)` only increases, except when the relay re-sends after a crash or refills a
broker that came back empty: a consumer skips any `(position, part)` not above the last one it
applied on that partition, which makes it idempotent on redelivery.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field

from ledger.events import ALL_EVENT_TYPES, LedgerEvent
from ledger.events.codec import SCHEMA_VERSION_KEY, decode_event
from ledger.events.sales import ReversalColumns, SaleColumns, SalesRecorded

EVENT_TYPES: dict[str, type[LedgerEvent]] = {cls.event_type(): cls for cls in ALL_EVENT_TYPES}

#: Header naming the kind of record, so a consumer can route without parsing the value.
KIND_HEADER = "ledger-kind"
ENVELOPE_KIND = b"event"
WATERMARK_KIND = b"watermark"


class Envelope(BaseModel):
    """One stored event on the events topic (version 1 of the envelope)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    envelope_version: Literal[1] = 1
    event_id: str = Field(
        description="`<aggregate_id>/<aggregate_version>`: unique per stored event, the id "
        "every audit view and core table uses."
    )
    type: str = Field(description="Event type, e.g. `SalesRecorded` (see docs/events.md).")
    schema_version: int = Field(ge=1, description="Version of the payload's shape.")
    aggregate_id: UUID
    aggregate_version: int = Field(ge=1)
    valid_time: date = Field(description="When the fact holds in the business.")
    recorded_time: datetime = Field(description="When the ledger learned it (UTC).")
    position: int = Field(ge=1, description="Position in the store's notification log.")
    part: int = Field(default=0, ge=0, description="Part of a split sales batch, from 0.")
    parts: int = Field(default=1, ge=1, description="How many parts the event was split in.")
    key: str = Field(description="Partition key: the customer id.")
    payload: dict[str, Any] = Field(description="The event's state as stored (versioned).")

    def event(self) -> LedgerEvent:
        """The payload as a current-version event (older versions are upcast)."""
        cls = EVENT_TYPES.get(self.type)
        if cls is None:
            raise ValueError(f"unknown event type {self.type!r}")
        state = {SCHEMA_VERSION_KEY: self.schema_version, **self.payload}
        return decode_event(f"{cls.__module__}:{cls.__qualname__}", state)

    @property
    def order(self) -> tuple[int, int]:
        return (self.position, self.part)


class Watermark(BaseModel):
    """Every event up to `position` has been delivered to every partition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    control: Literal["watermark"] = "watermark"
    position: int = Field(ge=0)


def event_id_of(aggregate_id: UUID | str, version: int) -> str:
    return f"{aggregate_id}/{version}"


def envelope_bytes(
    event: LedgerEvent, state: bytes, position: int, key: str, *, part: int = 0, parts: int = 1
) -> bytes:
    """The envelope's JSON, with `state` (the stored JSON, `schema_version` first) spliced in
    as the payload without decoding it again."""
    head = orjson.dumps({
        "envelope_version": 1,
        "event_id": event_id_of(event.originator_id, event.originator_version),
        "type": event.event_type(),
        "schema_version": type(event).SCHEMA_VERSION,
        "aggregate_id": str(event.originator_id),
        "aggregate_version": event.originator_version,
        "valid_time": event.valid_time.isoformat(),
        "recorded_time": event.recorded_at,
        "position": position,
        "part": part,
        "parts": parts,
        "key": key,
    })
    payload = _without_schema_version(state)
    return head[:-1] + b',"payload":' + payload + b"}"


def _without_schema_version(state: bytes) -> bytes:
    prefix = b'{"%s":' % SCHEMA_VERSION_KEY.encode()
    if state.startswith(prefix):
        comma = state.index(b",", len(prefix))
        return b"{" + state[comma + 1 :]
    return state


def split_sales(event: SalesRecorded) -> list[tuple[str, SalesRecorded]]:
    """A sales batch as one `SalesRecorded` per customer, in order of first appearance."""
    sales: dict[str, list[Any]] = {}
    reversals: dict[str, list[Any]] = {}
    for line in event.sales.rows():
        sales.setdefault(line.customer_id, []).append(line)
    for reversal in event.reversals.rows():
        reversals.setdefault(reversal.customer_id, []).append(reversal)
    customers = list(dict.fromkeys([*sales, *reversals]))
    parts = []
    for customer in customers:
        part = SalesRecorded.model_construct(
            None,
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            timestamp=event.timestamp,
            recorded_at=event.recorded_at,
            originator_topic=event.originator_topic,
            sales=SaleColumns.of(sales.get(customer, [])),
            reversals=ReversalColumns.of(reversals.get(customer, [])),
        )
        parts.append((customer, part))
    return parts


Record = Envelope | Watermark


def parse_record(value: bytes) -> Record:
    """An events-topic record value as an `Envelope` or a `Watermark`."""
    data = orjson.loads(value)
    if data.get("control") == "watermark":
        return Watermark.model_validate(data)
    return Envelope.model_validate(data)


def watermark_bytes(position: int) -> bytes:
    return orjson.dumps({"control": "watermark", "position": position})
