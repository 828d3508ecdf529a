"""Issue 8 point 5 on the command line: a period closed with `rebate-ledger close-period` goes
through the application service like the API's close, so the stored close records who closed
it (`cli:<OS user>`), which `rebate-ledger event POSITION` shows."""

from __future__ import annotations

import getpass

from .conftest import Runner, agreement, sale


def test_a_close_from_the_command_line_records_who_closed_it(run: Runner) -> None:
    run.write("book.jsonl", [agreement("A1", "C1"),
                             sale("S1", "C1", "10", "100.00", "2025-01-15")])
    assert run("apply", "book.jsonl", "-q").code == 0
    closed = run("close-period", "--period", "2025-Q1", "--yes", "--format", "json")
    assert closed.code == 0, str(closed)
    position = closed.json()["position"]
    shown = run("event", str(position), "--format", "json")
    assert shown.code == 0, str(shown)
    event = shown.json()
    assert event["actor"] == f"cli:{getpass.getuser()}", event
    assert event["type"].endswith("PeriodClosed") or "Closed" in event["type"], event
