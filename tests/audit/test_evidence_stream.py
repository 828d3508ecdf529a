"""The evidence pack streamed (issue 11, point 1): its files are made one at a time into
temporary files (the journal in one pass for JSON and CSV, the diff against the last close by
`write_diff`, each agreement explained in turn) and copied into the zip, and every file is the
same, byte for byte, as the pack of the previous implementation (tests/audit/previous_evidence.py,
which held them all in memory), on the demo's generated book and on the worked book, SQLite and
PostgreSQL."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest

from ledger import Ledger
from ledger.audit.evidence import MANIFEST, check_pack, write_pack
from ledger.demo import History, load_history, plan_book
from tests.audit import previous_evidence as previous
from tests.audit.test_diff_stream import fresh_database


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def demo_book(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """The demo's generated 2025 book (8 customers), loaded once per database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('evidence-stream') / 'demo.db'}"
    else:
        url = fresh_database(request.getfixturevalue("pg_server"))
    with Ledger(url) as ledger:
        load_history(ledger, History(plan_book(11, 8), ask=ledger.liability))
        yield ledger


def members(path: Path) -> tuple[list[str], dict[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        return names, {name: archive.read(name) for name in names}


def assert_same_pack(book: Ledger, as_of: date, known_at: datetime | None,
                     folder: Path) -> dict[str, bytes]:
    old = previous.write_pack(book, as_of, known_at, folder / "previous.zip")
    new = write_pack(book, as_of, known_at, folder / "streamed.zip")
    old_names, old_files = members(old.path)
    new_names, new_files = members(new.path)
    assert new_names == old_names  # the same files, in the same order
    for name in old_names:
        if name != MANIFEST:
            assert new_files[name] == old_files[name], name
    old_manifest, new_manifest = (orjson.loads(f[MANIFEST]) for f in (old_files, new_files))
    del old_manifest["created_at"], new_manifest["created_at"]  # the clock, at each writing
    assert new_manifest == old_manifest
    assert (new.files, new.verified, new.balanced, new.table_differences) == (
        old.files, old.verified, old.balanced, old.table_differences)
    assert check_pack(new.path) == []
    with zipfile.ZipFile(new.path) as archive:  # stored as writestr stores (deflated)
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    return new_files


def test_the_streamed_pack_holds_the_previous_packs_files(demo_book: Ledger,
                                                          tmp_path: Path) -> None:
    files = assert_same_pack(demo_book, date(2025, 12, 31), None, tmp_path)
    # the comparison covers every part: a journal of many rows, the diff against Q4's close
    assert len(orjson.loads(files["journal.json"])["rows"]) > 100
    assert orjson.loads(files["post_close.json"])["rows"]
    assert files["post_close.csv"].count(b"\n") > 1
    assert sum(name.startswith("explain/") for name in files) >= 16


def test_a_pack_as_known_at_a_past_moment_is_the_previous_packs(demo_book: Ledger,
                                                                 tmp_path: Path) -> None:
    assert_same_pack(demo_book, date(2025, 6, 30), datetime(2025, 8, 1, tzinfo=UTC), tmp_path)


def test_the_worked_book_packs_the_same(book: Ledger, tmp_path: Path) -> None:
    files = assert_same_pack(book, date(2025, 12, 31), None, tmp_path)
    assert "post_close.json" not in files  # no close: the pack says so in README.txt
