"""bench/import_bench.py runs end to end on a quick book (no timing asserted): both contenders
accept every sale, and the ratio is printed with its verdict. The CSV it writes reads back, with
its mapping, as exactly the sales of the JSONL book."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench.generate import write_book
from bench.import_bench import MAPPING, german, write_csv
from ledger.commands import parse_line
from ledger.importing import parse_mapping, rows_of

REPO = Path(__file__).resolve().parent.parent


def test_quick_import_benchmark_prints_the_ratio_with_a_verdict(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.import_bench", "--quick", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    assert re.search(r"^ratio import/apply = \d+\.\d+ \(target >= 0\.5\): (PASS|MISS)$",
                     done.stdout, re.MULTILINE), done.stdout


def test_the_benchmark_csv_holds_the_same_sales_as_the_jsonl_book(tmp_path: Path) -> None:
    import tomllib

    assert german("-1234567.05") == "1.234.567,05-" and german("0.50") == "0,50"
    book = write_book(tmp_path, sales=300, agreements=5)
    write_csv(book.sales_path, tmp_path / "sales.csv")
    sheet, _, rows = rows_of(tmp_path / "sales.csv", parse_mapping(tomllib.loads(MAPPING)))
    try:
        commands = [row.command for row in rows]
    finally:
        sheet.close()
    # the commands `apply` would read from the JSONL lines, field for field
    expected = [parse_line(line) for line in book.sales_path.read_bytes().splitlines()]
    assert len(expected) == 300 and commands == expected
