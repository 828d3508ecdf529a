"""Issue 14 point 1: every command says which store it used; a reading command on a SQLite
store that does not exist is an error naming the path (exit 2) and creates nothing; a writing
command creates the store and says so the first time."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Runner, agreement

READING = [
    ("liability", "--as-of", "2025-12-31"),
    ("rejections",),
    ("verify",),
    ("explain", "--as-of", "2025-12-31", "--agreement", "A1"),
    ("journal", "--as-of", "2025-12-31"),
    ("trial-balance", "--as-of", "2025-12-31"),
    ("reconcile", "--as-of", "2025-12-31"),
    ("opportunities", "--as-of", "2025-12-31"),
    ("positions", "--customer", "C1", "--as-of", "2025-12-31"),
    ("programs", "--as-of", "2025-12-31"),
    ("digest",),
]


@pytest.mark.parametrize("args", READING, ids=lambda a: a[0])
def test_a_reading_command_on_a_missing_store_is_an_error_and_creates_nothing(
        run: Runner, args: tuple[str, ...]) -> None:
    done = run(*args, "--database", "sqlite:///ledgr.db")
    assert (done.code, done.stdout) == (2, ""), str(done)
    assert done.stderr == (
        "error: no store at ledgr.db (the file does not exist); give the right --database (or "
        "LEDGER_DATABASE_URL / LEDGER_HOME), or create the store with `rebate-ledger apply "
        "FILE`\n"), str(done)
    assert list(run.cwd.iterdir()) == []


def test_the_default_store_missing_is_named_and_not_created(run: Runner) -> None:
    done = run("liability", "--as-of", "2025-12-31")
    expected = run.cwd.resolve() / ".rebate-ledger" / "ledger.db"
    assert done.code == 2 and f"error: no store at {expected} " in done.stderr, str(done)
    assert list(run.cwd.iterdir()) == []


def test_apply_creates_the_store_says_so_once_and_readers_name_it(run: Runner) -> None:
    run.write("book.jsonl", [agreement("A1", "C1")])
    first = run("apply", "book.jsonl", "-q", "--database", "sqlite:///books.db")
    assert first.code == 0 and first.stderr == "store: books.db (created)\n", str(first)
    again = run("apply", "book.jsonl", "-q", "--database", "sqlite:///books.db")
    assert again.code == 1 and again.stderr == "store: books.db\n", str(again)
    for fmt in ("json", "csv", "table"):
        answer = run("liability", "--as-of", "2025-12-31", "--format", fmt,
                     "--database", "sqlite:///books.db")
        assert answer.code == 0 and answer.stderr.startswith("store: books.db\n"), str(answer)
    assert Path(run.cwd / "books.db").exists()
