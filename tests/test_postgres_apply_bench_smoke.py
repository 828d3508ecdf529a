"""`python -m bench.postgres_apply` runs end to end on a tiny book (no timing assertions: a CI
machine's speed says nothing about the ledger's): both databases apply every sale, and the
ratio is printed with its verdict."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.postgres
def test_the_benchmark_applies_the_book_on_both_databases(pg_server: str,
                                                          tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.postgres_apply", "--sales", "300", "--agreements", "3",
         "--postgres", pg_server, "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = orjson.loads((tmp_path / "postgres-apply-results.json").read_bytes())
    for side in ("sqlite", "postgres"):
        assert results[side]["sales"] == 300 and results[side]["rejected"] == 0
        assert results[side]["sales_per_s"] > 0 and results[side]["peak_rss_kib"] > 10_000
    assert results["ratio"] == pytest.approx(
        results["postgres"]["sales_per_s"] / results["sqlite"]["sales_per_s"])
    assert re.search(r"PostgreSQL / SQLite: \d+\.\d\d \(target >= 0\.7\): (PASS|MISS)",
                     done.stdout), done.stdout
    assert not list(tmp_path.glob("sqlite.db*"))  # the store is removed after the run
