"""The sale-id prefetch is never a prepared statement on PostgreSQL (issue 11, point 2):
psycopg prepares a statement run five times on a connection, and PostgreSQL then kept the
generic plan made while `core_sales` was nearly empty (a full scan) for the rest of a long load:
`apply` ran at a sixth of its speed. Each prefetch is now planned for the table as it is."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ledger import Ledger, handlers
from tests.audit.test_diff_stream import fresh_database
from tests.contract import helpers as h


@pytest.mark.postgres
def test_the_prefetch_is_planned_for_the_table_as_it_is(
        pg_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    database_url = fresh_database(pg_server)  # PostgreSQL's plan cache: SQLite has none
    monkeypatch.setattr(handlers, "PREFETCH_IDS_MAX", 2)  # ten prefetches of two ids each
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, [h.agreement("A1")])
        sales = [h.sale(f"S{n:02d}", "1", "10.00", "2025-02-01") for n in range(20)]
        h.accepted_all(ledger, sales)
        duplicates = ledger.apply(sales)  # every id found: the reversals are looked up too
        assert len(duplicates.duplicates) == 20 and not duplicates.rejected
        with ledger.engine.connect() as connection:
            prepared = [s for (s,) in connection.execute(
                text("SELECT statement FROM pg_prepared_statements"))]
    assert prepared, "psycopg prepares the statements it runs often (the others stay so)"
    assert not [s for s in prepared if "WHERE sale_id IN" in s], prepared
