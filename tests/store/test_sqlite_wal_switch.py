"""Opening a SQLite store while another process holds the file's exclusive lock waits for it
(the switch to WAL mode answered "database is locked" at once, bypassing the busy handler: one
of 16 processes opening a brand-new store at once failed so under load)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from ledger.store import make_engine


def test_switching_to_wal_waits_for_an_exclusive_lock(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO t VALUES (1)")
    releaser = threading.Timer(0.5, holder.execute, args=("COMMIT",))
    releaser.start()
    try:
        engine = make_engine(f"sqlite:///{path}")
        with engine.connect() as connection:
            mode = connection.execute(text("PRAGMA journal_mode")).scalar_one()
            rows = connection.execute(text("SELECT count(*) FROM t")).scalar_one()
        engine.dispose()
    finally:
        releaser.join()
        holder.close()
    assert mode == "wal"
    assert rows == 1


def test_a_store_already_in_wal_mode_is_opened_without_the_exclusive_lock(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    first = make_engine(f"sqlite:///{path}")
    with first.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()  # a reader holds the file open
    try:
        second = make_engine(f"sqlite:///{path}")
        with second.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        second.dispose()
    finally:
        reader.close()
        first.dispose()


class _LockedTwice:
    """A cursor whose first two journal-mode statements are refused as SQLite refuses them
    when another process holds the file without waking the busy handler."""

    def __init__(self) -> None:
        self.refusals = 2
        self.statements: list[str] = []

    def execute(self, statement: str) -> _LockedTwice:
        self.statements.append(statement)
        if self.refusals:
            self.refusals -= 1
            raise sqlite3.OperationalError("database is locked")
        self.mode = "wal" if statement.endswith("=WAL") else "delete"
        return self

    def fetchone(self) -> tuple[str]:
        return (self.mode,)


def test_a_refused_switch_to_wal_is_retried_not_raised() -> None:
    from ledger.store import _wal_mode

    cursor = _LockedTwice()
    _wal_mode(cursor)
    assert cursor.refusals == 0
    assert cursor.statements[-1] == "PRAGMA journal_mode=WAL"


def test_an_error_other_than_a_lock_is_raised_at_once() -> None:
    from ledger.store import _wal_mode

    class Broken(_LockedTwice):
        def execute(self, statement: str) -> Broken:
            raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _wal_mode(Broken())
