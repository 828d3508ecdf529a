"""Issue 10, point 7: `apply --dry-run` validates a whole file against the store as it stands
and prints what `apply` would accept, call a duplicate and reject, in apply's report, storing
nothing: the store's digest (position and hash), its kept rejections, its liability and
`verify` are the same after it; applying the file for real then reports exactly what the dry
run said. On SQLite and PostgreSQL (where a dry run is one transaction rolled back, bounded)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

import orjson
import pytest

from ledger import Ledger
from ledger.service import LedgerService

from .conftest import Runner, agreement, rows_by_id, sale

BASE = [
    agreement("A1", "C1", recorded_at="2025-03-01T09:00:00Z"),
    sale("S1", "C1", "10", "100.00", "2025-02-01", recorded_at="2025-03-01T10:00:00Z"),
]
#: line: what apply would do with it against BASE (lines 2 and 6 need the lines before them)
BATCH: list[tuple[Any, str]] = [
    (sale("S1", "C1", "10", "100.00", "2025-02-01", recorded_at="2025-03-02T09:00:00Z"),
     "duplicate"),
    (agreement("A2", "C2", recorded_at="2025-03-02T10:00:00Z"), "accepted"),
    (sale("S2", "C1", "4", "40.00", "2025-02-03", recorded_at="2025-03-01T08:00:00Z"),
     "rejected recorded_at"),  # earlier than the store's latest recorded_at: loaded out of order
    (sale("S3\u202e", "C1", "1", "1", "2025-02-03", recorded_at="2025-03-03T08:00:00Z"),
     "rejected sale_id"),
    (sale("S4", "C1", "5", "50.00", "2025-02-04", recorded_at="2025-03-03T09:00:00Z"),
     "accepted"),
    (sale("S5", "C2", "7", "70.00", "2025-02-05", recorded_at="2025-03-03T10:00:00Z"),
     "accepted"),
    ({"type": "submit_claim", "claim_id": "K1", "agreement_id": "A9", "amount": "1.00",
      "submitted_on": "2025-03-04", "recorded_at": "2025-03-04T09:00:00Z"},
     "rejected agreement_id"),
]


def state(run: Runner, url: str) -> tuple[str, Any, Any, int]:
    """(digest's position and hash, liability rows, kept rejections, verify's exit)."""
    digest = run("digest", "--database", url)
    assert digest.code == 0, str(digest)
    head = re.search(r"position (\d+)\s+store hash ([0-9a-f]+)", digest.stdout)
    assert head, digest.stdout
    liability = run("liability", "--as-of", "2025-12-31", "--format", "json", "--database", url)
    kept = orjson.loads(run("rejections", "--format", "json", "--database", url).stdout)
    verify = run("verify", "--database", url)
    return (f"{head.group(1)} {head.group(2)}", rows_by_id(liability.json()),
            kept["rejections"], verify.code)


def expected_report() -> dict[str, Any]:
    """The counts and rows the BATCH table says, numbered as lines of the file."""
    lines = list(enumerate((outcome for _, outcome in BATCH), start=1))
    return {
        "accepted": sum(1 for _, o in lines if o == "accepted"),
        "duplicate_lines": [n for n, o in lines if o == "duplicate"],
        "rejections": [(n, o.split()[1]) for n, o in lines if o.startswith("rejected")],
    }


def test_a_dry_run_reports_what_apply_does_and_stores_nothing(
        run: Runner, database_url: str) -> None:
    url = database_url
    run.write("base.jsonl", BASE)
    assert run("apply", "base.jsonl", "--database", url).code == 0
    run.write("batch.jsonl", [line for line, _ in BATCH])
    before = state(run, url)
    assert before[3] == 0

    preview = run("apply", "batch.jsonl", "--dry-run", "--format", "json", "--database", url)

    assert preview.code == 1, str(preview)  # something would be rejected
    report = preview.json()
    assert report["dry_run"] is True
    want = expected_report()
    assert report["accepted"] == want["accepted"]
    assert [d["line"] for d in report["duplicate_lines"]] == want["duplicate_lines"]
    assert [(r["line"], r["field"]) for r in report["rejections"]] == want["rejections"]
    assert all(r["command"] for r in report["rejections"])
    assert state(run, url) == before  # nothing stored, nothing kept

    done = run("apply", "batch.jsonl", "--format", "json", "--database", url)
    assert done.code == 1, str(done)
    assert {**done.json(), "dry_run": True} == report  # the preview was exact
    after = state(run, url)
    assert after[0] != before[0] and after[3] == 0
    # A1 of C1, 1.00 per unit: S1 (10) and S4 (5); A2 of C2: S5 (7)
    assert {k: Decimal(v["accrued"]) for k, v in after[1].items()} == {
        "A1": Decimal(10 + 5) * Decimal("1.00"), "A2": Decimal(7) * Decimal("1.00")}


def test_the_table_says_it_is_a_dry_run_in_apply_s_words(run: Runner, sqlite_url: str) -> None:
    run.write("base.jsonl", BASE)
    assert run("apply", "base.jsonl", "--database", sqlite_url).code == 0
    run.write("batch.jsonl", [line for line, _ in BATCH])

    preview = run("apply", "batch.jsonl", "--dry-run", "--database", sqlite_url)

    assert preview.code == 1, str(preview)
    assert preview.stdout.startswith("dry run, nothing stored")
    want = expected_report()
    assert preview.counts() == (want["accepted"], len(want["duplicate_lines"]),
                                len(want["rejections"]))
    assert "rejected line 3: record_sale: recorded_at:" in preview.stdout
    assert "load history in recorded order" in preview.stdout


def test_a_clean_file_previews_with_exit_0(run: Runner, sqlite_url: str) -> None:
    run.write("base.jsonl", BASE)
    preview = run("apply", "base.jsonl", "--dry-run", "--database", sqlite_url)
    assert preview.code == 0, str(preview)
    assert preview.counts() == (2, 0, 0)


def test_a_dry_run_without_a_store_creates_none(run: Runner) -> None:
    run.write("base.jsonl", BASE)

    preview = run("apply", "base.jsonl", "--dry-run")

    assert preview.code == 0, str(preview)
    assert preview.counts() == (2, 0, 0)
    assert "previews the file into an empty store, and creates nothing" in preview.stderr
    assert not (run.cwd / ".rebate-ledger" / "ledger.db").exists()
    assert run("liability", "--as-of", "2025-12-31").code == 2  # still no store


def test_a_dry_run_has_no_size_bound_on_either_database(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three chunks of 2 lines: previewed whole on SQLite (a copy of the store) and on
    PostgreSQL (the chunks in one transaction rolled back), and nothing stored."""
    from ledger.cli.service import operator_principal

    monkeypatch.setenv("LEDGER_CHUNK_LINES", "2")
    lines = [orjson.dumps(line) for line in BASE + [
        sale(f"S{n}", "C1", "1", "10.00", "2025-02-02") for n in range(2, 6)]]
    with LedgerService(Ledger(database_url)) as service:
        principal = operator_principal(None)
        preview = service.load(principal, lines, source="x", dry_run=True)
        assert (preview.accepted, len(preview.rejected)) == (6, 0)
        assert service.ledger.liability(date(2025, 12, 31)) == []
        assert service.ledger.rejections() == []
