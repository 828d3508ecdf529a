"""Opening a store (issue 15): several processes making a brand-new store at once all succeed
and apply every line exactly once, on SQLite and PostgreSQL; a store that cannot be written
answers the read-only commands and refuses `apply` with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import orjson

from ledger import Ledger
from tests.contract import helpers as h

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 16
SALES_PER_PROCESS = 5
YEAR_END = date(2025, 12, 31)

#: One process: import everything first, wait for the start file, then open the new store and
#: apply its own lines (an agreement and its sales), printing the report as JSON.
WORKER = """
import os, sys, time
from pathlib import Path
import orjson
from ledger import Ledger
url, lines, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.005)
with Ledger(url) as ledger:
    report = ledger.apply_lines(lines.read_bytes().splitlines())
print(orjson.dumps(report.to_dict()).decode())
"""


def book_of(worker: int) -> list[bytes]:
    customer = f"C{worker}"
    commands = [h.agreement(f"A{worker}", customer_id=customer)]
    commands += [
        h.sale(f"S{worker}-{n}", "2", "10.00", customer_id=customer)
        for n in range(SALES_PER_PROCESS)
    ]
    return [orjson.dumps(c) for c in commands]


def test_processes_opening_a_new_store_at_once_all_succeed(
    database_url: str, tmp_path: Path
) -> None:
    """The reproducer: 38 of 128 processes failed with "table … already exists" on SQLite, 7 of
    40 with UniqueViolation on PostgreSQL, applying nothing."""
    go = tmp_path / "go"
    processes = []
    for worker in range(PROCESSES):
        lines = tmp_path / f"book{worker}.jsonl"
        lines.write_bytes(b"\n".join(book_of(worker)) + b"\n")
        processes.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, database_url, str(lines), str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        ))
    time.sleep(2.0)  # let every process finish its imports (they wait for `go`)
    go.touch()
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()[-3000:]
        reports.append(orjson.loads(out.splitlines()[-1]))
    assert [r["accepted"] for r in reports] == [1 + SALES_PER_PROCESS] * PROCESSES
    assert all(r["rejected"] == 0 and r["duplicates"] == 0 for r in reports)
    with Ledger(database_url) as ledger:
        assert ledger.state()["accepted"] == PROCESSES * (1 + SALES_PER_PROCESS)
        assert ledger.rejections() == []
        rows = ledger.liability(YEAR_END)
    with Ledger(f"sqlite:///{tmp_path / 'reference.db'}") as reference:
        for worker in range(PROCESSES):
            assert not reference.apply_lines(book_of(worker)).rejected
        assert rows == reference.liability(YEAR_END) and len(rows) == PROCESSES
