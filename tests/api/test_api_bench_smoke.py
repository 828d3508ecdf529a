"""The API benchmark runs end to end on a tiny store (no timing asserted: a CI machine's speed
says nothing of the API's): every target is printed with a verdict and results are written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]


def test_the_api_benchmark_prints_every_target(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.api_bench", "--sales", "2000", "--agreements", "20",
         "--seconds", "1", "--clients", "4", "--ingest-batches", "2", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    for name in ("liability_p99_ms", "ingest_http_over_direct", "errors",
                 "server_rss_growth_max"):
        assert re.search(rf"^{name} = [\d.]+ \(target [<>]= [\d.]+\): (PASS|MISS)$",
                         done.stdout, re.M), (name, done.stdout)
    results = orjson.loads((tmp_path / "api-results.json").read_bytes())
    assert results["targets"]["errors"]["pass"], results
    assert results["liability"]["agreement"]["http"]["calls"] > 0
    assert results["ingest"]["lines"] == 2000
    assert not list(tmp_path.glob("api-bench.db*"))
