"""Issue 8 point 1: errors become exit codes in one place (`ledger.cli.errors`), the same for
every command, as a user types them: 0 done; 1 something rejected, refused by a rule or the
state, or a check that failed; 2 the request cannot be used (nothing done); 3 stopped by an
internal error. An error is one line `error: ...` on stderr naming the field or rule, never a
traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from .conftest import Run, Runner, agreement, sale


def _one_error_line(done: Run) -> str:
    """The run's one `error:` line; no traceback."""
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, str(done)
    assert "Traceback" not in done.stderr, str(done)
    return errors[0]


@pytest.fixture
def book(run: Runner) -> Runner:
    run.write("book.jsonl", [agreement("A1", "C1", recorded_at="2025-01-02T09:00:00Z"),
                             sale("S1", "C1", "10", "100.00", "2025-02-10",
                                  recorded_at="2025-02-11T09:00:00Z")])
    assert run("apply", "book.jsonl").code == 0
    return run


def test_0_done(book: Runner) -> None:
    done = book("liability", "--as-of", "2025-12-31", "--format", "json")
    assert done.code == 0, str(done)
    assert [row["accrued"] for row in done.json()["rows"]] == ["10.00"]
    assert "error:" not in done.stderr


def test_1_a_line_rejected_the_rest_applied(book: Runner) -> None:
    book.write("more.jsonl", [sale("S2", "C1", "5", "50.00", "2025-03-01"),
                              sale("S3", "C1", "5", "50.00", "2025-13-01")])
    done = book("apply", "more.jsonl")
    assert done.code == 1, str(done)
    assert done.counts() == (1, 0, 1)
    assert "rejected line 2: record_sale: invoice_date" in done.stdout


def test_1_refused_by_a_rule_and_by_the_state(book: Runner) -> None:
    assert book("close-period", "--period", "2025-Q1", "--yes").code == 0
    again = book("close-period", "--period", "2025-Q1", "--yes")  # a rule: closed already
    assert again.code == 1, str(again)
    assert "already closed" in _one_error_line(again)
    assert book("users", "add", "ann", "--role", "auditor").code == 0
    twice = book("users", "add", "ann", "--role", "auditor")  # the state: ann exists
    assert twice.code == 1, str(twice)
    line = _one_error_line(twice)
    assert line.startswith("error: name: a user 'ann' exists already") and "rotate" in line


@pytest.mark.parametrize(("args", "said"), [
    # input that cannot be read (contract section 3)
    (("apply", "missing.jsonl"), "error: cannot read input: missing.jsonl: no such file"),
    # an id the store never saw, given to a filter and as the subject of a report
    (("liability", "--as-of", "2025-12-31", "--agreement", "a1"),
     "error: --agreement: no agreement 'a1' in this store; did you mean 'A1'?"),
    (("explain", "--agreement", "A9", "--as-of", "2025-12-31"), "error: --agreement"),
    (("users", "revoke", "nobody"),
     "error: name: no user 'nobody'; `rebate-ledger users list` names the users"),
    # a store that does not exist, and a permanent step without --yes and no terminal
    (("liability", "--as-of", "2025-12-31", "--database", "sqlite:///elsewhere.db"),
     "error: no store at elsewhere.db (the file does not exist); give the right --database"),
    (("rechain",), "error: rechain hashes the events exactly as they are now"),
    (("close-period", "--period", "2025-Q2"), "error: closing 2025-Q2"),
    (("trial-balance", "--as-of", "2025-06-30", "--from", "2025-04-01", "--to", "2025-06-30"),
     "error: --as-of is a position at one date"),
])
def test_2_the_request_cannot_be_used(book: Runner, args: tuple[str, ...], said: str) -> None:
    done = book(*args)
    assert done.code == 2, str(done)
    assert _one_error_line(done).startswith(said), str(done)
    assert not (book.cwd / "elsewhere.db").exists()


def test_2_a_usage_error_of_an_option(book: Runner) -> None:
    done = book("liability", "--as-of", "20251231")
    assert done.code == 2, str(done)
    assert "--as-of" in done.stderr and "YYYY-MM-DD" in done.stderr
    assert "Traceback" not in done.stderr


def test_3_stopped_by_a_bug_with_what_came_before_applied(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug cannot be typed; it is planted in the handler of record_sale, in process."""
    from ledger import commands as c
    from ledger import handlers
    from ledger.cli import app

    record = handlers.HANDLERS[c.RecordSale]

    def buggy(batch: handlers.Batch, cmd: c.RecordSale, recorded_at: object) -> str:
        if cmd.sale_id == "BUG":
            raise KeyError("a bug")
        return record(batch, cmd, recorded_at)  # type: ignore[arg-type]

    monkeypatch.setitem(handlers.HANDLERS, c.RecordSale, buggy)
    runner = Runner(tmp_path)
    path = runner.write("book.jsonl", [agreement("A1", "C1"),
                                       sale("S1", "C1", "1", "1.00", "2025-02-10"),
                                       sale("BUG", "C1", "1", "1.00", "2025-02-11")])
    done = CliRunner().invoke(app, ["apply", str(path), "--database",
                                    f"sqlite:///{tmp_path / 'l.db'}"])
    assert done.exit_code == 3, done.output
    assert "accepted: 2" in done.stdout  # the lines before it stand
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "apply stopped at line 3" in errors[0], done.stderr
