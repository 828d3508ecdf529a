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
            # the child's own CPU time (user + system, every thread)
            assert figures[name]["cpu_seconds"] > 0
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
    # the CPU time's ratio beside the wall time's, with a verdict against the same target
    for name in ("journal", "explain one agreement"):
        assert results["targets"][name]["cpu_ratio"] > 0
        (line,) = [x for x in done.stdout.splitlines() if x.startswith(f"  {name} ")]
        assert re.search(r" CPU +[\d.]+s +[\d.]+s +[\d.]+ <=[\d.]+ +(PASS|MISS)$", line), line
    assert not list(tmp_path.glob("scale-*/ledger.db*"))  # the stores are removed


def test_scale_benchmark_refuses_sizes_that_cannot_be_compared(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--sizes", "1000", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2 and "--sizes" in done.stderr
    assert "Traceback" not in done.stderr


def test_scale_benchmark_measures_the_kafka_commands_apart_from_their_broker(
        tmp_path: Path) -> None:
    """replay runs against a broker the benchmark starts outside the measured process, filled
    by a measured `relay --once`; the broker's peak is a figure apart (no target). A kept store
    is measured again without applying the book again (--reuse-store)."""
    def scale(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "bench.scale", "--agreements", "3", "--out", str(tmp_path),
             *args], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-4000:]
        return done

    scale("--sizes", "100", "--measure-only", "--keep-databases", "--only", "journal")
    book = tmp_path / "scale-100" / "book-sales.jsonl"
    written_at = book.stat().st_mtime_ns
    again = scale("--sizes", "100", "--measure-only", "--reuse-store", "--only", "replay")
    assert "the store of an earlier run" in again.stdout
    assert "apply (child process)" not in again.stdout
    figures = orjson.loads((tmp_path / "scale-100" / "figures.json").read_bytes())
    # the earlier run's journal is kept beside the figures measured now
    assert {"apply", "journal", "relay --once", "replay",
            "broker (Tansu, log in memory)"} <= set(figures)
    for name in ("relay --once", "replay"):
        assert figures[name]["exit"] == 0, figures[name]["stderr"]
        assert figures[name]["peak_rss_kib"] > 10_000
    relay_out = (tmp_path / "scale-100" / "relay---once.out").read_text()
    assert "published" in relay_out and "127.0.0.1:" in relay_out
    assert "is live" in (tmp_path / "scale-100" / "replay.out").read_text()
    broker = figures["broker (Tansu, log in memory)"]
    assert broker["info_only"] and broker["peak_rss_kib"] > 0
    assert book.stat().st_mtime_ns == written_at  # the book was not written again
    # compared with a size measured now: the broker's line is information, with no verdict
    both = scale("--sizes", "100,1000", "--reuse", "--only", "replay")
    (line,) = [x for x in both.stdout.splitlines() if x.startswith("broker (Tansu")]
    assert "information" in line and "PASS" not in line and "MISS" not in line
    results = orjson.loads((tmp_path / "scale-results.json").read_bytes())
    assert "broker (Tansu, log in memory)" not in results["targets"]
    assert set(results["targets"]) >= {"relay --once", "replay"}
