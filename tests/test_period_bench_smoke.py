"""bench/period_bench.py runs end to end on a small book (no timing asserted): the baseline
and both period commands are measured and each ratio is printed with its verdict."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_period_benchmark_prints_its_ratios_with_a_verdict() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.period_bench", "--sales", "300", "--agreements", "5",
         "--repeats", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    for name in ("trial-balance --from --to", "journal --from --to"):
        assert re.search(rf"^  {name}: [\d,]+ ms = \d+\.\d\d x the baseline "
                         r"\(target <= 2\.5 x\): (PASS|MISS)$", done.stdout, re.MULTILINE), \
            done.stdout
