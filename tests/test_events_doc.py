"""docs/events.md cannot rot: every example on it is a valid record of the events topic, every
event type has a section with an example, and every field of every type is described."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ledger.events import ALL_EVENT_TYPES, SalesRecorded
from ledger.events.envelope import Envelope, Watermark, parse_record

DOC = Path(__file__).resolve().parents[1] / "docs" / "events.md"
BOOKKEEPING = {"originator_id", "originator_version", "timestamp", "recorded_at",
               "originator_topic"}


def json_blocks(text: str) -> list[str]:
    return re.findall(r"^```json\n(.*?)^```$", text, flags=re.M | re.S)


def sections(text: str) -> dict[str, str]:
    """The text under each `### `Type`` heading, up to the next heading."""
    found: dict[str, str] = {}
    parts = re.split(r"^### `(\w+)`[^\n]*\n", text, flags=re.M)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        found[name] = body.split("\n## ")[0]
    return found


TEXT = DOC.read_text()
BLOCKS = json_blocks(TEXT)


def test_the_doc_has_examples() -> None:
    assert len(BLOCKS) >= len(ALL_EVENT_TYPES) + 1


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_every_example_is_a_valid_record(number: int) -> None:
    record = parse_record(BLOCKS[number].encode())
    if isinstance(record, Watermark):
        return
    assert isinstance(record, Envelope)
    event = record.event()  # the payload validates as its event type (upcast if older)
    assert type(event).event_type() == record.type
    assert record.schema_version == type(event).SCHEMA_VERSION
    assert record.event_id == f"{record.aggregate_id}/{record.aggregate_version}"
    assert event.originator_id == record.aggregate_id
    assert event.originator_version == record.aggregate_version
    assert event.recorded_at == record.recorded_time
    assert event.valid_time == record.valid_time
    assert 0 <= record.part < record.parts
    if isinstance(event, SalesRecorded):
        customers = {line.customer_id for line in event.sales.rows()}
        customers |= {line.customer_id for line in event.reversals.rows()}
        assert customers == {record.key}
    elif getattr(event, "customer_id", None) is None and hasattr(event, "group_id"):
        assert record.key == f"group:{event.group_id}"  # a group and its agreements
    elif hasattr(event, "customer_id"):
        assert event.customer_id == record.key


def test_every_event_type_has_a_section_an_example_and_every_field() -> None:
    found = sections(TEXT)
    examples = {
        record.type for record in (parse_record(b.encode()) for b in BLOCKS)
        if isinstance(record, Envelope)
    }
    assert any(isinstance(parse_record(b.encode()), Watermark) for b in BLOCKS)
    for cls in ALL_EVENT_TYPES:
        name = cls.event_type()
        assert name in found, f"docs/events.md has no section for {name}"
        assert name in examples, f"docs/events.md has no example of {name}"
        body = found[name]
        for field, info in cls.model_fields.items():
            if field in BOOKKEEPING:
                continue
            shown = info.serialization_alias or field
            assert f"`{shown}`" in body, f"{name}.{shown} is not described in docs/events.md"
    for name in ("sales", "reversals"):
        columns = {"sales": SalesRecorded.model_fields["sales"],
                   "reversals": SalesRecorded.model_fields["reversals"]}[name].annotation
        assert columns is not None
        for column in columns.model_fields:  # type: ignore[union-attr]
            assert f"`{column}`" in found["SalesRecorded"], f"{name}.{column} undocumented"
    envelope_section = TEXT.split("### The envelope")[1].split("### The watermark")[0]
    for field in Envelope.model_fields:
        assert f"`{field}`" in envelope_section, f"envelope field {field} undocumented"
