"""Nothing laundered (issue 12 point 7): each test edits the store as an attacker with database
access would, behind the ledger's back, and expects `verify` to name the problem (and the
ledger to refuse what the edit would let through), on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import delete, func, inspect, select, text, update
from sqlalchemy.orm import Session

from ledger import Ledger
from ledger.audit.chain import (
    chain_anchor,
    digest,
    event_chain,
    events_table,
    rechain,
    verify_store,
)
from ledger.audit.tables import TABLE_MISSING, rebuild_tables, verify_tables
from ledger.errors import CoreTablesMissing, StoreDamaged
from ledger.projections.core import ledger_state, to_us
from tests.contract import helpers as h
from tests.e2e.conftest import Runner


def verified(ledger: Ledger, digest_pair: tuple[int, str] | None = None):  # type: ignore[no-untyped-def]
    with Session(ledger.engine) as session:
        return verify_store(session, ledger.app.recorder, digest=digest_pair)


def whats(ledger: Ledger) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for broken in verified(ledger).breaks:
        found.setdefault(broken.position, []).append(broken.what)
    return found


def last_position(ledger: Ledger) -> int:
    table = events_table(ledger.app.recorder)
    with ledger.engine.connect() as connection:
        return int(connection.execute(select(func.max(table.c.id))).scalar_one())


def test_an_event_stored_as_text_is_named_not_a_traceback(book: Ledger) -> None:
    table = events_table(book.app.recorder)
    position = last_position(book)
    with book.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.execute(text(f"UPDATE {table.name} SET state = CAST(state AS TEXT) "
                                    "WHERE id = :p"), {"p": position})
        else:  # PostgreSQL keeps a column's type: the attacker changes the column
            connection.execute(text(f"ALTER TABLE {table.name} ALTER COLUMN state TYPE text "
                                    "USING convert_from(state, 'UTF8')"))
    found = whats(book)
    assert "stored state is TEXT, not bytes: written behind the ledger" in found[position]
    tables = verify_tables(book)  # the read-table check names it too, without a traceback
    assert position in tables.undecodable and not tables.ok


def test_a_recorded_at_going_back_in_store_order_is_named(book: Ledger) -> None:
    table = events_table(book.app.recorder)
    position = last_position(book)
    with Session(book.engine) as session, session.begin():
        state = bytes(session.execute(select(table.c.state).where(table.c.id == position))
                      .scalar_one())
        assert b'"recorded_at":"2025-07-15T00:00:00Z"' in state  # S3, recorded late
        session.execute(update(table).where(table.c.id == position).values(
            state=state.replace(b'"recorded_at":"2025-07-15T', b'"recorded_at":"2025-01-15T')))
    found = whats(book)
    assert any(what.startswith("recorded_at 2025-01-15T00:00:00+00:00 is earlier than "
                               "2025-05-02T00:00:00+00:00 of position ") for what in
               found[position]), found


def test_a_watermark_set_back_is_named_and_lets_no_back_dated_command_in(book: Ledger) -> None:
    closed = book.liability(date(2025, 3, 31), None)
    with book.engine.begin() as connection:
        connection.execute(update(ledger_state).values(watermark_us=0))
    found = whats(book)
    (what,) = found[last_position(book)]
    assert what.startswith("ledger_state.watermark_us (1970-01-01T00:00:00+00:00) is behind the "
                           "recorded_at of the last stored event (2025-07-15T00:00:00+00:00)")
    # a back-dated sale is refused all the same: the stored events' times count too
    report = book.apply([h.at("2025-02-01T00:00:00Z",
                              h.sale("S99", "500", "5000.00", "2025-01-20"))])
    assert report.accepted == 0
    (rejection,) = report.rejected
    assert rejection.field == "recorded_at" and "2025-07-15" in rejection.reason
    assert book.liability(date(2025, 3, 31), None) == closed


def test_an_emptied_chain_and_an_edit_are_named_and_never_rechained(book: Ledger) -> None:
    table = events_table(book.app.recorder)
    with Session(book.engine) as session:
        taken = digest(session)
    with Session(book.engine) as session, session.begin():
        session.execute(delete(event_chain))
        first = session.execute(select(table).order_by(table.c.id).limit(1)).one()
        session.execute(update(table).where(table.c.id == first.id).values(
            state=bytes(first.state).replace(b'"rate":"2"', b'"rate":"3"')))
    found = whats(book)
    assert any(what.startswith("the hash chain was emptied: chain_anchor says the store was "
                               f"chained up to position {taken.position}")
               for what in found[taken.position]), found
    # the next ordinary write does not re-chain the store (it would launder the edit) ...
    with pytest.raises(StoreDamaged, match="does not re-chain them"):
        book.apply([h.at("2025-08-01T00:00:00Z", h.sale("S9", "1", "10.00", "2025-07-30"))])
    with Session(book.engine) as session, session.begin(), \
            pytest.raises(StoreDamaged, match="rechain refused"):
        rechain(session, book.app.recorder)  # ... nor does the explicit command
    assert not verified(book).ok
    # an attacker who also deletes the anchor can rechain: the published digest catches it
    with Session(book.engine) as session, session.begin():
        session.execute(delete(chain_anchor))
        rechain(session, book.app.recorder)
    laundered = verified(book, (taken.position, taken.hash))
    assert not laundered.breaks and laundered.digest_ok is False and not laundered.ok


def test_a_truncated_chain_is_named_against_the_anchor(book: Ledger) -> None:
    head = last_position(book)
    with Session(book.engine) as session, session.begin():
        session.execute(delete(event_chain).where(event_chain.c.position == head))
    found = whats(book)
    assert any(what.startswith("the chain does not pass through the anchor (position "
                               f"{head}") for what in found[head]), found
    assert "event has no chain entry (stored behind the ledger)" in found[head]


def test_dropped_core_tables_are_refused_named_and_rebuilt_from_the_events(
    book: Ledger,
) -> None:
    url = book.engine.url.render_as_string(hide_password=False)
    before = book.liability(date(2025, 12, 31), None)
    assert before and any(row.accrued for row in before)
    dropped = ["core_agreements", "core_basis", "core_money", "ledger_state"]
    with book.engine.begin() as connection:
        for name in dropped:
            connection.execute(text(f"DROP TABLE {name}"))
    book.close()
    # not recreated empty (accrued 0, liabilities negative): every use of the store refuses
    with pytest.raises(CoreTablesMissing) as refused:
        Ledger(url)
    assert refused.value.missing == tuple(dropped)
    assert "rebate-ledger rebuild-tables --yes" in str(refused.value)
    with Ledger(url, check_tables=False) as damaged:
        assert damaged.missing_tables == dropped
        tables = verify_tables(damaged)
        named = {d.table: d for d in tables.differences if d.column == TABLE_MISSING}
        assert set(named) == set(dropped) - {"ledger_state"}  # not derived: not compared
        assert named["core_basis"].derived > 0 and "dropped behind the ledger" in \
            named["core_basis"].line()
        assert not tables.ok
        with damaged.engine.connect() as connection:
            assert not set(dropped) & set(inspect(connection).get_table_names())
        written = rebuild_tables(damaged)
        assert written["core_basis"] == named["core_basis"].derived
    with Ledger(url) as rebuilt:
        assert rebuilt.liability(date(2025, 12, 31), None) == before
        assert verify_tables(rebuilt).ok and verified(rebuilt).ok
        with rebuilt.engine.connect() as connection:  # the watermark from the last event
            watermark = connection.execute(select(ledger_state.c.watermark_us)).scalar_one()
        assert watermark == to_us(datetime(2025, 7, 15, tzinfo=UTC))


def test_cli_a_dropped_read_table_is_an_error_until_rebuild_tables(cli: Runner) -> None:
    database = cli.cwd / ".rebate-ledger" / "ledger.db"
    with sqlite3.connect(database) as connection:
        connection.execute("DROP TABLE core_money")
    for args in (("liability", "--as-of", "2025-12-31"), ("apply", "more.jsonl")):
        cli.write("more.jsonl", [h.sale("S77", "1", "5.00", "2025-12-01")])
        done = cli(*args)
        assert done.code == 2, str(done)
        assert "core_money" in done.stderr and "rebuild-tables --yes" in done.stderr
        assert "Traceback" not in done.stderr
    done = cli("verify")
    assert done.code == 1 and "core_money: the table is missing from the store" in done.stdout
    assert cli("rebuild-tables").code == 2  # says to look first and give --yes
    done = cli("rebuild-tables", "--yes")
    assert done.code == 0 and "were missing: core_money" in done.stdout
    assert cli("verify").code == 0
    assert cli("apply", "more.jsonl").code == 0
