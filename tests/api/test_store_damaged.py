"""A store changed behind the ledger (issue 12 point 7) refuses writes through the HTTP API
as through the CLI: 503 with what is wrong and what to do, never a 500 or an applied write."""

from __future__ import annotations

from datetime import date

from sqlalchemy import delete, func, select

from ledger.audit.chain import event_chain
from ledger.projections.core import sales
from tests.api.conftest import Api
from tests.contract import helpers as h


def test_commands_on_a_store_whose_chain_was_emptied_answer_503_and_change_nothing(
    api: Api,
) -> None:
    ledger = api.service.ledger
    before = ledger.liability(date(2025, 12, 31))
    with ledger.engine.begin() as connection:
        connection.execute(delete(event_chain))
    answer = api.post_commands("ingest", [h.at("2025-04-01T00:00:00Z",
                                               h.sale("S9", "1", "10.00", "2025-03-01"))])
    assert answer.status_code == 503, answer.text
    detail = answer.json()["detail"]
    assert "hash chain is gone" in detail and "does not re-chain them" in detail
    with ledger.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(sales)
                                  .where(sales.c.sale_id == "S9")).scalar() == 0
    assert ledger.liability(date(2025, 12, 31)) == before
