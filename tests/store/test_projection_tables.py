"""A projection whose read tables were dropped behind its back (issue 12 point 7) refuses to
answer, naming the missing tables and `rebate-ledger replay`, instead of answering from empty
tables recreated by the next runner (or a traceback); a new generation is made as before."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, inspect, text
from sqlalchemy.orm import Session

from consumers.transport import Transport
from ledger import Ledger
from ledger.events.codec import decode_event
from ledger.kafka.settings import KafkaSettings
from ledger.projections.generations import live_or_new, new_generation
from ledger.projections.read_models import Delivered, ProjectionTablesMissing, model
from ledger.projections.reader import CORE, liability_answer, store_position
from ledger.projections.runner import ProjectionRunner, projection_offsets
from tests.contract import helpers as h

NO_KAFKA: Transport = None  # type: ignore[assignment]  # constructing a runner connects nowhere


def fed_liability(ledger: Ledger) -> Engine:
    """The live liability generation, fed from the store's events as if from the topic, with
    positions saying it has caught up (offsets past 0, watermark at the store position)."""
    engine = live_or_new(ledger.engine, "liability").engine()
    liability = model("liability")
    ProjectionRunner(engine, liability, NO_KAFKA, KafkaSettings())
    items = [
        Delivered(n.id, 0, "", f"{n.originator_id}/{n.originator_version}",
                  decode_event(n.topic, n.state))
        for n in ledger.app.recorder.select_notifications(start=1, limit=1_000)
    ]
    with Session(engine) as session, session.begin():
        liability.apply(session, items)
        session.execute(insert(projection_offsets).values(
            topic=KafkaSettings().topic("events"), partition=0, next_offset=len(items),
            position=items[-1].position, part=0, watermark=store_position(ledger),
            cluster_id="c",
        ))
    return engine


@pytest.fixture
def book(sqlite_url: str) -> Ledger:
    return booked(sqlite_url)


def booked(url: str) -> Ledger:
    ledger = Ledger(url)
    report = ledger.apply([h.at(f"2025-01-0{n + 1}T00:00:00Z", c) for n, c in enumerate([
        h.agreement("A1", tiers=(("0", "1"),)),
        h.sale("S1", "7", "70", "2025-02-01"),
        h.submit("K1", "2", agreement_id="A1"),
    ])])
    assert not report.rejected
    return ledger


def test_dropped_read_tables_are_named_and_not_recreated(database_url: str) -> None:
    book = booked(database_url)
    engine = fed_liability(book)
    try:
        rows, source = liability_answer(book, date(2025, 12, 31))
        assert source == "projection liability g1" and rows == book.liability(date(2025, 12, 31))
        assert rows[0].basis == 7
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE core_basis"))
            connection.execute(text("DROP TABLE core_money"))
        with pytest.raises(ProjectionTablesMissing) as raised:
            liability_answer(book, date(2025, 12, 31))
        assert "core_basis, core_money" in str(raised.value)
        assert "`rebate-ledger replay liability`" in str(raised.value)
        # the next runner on that generation refuses too, and recreates nothing
        with pytest.raises(ProjectionTablesMissing, match="core_basis, core_money"):
            ProjectionRunner(engine, model("liability"), NO_KAFKA, KafkaSettings())
        assert not {"core_basis", "core_money"} & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    # a new generation (what a replay makes) gets its tables as before
    fresh = new_generation(book.engine, "liability").engine()
    try:
        ProjectionRunner(fresh, model("liability"), NO_KAFKA, KafkaSettings())
        assert {"core_basis", "core_money"} <= set(inspect(fresh).get_table_names())
    finally:
        fresh.dispose()
    book.close()


def test_cli_liability_names_the_missing_table_without_a_traceback(
    book: Ledger, tmp_path: Path
) -> None:
    engine = fed_liability(book)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE core_agreements"))
    engine.dispose()
    url = str(book.engine.url)
    book.close()
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")}
    env.update({"LEDGER_DATABASE_URL": url, "LEDGER_HOME": str(tmp_path / "home"),
                "COLUMNS": "200"})
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "liability", "--as-of", "2025-12-31"],
        env=env, capture_output=True, timeout=120, check=False,
    )
    err = done.stderr.decode()
    assert done.returncode == 2, (done.stdout, err)
    assert "core_agreements" in err and "rebate-ledger replay liability" in err
    assert "Traceback" not in err and CORE not in done.stdout.decode()
