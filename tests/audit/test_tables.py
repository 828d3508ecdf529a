"""The read tables checked against the events (issue 12, point 1): `verify` re-derives every
core read table from the stored events and names each row altered, removed or added behind the
ledger's back; the evidence pack carries that check. On SQLite and PostgreSQL; the CLI as a
user types it."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, delete, insert, select, update

from ledger import Ledger
from ledger.audit.evidence import MANIFEST, write_pack
from ledger.audit.tables import CHECKED, verify_tables
from ledger.projections import core
from tests.audit.conftest import BOOK
from tests.contract import helpers as h
from tests.e2e.conftest import Runner

#: The worked book, plus what fills the tables it leaves empty: a reversal, a buying group
#: with a member and an agreement, a write-off with an id; then a period close.
MORE: list[h.Command] = [
    h.at("2025-07-16T00:00:00Z", h.reversal("S10", "2025-07-01")),
    h.at("2025-07-17T00:00:00Z", h.group("G1", name="Buyers")),
    h.at("2025-07-18T00:00:00Z", h.join("C1", "2025-01-01")),
    h.at("2025-07-19T00:00:00Z", h.group_agreement("GA", currency="EUR")),
    h.at("2025-07-20T00:00:00Z", h.write_off("5.00", "2025-07-20", write_off_id="W1")),
]


@pytest.fixture
def full(database_url: str) -> Iterator[Ledger]:
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, BOOK + MORE)
        ledger.close_period("2025-Q1", date(2025, 1, 1), date(2025, 3, 31),
                            datetime(2025, 7, 21, tzinfo=UTC))
        yield ledger


def test_an_untouched_store_verifies_clean_and_every_read_table_is_compared(
        full: Ledger) -> None:
    result = verify_tables(full)
    assert result.ok and result.differences == [] and result.events > 0
    with full.engine.connect() as connection:
        for table in CHECKED:
            stored = len(connection.execute(select(table)).all())
            assert stored > 0, table.name  # the book fills every table
            assert result.rows[table.name] == stored, table.name


def _first(connection: Connection, table: Any, *where: Any) -> Any:
    key = table.c.position if "position" in table.c else list(table.primary_key.columns)[0]
    return connection.execute(select(table).where(*where).order_by(key).limit(1)).one()


# Each alteration: (what it does, returns the difference expected: (table, column, stored,
# derived); column "row" with stored None: a row missing, derived None: an extra row).
Alter = Callable[[Connection], tuple[str, str, Any, Any]]


def paid_cut(c: Connection) -> tuple[str, str, Any, Any]:
    """The issue's reproducer: a settlement's paid amount edited in core_money."""
    row = _first(c, core.money, core.money.c.kind == "paid")
    c.execute(update(core.money).where(core.money.c.id == row.id).values(amount="5.77"))
    return "core_money", "amount", "5.77", row.amount


def basis_deleted(c: Connection) -> tuple[str, str, Any, Any]:
    row = _first(c, core.basis)
    c.execute(delete(core.basis).where(
        *(column == getattr(row, column.name) for column in core.basis.primary_key.columns)))
    return "core_basis", "row", None, "present"


def block_sum_cut(c: Connection) -> tuple[str, str, Any, Any]:
    """A block's amount in core_basis_blocks edited: the liability reads whole blocks there."""
    row = _first(c, core.basis_blocks)
    key = [column == getattr(row, column.name)
           for column in core.basis_blocks.primary_key.columns]
    c.execute(update(core.basis_blocks).where(*key).values(a_micro=row.a_micro - 1_000_000))
    return "core_basis_blocks", "a_micro", row.a_micro - 1_000_000, row.a_micro


def sale_inserted(c: Connection) -> tuple[str, str, Any, Any]:
    row = _first(c, core.sales)
    c.execute(insert(core.sales).values({**row._mapping, "sale_id": "FORGED"}))
    return "core_sales", "row", "present", None


