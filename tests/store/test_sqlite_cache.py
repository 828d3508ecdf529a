"""SQLite's page cache per connection (issue 11): a reading connection keeps a small one (the
reading commands stream the book once, and a 64 MiB cache filling on a large store grew their
peak memory with the book); a connection that writes gets the writer's from its first write."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from ledger import Ledger
from ledger.store import SQLITE_CACHE_KIB, SQLITE_READ_CACHE_KIB
from tests.audit.conftest import BOOK
from tests.contract import helpers as h


def cache_kib(ledger: Ledger) -> set[int]:
    """The cache size of every connection the pool holds (KiB)."""
    sizes = set()
    pool = ledger.engine.pool
    held = [pool.connect() for _ in range(pool.checkedin())]  # type: ignore[attr-defined]
    for connection in held:
        cursor = connection.cursor()
        sizes.add(-int(cursor.execute("PRAGMA cache_size").fetchone()[0]))
        cursor.close()
    for connection in held:
        connection.close()
    return sizes


def test_readers_keep_a_small_cache_and_writers_get_the_large_one(tmp_path: Path) -> None:
    assert SQLITE_READ_CACHE_KIB < SQLITE_CACHE_KIB
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(url) as ledger:
        h.accepted_all(ledger, BOOK)
        assert SQLITE_CACHE_KIB in cache_kib(ledger)  # the connection that wrote
    with Ledger(url) as reader:
        assert reader.liability(h.day("2025-12-31"))
        with reader.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        assert cache_kib(reader) == {SQLITE_READ_CACHE_KIB}
