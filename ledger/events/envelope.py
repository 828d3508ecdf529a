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

**Envelope v2** (issue 12) chains the records of each partition, so that a subscriber can tell
by itself, without the store, that a record is missing or was altered. A v2 envelope has
`envelope_version` 2 and, after the v1 fields:

- `store_hash`: the event's hash in the store's chain (`ledger.audit.chain`; what `digest`
  prints for the head), null only for an event the store never chained;
- `previous_position`, `previous_part`, `previous_link`: the `(position, part)` and `link` of
  the record the relay published before it to the SAME partition (`0`, `-1` and 64 zeros for the
  first record of a partition's chain);
- `link`, always the last member: SHA-256 (hex) of the record's bytes without it, i.e. of
  `value[:-75] + b"}"` (the 75 bytes being `,"link":"<64 hex>"}`).

A record whose `link` does not hash is altered; a record whose `previous_*` is not the last
record a consumer accepted on that partition follows a gap (or an altered predecessor). A
watermark v2 also names its partition and the head of that partition's chain (`partition`,
`head_position`, `head_part`, `head_link`), so that a record missing at the tail is found too.
A partition's chain may start (previous = the zeros) only at its first v2 record: after v1
records (a relay upgraded in place) or at the log's start.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any, Literal, NamedTuple
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ledger.events import ALL_EVENT_TYPES, LedgerEvent
from ledger.events.codec import SCHEMA_VERSION_KEY, decode_event
from ledger.events.sales import ReversalColumns, SaleColumns, SalesRecorded

EVENT_TYPES: dict[str, type[LedgerEvent]] = {cls.event_type(): cls for cls in ALL_EVENT_TYPES}

#: Header naming the kind of record, so a consumer can route without parsing the value.
KIND_HEADER = "ledger-kind"
ENVELOPE_KIND = b"event"
WATERMARK_KIND = b"watermark"


#: The link of "no record before": the start of a partition's chain.
GENESIS_LINK = "0" * 64
#: `,"link":"<64 hex>"}`: the end of every v2 envelope's bytes.
LINK_SUFFIX_BYTES = len(b',"link":"') + 64 + len(b'"}')
V1_PREFIX = b'{"envelope_version":1,'
V2_PREFIX = b'{"envelope_version":2,'


class ChainHead(NamedTuple):
    """The last record of a partition's chain: its `(position, part)` and `link`."""

    position: int
    part: int
    link: str


GENESIS = ChainHead(0, -1, GENESIS_LINK)


class Envelope(BaseModel):
    """One stored event on the events topic (version 1 of the envelope, or 2: chained)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    envelope_version: Literal[1, 2] = 1
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
    store_hash: str | None = Field(
        default=None, pattern="^[0-9a-f]{64}$",
        description="v2: the event's hash in the store's chain (null if never chained).")
    previous_position: int | None = Field(
        default=None, ge=0, description="v2: position of the record before it on its partition.")
    previous_part: int | None = Field(
        default=None, ge=-1, description="v2: part of the record before it on its partition.")
    previous_link: str | None = Field(
        default=None, pattern="^[0-9a-f]{64}$",
        description="v2: link of the record before it on its partition.")
    link: str | None = Field(
        default=None, pattern="^[0-9a-f]{64}$",
        description="v2: SHA-256 of this record's bytes without the link member.")

    @model_validator(mode="after")
    def _chain_fields(self) -> Envelope:
        chained = (self.previous_position, self.previous_part, self.previous_link, self.link)
        if self.envelope_version == 2 and any(v is None for v in chained):
            raise ValueError("envelope_version 2 needs previous_position, previous_part, "
                             "previous_link and link")
        if self.envelope_version == 1 and (self.store_hash is not None
                                           or any(v is not None for v in chained)):
            raise ValueError("envelope_version 1 has no chain fields (store_hash, "
                             "previous_*, link): is it version 2?")
        return self

    @property
    def previous(self) -> ChainHead | None:
        """v2: the record before it on its partition; None for v1."""
        if self.envelope_version == 1:
            return None
        assert self.previous_position is not None and self.previous_part is not None
        assert self.previous_link is not None
        return ChainHead(self.previous_position, self.previous_part, self.previous_link)

    @property
    def head(self) -> ChainHead | None:
        """v2: this record as the head of its partition's chain; None for v1."""
        return None if self.link is None else ChainHead(self.position, self.part, self.link)

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
    # v2 (optional): the partition it was sent to and the head of that partition's chain then
    partition: int | None = Field(default=None, ge=0)
    head_position: int | None = Field(default=None, ge=0)
    head_part: int | None = Field(default=None, ge=-1)
    head_link: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")

    @property
    def head(self) -> ChainHead | None:
        if self.head_position is None or self.head_part is None or self.head_link is None:
            return None
        return ChainHead(self.head_position, self.head_part, self.head_link)


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