def membership_moved(c: Connection) -> tuple[str, str, Any, Any]:
    row = _first(c, core.memberships)
    c.execute(update(core.memberships).where(core.memberships.c.id == row.id)
              .values(effective_day=row.effective_day - 365))
    return "core_memberships", "effective_day", row.effective_day - 365, row.effective_day


def agreement_currency(c: Connection) -> tuple[str, str, Any, Any]:
    row = _first(c, core.agreements, core.agreements.c.agreement_id == "A2")
    c.execute(update(core.agreements).where(core.agreements.c.agreement_id == "A2")
              .values(currency="USD"))
    return "core_agreements", "currency", "USD", row.currency


def terms_rewritten(c: Connection) -> tuple[str, str, Any, Any]:
    row = _first(c, core.terms_changes, core.terms_changes.c.kind == "forecast")
    c.execute(update(core.terms_changes).where(core.terms_changes.c.id == row.id)
              .values(data='{"forecast_basis":"50000"}'))
    return "core_terms_changes", "data", '{"forecast_basis":"50000"}', row.data


def reversal_deleted(c: Connection) -> tuple[str, str, Any, Any]:
    c.execute(delete(core.reversals))
    return "core_reversals", "row", None, "present"


def claim_moved(c: Connection) -> tuple[str, str, Any, Any]:
    c.execute(update(core.claims).values(agreement_id="A2"))
    return "core_claims", "agreement_id", "A2", "A1"


def close_rewritten(c: Connection) -> tuple[str, str, Any, Any]:
    row = _first(c, core.closes)
    c.execute(update(core.closes).values(reported="[]"))
    return "core_closes", "reported", "[]", row.reported


def group_renamed(c: Connection) -> tuple[str, str, Any, Any]:
    c.execute(update(core.groups).values(name="Others"))
    return "core_groups", "name", "Others", "Buyers"


def write_off_deleted(c: Connection) -> tuple[str, str, Any, Any]:
    c.execute(delete(core.write_offs))
    return "core_write_offs", "row", None, "present"


#: Every read table, altered one way.
ALTERATIONS: dict[str, Alter] = {
    "core_money": paid_cut, "core_basis": basis_deleted, "core_sales": sale_inserted,
    "core_basis_blocks": block_sum_cut,
    "core_memberships": membership_moved, "core_agreements": agreement_currency,
    "core_terms_changes": terms_rewritten, "core_reversals": reversal_deleted,
    "core_claims": claim_moved, "core_closes": close_rewritten, "core_groups": group_renamed,
    "core_write_offs": write_off_deleted,
}


def test_every_read_table_is_altered_by_one_test() -> None:
    assert set(ALTERATIONS) == {t.name for t in CHECKED}


@pytest.mark.parametrize("altered", sorted(ALTERATIONS))
def test_a_row_altered_behind_the_ledger_is_named(full: Ledger, altered: str) -> None:
    with full.engine.begin() as connection:
        table, column, stored, derived = ALTERATIONS[altered](connection)
    assert table == altered
    result = verify_tables(full)
    assert not result.ok and result.count == 1
    (difference,) = result.differences
    assert (difference.table, difference.column) == (table, column)
    if column == "row":
        assert (difference.stored is None) == (stored is None)
        assert (difference.derived is None) == (derived is None)
        assert difference.what.startswith("missing" if stored is None else "extra")
    else:
        assert difference.stored == stored and difference.derived == derived
        assert difference.derived != difference.stored


