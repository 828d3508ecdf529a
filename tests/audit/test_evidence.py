"""The evidence pack (issue 4, item 9) on the worked book of conftest.py, on SQLite and
PostgreSQL, and through the CLI."""

from __future__ import annotations

import zipfile
from datetime import date
from pathlib import Path

import orjson

from ledger import Ledger
from ledger.audit.evidence import MANIFEST, check_pack, write_pack
from tests.e2e.conftest import Runner


def test_the_pack_holds_every_part_and_its_manifest_matches(book: Ledger, tmp_path: Path) -> None:
    pack = write_pack(book, date(2025, 12, 31), None, tmp_path / "pack.zip")
    assert pack.verified and pack.balanced
    with zipfile.ZipFile(pack.path) as archive:
        names = set(archive.namelist())
        assert {"positions.json", "positions.csv", "journal.json", "journal.csv",
                "trial_balance.json", "verify.json", "digest.json", MANIFEST,
                "explain/A1.json", "explain/A1.txt", "explain/A2.json"} <= names
        positions = orjson.loads(archive.read("positions.json"))["rows"]
        manifest = orjson.loads(archive.read(MANIFEST))
        explained = orjson.loads(archive.read("explain/A1.json"))
    assert positions == [row.to_dict() for row in book.liability(date(2025, 12, 31))]
    assert manifest["question"] == {"as_of": "2025-12-31", "known_at": None}
    assert manifest["verified"] and manifest["trial_balance_balanced"]
    assert manifest["digest"]["store_hash"] == orjson.loads(
        zipfile.ZipFile(pack.path).read("digest.json"))["store_hash"]
    assert explained["liability"] == "177.50"
    assert check_pack(pack.path) == []


def test_a_changed_file_in_the_pack_is_found(book: Ledger, tmp_path: Path) -> None:
    pack = write_pack(book, date(2025, 12, 31), None, tmp_path / "pack.zip")
    altered = tmp_path / "altered.zip"
    with zipfile.ZipFile(pack.path) as source, zipfile.ZipFile(altered, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "positions.csv":
                data = data.replace(b"177.50", b"17.50")
            target.writestr(name, data)
    assert check_pack(altered) == ["positions.csv: differs from the manifest"]


def test_cli_evidence_as_a_user_types_it(cli: Runner) -> None:
    done = cli("evidence", "--as-of", "2025-06-30", "--known-at", "2025-07-01",
               "--out", "pack.zip")
    assert done.code == 0, str(done)
    assert "chain and read tables verified, trial balance balanced" in done.stdout
    assert check_pack(cli.cwd / "pack.zip") == []
    with zipfile.ZipFile(cli.cwd / "pack.zip") as archive:
        question = orjson.loads(archive.read(MANIFEST))["question"]
    assert question == {"as_of": "2025-06-30", "known_at": "2025-07-01T23:59:59.999999Z"}


def test_cli_evidence_to_a_path_that_cannot_be_written_says_so(cli: Runner) -> None:
    (cli.cwd / "a-file").write_text("not a directory")
    done = cli("evidence", "--as-of", "2025-06-30", "--out", "a-file/pack.zip")
    assert done.code == 2
    assert "--out a-file/pack.zip" in done.stderr and "Traceback" not in done.stderr
