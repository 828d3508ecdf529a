"""`verify --log` (issue 4, item 5) on the real embedded broker: every record of the events
topic is checked against the store; an event edited in the store after it was published no
longer matches its record on the log."""

from __future__ import annotations

import itertools
import os
import sqlite3
from pathlib import Path

import pytest

from ledger.kafka.broker import EmbeddedBroker
from tests.audit.conftest import BOOK
from tests.e2e.conftest import Runner

pytestmark = pytest.mark.kafka

_PREFIXES = itertools.count(1)


def test_cli_verify_log_checks_the_events_topic_against_the_store(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    prefix = f"verify{os.getpid()}x{next(_PREFIXES)}."
    cli = Runner(tmp_path, env={"LEDGER_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
                                "LEDGER_KAFKA_TOPIC_PREFIX": prefix})
    cli.write("book.jsonl", BOOK)
    assert cli("apply", "book.jsonl").code == 0
    # a period close is published too, keyed by its period
    assert cli("close-period", "--yes", "--period", "2025-Q1").code == 0
    done = cli("verify", "--log", "--format", "json")  # the relay publishes, then it reads
    assert done.code == 0, str(done)
    document = done.json()
    assert document["ok"] is True and document["log"]["records"] > len(BOOK) // 2
    database = tmp_path / ".rebate-ledger" / "ledger.db"
    with sqlite3.connect(database) as connection:
        (position, state), = connection.execute(
            "SELECT id, state FROM ledger_events WHERE topic LIKE '%RebateWrittenOff'")
        connection.execute("UPDATE ledger_events SET state = ? WHERE id = ?",
                           (bytes(state).replace(b"10.00", b"1.00"), position))
    done = cli("verify", "--log", "--format", "json")
    assert done.code == 1
    whats = {(b["position"], b["what"]) for b in done.json()["breaks"]}
    assert (position, "stored bytes differ from what was chained (edited)") in whats
    assert (position, "part 0 on the log differs from the store") in whats


def test_cli_verify_log_names_a_record_altered_on_the_topic_by_its_chain(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Envelope v2: a second, altered copy of a published record on its partition (what a
    forger with write access to the topic can add) is named by the topic's own chain, with
    its partition and offset."""
    import orjson

    from consumers.topics import read_until_watermark
    from consumers.transport import transport
    from ledger.events.envelope import ENVELOPE_KIND, KIND_HEADER
    from tests.integration.conftest import settings_for

    prefix = f"verify{os.getpid()}x{next(_PREFIXES)}."
    cli = Runner(tmp_path, env={"LEDGER_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
                                "LEDGER_KAFKA_TOPIC_PREFIX": prefix})
    cli.write("book.jsonl", BOOK)
    assert cli("apply", "book.jsonl").code == 0
    done = cli("verify", "--log", "--format", "json")
    assert done.code == 0, str(done)
    settings = settings_for("confluent", topic_prefix=prefix)
    kafka = transport(settings, kafka_broker.bootstrap)
    head = done.json()["head_position"]
    admin = kafka.admin()
    partitions = admin.list_topics()[settings.topic("events")]
    admin.close()
    records = read_until_watermark(kafka, settings.topic("events"), head, partitions)
    victim = next(r for r in records if r.key is not None and b'"10.00"' in (r.value or b""))
    assert orjson.loads(victim.value or b"")["envelope_version"] == 2
    producer = kafka.producer()
    producer.send(settings.topic("events"), victim.key,
                  (victim.value or b"").replace(b'"10.00"', b'"1.00"', 1),
                  [(KIND_HEADER, ENVELOPE_KIND)], partition=victim.partition)
    producer.flush(30)
    producer.close()
    done = cli("verify", "--log", "--format", "json")
    assert done.code == 1
    chain = [b["what"] for b in done.json()["breaks"] if b["what"].startswith("log chain: ")]
    assert len(chain) == 1, done.json()["breaks"]
    assert chain[0].startswith(f"log chain: partition {victim.partition} offset ")
    assert "altered: its bytes do not hash to its link" in chain[0]


def test_cli_verify_log_finds_an_edit_laundered_by_re_chaining_the_store(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """An attacker edits an event, empties event_chain AND chain_anchor and re-chains the
    store: the store's own chain verifies again, but the events topic carries each event's
    store hash as published (envelope v2), and verify --log names every position from the
    edit on."""
    prefix = f"verify{os.getpid()}x{next(_PREFIXES)}."
    cli = Runner(tmp_path, env={"LEDGER_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
                                "LEDGER_KAFKA_TOPIC_PREFIX": prefix})
    cli.write("book.jsonl", BOOK)
    assert cli("apply", "book.jsonl").code == 0
    assert cli("verify", "--log").code == 0  # published, with the store hashes
    database = tmp_path / ".rebate-ledger" / "ledger.db"
    with sqlite3.connect(database) as connection:
        (position, state), = connection.execute(
            "SELECT id, state FROM ledger_events WHERE topic LIKE '%RebateWrittenOff'")
        last, = connection.execute("SELECT max(id) FROM ledger_events").fetchone()
        connection.execute("UPDATE ledger_events SET state = ? WHERE id = ?",
                           (bytes(state).replace(b"10.00", b"1.00"), position))
        connection.execute("DELETE FROM event_chain")
        connection.execute("DELETE FROM chain_anchor")
    assert cli("rechain", "--yes").code == 0
    laundered = cli("verify", "--format", "json").json()
    assert laundered["chain_ok"] is True  # the store alone cannot tell
    done = cli("verify", "--log", "--format", "json")
    assert done.code == 1
    named = {b["position"] for b in done.json()["breaks"]
             if b["what"] == "store hash on the log differs from the store's chain"}
    assert named == set(range(position, last + 1)), done.json()["breaks"]
