"""On PostgreSQL the sales batch's rows go in by `COPY` (issue 11, point 2): the stored read
tables are the rows the events derive (verify re-derives them into SQLite by plain inserts and
compares), and a row that breaks a key is refused as an insert would be, with SQLAlchemy's
`IntegrityError`, changing nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger import Ledger
from ledger.audit.tables import verify_tables
from ledger.projections import core
from tests.audit.conftest import BOOK
from tests.audit.test_diff_stream import fresh_database
from tests.contract import helpers as h


@pytest.mark.postgres
def test_copied_rows_are_the_rows_the_events_derive(pg_server: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    copied: list[str] = []
    real = core.copy_rows

    def spy(connection: object, table_name: str, *args: object) -> None:
        copied.append(table_name)
        real(connection, table_name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(core, "copy_rows", spy)
    with Ledger(fresh_database(pg_server)) as ledger:
        h.accepted_all(ledger, [*BOOK, h.at("2025-08-01T00:00:00Z",
                                            h.reversal("S3", "2025-08-01"))])
        assert {"core_sales", "core_basis", "core_reversals"} <= set(copied)
        tables = verify_tables(ledger)
        assert tables.ok and tables.rows["core_sales"] == 4 and tables.rows["core_basis"] == 5
        with Session(ledger.engine) as session, pytest.raises(IntegrityError):
            core.insert_rows(session, core.sales, core.SALE_COLUMNS, [
                ("S1", "C1", "P1", "EUR", 1, 1, None, None, 1, 1, 1)])
        with Session(ledger.engine) as session:
            assert session.execute(select(func.count()).select_from(core.sales)).scalar() == 4
