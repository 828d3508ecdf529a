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
