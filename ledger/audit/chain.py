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

Nothing is laundered (issue 12 point 7): the head of the chain is also kept in `chain_anchor`,
written in the same transaction as the chain. The ledger never re-chains a store silently: a
write to a store whose events are not chained (the chain was emptied, or the store predates
tamper evidence) is refused (`StoreDamaged`), and `rebate-ledger rechain` chains a store only
when no anchor says it had a chain. `verify` names an emptied or truncated chain against the
anchor, an event whose stored state is not bytes (TEXT written behind the ledger), a
`recorded_at` that decreases in store order, and a recorded-time watermark
(`ledger_state.watermark_us`) behind the last stored event's `recorded_at`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.orm import Session

from ledger.errors import StoreDamaged

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


#: The head of the chain as last written by the ledger (one row, id 1), in the transaction that
#: writes the chain: an emptied or truncated chain no longer reaches it.
chain_anchor = Table(
    "chain_anchor",
    chain_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("position", BigInteger, nullable=False),
    Column("store_hash", String(64), nullable=False),
    Column("events", BigInteger, nullable=False),
)

RECHAIN_COMMAND = "rebate-ledger rechain"


def content_hash(originator_id: str, version: int, topic: str, state: bytes) -> str:
    head = f"{originator_id}/{version}\n{topic}\n".encode()
    return hashlib.sha256(head + bytes(state)).hexdigest()


def _link(previous: str, *parts: str) -> str:
    return hashlib.sha256("".join((previous, *parts)).encode()).hexdigest()


def events_table(recorder: Any) -> Table:
    """The event store's table (eventsourcing-sqlalchemy's, one per application)."""
    table: Table = recorder.tables[0]
    return table


#: Events read per query at most, and their stored bytes at most (at least one event): a
#: sales batch is about 0.5 MB stored, and 200 of them at once held 100 MB (issue 11).
STORED_PER_QUERY = 200
STORED_BYTES_PER_QUERY = 4 << 20


