"""The evidence pack (issue 4, item 9) on the worked book of conftest.py, on SQLite and
PostgreSQL, and through the CLI."""

from __future__ import annotations

import os
import zipfile
from datetime import date
from pathlib import Path

import orjson
import pytest

from ledger import Ledger
from ledger.audit.evidence import MANIFEST, check_pack, write_pack
from ledger.output_files import OutputRefused, store_files
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


def test_the_pack_adds_reconcile_rejections_the_diff_against_the_last_close_and_a_readme(
        database_url: str, tmp_path: Path) -> None:
    """Issue 14, point 9. The worked book with Q1 closed on 10 April; a refused command."""
    from datetime import UTC, datetime

    from ledger.audit.diff import diff
    from ledger.audit.reconcile import reconcile
    from tests.audit.conftest import BOOK
    from tests.contract import helpers as h

    closed_at = datetime(2025, 4, 10, tzinfo=UTC)
    book = Ledger(database_url)
    h.accepted_all(book, BOOK[:9])
    book.close_period("2025-Q1", date(2025, 1, 1), date(2025, 3, 31), closed_at)
    h.accepted_all(book, BOOK[9:])
    report = book.apply_lines([b'{"type": "record_sale", "sale_id": "bad"}'])
    assert len(report.rejected) == 1
    pack = write_pack(book, date(2025, 6, 30), None, tmp_path / "pack.zip")
    with zipfile.ZipFile(pack.path) as archive:
        names = set(archive.namelist())
        assert {"reconcile.json", "reconcile.csv", "rejections.json", "rejections.csv",
                "post_close.json", "post_close.csv", "README.txt"} <= names
        post_close = orjson.loads(archive.read("post_close.json"))["rows"]
        flagged = orjson.loads(archive.read("reconcile.json"))["rows"]
        refused = orjson.loads(archive.read("rejections.json"))["rows"]
        readme = archive.read("README.txt").decode()
    # the diff against the close: Q1's end as reported on 04-10 against now
    assert [r["agreement_id"] for r in post_close] == [
        c.agreement_id for c in diff(book, date(2025, 3, 31), closed_at)]
    assert "A1" in {r["agreement_id"] for r in post_close}
    assert [r["agreement_id"] for r in flagged] == [
        x.agreement_id for x in reconcile(book, date(2025, 6, 30))]
    assert [(r["command_type"], r["field"]) for r in refused] == [("record_sale", "customer_id")]
    assert "the rebate liability at 2025-06-30" in readme
    assert "Last close: 2025-Q1 (2025-01-01 to 2025-03-31), closed 2025-04-10" in readme
    assert "post_close" in readme and "rejections" in readme and "sha256sum" in readme
    assert check_pack(pack.path) == []
    # as known before the close there is no close to compare with, and no post_close file
    early = write_pack(book, date(2025, 6, 30), datetime(2025, 4, 9, tzinfo=UTC),
                       tmp_path / "early.zip")
    with zipfile.ZipFile(early.path) as archive:
        assert "post_close.json" not in archive.namelist()
        assert "there is no post_close file" in archive.read("README.txt").decode()
    book.close()


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


# --- --out never destroys a file (issue 15) ---------------------------------------------------


STORE = Path(".rebate-ledger") / "ledger.db"


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
def test_cli_evidence_refuses_to_write_over_the_store(cli: Runner, suffix: str) -> None:
    """The reproducer: `--out` naming the ledger's own database file replaced the store with
    the zip (exit 0, "chain verified"). Refused for every file of it, even with --force."""
    store = cli.cwd / STORE
    before = store.read_bytes()
    target = f"{STORE}{suffix}"
    for force in ((), ("--force",)):
        done = cli("evidence", "--as-of", "2025-06-30", "--out", target, *force)
        assert done.code == 2, str(done)
        assert "file of the ledger's store" in done.stderr and "Traceback" not in done.stderr
    assert store.read_bytes()[:16] == b"SQLite format 3\x00"
    assert len(store.read_bytes()) >= len(before)
    still = cli("liability", "--as-of", "2025-12-31", "--format", "json")
    assert still.code == 0 and still.json()["rows"], str(still)


