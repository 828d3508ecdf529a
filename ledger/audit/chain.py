"""Tamper evidence: every stored event carries a SHA-256 hash chained to its predecessor, per
stream (aggregate) and in store order, written in the same transaction as the event.

For the stored event at position P (the notification id) with aggregate id A, version V, topic
T and stored bytes S (exactly as in the event table):

    content(P)    = SHA-256( "A/V\\nT\\n" (UTF-8) || S )                          hex
    stream(P)     = SHA-256( stream(previous event of A) || content(P) )       hex; "0"*64 first
    store(P)      = SHA-256( store(previous position) || "P" || content(P) )   hex; "0"*64 first

`verify` recomputes both chains from the event table and compares them with the stored ones,
naming the first event that breaks them: an edited event (its content differs), a deleted one
(a chained position with no event) or an event that was never chained. `digest` gives the head:
(position, store hash), to publish; `verify --digest` proves the current chain still passes
through that head, so nothing up to it was rewritten since. The Kafka log is checked against
the verified store: every record of the events topic must be what the relay publishes for its
position (`verify_log`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import BigInteger, Column, Index, MetaData, String, Table, func, insert, select
from sqlalchemy.orm import Session

GENESIS = "0" * 64
ALGORITHM = "sha256; content = sha256('A/V\\nT\\n' + stored bytes); stream = sha256(prev + " \
    "content); store = sha256(prev + str(position) + content)"

chain_metadata = MetaData()

event_chain = Table(
    "event_chain",
    chain_metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("originator_id", String(64), nullable=False),
    Column("originator_version", BigInteger, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("stream_hash", String(64), nullable=False),
    Column("store_hash", String(64), nullable=False),
    Index("event_chain_by_stream", "originator_id", "originator_version"),
)


def content_hash(originator_id: str, version: int, topic: str, state: bytes) -> str:
    head = f"{originator_id}/{version}\n{topic}\n".encode()
    return hashlib.sha256(head + bytes(state)).hexdigest()


def _link(previous: str, *parts: str) -> str:
    return hashlib.sha256("".join((previous, *parts)).encode()).hexdigest()


def events_table(recorder: Any) -> Table:
    """The event store's table (eventsourcing-sqlalchemy's, one per application)."""
    table: Table = recorder.tables[0]
    return table


def _stored(session: Session, recorder: Any, positions: list[int]) -> Iterator[Any]:
    table = events_table(recorder)
    for start in range(0, len(positions), 200):
        chunk = positions[start:start + 200]
        yield from session.execute(
            select(table.c.id, table.c.originator_id, table.c.originator_version,
                   table.c.topic, table.c.state)
            .where(table.c.id.in_(chunk)).order_by(table.c.id)
        )


def append(session: Session, recorder: Any, positions: Iterable[int]) -> None:
    """Chain the events just stored at `positions` (same transaction). Events stored before
    the chain existed are chained first, once."""
    wanted = sorted(set(positions))
    if not wanted:
        return
    head = session.execute(
        select(event_chain.c.position, event_chain.c.store_hash)
        .order_by(event_chain.c.position.desc()).limit(1)
    ).first()
    if head is None:
        table = events_table(recorder)
        earlier = [int(p) for (p,) in session.execute(
            select(table.c.id).where(table.c.id < wanted[0]).order_by(table.c.id))]
        wanted = earlier + wanted
        store_prev = GENESIS
    else:
        store_prev = head.store_hash
    streams: dict[str, str] = {}
    rows = []
    for position, originator, version, topic, state in _stored(session, recorder, wanted):
        originator = str(originator)
        content = content_hash(originator, int(version), topic, state)
        previous = streams.get(originator)
        if previous is None:
            previous = GENESIS
            if int(version) > 1:
                found = session.execute(
                    select(event_chain.c.stream_hash)
                    .where(event_chain.c.originator_id == originator)
                    .order_by(event_chain.c.originator_version.desc()).limit(1)
                ).scalar()
                previous = found or GENESIS
        stream = _link(previous, content)
        store = _link(store_prev, str(position), content)
        streams[originator] = stream
        store_prev = store
        rows.append({"position": int(position), "originator_id": originator,
                     "originator_version": int(version), "content_hash": content,
                     "stream_hash": stream, "store_hash": store})
    if rows:
        session.execute(insert(event_chain), rows)


@dataclass
class Break:
    position: int
    aggregate_id: str
    version: int | None
    topic: str | None
    what: str

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "aggregate_id": self.aggregate_id,
                "version": self.version, "type": _type_name(self.topic), "what": self.what}


@dataclass
class VerifyResult:
    events: int
    chained: int
    head_position: int
    head_hash: str
    breaks: list[Break] = field(default_factory=list)
    digest_checked: bool = False
    digest_ok: bool | None = None
    digest_detail: str = ""
    log_checked: bool = False
    log_records: int = 0

    @property
    def ok(self) -> bool:
        return not self.breaks and self.digest_ok is not False

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "chained": self.chained,
                "head_position": self.head_position, "head_hash": self.head_hash,
                "first_break": self.breaks[0].to_dict() if self.breaks else None,
                "breaks": [b.to_dict() for b in self.breaks[:100]],
                "digest": None if not self.digest_checked else
                {"ok": self.digest_ok, "detail": self.digest_detail},
                "log": None if not self.log_checked else {"records": self.log_records},
                "algorithm": ALGORITHM}


def _type_name(topic: str | None) -> str | None:
    return None if topic is None else topic.rsplit(":", 1)[-1].split(".")[-1]


#: a store hash as `digest` prints it
HASH_TEXT = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")


def parse_digest(text: str) -> tuple[int | None, str] | None:
    """What `digest` printed, in any of its formats (table, csv, json), or a bare store hash:
    (position, hash), the position None for a bare hash; None when it is none of these."""
    text = text.strip().lstrip("\ufeff")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        position, value = data.get("position"), data.get("store_hash")
        if isinstance(position, int) and not isinstance(position, bool) and position >= 0 \
                and isinstance(value, str) and HASH_TEXT.fullmatch(value):
            return position, value.lower()
        return None
    hashes = {h.lower() for h in HASH_TEXT.findall(text)}
    if len(hashes) != 1:
        return None
    (value,) = hashes
    if HASH_TEXT.fullmatch(text):
        return None, value
    lines = text.splitlines()
    if len(lines) == 2 and lines[0].split(",")[:2] == ["position", "store_hash"]:
        cells = lines[1].split(",")
        return (int(cells[0]), value) if cells[0].isascii() and cells[0].isdigit() else None
    found = re.match(r"position (\d+)\s+store hash [0-9a-fA-F]{64}\b", text)
    return (int(found.group(1)), value) if found else None


def verify_store(session: Session, recorder: Any, *,
                 digest: tuple[int | None, str] | None = None) -> VerifyResult:
    """Recompute both chains from the event table; every difference is a break. A digest
    without a position (a bare hash) is looked for on the stored chain."""
    if digest is not None and digest[0] is None:
        at = session.execute(select(event_chain.c.position)
                             .where(event_chain.c.store_hash == digest[1])).first()
        if at is None:
            result = verify_store(session, recorder)
            result.digest_checked, result.digest_ok = True, False
            result.digest_detail = (f"no position of the store's chain hashes to {digest[1]}: "
                                    "the store was rewritten since the digest, or the hash "
                                    "is of another store")
            return result
        digest = (int(at.position), digest[1])
    table = events_table(recorder)
    chained = {int(r.position): r for r in session.execute(
        select(event_chain).order_by(event_chain.c.position))}
    positions = [int(p) for (p,) in session.execute(select(table.c.id).order_by(table.c.id))]
    result = VerifyResult(len(positions), len(chained), 0, GENESIS)
    streams: dict[str, str] = {}
    store_prev = GENESIS
    missing = sorted(set(chained) - set(positions))
    gone_index = 0

    def deleted(position: int) -> str:
        gone = chained[position]
        result.breaks.append(Break(position, gone.originator_id, int(gone.originator_version),
                                   None, "chained event missing from the store (deleted)"))
        return str(gone.store_hash)  # the chain goes on past the hole

    for position, originator, version, topic, state in _stored(session, recorder, positions):
        while gone_index < len(missing) and missing[gone_index] < position:
            store_prev = deleted(missing[gone_index])
            gone_index += 1
        originator = str(originator)
        content = content_hash(originator, int(version), topic, state)
        stream = _link(streams.get(originator, GENESIS), content)
        store = _link(store_prev, str(position), content)
        row = chained.get(int(position))
        if row is None:
            result.breaks.append(Break(int(position), originator, int(version), topic,
                                       "event has no chain entry (stored behind the ledger)"))
        elif row.content_hash != content:
            result.breaks.append(Break(int(position), originator, int(version), topic,
                                       "stored bytes differ from what was chained (edited)"))
        elif row.stream_hash != stream or row.store_hash != store:
            result.breaks.append(Break(int(position), originator, int(version), topic,
                                       "chain hash differs (the chain was rewritten)"))
        streams[originator] = row.stream_hash if row is not None else stream
        store_prev = row.store_hash if row is not None else store
        result.head_position, result.head_hash = int(position), store_prev
        if digest is not None and int(position) == digest[0]:
            result.digest_checked = True
            result.digest_ok = row is not None and store == digest[1] == row.store_hash
    for position in missing[gone_index:]:
        deleted(position)
    result.breaks.sort(key=lambda b: b.position)
    if digest is not None and not result.digest_checked:
        result.digest_checked, result.digest_ok = True, False
        result.digest_detail = f"position {digest[0]} is not in the store"
    elif digest is not None:
        result.digest_detail = (
            f"the chain passes through {digest[1]} at position {digest[0]}: the log extends "
            "the digest" if result.digest_ok else
            f"the chain at position {digest[0]} does not hash to {digest[1]}: the store was "
            "rewritten since the digest")
    return result


@dataclass(frozen=True)
class Digest:
    position: int
    hash: str
    events: int

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "store_hash": self.hash, "events": self.events,
                "algorithm": ALGORITHM}


def digest(session: Session) -> Digest:
    head = session.execute(
        select(event_chain.c.position, event_chain.c.store_hash)
        .order_by(event_chain.c.position.desc()).limit(1)
    ).first()
    count = session.execute(select(func.count()).select_from(event_chain)).scalar() or 0
    if head is None:
        return Digest(0, GENESIS, 0)
    return Digest(int(head.position), head.store_hash, int(count))


def verify_log(
    session: Session, recorder: Any, records: Iterable[Any],
    expected: Callable[[int, str, bytes], list[tuple[bytes, bytes]]],
) -> list[Break]:
    """Every envelope of the events topic must be exactly what the relay publishes for its
    stored position (`expected(position, topic, state)`, the relay's own function), and every
    stored position must be on the log. Records: the topic's records, any order, duplicates
    allowed (at-least-once)."""
    import orjson

    from ledger.events.envelope import Watermark, parse_record, unlinked_bytes

    found: dict[tuple[int, int], bytes] = {}
    hashes: dict[int, str | None] = {}
    breaks: list[Break] = []
    for record in records:
        if record.value is None:
            continue
        envelope = parse_record(record.value)
        if isinstance(envelope, Watermark):
            continue
        key = (envelope.position, envelope.part)
        value = unlinked_bytes(record.value)  # v2: the chain is checked by `LogChain`
        if key in found and found[key] != value:
            breaks.append(Break(key[0], str(envelope.aggregate_id), None, envelope.type,
                                f"two different records for part {key[1]} on the log"))
        found[key] = value
        if envelope.envelope_version >= 2:
            hashes[envelope.position] = envelope.store_hash
    table = events_table(recorder)
    positions = [int(p) for (p,) in session.execute(select(table.c.id).order_by(table.c.id))]
    chained = {int(p): h for p, h in session.execute(
        select(event_chain.c.position, event_chain.c.store_hash))} if hashes else {}
    for position, originator, version, topic, state in _stored(session, recorder, positions):
        if int(position) in hashes and hashes[int(position)] != chained.get(int(position)):
            breaks.append(Break(int(position), str(originator), int(version), topic,
                                "store hash on the log differs from the store's chain"))
        for part, (_, value) in enumerate(expected(int(position), topic, state)):
            on_log = found.pop((int(position), part), None)
            if on_log is None:
                breaks.append(Break(int(position), str(originator), int(version), topic,
                                    f"part {part} missing from the log"))
            elif orjson.loads(on_log) != orjson.loads(value):
                breaks.append(Break(int(position), str(originator), int(version), topic,
                                    f"part {part} on the log differs from the store"))
    for (position, part) in sorted(found):
        breaks.append(Break(position, "?", None, None,
                            f"part {part} on the log has no stored event"))
    breaks.sort(key=lambda b: b.position)
    return breaks
