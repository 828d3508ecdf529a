"""How events are stored: pydantic state encoded with orjson, with its schema version, and
upcast to the current version when read back."""

from __future__ import annotations

from typing import Any

import orjson
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic

from ledger.events.base import LedgerEvent, upcast

SCHEMA_VERSION_KEY = "schema_version"


class OrjsonTranscoder(Transcoder):
    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


def encode_event(event: LedgerEvent) -> bytes:
    """The event's JSON (pydantic-core writes it), with `schema_version` as its first key."""
    body = event.model_dump_json().encode()
    assert body.startswith(b"{") and len(body) > 2
    return b'{"%s":%d,' % (SCHEMA_VERSION_KEY.encode(), type(event).SCHEMA_VERSION) + body[1:]


def decode_event(topic: str, data: bytes | dict[str, Any]) -> LedgerEvent:
    state = orjson.loads(data) if isinstance(data, bytes | bytearray | memoryview) else dict(data)
    cls = resolve_topic(topic)
    assert isinstance(cls, type) and issubclass(cls, LedgerEvent), topic
    return event_of(cls, state)


def event_of(cls: type[LedgerEvent], state: dict[str, Any]) -> LedgerEvent:
    """An event of `cls` from its state as stored (taken over: its schema version key is
    removed), upcast to the current schema and validated."""
    version = state.pop(SCHEMA_VERSION_KEY, 1)
    return cls.model_validate(upcast(cls, state, version))


class PydanticMapper(Mapper):
    """Maps pydantic events to stored events and back (no cipher or compressor is used)."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        assert isinstance(domain_event, LedgerEvent), type(domain_event)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=get_topic(type(domain_event)),
            state=encode_event(domain_event),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return decode_event(stored_event.topic, stored_event.state)
