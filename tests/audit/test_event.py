"""`rebate-ledger event ID` (issue 14, point 7): one stored event by store position or by the
event id reports print, with the business ids it is about, who recorded it and its place in
the hash chains; and `GET /v1/events/{reference}` through the same service method."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson

from ledger import Ledger
from ledger.access import operator
from ledger.audit.event_view import business_ref, parse_reference
from ledger.events.sales import ReversalColumns, SaleColumns, SaleLine, SalesRecorded
from ledger.service import LedgerService
from tests.e2e.conftest import Runner


def every_event(cli: Runner) -> list[dict[str, Any]]:
    found, position = [], 1
    while True:
        done = cli("event", str(position), "--format", "json")
        if done.code != 0:
            assert done.code == 2, str(done)
            assert f"no event {position} in this store (it holds positions 1 to " \
                f"{position - 1})" in done.stderr
            return found
        found.append(orjson.loads(done.stdout))
        position += 1


def test_every_event_by_position_names_what_it_is_about_and_links_the_chain(
        cli: Runner) -> None:
    events = every_event(cli)
    about = [e["about"] for e in events]
    assert about[:2] == ["agreement A1", "agreement A2"]
    for expected in ("claim K1 of A1", "forecast of A2", "amendment of A1 from 2025-01-01",
                     "sale S3"):
        assert expected in about, about
    assert any(a.startswith("write-off") and a.endswith("of A1") for a in about), about
    previous = "0" * 64
    for position, event in enumerate(events, start=1):
        assert event["position"] == position
        chain = event["chain"]
        assert chain["previous_store_hash"] == previous
        assert chain["store_hash"] == hashlib.sha256(
            (previous + str(position) + chain["content_hash"]).encode()).hexdigest()
        previous = chain["store_hash"]
        assert event["actor"].startswith("cli:") and event["role"] == "admin"
    amendment = events[about.index("amendment of A1 from 2025-01-01")]
    assert amendment["type"] == "AgreementAmended"
    assert amendment["valid_time"] == "2025-01-01"
    assert amendment["recorded_time"] == "2025-05-02T00:00:00Z"
    assert [t["rate"] for t in amendment["payload"]["tiers"]] == ["1.5", "2.5"]


def test_an_event_id_as_reports_print_it_finds_the_same_event(cli: Runner) -> None:
    by_position = orjson.loads(cli("event", "4", "--format", "json").stdout)
    by_id = cli("event", by_position["event_id"], "--format", "json")
    assert by_id.code == 0, str(by_id)
    assert orjson.loads(by_id.stdout) == by_position
    table = cli("event", by_position["event_id"])
    assert table.code == 0
    lines = table.stdout.splitlines()
    assert f"position                   {by_position['position']}" in lines
    assert any(line.startswith("about") and by_position["about"] in line for line in lines)
    assert "payload:" in lines
    csv = cli("event", "4", "--format", "csv").stdout.splitlines()
    assert csv[0] == "field,value" and f"event_id,{by_position['event_id']}" in csv


def test_an_unknown_or_malformed_id_is_one_line_and_exit_2(cli: Runner) -> None:
    done = cli("event", "00000000-0000-0000-0000-000000000000/1")
    assert done.code == 2
    assert done.stderr.splitlines()[-1] == (
        "error: ID: no event 00000000-0000-0000-0000-000000000000/1 in this store (it holds "
        "positions 1 to 10); check the id and --database")
    for garbage in ("S1", "1.5", "abc/1", "", "12345678901234567890"):
        done = cli("event", garbage)
        assert done.code == 2, (garbage, str(done))
        assert "is neither a store position" in done.stderr.splitlines()[-1]
        assert "Traceback" not in done.stderr


def test_the_service_finds_an_event_on_both_databases(book: Ledger) -> None:
    service = LedgerService(book)
    first = service.event(operator("cli:tests"), "1")
    again = service.event(operator("cli:tests"), first["event_id"].upper())
    assert again == first and first["about"] == "agreement A1"


def sales(ids: list[str]) -> SalesRecorded:
    lines = [SaleLine(i, "C1", "P1", Decimal(1), Decimal("1.00"), "EUR", date(2025, 1, 1),
                      datetime(2025, 1, 2, tzinfo=UTC)) for i in ids]
    return SalesRecorded.model_construct(sales=SaleColumns.of(lines),
                                         reversals=ReversalColumns.of([]))


def test_a_batch_names_its_first_sales_and_how_many_more() -> None:
    assert business_ref(sales(["S1"])) == "sale S1"
    assert business_ref(sales(["S1", "S2"])) == "2 sales: S1, S2"
    assert business_ref(sales([f"S{n}" for n in range(1, 6)])) == \
        "5 sales: S1, S2, S3 and 2 more"


def test_references_are_positions_or_event_ids() -> None:
    assert parse_reference(" 42 ") is not None and parse_reference("42").position == 42
    ref = parse_reference("0B7E5C1E-8F0C-4C3E-9D1A-2F6B3C4D5E6F/3")
    assert ref is not None and ref.version == 3
    assert ref.aggregate_id == "0b7e5c1e-8f0c-4c3e-9d1a-2f6b3c4d5e6f"
    for bad in ("", "x", "1/2", "0b7e5c1e-8f0c-4c3e-9d1a-2f6b3c4d5e6f", "٤٢",
                "0b7e5c1e-8f0c-4c3e-9d1a-2f6b3c4d5e6f/-1"):
        assert parse_reference(bad) is None, bad