def watermark_bytes(position: int, partition: int | None = None,
                    head: ChainHead | None = None) -> bytes:
    if partition is None or head is None:
        return orjson.dumps({"control": "watermark", "position": position})
    return orjson.dumps({"control": "watermark", "position": position, "partition": partition,
                         "head_position": head.position, "head_part": head.part,
                         "head_link": head.link})


# --- envelope v2: the chain of each partition ----------------------------------------------


def link_record(unlinked: bytes, previous: ChainHead,
                store_hash: str | None) -> tuple[bytes, str]:
    """A v1 envelope's bytes (as `envelope_bytes` writes them) as a v2 envelope following
    `previous` on its partition: the record and its link."""
    assert unlinked.startswith(V1_PREFIX) and unlinked.endswith(b"}"), unlinked[:40]
    body = b"".join((
        V2_PREFIX, unlinked[len(V1_PREFIX):-1],
        b',"store_hash":', b"null" if store_hash is None else b'"%s"' % store_hash.encode(),
        b',"previous_position":%d,"previous_part":%d,"previous_link":"%s"}' % (
            previous.position, previous.part, previous.link.encode()),
    ))
    link = hashlib.sha256(body).hexdigest()
    return body[:-1] + b',"link":"%s"}' % link.encode(), link


def unlinked_bytes(value: bytes) -> bytes:
    """A v2 envelope's bytes as the v1 envelope they were made from (for comparisons with
    what the relay makes of a stored event); v1 bytes as they are."""
    if not value.startswith(V2_PREFIX):
        return value
    data = orjson.loads(value)
    for name in ("store_hash", "previous_position", "previous_part", "previous_link", "link"):
        data.pop(name, None)
    data["envelope_version"] = 1
    return orjson.dumps(data)


def link_of(value: bytes) -> str | None:
    """What the `link` of a v2 record's bytes must be (SHA-256 of them without it); None when
    the bytes do not end as a v2 envelope does."""
    if len(value) <= LINK_SUFFIX_BYTES or not value.endswith(b'"}') \
            or value[-LINK_SUFFIX_BYTES:-LINK_SUFFIX_BYTES + 9] != b',"link":"':
        return None
    return hashlib.sha256(value[:-LINK_SUFFIX_BYTES] + b"}").hexdigest()


class ChainProblem(NamedTuple):
    """Something wrong on one partition's chain, at a record (offset) or at the end (-1)."""

    partition: int
    offset: int
    position: int
    what: str

    def line(self) -> str:
        at = "at the end" if self.offset < 0 else f"offset {self.offset}"
        return f"partition {self.partition} {at} (store position {self.position}): {self.what}"


class _PartitionChain:
    __slots__ = ("head", "chained", "seen", "gap", "held")

    def __init__(self) -> None:
        self.head = GENESIS  # the last record accepted
        self.chained = False  # a v2 record was accepted on it
        self.seen: dict[tuple[int, int], str] = {}  # (position, part) -> link, accepted
        self.gap: tuple[int, int, ChainHead] | None = None  # first held: offset, pos, previous
        self.held = GENESIS  # the last record of the held chain (after the gap)