def test_cli_evidence_refuses_the_store_by_another_name(cli: Runner) -> None:
    """A symlink or hard link to the store, a path with `..`, or the store given by --database
    are the store too."""
    store = cli.cwd / STORE
    (cli.cwd / "link.zip").symlink_to(store)
    os.link(store, cli.cwd / "hard.zip")
    (cli.cwd / "sub").mkdir()
    for target in ("link.zip", "hard.zip", "sub/../.rebate-ledger/ledger.db"):
        done = cli("evidence", "--as-of", "2025-06-30", "--out", target, "--force")
        assert done.code == 2 and "file of the ledger's store" in done.stderr, str(done)
    other = cli.cwd / "other.db"
    assert cli("apply", "book.jsonl", "--database", f"sqlite:///{other}").code == 0
    done = cli("evidence", "--as-of", "2025-06-30", "--out", "other.db",
               "--database", f"sqlite:///{other}")
    assert done.code == 2 and "file of the ledger's store" in done.stderr, str(done)
    assert other.read_bytes()[:16] == b"SQLite format 3\x00"


def test_cli_evidence_replaces_an_existing_file_only_with_force(cli: Runner) -> None:
    (cli.cwd / "pack.zip").write_bytes(b"an earlier pack")
    done = cli("evidence", "--as-of", "2025-06-30", "--out", "pack.zip")
    assert done.code == 2 and "exists" in done.stderr and "--force" in done.stderr, str(done)
    assert (cli.cwd / "pack.zip").read_bytes() == b"an earlier pack"
    done = cli("evidence", "--as-of", "2025-06-30", "--out", "pack.zip", "--force")
    assert done.code == 0, str(done)
    assert check_pack(cli.cwd / "pack.zip") == []
    assert sorted(p.name for p in cli.cwd.iterdir() if p.name.startswith(".pack.zip")) == []


def test_cli_evidence_does_not_create_folders(cli: Runner) -> None:
    """Issue 14, point 6: a mistyped --out folder became a new folder holding the pack."""
    done = cli("evidence", "--as-of", "2025-06-30", "--out", "pakcs/q2/pack.zip")
    assert done.code == 2, str(done)
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --out pakcs/q2/pack.zip: the folder pakcs/q2 does not exist; create it first "
        "or give a path in an existing folder")
    assert not (cli.cwd / "pakcs").exists()
    (cli.cwd / "packs").mkdir()
    done = cli("evidence", "--as-of", "2025-06-30", "--out", "packs/pack.zip")
    assert done.code == 0, str(done)
    assert check_pack(cli.cwd / "packs" / "pack.zip") == []


def test_a_pack_that_fails_half_way_leaves_the_old_file_and_no_temporary(
    book: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "pack.zip"
    out.write_bytes(b"the old pack")

    def disk_full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_pack(book, date(2025, 12, 31), None, out, force=True)
    assert out.read_bytes() == b"the old pack"
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_write_pack_refuses_the_store_of_its_ledger(book: Ledger) -> None:
    store_files_ = store_files(book.database_url)
    if not store_files_:  # PostgreSQL: no file to protect; any path is fine
        return
    with pytest.raises(OutputRefused, match="file of the ledger's store"):
        write_pack(book, date(2025, 12, 31), None, store_files_[0], force=True)


def test_cli_schema_out_neither_overwrites_nor_writes_over_the_store(tmp_path: Path) -> None:
    run = Runner(tmp_path)
    out = run.cwd / "schema"
    assert run("schema", "--out", "schema").code == 0
    index = (out / "index.json").read_bytes()
    (out / "index.json").write_bytes(b"mine")
    again = run("schema", "--out", "schema")
    assert again.code == 2 and "exists" in again.stderr, str(again)
    assert (out / "index.json").read_bytes() == b"mine"
    assert run("schema", "--out", "schema", "--force").code == 0
    assert (out / "index.json").read_bytes() == index
    # a store that happens to live where a schema file goes
    fresh = run.cwd / "fresh"
    fresh.mkdir()
    (fresh / "index.json").write_bytes(b"SQLite format 3\x00 pretend")
    done = run("schema", "--out", "fresh", "--force",
               env={"LEDGER_DATABASE_URL": f"sqlite:///{fresh / 'index.json'}"})
    assert done.code == 2 and "file of the ledger's store" in done.stderr, str(done)
    assert (fresh / "index.json").read_bytes() == b"SQLite format 3\x00 pretend"
    assert list(fresh.iterdir()) == [fresh / "index.json"]  # nothing written before the check
