"""Issue 15, point 3, at the command line: a date or timestamp option outside the ledger's range
is a usage error (exit 2) saying the range, never a traceback; and `reconcile` answers after a
batch that tried to create an open-ended agreement (it crashed on every --as-of before)."""

from __future__ import annotations

import pytest

from .conftest import Runner, agreement, sale


@pytest.mark.parametrize(
    "known_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00", "9999-12-31",
                 "1899-12-31"],
)
def test_liability_known_at_outside_the_range_exits_2_saying_the_range(
    run: Runner, known_at: str
) -> None:
    answer = run("liability", "--as-of", "2025-12-31", "--known-at", known_at)

    assert answer.code == 2, str(answer)
    assert "Traceback" not in answer.stderr
    assert "outside the" in answer.stderr and "ledger accepts" in answer.stderr


@pytest.mark.parametrize("command", ["liability", "reconcile"])
def test_as_of_outside_the_range_exits_2(run: Runner, command: str) -> None:
    answer = run(command, "--as-of", "9999-12-31")

    assert answer.code == 2, str(answer)
    assert "Traceback" not in answer.stderr
    assert "1900-01-01 to 2199-12-31" in " ".join(answer.stderr.split())


def test_reconcile_answers_after_a_batch_with_an_open_ended_agreement(run: Runner) -> None:
    run.write("book.jsonl", [
        agreement("OPEN", "C1", period_end="9999-12-31"),
        agreement("A1", "C1"),
        sale("S1", "C1", "10", "100.00", "2025-02-01"),
    ])
    applied = run("apply", "book.jsonl")
    assert applied.code == 1, str(applied)
    assert "period_end" in applied.stdout and "2199-12-31" in applied.stdout

    for as_of in ("2025-12-31", "2199-12-31"):
        answer = run("reconcile", "--as-of", as_of, "--format", "json")
        assert answer.code in (0, 1), str(answer)
        assert "Traceback" not in answer.stderr
        assert [row["agreement_id"] for row in answer.json()["rows"]] == ["A1"]