class LogChain:
    """Checks the records of the events topic, partition by partition in offset order, by
    their chain alone (no store): every v2 record must hash to its link and follow the last
    record accepted on its partition. Duplicates (a re-send) are fine; a record that follows a
    gap is held, and the gap is healed when the missing records come after it (the relay
    re-sends from its last confirmed position after a failed delivery); a gap still open at a
    watermark that covers it, or at the end, is a problem, and so is an altered record."""

    #: what `add` says of a record
    ACCEPTED, DUPLICATE, HELD, PROBLEM, WATERMARK = (
        "accepted", "duplicate", "held", "problem", "watermark")

    def __init__(self, *, anchor: bool = False) -> None:
        """`anchor`: trust the first record read on each partition as the chain's start (a
        subscriber resuming at its committed offset, not at the log's start)."""
        self._partitions: dict[int, _PartitionChain] = {}
        self.anchor = anchor
        self.problems: list[ChainProblem] = []
        self.records = 0
        self.linked = 0
        self.healed = 0

    def forget(self, partition: int) -> None:
        """Stop following `partition` (revoked); it is anchored again if read again."""
        self._partitions.pop(partition, None)

    def add(self, partition: int, offset: int, value: bytes) -> str:
        """Check the next record of `partition`: ACCEPTED (apply it), DUPLICATE (applied
        before), HELD (it follows a gap: do not apply it; the re-send brings it again),
        PROBLEM (named in `problems`) or WATERMARK."""
        fresh = partition not in self._partitions
        state = self._partitions.setdefault(partition, _PartitionChain())
        self.records += 1
        try:
            record = parse_record(value)
        except (ValueError, TypeError) as error:
            reason = " ".join(str(error).split())[:300]
            return self._problem(partition, offset, 0, f"not a record: {reason}")
        if isinstance(record, Watermark):
            self._watermark(state, partition, offset, record)
            return self.WATERMARK
        key = (record.position, record.part)
        previous = record.previous
        if previous is None:  # v1: nothing to check it by but its order
            if state.chained:
                return self._problem(partition, offset, record.position,
                                     f"part {record.part} is a v1 record (unchained) after "
                                     "chained v2 records: forged, or sent by an old relay")
            if key <= state.head[:2]:
                return self.DUPLICATE
            state.head = ChainHead(*key, GENESIS_LINK)
            return self.ACCEPTED
        self.linked += 1
        assert record.link is not None
        if link_of(value) != record.link:
            if previous == state.head:  # go on past it
                state.head = ChainHead(*key, record.link)
            return self._problem(partition, offset, record.position,
                                 f"part {record.part} altered: its bytes do not hash to its "
                                 "link")
        if key <= state.head[:2] and state.chained:
            if state.seen.get(key) != record.link:
                return self._problem(partition, offset, record.position,
                                     f"part {record.part} differs from the record accepted "
                                     "for it earlier (altered or out of order)")
            return self.DUPLICATE
        if previous == state.head or (previous == GENESIS and not state.chained) \
                or (fresh and self.anchor):
            if state.gap is not None and record.position >= state.gap[1]:
                state.gap = None
                self.healed += 1
            state.head, state.chained = ChainHead(*key, record.link), True
            state.seen[key] = record.link
            return self.ACCEPTED
        if previous[:2] == state.head[:2]:
            return self._problem(partition, offset, record.position,
                                 f"part {record.part} does not follow the record before it "
                                 f"(position {previous.position} part {previous.part}): that "
                                 "one or this was altered")
        state.seen[key] = record.link
        if state.gap is None:
            state.gap = (offset, record.position, previous)
            state.held = ChainHead(*key, record.link)
        elif previous == state.held:
            state.held = ChainHead(*key, record.link)
        return self.HELD

    def _problem(self, partition: int, offset: int, position: int, what: str) -> str:
        self.problems.append(ChainProblem(partition, offset, position, what))
        return self.PROBLEM

    def _watermark(self, state: _PartitionChain, partition: int, offset: int,
                   mark: Watermark) -> None:
        head = mark.head
        if head is None or mark.partition != partition:
            return
        if state.gap is not None and state.gap[1] <= mark.position:
            self._gap_problem(partition, state, offset)
        elif head != state.head and (head[:2] > state.head[:2] or not state.chained) \
                and head != GENESIS:
            self.problems.append(ChainProblem(
                partition, offset, head.position,
                f"records missing: the relay's watermark says the partition's chain ends at "
                f"position {head.position} part {head.part}, the last one read is position "
                f"{state.head.position} part {state.head.part}"))
            state.head, state.chained = head, True  # go on from what the relay says

    def _gap_problem(self, partition: int, state: _PartitionChain, offset: int) -> None:
        assert state.gap is not None
        held_at, position, previous = state.gap
        if state.seen.get(previous[:2]) == previous.link:
            what = (f"out of order: the record at offset {held_at} (position {position}) came "
                    f"before position {previous.position} part {previous.part}, which it "
                    "follows, and was not sent again after it")
        else:
            what = (f"gap: after position {state.head.position} part {state.head.part}, the "
                    f"records up to position {previous.position} part {previous.part} are "
                    f"missing (the record at offset {held_at} follows one never read)")
        self.problems.append(ChainProblem(
            partition, held_at, position,
            what + ("" if offset < 0 else f"; not healed by the watermark at offset {offset}")))
        state.gap = None
        state.head, state.chained = state.held, True  # go on past the gap

    def finish(self) -> list[ChainProblem]:
        """The problems, with the gaps still open."""
        for partition, state in sorted(self._partitions.items()):
            if state.gap is not None:
                self._gap_problem(partition, state, -1)
        return self.problems
