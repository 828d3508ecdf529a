"""JSON Schema of what the ledger publishes: the envelope, the watermark and every event type's
payload, from the pydantic models (`rebate-ledger schema`).

Payload schemas are in pydantic's *serialization* mode: they describe the JSON the ledger
writes (decimals as strings, `from` for a tier's threshold), which is what a subscriber reads.
A payload's `schema_version` is the envelope's; see docs/events.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from ledger.events import ALL_EVENT_TYPES
from ledger.events.envelope import Envelope, Watermark

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
INDEX_FILE = "index.json"


def _schema(model: type[BaseModel], title: str, description: str | None = None) -> dict[str, Any]:
    schema = model.model_json_schema(mode="serialization")
    schema = {"$schema": SCHEMA_DIALECT, **schema, "title": title}
    if description:
        schema["description"] = description
    return schema


def schemas() -> dict[str, dict[str, Any]]:
    """Every schema by name: `Envelope`, `Watermark`, then each event type's payload."""
    found: dict[str, dict[str, Any]] = {
        "Envelope": _schema(Envelope, "Envelope", "A record of the events topic: one event."),
        "Watermark": _schema(
            Watermark,
            "Watermark",
            "A record of the events topic: every event up to `position` has been delivered.",
        ),
    }
    for cls in ALL_EVENT_TYPES:
        name = cls.event_type()
        description = (
            f"Payload of a `{name}` envelope, schema_version {cls.SCHEMA_VERSION}."
        )
        found[name] = _schema(cls, name, description)
        found[name]["x-schema-version"] = cls.SCHEMA_VERSION
    return found


def schema_files(out: Path) -> dict[Path, bytes]:
    """The files of `schema --out DIR`: one `<name>.schema.json` per schema and an
    `index.json` naming them all (the index last), with their bytes."""
    files: dict[Path, bytes] = {}
    index: dict[str, Any] = {"$schema": SCHEMA_DIALECT, "schemas": {}}
    for name, schema in schemas().items():
        path = out / f"{name}.schema.json"
        files[path] = orjson.dumps(schema, option=orjson.OPT_INDENT_2) + b"\n"
        entry: dict[str, Any] = {"file": path.name}
        if "x-schema-version" in schema:
            entry["schema_version"] = schema["x-schema-version"]
        index["schemas"][name] = entry
    files[out / INDEX_FILE] = orjson.dumps(index, option=orjson.OPT_INDENT_2) + b"\n"
    return files
