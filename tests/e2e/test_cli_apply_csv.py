"""`apply --format csv` (issue 14, point 10): it printed the table for people. Now a row per
line that was not simply accepted, in line order, and the counts on stderr."""

from __future__ import annotations

import csv

from .conftest import Runner, agreement, sale


def test_apply_format_csv_lists_duplicates_and_rejections_by_line(run: Runner) -> None:
    run.write("book.jsonl", [
        agreement("A1", "C1"),
        sale("S1", "C1", "1", "10.00", "2025-02-01"),
        "not json",
        sale("S1", "C1", "1", "10.00", "2025-02-01"),
        sale("S2", "C1", "1", "=HYPERLINK(1)", "2025-02-01"),
        sale("S3", "C1", "2", "20.00", "2025-02-02"),
    ])
    done = run("apply", "book.jsonl", "--format", "csv")
    assert done.code == 1, done
    rows = list(csv.DictReader(done.stdout.splitlines()))
    assert [(r["line"], r["outcome"], r["command_type"], r["id"]) for r in rows] == [
        ("3", "rejected", "", ""), ("4", "duplicate", "record_sale", "S1"),
        ("5", "rejected", "record_sale", "")]
    assert rows[0]["reason"].startswith("not valid JSON")
    assert rows[2]["field"] == "amount"
    assert not any(cell.startswith("=") for row in rows for cell in row.values())
    assert done.stderr.splitlines()[-1] == "accepted: 3  duplicate: 1  rejected: 2"
    again = run("apply", "book.jsonl", "--format", "csv")
    lines = [int(r["line"]) for r in csv.DictReader(again.stdout.splitlines())]
    assert lines == [1, 2, 3, 4, 5, 6]  # nothing new: every line is listed, in order
    assert again.stderr.splitlines()[-1].startswith("accepted: 0  ")
