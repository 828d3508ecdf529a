"""Issue 10 points 1 and 7 at any size: a dry run of more lines than a chunk, on SQLite (into a
copy of the store) and PostgreSQL (every chunk in one transaction rolled back, `Ledger.dry_run`).
Rules that span chunks (a reversal of a sale two chunks earlier, a duplicate of one, a claim on
accruals and an approval against an earlier approval) are previewed exactly as a real apply then
reports them; the store is unchanged by the preview, row for row (and, on PostgreSQL, the event
store's position sequence); a reader during the preview sees the store as it was."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine, inspect, text

from ledger.access import operator
from ledger.audit.chain import verify_store
from ledger.config import Settings
from ledger.core import ApplyReport, Ledger
from ledger.importing import MappedRow
from ledger.service import LedgerService
from ledger.store import normalise_url

CHUNK = 3


def _sale(sale_id: str, quantity: str, day: str, amount: str | None = None) -> dict[str, Any]:
    return {"type": "record_sale", "sale_id": sale_id, "customer_id": "C1", "product_id": "P1",
            "quantity": quantity, "amount": amount or f"{quantity}0.00", "currency": "EUR",
            "invoice_date": day}


BASE: list[dict[str, Any]] = [
    {"type": "create_agreement", "agreement_id": "A0", "customer_id": "C0", "currency": "EUR",
     "period_start": "2025-01-01", "period_end": "2025-12-31", "basis": "quantity",
     "tier_method": "retroactive", "rate_kind": "per_unit", "tiers": [{"from": "0", "rate": "1"}]},
    {**_sale("S0", "3", "2025-01-10"), "customer_id": "C0"},
]

#: (command, what a real apply does with it); chunks of CHUNK lines: 1-3, 4-6, 7-9, 10-12, 13-14
FILE: list[tuple[dict[str, Any], str]] = [
    ({**BASE[0], "agreement_id": "A1", "customer_id": "C1"}, "accepted"),
    (_sale("S1", "10", "2025-02-01"), "accepted"),
    (_sale("S2", "5", "2025-02-02"), "accepted"),
    (_sale("S3", "2", "2025-02-03"), "accepted"),
    ({"type": "reverse_sale", "sale_id": "S1", "reversed_on": "2025-03-01"},
     "accepted"),  # the reversal of line 2, a chunk earlier
    (_sale("S2", "5", "2025-02-02"), "duplicate"),  # line 3 again, a chunk earlier
    ({"type": "submit_claim", "claim_id": "K1", "agreement_id": "A1", "amount": "7.00",
      "submitted_on": "2025-04-01"}, "accepted"),  # A1 of line 1, two chunks earlier
    ({"type": "approve_claim", "claim_id": "K1", "approved_on": "2025-04-02"},
     "accepted"),  # earned: S2 (5) + S3 (2), S1 reversed
    (_sale("S2", "6", "2025-02-02", "60.00"),
     "rejected"),  # line 3's sale id with other figures
    ({"type": "submit_claim", "claim_id": "K2", "agreement_id": "A1", "amount": "1.00",
      "submitted_on": "2025-04-03"}, "accepted"),
    ({"type": "approve_claim", "claim_id": "K2", "approved_on": "2025-04-04"},
     "rejected"),  # K1 (line 8, an earlier chunk) took all of the 7.00 earned
    ({"type": "reverse_sale", "sale_id": "S9", "reversed_on": "2025-03-01"},
     "rejected"),  # no such sale
    ({"type": "reverse_sale", "sale_id": "S1", "reversed_on": "2025-03-01"},
     "rejected"),  # reversed already (line 5, three chunks earlier)
    (_sale("S0", "3", "2025-01-10"), "rejected"),  # the store's sale of C0, as C1's
]


class Clock:
    """A clock that moves one second a call, from a start: `recorded_at` of each command."""

    def __init__(self, start: datetime = datetime(2025, 6, 1, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def rows(commands: list[dict[str, Any]]) -> Iterator[MappedRow]:
    from ledger import commands as c

    for number, command in enumerate(commands, 1):
        line = orjson.dumps(command)
        yield MappedRow(number, line, c.parse_line(line), None)


def fingerprint(url: str) -> dict[str, Any]:
    """Every table's row count and a hash of all its rows in key order; PostgreSQL: where the
    sequences stand too (an insert moves its sequence at once, for every connection, and a
    rollback does not move it back)."""
    engine = create_engine(normalise_url(url))
    try:
        found: dict[str, Any] = {}
        look = inspect(engine)
        with engine.connect() as connection:
            for name in sorted(look.get_table_names()):
                order = look.get_pk_constraint(name)["constrained_columns"] or [
                    column["name"] for column in look.get_columns(name)]
                digest = hashlib.sha256()
                count = 0
                query = f'SELECT * FROM "{name}" ORDER BY ' + ", ".join(f'"{c}"' for c in order)
                for row in connection.exec_driver_sql(query):
                    digest.update(repr(tuple(row)).encode())
                    count += 1
                found[name] = (count, digest.hexdigest())
            if engine.dialect.name == "postgresql":
                for (sequence,) in connection.execute(text(
                        "SELECT sequencename FROM pg_sequences ORDER BY 1")):
                    found[f"sequence {sequence}"] = tuple(connection.execute(text(
                        f'SELECT last_value, is_called FROM "{sequence}"')).one())
        return found
    finally:
        engine.dispose()


def tables(found: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in found.items() if not k.startswith("sequence ")}


def run(service: LedgerService, *, dry_run: bool, on_chunk: Any = None) -> ApplyReport:
    return service.import_rows(operator("cli:test"), rows([c for c, _ in FILE]),
                               source="dry-run-test", dry_run=dry_run, on_chunk=on_chunk)


def outcomes(report: ApplyReport) -> list[str]:
    """What became of each line of FILE, by line number, from `report`."""
    said = {n: "duplicate" for n, _, _ in report.duplicates}
    said |= {r.line: "rejected" for r in report.rejected}
    return [said.get(n, "accepted") for n in range(1, len(FILE) + 1)]


def test_a_dry_run_across_chunks_is_what_apply_then_does_and_changes_nothing(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_CHUNK_LINES", str(CHUNK))
    assert Settings().chunk_lines == CHUNK and len(FILE) > 3 * CHUNK
    clock = Clock()
    book = Ledger(database_url, clock=clock)
    with LedgerService(book) as service:
        service.load(operator("cli:test"), [orjson.dumps(c) for c in BASE], source="base")
        before = fingerprint(database_url)
        seen: list[dict[str, Any]] = []

        preview = run(service, dry_run=True, on_chunk=lambda: seen.append(
            fingerprint(database_url)))  # another connection, during the dry run

        assert len(seen) == -(-len(FILE) // CHUNK)  # a reader after every chunk
        for now in seen:  # it saw nothing of the dry run in the tables
            assert tables(now) == tables(before)
        after = fingerprint(database_url)
        assert tables(after) == tables(before)  # nothing left behind
        # the store positions stand where they stood (the dry run set the sequence back);
        # the ids of the ledger's own tables may have a gap, as after any rolled-back write
        positions = [k for k in before if k.startswith("sequence ") and "events" in k]
        assert len(positions) == (0 if database_url.startswith("sqlite") else 1)
        assert {k: after[k] for k in positions} == {k: before[k] for k in positions}
        assert outcomes(preview) == [want for _, want in FILE], preview.to_dict()
        done = run(service, dry_run=False)
        assert done.to_dict() == preview.to_dict()  # the preview was exact
        assert fingerprint(database_url) != before
        with book.app.recorder.transaction(commit=False) as session:  # type: ignore[attr-defined]
            checked = verify_store(session, book.app.recorder)
        assert checked.ok, checked.to_dict()


@pytest.mark.postgres
def test_the_next_real_apply_gets_the_positions_it_would_have_got_without_the_dry_run(
        pg_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: a store previewed then applied and one only applied hold the same events at
    the same positions, each chained (the preview set the position sequence back)."""
    import uuid

    from sqlalchemy.engine import make_url

    monkeypatch.setenv("LEDGER_CHUNK_LINES", str(CHUNK))
    heads = []
    for previewed in (True, False):
        name = f"ledger_dry_run_{uuid.uuid4().hex[:12]}"
        admin = create_engine(normalise_url(pg_server), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = make_url(normalise_url(pg_server)).set(database=name).render_as_string(
            hide_password=False)
        with LedgerService(Ledger(url, clock=Clock())) as service:
            service.load(operator("cli:test"), [orjson.dumps(c) for c in BASE], source="base")
            if previewed:
                run(service, dry_run=True)
            # the same recorded times for the real apply, previewed first or not
            service.ledger.clock = Clock(datetime(2025, 7, 1, tzinfo=UTC))
            run(service, dry_run=False)
        engine = create_engine(normalise_url(url))
        with engine.connect() as connection:
            heads.append(connection.execute(text(
                "SELECT e.id, e.topic, e.originator_version, c.position FROM ledger_events e "
                "LEFT JOIN event_chain c ON c.position = e.id ORDER BY e.id")).all())
        engine.dispose()
    # (an event's stored bytes hold the wall-clock time it was made: not compared)
    assert len(heads[0]) > len(BASE)
    assert heads[0] == heads[1]
