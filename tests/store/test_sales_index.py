"""`core_sales_by_customer` (issue 11): a customer's sales in recorded order, for explain's sale
ids and diff's sales recorded in between. A new store has it; a store made before it gets it
when opened; a read-only store opens without it and answers the same."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa

from ledger import Ledger
from ledger.audit.diff import diff
from tests.audit.conftest import BOOK
from tests.contract import helpers as h

INDEX = "core_sales_by_customer"


def index_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return {i["name"] for i in sa.inspect(engine).get_indexes("core_sales")}
    finally:
        engine.dispose()


def drop_index(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP INDEX {INDEX}"))
    engine.dispose()


def causes(url: str) -> list[tuple[str, str, str]]:
    with Ledger(url) as ledger:
        return [(c.agreement_id, x.kind, x.event)
                for c in diff(ledger, date(2025, 3, 31), datetime(2025, 4, 10, tzinfo=UTC))
                for x in c.causes]


def test_a_new_store_has_the_index_and_an_older_store_gets_it(database_url: str) -> None:
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, BOOK)
        url = ledger.engine.url.render_as_string(hide_password=False)
    assert INDEX in index_names(url)
    expected = causes(database_url)
    assert ("A1", "late sale", "S3") in expected
    drop_index(url)
    assert INDEX not in index_names(url)
    assert causes(database_url) == expected  # opened again: made, and the same answer
    assert INDEX in index_names(url)


def test_a_read_only_store_without_the_index_opens_and_answers(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    with Ledger(url) as ledger:
        h.accepted_all(ledger, BOOK)
    expected = causes(url)
    drop_index(url)
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    assert causes(read_only) == expected
    assert INDEX not in index_names(url)