def test_the_issues_reproducer_through_the_cli_and_the_evidence_pack(cli: Runner) -> None:
    """A settlement's paid amount cut from 100.00 to 5.77 in core_money: verify names the row
    and exits 1; the evidence pack says the store does not verify and names it too."""
    clean = cli("verify")
    assert clean.code == 0, str(clean)
    assert "read tables: " in clean.stdout and "all equal" in clean.stdout
    import sqlite3
    with sqlite3.connect(cli.cwd / ".rebate-ledger" / "ledger.db") as db:
        assert db.execute("UPDATE core_money SET amount='5.77' WHERE kind='paid'").rowcount == 1
    done = cli("verify")
    assert done.code == 1, str(done)
    assert "read tables DIFFER from the events: 1 difference(s)" in done.stdout
    assert "core_money [position=" in done.stdout
    assert "amount: stored '5.77', derived from the events '100.00'" in done.stdout
    as_json = cli("verify", "--format", "json")
    assert as_json.code == 1
    document = orjson.loads(as_json.stdout)
    assert document["ok"] is False and document["chain_ok"] is True
    (row,) = document["tables"]["rows"]
    assert (row["table"], row["column"], row["stored"], row["derived"]) == (
        "core_money", "amount", "5.77", "100.00")
    pack = cli("evidence", "--as-of", "2025-06-30", "--out", "pack.zip")
    assert pack.code == 1, str(pack)
    assert "1 read table difference(s)" in pack.stdout
    with zipfile.ZipFile(cli.cwd / "pack.zip") as archive:
        manifest = orjson.loads(archive.read(MANIFEST))
        verified = orjson.loads(archive.read("verify.json"))
    assert manifest["verified"] is False and manifest["read_tables_verified"] is False
    assert manifest["chain_verified"] is True
    assert verified["tables"]["rows"][0]["stored"] == "5.77"


def test_the_evidence_pack_of_an_untouched_store_verifies_its_tables(
        full: Ledger, tmp_path: Any) -> None:
    pack = write_pack(full, date(2025, 6, 30), None, tmp_path / "pack.zip")
    assert pack.verified and pack.table_differences == 0
    with zipfile.ZipFile(pack.path) as archive:
        verified = orjson.loads(archive.read("verify.json"))
    assert verified["tables"]["ok"] is True
    assert set(verified["tables"]["tables"]) == {t.name for t in CHECKED}


def test_an_event_that_no_longer_decodes_is_named_not_a_crash(full: Ledger) -> None:
    """An event edited into bytes that do not decode: the check names its position and the
    rows it would have derived show as extra in the stored tables."""
    table = full.app.recorder.tables[0]  # type: ignore[attr-defined]
    with full.engine.begin() as connection:
        position = connection.execute(
            select(table.c.id).where(table.c.topic.like("%GroupCreated"))).scalar_one()
        connection.execute(update(table).where(table.c.id == position).values(state=b"{not"))
    result = verify_tables(full)
    assert not result.ok and list(result.undecodable) == [position]
    (difference,) = result.differences
    assert (difference.table, difference.column, difference.what) == (
        "core_groups", "row", "extra: not derived from any event")


def test_verify_derives_sales_and_basis_as_heaps_with_the_same_rows(
        full: Ledger, tmp_path: Any) -> None:
    """`verify` derives `core_sales` and `core_basis` into tables without key or index (appended
    to, then read sorted: issue 11, point 1); they hold the rows the keyed tables hold."""
    from sqlalchemy import inspect as inspect_db

    from ledger.audit.tables import UNKEYED, _scratch_engine, derive, key_columns

    engines = {name: _scratch_engine(tmp_path / f"{name}.db") for name in ("keyed", "heap")}
    try:
        for name, engine in engines.items():
            with full.engine.connect() as source:
                derive(full.app, source, engine, {},
                       unkeyed=UNKEYED if name == "heap" else ())
        heap = inspect_db(engines["heap"])
        for table in UNKEYED:
            assert heap.get_pk_constraint(table.name)["constrained_columns"] == []
            assert heap.get_indexes(table.name) == []
            rows = {}
            for name, engine in engines.items():
                with engine.connect() as connection:
                    rows[name] = connection.execute(select(table).order_by(
                        *[table.c[k] for k in key_columns(table)])).all()
            assert rows["heap"] == rows["keyed"] and len(rows["heap"]) > 0, table.name
        assert inspect_db(engines["keyed"]).get_indexes("core_sales") != []
    finally:
        for engine in engines.values():
            engine.dispose()
