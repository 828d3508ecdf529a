"""`python -m bench.scale` runs end to end on tiny books (no timing assertions: a CI machine's
speed says nothing about the ledger's): each size is applied, each chosen command runs in its
own process and has its time and peak memory, and every ratio is printed with a verdict."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent


def test_scale_benchmark_measures_each_command_at_each_size(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--sizes", "100,1000", "--agreements", "3",
         "--only", "journal,explain one agreement", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = orjson.loads((tmp_path / "scale-results.json").read_bytes())
    assert set(results["sizes"]) == {"100", "1000"}
    for figures in results["sizes"].values():
        assert set(figures) == {"apply", "journal", "explain one agreement"}
        for name in ("journal", "explain one agreement"):
            assert figures[name]["exit"] == 0, figures[name]["stderr"]
            assert figures[name]["peak_rss_kib"] > 10_000  # a Python process's own
            assert figures[name]["seconds"] > 0 and figures[name]["output_bytes"] > 0
            # SQLite's own peak heap, read in the child at exit: part of its peak RSS
            assert 0 < figures[name]["sqlite_heap_peak_kib"] < figures[name]["peak_rss_kib"]
    # the journal grows with the book: ten times the sales, more postings
    assert (results["sizes"]["1000"]["journal"]["output_bytes"]
            > results["sizes"]["100"]["journal"]["output_bytes"])
    assert results["targets"]["explain one agreement"]["time_target"] == 3.0
    assert results["targets"]["journal"]["time_target"] == 10.0
    for name in ("apply", "journal", "explain one agreement"):
        (line,) = [x for x in done.stdout.splitlines()
                   if x.startswith(name + " ") and "SQLite heap" not in x]
        assert re.search(r"<=[\d.]+ +(PASS|MISS) .*<=1\.25 +(PASS|MISS)", line), line
    assert "memory_less_sqlite_heap_ratio" in results["targets"]["journal"]
    assert not list(tmp_path.glob("scale-*/ledger.db*"))  # the stores are removed


def test_scale_benchmark_refuses_sizes_that_cannot_be_compared(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--sizes", "1000", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2 and "--sizes" in done.stderr
    assert "Traceback" not in done.stderr
