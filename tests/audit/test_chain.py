"""Tamper evidence (issue 4, item 5): the hash chains written with the events, `verify`,
`digest` and `verify --digest`, on SQLite and PostgreSQL; `verify --log` on the embedded
broker; the CLI as a user types it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ledger import Ledger
from ledger.audit.chain import (
    GENESIS,
    append,
    chain_anchor,
    content_hash,
    digest,
    event_chain,
    rechain,
    verify_store,
)
from ledger.errors import StoreDamaged
from tests.audit.conftest import BOOK
from tests.contract import helpers as h
from tests.e2e.conftest import Runner


def events(ledger: Ledger) -> object:
    return ledger.app.recorder.tables[0]  # type: ignore[attr-defined]


def verified(ledger: Ledger, digest_pair: tuple[int, str] | None = None) -> object:
    with Session(ledger.engine) as session:
        return verify_store(session, ledger.app.recorder, digest=digest_pair)


def test_every_stored_event_is_chained_and_verifies(book: Ledger) -> None:
    result = verified(book)
    assert result.ok and result.events == result.chained > 0  # type: ignore[attr-defined]
    with Session(book.engine) as session:
        rows = session.execute(select(event_chain).order_by(event_chain.c.position)).all()
        table = events(book)
        first = session.execute(select(table).order_by(table.c.id).limit(1)).one()  # type: ignore[attr-defined]
    # the first link, recomputed by hand from its definition
    content = content_hash(str(first.originator_id), first.originator_version, first.topic,
                           first.state)
    import hashlib
    assert rows[0].content_hash == content
    assert rows[0].store_hash == hashlib.sha256(
        f"{GENESIS}{first.id}{content}".encode()).hexdigest()
    assert rows[0].stream_hash == hashlib.sha256(f"{GENESIS}{content}".encode()).hexdigest()
    # A1's second event (the write-off) links to its first in its stream
    a1 = [r for r in rows if r.originator_id == rows[0].originator_id]
    assert [r.originator_version for r in a1] == [1, 2, 3]
    assert a1[1].stream_hash == hashlib.sha256(
        f"{a1[0].stream_hash}{a1[1].content_hash}".encode()).hexdigest()


def test_an_edited_event_is_named(book: Ledger) -> None:
    table = events(book)
    with Session(book.engine) as session, session.begin():
        target = session.execute(
            select(table.c.id, table.c.state).where(table.c.topic.like("%ClaimSettled"))  # type: ignore[attr-defined]
        ).one()
        forged = bytes(target.state).replace(b'"100.00"', b'"10.00"')
        assert forged != bytes(target.state)
        session.execute(update(table).where(table.c.id == target.id).values(state=forged))  # type: ignore[attr-defined]
    result = verified(book)
    assert not result.ok  # type: ignore[attr-defined]
    (broken,) = result.breaks  # type: ignore[attr-defined]
    assert broken.position == target.id and "edited" in broken.what
    assert broken.to_dict()["type"] == "ClaimSettled"


def test_a_deleted_event_is_named_and_the_chain_goes_on(book: Ledger) -> None:
    table = events(book)
    with Session(book.engine) as session, session.begin():
        positions = [p for (p,) in session.execute(select(table.c.id).order_by(table.c.id))]  # type: ignore[attr-defined]
        victim = positions[3]
        session.execute(delete(table).where(table.c.id == victim))  # type: ignore[attr-defined]
    (broken,) = verified(book).breaks  # type: ignore[attr-defined]
    assert broken.position == victim and "deleted" in broken.what


def test_a_digest_proves_the_store_extends_it_and_catches_a_rewritten_chain(
    book: Ledger,
) -> None:
    with Session(book.engine) as session:
        taken = digest(session)
    h.accepted_all(book, [h.at("2025-08-01T00:00:00Z", h.sale("S9", "1", "10.00",
                                                               "2025-07-30"))])
    later = verified(book, (taken.position, taken.hash))
    assert later.ok and later.digest_ok and later.head_position > taken.position  # type: ignore[attr-defined]
    # a forger edits an event AND recomputes the whole chain so that it is consistent again:
    # the chain verifies, the published digest does not
    table = events(book)
    with Session(book.engine) as session, session.begin():
        first = session.execute(select(table).order_by(table.c.id).limit(1)).one()  # type: ignore[attr-defined]
        session.execute(update(table).where(table.c.id == first.id).values(  # type: ignore[attr-defined]
            state=bytes(first.state).replace(b'"rate":"2"', b'"rate":"3"')))
        session.execute(delete(event_chain))
        append(session, book.app.recorder, [p for (p,) in session.execute(select(table.c.id))])  # type: ignore[attr-defined]
    rewritten = verified(book, (taken.position, taken.hash))
    assert not rewritten.breaks and rewritten.digest_ok is False and not rewritten.ok  # type: ignore[attr-defined]
    assert "rewritten since the digest" in rewritten.digest_detail  # type: ignore[attr-defined]


def test_a_store_from_before_the_chain_is_chained_only_by_the_explicit_rechain(
    database_url: str,
) -> None:
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, BOOK[:4])
        with Session(ledger.engine) as session, session.begin():
            session.execute(delete(event_chain))  # as in a store from before the chain
            session.execute(delete(chain_anchor))
        unchained = verified(ledger)
        assert not unchained.ok and unchained.chained == 0 < unchained.events  # type: ignore[attr-defined]
        with pytest.raises(StoreDamaged, match="rebate-ledger rechain"):
            ledger.apply(BOOK[4:])  # never chained silently by an ordinary write
        with Session(ledger.engine) as session, session.begin():
            assert rechain(session, ledger.app.recorder) == unchained.events  # type: ignore[attr-defined]
        h.accepted_all(ledger, BOOK[4:])
        result = verified(ledger)
        assert result.ok and result.chained == result.events  # type: ignore[attr-defined]
        with Session(ledger.engine) as session, session.begin(), \
                pytest.raises(StoreDamaged, match="rechain refused: this store had a hash"):
            rechain(session, ledger.app.recorder)


def test_cli_verify_digest_and_a_row_edited_behind_the_ledgers_back(cli: Runner) -> None:
    done = cli("verify")
    assert done.code == 0, str(done)
    assert "both chains verify" in done.stdout
    taken = cli("digest", "--format", "json")
    assert taken.code == 0
    (cli.cwd / "digest.json").write_text(taken.stdout)
    done = cli("verify", "--digest", "digest.json", "--format", "json")
    assert done.code == 0 and done.json()["digest"]["ok"] is True
    # behind the ledger's back: sqlite3 on the default store file
    database = cli.cwd / ".rebate-ledger" / "ledger.db"
    with sqlite3.connect(database) as connection:
        (position, state), = connection.execute(
            "SELECT id, state FROM ledger_events WHERE topic LIKE '%AgreementAmended'")
        connection.execute("UPDATE ledger_events SET state = ? WHERE id = ?",
                           (bytes(state).replace(b"2.5", b"9.5"), position))
    done = cli("verify")
    assert done.code == 1
    assert f"BROKEN at position {position}: stored bytes differ" in done.stdout
    assert "AgreementAmended" in done.stdout
    document = cli("verify", "--format", "json").json()
    assert document["first_break"]["position"] == position
    done = cli("verify", "--digest", '{"nonsense": 1}')
    assert done.code == 2 and "--digest" in done.stderr


def test_digest_of_an_empty_store(tmp_path: Path) -> None:
    with Ledger(f"sqlite:///{tmp_path / 'empty.db'}") as ledger, \
            Session(ledger.engine) as session:
        found = digest(session)
    assert (found.position, found.hash, found.events) == (0, GENESIS, 0)
    assert orjson.loads(orjson.dumps(found.to_dict()))["store_hash"] == GENESIS


def test_cli_verify_on_a_store_from_before_the_chain_says_so(cli: Runner) -> None:
    database = cli.cwd / ".rebate-ledger" / "ledger.db"
    with sqlite3.connect(database) as connection:
        connection.execute("DELETE FROM event_chain")  # as a store made before the chain
        connection.execute("DELETE FROM chain_anchor")
    done = cli("verify")
    assert done.code == 1
    assert "predates tamper evidence" in done.stdout
    cli.write("more.jsonl", [h.sale("S77", "1", "5.00", "2025-12-01")])
    done = cli("apply", "more.jsonl")  # never chained silently by an ordinary write
    assert done.code == 2 and "rebate-ledger rechain" in done.stderr
    assert "Traceback" not in done.stderr
    assert cli("rechain").code == 2  # says to check first and give --yes
    assert cli("rechain", "--yes").code == 0
    assert cli("apply", "more.jsonl").code == 0
    assert cli("verify").code == 0
    done = cli("rechain", "--yes")  # a store that had a chain: never again
    assert done.code == 2 and "rechain refused" in done.stderr


def test_verify_digest_takes_what_digest_prints_in_any_format_or_a_bare_hash(
        cli: Runner) -> None:
    """Issue 14, point 9: only the JSON form was accepted."""
    head = cli("digest", "--format", "json").json()
    for form in ("table", "csv", "json"):
        taken = cli("digest", "--format", form)
        assert taken.code == 0, str(taken)
        (cli.cwd / f"digest.{form}").write_text(taken.stdout)
        for given in (f"digest.{form}", taken.stdout):
            done = cli("verify", "--digest", given, "--format", "json")
            assert done.code == 0, (form, str(done))
            assert done.json()["digest"]["ok"] is True
            assert f"at position {head['position']}" in done.json()["digest"]["detail"]
    done = cli("verify", "--digest", head["store_hash"].upper())
    assert done.code == 0, str(done)
    assert f"digest: OK: the chain passes through {head['store_hash']} at position " \
        f"{head['position']}" in done.stdout
    other = "ab" * 32
    done = cli("verify", "--digest", other, "--format", "json")
    assert done.code == 1 and done.json()["verdict"] == "DIGEST FAILED"
    assert done.json()["digest"] == {"ok": False, "detail": (
        f"no position of the store's chain hashes to {other}: the store was rewritten since "
        "the digest, or the hash is of another store")}
    for garbage in ("abc", "position 3", "ab" * 31, f"{other} {'cd' * 32}"):
        done = cli("verify", "--digest", garbage)
        assert done.code == 2 and "bare store hash of 64 hex digits" in done.stderr, garbage


def test_verify_csv_and_json_carry_the_verdict(cli: Runner) -> None:
    import csv

    done = cli("verify", "--format", "csv")
    assert done.code == 0, str(done)
    rows = list(csv.DictReader(done.stdout.splitlines()))
    assert [(r["verdict"], r["check"]) for r in rows] == [("verified", "summary")]
    assert cli("verify", "--format", "json").json()["verdict"] == "verified"
    database = cli.cwd / ".rebate-ledger" / "ledger.db"
    with sqlite3.connect(database) as connection:
        (position, state), = connection.execute(
            "SELECT id, state FROM ledger_events WHERE topic LIKE '%AgreementAmended'")
        connection.execute("UPDATE ledger_events SET state = ? WHERE id = ?",
                           (bytes(state).replace(b"2.5", b"9.5"), position))
    done = cli("verify", "--format", "csv")
    assert done.code == 1
    rows = list(csv.DictReader(done.stdout.splitlines()))
    assert {r["verdict"] for r in rows} == {"BROKEN"}
    assert [r["check"] for r in rows][:2] == ["summary", "chain"]
    assert rows[1]["position"] == str(position) and "edited" in rows[1]["what"]
    assert cli("verify", "--format", "json").json()["verdict"] == "BROKEN"
