"""A store made before contract v2 opens under v2: its stored v1 events read through
upcasters (never rewritten) and its derived `core_agreements` table is copied into the v2 shape,
on SQLite and PostgreSQL."""

from __future__ import annotations

import orjson
from sqlalchemy import text

from ledger import Ledger
from ledger.events.agreement import AgreementCreated, RebateWrittenOff
from ledger.events.codec import decode_event
from ledger.events.period import PeriodClosed

from .helpers import accepted_all, agreement, group, group_agreement, join, rows, sale, write_off

V1_AGREEMENTS = """
CREATE TABLE core_agreements (
    agreement_id VARCHAR(200) NOT NULL PRIMARY KEY,
    customer_id VARCHAR(200) NOT NULL,
    currency VARCHAR(3) NOT NULL,
    recorded_us BIGINT NOT NULL,
    position BIGINT NOT NULL
)"""


def test_a_v1_core_agreements_table_is_copied_into_the_v2_shape(database_url: str) -> None:
    with Ledger(database_url) as ledger:
        accepted_all(ledger, [agreement("A1"), sale("S1", "10", "100"), write_off("2.00")])
        before = rows(ledger, "2025-12-31")
        # the table as a v1 ledger made it: no group_id/program_id, customer_id NOT NULL
        with ledger.engine.begin() as connection:
            connection.execute(text("ALTER TABLE core_agreements RENAME TO v2_copy"))
            for index in ("core_agreements_by_group", "core_agreements_by_program"):
                connection.execute(text(f"DROP INDEX IF EXISTS {index}"))
            connection.execute(text(V1_AGREEMENTS))
            connection.execute(text(
                "INSERT INTO core_agreements SELECT agreement_id, customer_id, currency, "
                "recorded_us, position FROM v2_copy"))
            connection.execute(text("DROP TABLE v2_copy"))
    with Ledger(database_url) as ledger:  # opening upgrades it
        assert rows(ledger, "2025-12-31") == before
        accepted_all(ledger, [group(), join("C1", "2025-01-01"), group_agreement()])
        found = {r["agreement_id"]: r for r in rows(ledger, "2025-12-31")}
        # GA: C1's 10 units at 1 EUR, a row with no customer
        assert found["GA"]["customer_id"] is None and found["GA"]["accrued"] == "10.00"
    with Ledger(database_url) as ledger:  # and opening again changes nothing
        assert len(rows(ledger, "2025-12-31")) == 2


def test_v1_events_read_through_upcasters() -> None:
    base = {"originator_id": "1dbc8595-c182-5a40-94bd-9edb10828072", "originator_version": 1,
            "timestamp": "2025-01-02T09:00:00Z", "recorded_at": "2025-01-02T09:00:00Z"}
    created = {**base, "schema_version": 1,
               "originator_topic": "ledger.aggregates.agreement:Agreement",
               "agreement_id": "A-100", "customer_id": "C-ACME", "currency": "EUR",
               "period_start": "2025-01-01", "period_end": "2025-12-31", "basis": "amount",
               "tier_method": "retroactive", "rate_kind": "percent",
               "tiers": [{"from": "0", "rate": "0.02"}], "products": None, "cap": None,
               "accrual_method": "earned", "forecast_basis": None}
    event = decode_event("ledger.events.agreement:AgreementCreated", orjson.dumps(created))
    assert isinstance(event, AgreementCreated)
    assert (event.customer_id, event.group_id, event.program_id) == ("C-ACME", None, None)
    written = {**base, "schema_version": 1, "originator_version": 2, "agreement_id": "A-100",
               "amount": "1.20", "effective_date": "2025-12-31", "reason": "small"}
    event = decode_event("ledger.events.agreement:RebateWrittenOff", orjson.dumps(written))
    assert isinstance(event, RebateWrittenOff) and event.write_off_id is None
    closed = {**base, "schema_version": 1,
              "originator_topic": "ledger.aggregates.period:PeriodClose",
              "period": "2025-Q1", "period_start": "2025-01-01", "period_end": "2025-03-31",
              "reported": [{"agreement_id": "A-100", "customer_id": "C-ACME", "currency": "EUR",
                            "accrued": "1.00", "approved": "0.00", "paid": "0.00",
                            "written_off": "0.00", "liability": "1.00"}]}
    event = decode_event("ledger.events.period:PeriodClosed", orjson.dumps(closed))
    assert isinstance(event, PeriodClosed)
    assert (event.reported[0].group_id, event.reported[0].program_id) == (None, None)
