"""The web page benchmark runs end to end on a tiny store (no timing asserted: a CI machine's
speed says nothing of the pages'): every page is printed with its baseline and a verdict."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
PAGES = ["liability", "liability_known_at", "liability_csv", "agreement", "statement",
         "statement_pdf", "customer", "watchlist", "reconcile", "overview", "diff",
         "diff_next_page", "diff_download_json", "audit",
         "proposals", "claims"]


def test_the_web_benchmark_prints_every_page(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.web_bench", "--sales", "1000", "--agreements", "10",
         "--repeat", "1", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    for name in PAGES:
        assert re.search(rf"^{name} +[\d.]+ +[\d.]+ +([\d.]+|-)  <= 1000 ms: (PASS|MISS)$",
                         done.stdout, re.M), (name, done.stdout)
    results = orjson.loads((tmp_path / "web-results.json").read_bytes())
    assert {name: page["statuses"] for name, page in results["pages"].items()} == {
        name: [200] for name in PAGES}
    assert not list(tmp_path.glob("web-bench.db*"))
