"""The benchmark runs end to end (a quick run: a few thousand sales), so CI proves it works.

No timing assertions: a CI machine's speed says nothing about the ledger's. What must hold is
that every measurement completes, every ratio is printed with a verdict, the figures land in
results.json, and the generator is deterministic.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bench.generate import write_book

REPO = Path(__file__).resolve().parent.parent

#: How each ratio line starts (the liability lines name the two book sizes).
RATIO_LINES = (
    r"ratio ledger/baseline = ",
    r"ratio ledger/ceiling = ",
    r"ratio ledger/indexed ceiling = ",
    r"ratio peak RSS N/\(N/10\) = ",
    r"ratio liability 2,000/200 sales = ",
    r"ratio liability known_at 2,000/200 sales = ",
)


def test_quick_benchmark_prints_every_ratio_with_a_verdict_and_writes_results(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.splitlines()
    for label in RATIO_LINES:
        matching = [line for line in lines if re.match(label, line)]
        assert len(matching) == 1, (label, done.stdout)
        assert re.search(r"= \d+\.\d+ \(target [<>]= [\d.]+\): (PASS|MISS)$", matching[0]), (
            matching[0]
        )
    results = orjson.loads((tmp_path / "results.json").read_bytes())
    assert set(results["targets"]) == {
        "ledger_over_baseline", "ledger_over_ceiling", "ledger_over_indexed_ceiling",
        "peak_rss_n_over_tenth",
        "liability_large_over_small", "liability_known_at_large_over_small",
    }
    assert all(t["ratio"] > 0 for t in results["targets"].values())
    # Every sale of the file was applied by the ledger and by the ceiling.
    assert results["ledger"]["sales"] == results["ceiling"]["sales"] == 2000
    assert results["indexed_ceiling"]["sales"] == 2000
    assert results["ledger_tenth"]["sales"] == 200
    # The databases are cleaned up; the generated books stay for inspection.
    assert not list(tmp_path.glob("*.db*"))
    assert (tmp_path / "book-sales.jsonl").exists()


def test_generator_writes_the_same_bytes_for_the_same_seed(tmp_path: Path) -> None:
    first = write_book(tmp_path / "one", sales=300, agreements=7, seed=5)
    second = write_book(tmp_path / "two", sales=300, agreements=7, seed=5)
    other = write_book(tmp_path / "three", sales=300, agreements=7, seed=6)
    assert first.sales_path.read_bytes() == second.sales_path.read_bytes()
    assert first.agreements_path.read_bytes() == second.agreements_path.read_bytes()
    assert first.sales_path.read_bytes() != other.sales_path.read_bytes()


def test_generated_sales_carry_two_decimal_figures_of_one_sign_over_one_year(
    tmp_path: Path,
) -> None:
    book = write_book(tmp_path, sales=2000, agreements=10)
    lines = [orjson.loads(line) for line in book.sales_path.read_bytes().splitlines()]
    assert len(lines) == 2000
    assert len({line["sale_id"] for line in lines}) == 2000
    two_places = re.compile(r"^-?\d+\.\d\d$")
    for line in lines:
        assert two_places.match(line["quantity"]) and two_places.match(line["amount"]), line
        assert line["quantity"].startswith("-") == line["amount"].startswith("-"), line
        assert "2025-01-01" <= line["invoice_date"] <= "2025-12-31"
    # Sales reach across the year, and some are returns.
    dates = sorted(line["invoice_date"] for line in lines)
    assert dates[0] < "2025-02-01" and dates[-1] > "2025-12-01"
    assert any(line["amount"].startswith("-") for line in lines)


@pytest.mark.kafka
@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_quick_kafka_benchmark_prints_every_ratio_and_writes_results(
    tmp_path: Path, client: str
) -> None:
    """`python -m bench.kafka_bench --quick` on the embedded broker: the pipeline (intake,
    relay and projection as separate processes) and the replay both complete, every sale gets
    through, each ratio is printed as the spread of the runs with its verdict (the worst
    run's) and lands in kafka-results.json."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.kafka_bench", "--quick", "--client", client,
         "--runs", "2", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    for label in ("ratio pipeline / raw consume+produce: ", "ratio replay / raw consume: ",
                  "replay time per 1,000,000 sales: "):
        matching = [line for line in done.stdout.splitlines() if line.startswith(label)]
        assert len(matching) == 1, (label, done.stdout)
        assert re.search(r"(PASS|MISS)$", matching[0]), matching[0]
    results = orjson.loads((tmp_path / "kafka-results.json").read_bytes())
    assert results["config"]["client"] == client
    assert results["pipeline"]["sales"] == 5000 and results["pipeline"]["workers"] == "processes"
    # each worker process's peak memory, printed beside its CPU seconds
    peak = results["pipeline"]["peak_rss_mib"]
    assert set(peak) == {"intake", "relay", "projection"} and min(peak.values()) > 10, peak
    assert re.search(r"peak RSS MiB \([0-9,]+ records a poll\): intake [0-9]+", done.stdout)
    assert results["raw_consume_produce"]["records"] == 5000
    assert results["replay"]["records"] == results["raw_consume_events"]["records"] > 0
    assert set(results["targets"]) == {
        "pipeline_over_raw", "replay_over_raw", "replay_seconds_per_million"}
    assert all(t.get("ratio", t.get("seconds", 0)) > 0 for t in results["targets"].values())
    assert len(results["runs"]) == 2
    for name, key in (("pipeline_over_raw", "ratios"), ("replay_over_raw", "ratios")):
        target = results["targets"][name]
        ratios = [run[name] for run in results["runs"]]
        assert target[key] == ratios and target["ratio"] == min(ratios)
        assert target["pass"] == (min(ratios) >= 0.30)
        line, = [x for x in done.stdout.splitlines() if x.startswith(
            "ratio pipeline" if name == "pipeline_over_raw" else "ratio replay")]
        assert f"{min(ratios):.2f}-{max(ratios):.2f} over 2 runs" in line, line
    assert all(set(run["pipeline"]["cpu_seconds"]) >= {"intake", "relay", "projection"}
               for run in results["runs"])
    for run in results["runs"]:
        pipeline = run["pipeline"]
        # the broker's CPU over the pipeline's span is printed beside the workers'
        assert pipeline["cpu_seconds"]["broker"] >= 0
        # intake joined its group before the clock started (a service starts once), and
        # the store held every sale before the projection caught up
        assert pipeline["intake_join_s_untimed"] > 0
        assert 0 < pipeline["intake_done_s"] <= pipeline["seconds"]
    assert "intake joined its group in " in done.stdout
    assert "; every sale in the store at " in done.stdout


def test_the_groups_benchmark_runs_and_prints_its_ratios(tmp_path: Path) -> None:
    """bench/groups_bench.py end to end on a small book (no timing assertion: a ratio and a
    verdict printed for both stages, the same group row before and after the run's repeats)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.groups_bench", "--sales", "5000", "--repeats", "3",
         "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    ratios = [line for line in done.stdout.splitlines()
              if line.startswith("ratio group liability 5,000/1,000 sales")]
    assert len(ratios) == 2, done.stdout
    for line in ratios:
        assert re.search(r"= \d+\.\d+ \(target <= 3\.00\): (PASS|MISS)$", line), line
    results = orjson.loads((tmp_path / "groups-results.json").read_bytes())
    before = results["before_changes"]["row"]
    assert before["group_id"] == "G01" and before["customer_id"] is None
    assert results["apply_sales_per_s"]["large"] > 0
