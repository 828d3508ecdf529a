"""`verify` as a user types it on a store whose watermark was set back behind the ledger (issue
12 point 7): the break belongs to the store, not to one event, so the line names the watermark
and the last event's time without an aggregate or version it does not have."""

from __future__ import annotations

import sqlite3

from .conftest import Runner, agreement, sale


def test_a_watermark_set_back_is_one_clear_line(run: Runner) -> None:
    run.write("book.jsonl", [agreement("A1", "C1"),
                             sale("S1", "C1", "10", "100.00", "2025-01-15")])
    assert run("apply", "book.jsonl", "-q").code == 0
    assert run("verify").code == 0
    with sqlite3.connect(run.cwd / ".rebate-ledger" / "ledger.db") as connection:
        connection.execute("UPDATE ledger_state SET watermark_us = 0")
    done = run("verify", env={"COLUMNS": "1000"})  # one line per finding, unwrapped
    assert done.code == 1, str(done)
    (line,) = [text for text in done.stdout.splitlines() if text.startswith("BROKEN")]
    assert line.startswith("BROKEN at position 2: ledger_state.watermark_us "
                           "(1970-01-01T00:00:00+00:00) is behind the recorded_at"), line
    assert line.endswith("; 1 break(s)"), line
    assert "aggregate" not in line and "None" not in line and "?" not in line, line