def _stored(session: Session, recorder: Any, positions: list[int]) -> Iterator[Any]:
    """The stored events at `positions` (sorted), in order, a bounded number of bytes read
    at a time."""
    table = events_table(recorder)
    for start in range(0, len(positions), STORED_PER_QUERY):
        chunk = positions[start:start + STORED_PER_QUERY]
        sizes = dict(session.execute(
            select(table.c.id, func.length(table.c.state)).where(table.c.id.in_(chunk))
        ).tuples().all())
        while chunk:
            taken, total = 0, 0
            for position in chunk:
                size = int(sizes.get(position) or 0)
                if taken and total + size > STORED_BYTES_PER_QUERY:
                    break
                taken, total = taken + 1, total + size
            part, chunk = chunk[:taken], chunk[taken:]
            yield from session.execute(
                select(table.c.id, table.c.originator_id, table.c.originator_version,
                       table.c.topic, table.c.state)
                .where(table.c.id.in_(part)).order_by(table.c.id)
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
        earlier = session.execute(
            select(func.count()).select_from(table).where(table.c.id < wanted[0])).scalar()
        if earlier:
            raise StoreDamaged(_unchained_message(session, int(earlier)))
        store_prev = GENESIS
    else:
        store_prev = head.store_hash
    _chain(session, recorder, wanted, store_prev)


def _unchained_message(session: Session, events: int) -> str:
    anchor = read_anchor(session)
    if anchor is not None:
        return (f"the store's hash chain is gone: event_chain has no entry, but chain_anchor "
                f"says the store was chained up to position {anchor[0]} (hash {anchor[1]}); "
                f"{events} stored event(s) are unchained. The ledger does not re-chain them "
                "(that would launder any edit made meanwhile): restore event_chain from a "
                "backup, and run `rebate-ledger verify`")
    return (f"{events} stored event(s) are not hash-chained (the store predates tamper "
            f"evidence, or its chain was emptied): the ledger does not chain them silently. "
            f"Check the store against a published digest (`rebate-ledger verify --digest`) or "
            f"a backup, then chain it explicitly with `{RECHAIN_COMMAND}`")


def read_anchor(session: Session) -> tuple[int, str, int] | None:
    """(position, store hash, events) of the anchor; None when there is none (or no table)."""
    if not inspect(session.connection()).has_table(chain_anchor.name):
        return None
    row = session.execute(select(chain_anchor).where(chain_anchor.c.id == 1)).first()
    return None if row is None else (int(row.position), row.store_hash, int(row.events))


def rechain(session: Session, recorder: Any) -> int:
    """`rebate-ledger rechain`: chain every stored event of a store that predates tamper
    evidence (no chain entry, no anchor); return how many. Refused (StoreDamaged) when the
    store has a chain entry or an anchor: a store that had a chain is never re-chained."""
    anchor = read_anchor(session)
    chained = session.execute(select(func.count()).select_from(event_chain)).scalar() or 0
    if anchor is not None or chained:
        where = (f"chain_anchor says it was chained up to position {anchor[0]}"
                 if anchor is not None else f"event_chain holds {chained} entries")
        raise StoreDamaged(
            f"rechain refused: this store had a hash chain ({where}); re-chaining it would "
            "launder any edit made behind the ledger. Restore event_chain (and chain_anchor) "
            "from a backup, then run `rebate-ledger verify`")
    table = events_table(recorder)
    positions = [int(p) for (p,) in session.execute(select(table.c.id).order_by(table.c.id))]
    for start in range(0, len(positions), 10_000):
        chunk = positions[start:start + 10_000]
        head = session.execute(
            select(event_chain.c.store_hash).order_by(event_chain.c.position.desc()).limit(1)
        ).scalar()
        _chain(session, recorder, chunk, head or GENESIS)
    return len(positions)


def _chain(session: Session, recorder: Any, wanted: list[int], store_prev: str) -> None:
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
        _write_anchor(session, int(position), store_prev, len(rows))


def _write_anchor(session: Session, position: int, store_hash: str, added: int) -> None:
    done = session.execute(update(chain_anchor).where(chain_anchor.c.id == 1).values(
        position=position, store_hash=store_hash, events=chain_anchor.c.events + added))
    if not done.rowcount:  # type: ignore[attr-defined]
        count = session.execute(select(func.count()).select_from(event_chain)).scalar() or 0
        session.execute(insert(chain_anchor).values(
            id=1, position=position, store_hash=store_hash, events=int(count)))


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

    latest: tuple[datetime, int] | None = None  # the greatest recorded_at so far, where
    for position, originator, version, topic, state in _stored(session, recorder, positions):
        while gone_index < len(missing) and missing[gone_index] < position:
            store_prev = deleted(missing[gone_index])
            gone_index += 1
        originator = str(originator)
        if isinstance(state, str):  # TEXT where the ledger writes bytes
            result.breaks.append(Break(int(position), originator, int(version), topic,
                                       "stored state is TEXT, not bytes: written behind the "
                                       "ledger"))
            state = state.encode()
        elif not isinstance(state, bytes | bytearray | memoryview):
            result.breaks.append(Break(int(position), originator, int(version), topic,
                                       f"stored state is {type(state).__name__}, not bytes: "
                                       "written behind the ledger"))
            state = str(state).encode()
        recorded = recorded_at_of(bytes(state))
        if recorded is None:
            result.breaks.append(Break(int(position), originator, int(version), topic,
                                       "stored state has no readable recorded_at"))
        elif latest is not None and recorded < latest[0]:
            result.breaks.append(Break(
                int(position), originator, int(version), topic,
                f"recorded_at {recorded.isoformat()} is earlier than "
                f"{latest[0].isoformat()} of position {latest[1]} before it in store order "
                "(back-dated or reordered behind the ledger)"))
        else:
            latest = (recorded, int(position))
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
    _check_anchor(session, result, chained)
    if latest is not None:
        _check_watermark(session, result, latest)
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


RECORDED_AT = re.compile(rb'"recorded_at":"([^"]{10,40})"')


def recorded_at_of(state: bytes) -> datetime | None:
    """The `recorded_at` of a stored event's JSON (its first occurrence: the event's own,
    which precedes the payload's columns), timezone-aware; None when it has none."""
    found = RECORDED_AT.search(state, 0, 2000) or RECORDED_AT.search(state)
    if found is None:
        return None
    try:
        moment = datetime.fromisoformat(found.group(1).decode().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def last_recorded_us(session: Session | Any, recorder: Any) -> int:
    """The recorded time of the last stored event, µs since the epoch (0 when none): one
    indexed query on the event table, reading the head of its state."""
    from ledger.projections.core import to_us

    table = events_table(recorder)
    head = session.execute(select(func.substr(table.c.state, 1, 2000))
                           .order_by(table.c.id.desc()).limit(1)).scalar()
    if head is None:
        return 0
    moment = recorded_at_of(head.encode() if isinstance(head, str) else bytes(head))
    return 0 if moment is None else to_us(moment)


def _check_anchor(session: Session, result: VerifyResult, chained: dict[int, Any]) -> None:
    """The chain must reach the anchor the ledger wrote with it: not emptied, not truncated,
    nothing chained past it behind the ledger."""
    anchor = read_anchor(session)
    if anchor is None:
        return
    position, store_hash, _ = anchor
    row = chained.get(position)
    if not chained:
        result.breaks.append(Break(
            position, "?", None, None,
            f"the hash chain was emptied: chain_anchor says the store was chained up to "
            f"position {position} (hash {store_hash}), event_chain holds nothing. Restore it "
            "from a backup; the ledger refuses to write until then and never re-chains"))
    elif row is None or row.store_hash != store_hash:
        result.breaks.append(Break(
            position, "?", None, None,
            f"the chain does not pass through the anchor (position {position}, hash "
            f"{store_hash}): event_chain was truncated or rewritten behind the ledger"))
    elif max(chained) > position:
        result.breaks.append(Break(
            max(chained), "?", None, None,
            f"chain entries past the anchor (position {position}): chained behind the ledger"))


def _check_watermark(session: Session, result: VerifyResult,
                     latest: tuple[datetime, int]) -> None:
    """The recorded-time watermark the ledger checks new commands against must not be behind
    the last stored event's recorded_at: set back, it would let back-dated commands in."""
    from ledger.projections.core import from_us, ledger_state, to_us

    if not inspect(session.connection()).has_table(ledger_state.name):
        return  # named by the read-table check
    watermark = session.execute(
        select(ledger_state.c.watermark_us).where(ledger_state.c.id == 1)).scalar()
    if watermark is None or int(watermark) < to_us(latest[0]):
        shown = "missing" if watermark is None else from_us(int(watermark)).isoformat()
        result.breaks.append(Break(
            latest[1], "?", None, None,
            f"ledger_state.watermark_us ({shown}) is behind the recorded_at of the last stored "
            f"event ({latest[0].isoformat()}): set back behind the ledger, it would let "
            "back-dated commands in (the ledger now checks new commands against the stored "
            "events too)"))


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
