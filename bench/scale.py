"""`python -m bench.scale`: every command's time and peak memory at two book sizes
(issue 11, point 1), and the ratios against the targets.

For each size (`--sizes`, sales; default 1,000,000 and 10,000,000 as the issue asks, which takes
hours here: run `--sizes 100000,1000000` for minutes) it writes the synthetic book of
`bench.generate` (the same `--agreements` at every size, so each agreement's history grows with
the book), applies it in a child process (`bench.apply_bench`, as `python -m bench` does), then
runs each command of the CLI as its own process on that store, `--format json` to a file, and
reads the child's peak resident set size and CPU time from `os.wait4` (that child's own
rusage, not the running maximum of RUSAGE_CHILDREN). The ratios of CPU time are printed beside
those of wall time: on a machine shared with other work the wall time of a command measures the
load as much as the command (a 10M `verify` took 823 s once and 1,170 s again at a higher load).

The commands: every reading command, then the Kafka ones against a broker the benchmark
starts itself, outside every measured process (Tansu, the embedded broker, whose log is in
memory: a real Kafka's disk; a command's private broker would be its child, and the peak of the
two would be the broker's log): `relay --once` publishes the whole store to it, then
`replay liability` and `audit-view` read it back (their own relay finds nothing new); the
broker's own peak memory is printed apart, as information. Then `import` of a fixed CSV file of
10,000 new sales (last, as it adds to the book). `--measure-only` runs the sizes as separate
processes (each writes `scale-<sales>/figures.json`); `--reuse` compares them afterwards without
measuring again; `--keep-databases` keeps each store and `--reuse-store` measures commands
(`--only`) on it again without applying the book again.

Targets, for the largest size against the smallest (ratio of sizes r, 10 by default):
- peak memory <= 1.25x for every command (bounded memory: nothing held per sale);
- time <= r x for the whole-book reports (linear at worst);
- time <= 3x for one agreement's figures (`explain`, `liability --agreement`) and for
  `import`'s fixed file: they must not grow with the rest of the book.

Prints each figure and each ratio with PASS or MISS, and writes them to scale-results.json.
The figures say what this machine did while other work ran on it (the load average is printed).
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.apply_bench import run_ledger_child
from bench.generate import SEED, agreement_id, write_book

MEMORY_RATIO_MAX = 1.25
ONE_AGREEMENT_TIME_RATIO_MAX = 3.0
AS_OF = date(2025, 12, 31)
DEFAULT_SIZES = (1_000_000, 10_000_000)


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...]
    #: one agreement's figures, or a fixed-size input (import's 10,000 sales): time target
    #: 3x (it must not grow with the rest of the book), not r x
    one_agreement: bool = False
    #: reads the events topic: run against the benchmark's own broker, which lives outside
    #: the measured process (as a real Kafka would), so that its log is not the command's
    kafka: bool = False


def commands(agreement: str, known_half: str, out: Path) -> list[Command]:
    """The commands measured, as the CLI is called (`--database` added to each)."""
    day = AS_OF.isoformat()
    return [
        Command("liability", ("liability", "--as-of", day, "--format", "json")),
        Command("liability one agreement", ("liability", "--as-of", day, "--agreement",
                                            agreement, "--format", "json"), True),
        Command("journal", ("journal", "--as-of", day, "--format", "json")),
        Command("trial-balance", ("trial-balance", "--as-of", day, "--format", "json")),
        Command("reconcile", ("reconcile", "--as-of", day, "--format", "json")),
        Command("diff", ("diff", "--as-of", day, "--known-at", known_half, "--format", "json")),
        Command("explain one agreement", ("explain", "--agreement", agreement, "--as-of", day,
                                          "--format", "json"), True),
        Command("opportunities", ("opportunities", "--as-of", "2025-09-30", "--format",
                                  "json")),
        Command("verify", ("verify", "--format", "json")),
        Command("evidence", ("evidence", "--as-of", day, "--out", str(out / "evidence.zip"),
                             "--force")),
        # the events topic, on a broker of the benchmark's own (not a child of the command:
        # its log, in memory, grows with the book, and is a real Kafka's disk): the relay
        # publishes the whole store to it first, then replay and audit-view read it back
        Command(RELAY, ("relay", "--once"), kafka=True),
        Command("replay", ("replay", "liability"), kafka=True),
        Command("audit-view", ("audit-view", "--as-of", day, "--format", "json"), kafka=True),
        # last: it adds sales to the book (a fixed file of IMPORT_SALES new sales, CSV)
        Command("import", ("import", str(out / "import.csv"), "--mapping",
                           str(out / "import.toml"), "--format", "json", "--quiet"), True),
    ]


RELAY = "relay --once"
#: figures of the benchmark's broker (information: no target)
BROKER = "broker (Tansu, log in memory)"


def broker_peak_rss_kib(pid: int) -> int | None:
    """The broker process's peak resident set size (VmHWM), read while it runs."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


#: The sales `import` adds to the book at every size: its time must not grow with the book.
IMPORT_SALES = 10_000


def write_import_file(book_sales: Path, out: Path) -> None:
    """IMPORT_SALES sales of the book under new ids (`I` for `S`), as the ERP's CSV export of
    `bench.import_bench` (German numbers, DD.MM.YYYY), with its mapping beside it."""
    from bench.import_bench import MAPPING, write_csv

    lines = out / "import-sales.jsonl"
    with book_sales.open("rb") as source, lines.open("wb") as target:
        for count, line in enumerate(source):
            if count == IMPORT_SALES:
                break
            sale = orjson.loads(line)
            sale["sale_id"] = "I" + sale["sale_id"][1:]
            target.write(orjson.dumps(sale) + b"\n")
    write_csv(lines, out / "import.csv")
    (out / "import.toml").write_text(MAPPING, encoding="utf-8")


def run_measured(args: list[str], stdout: Path,
                 bootstrap: str | None = None) -> dict[str, Any]:
    """Run the CLI with `args` as a child, its output to `stdout`; its wall time, its CPU time
    (user and system, every thread of the child, from the same `os.wait4`), exit code, peak
    RSS, and SQLite's own peak heap in it (the page cache, bounded per connection).
    `bootstrap`: the Kafka broker it is to use (LEDGER_KAFKA_BOOTSTRAP)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    if bootstrap is not None:
        env["LEDGER_KAFKA_BOOTSTRAP"] = bootstrap
    env["COLUMNS"] = "200"
    heap = stdout.with_suffix(".sqlite-heap")
    heap.unlink(missing_ok=True)
    with stdout.open("wb") as out:
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(heap), *args], stdout=out,
                                 stderr=subprocess.PIPE, env=env)
        assert child.stderr is not None
        errors = child.stderr.read()  # small: the store line, or an error
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_kib": usage.ru_maxrss, "exit": child.returncode,
            "sqlite_heap_peak_kib": int(heap.read_text()) if heap.exists() else None,
            "output_bytes": stdout.stat().st_size,
            "stderr": errors.decode(errors="replace")[-2000:]}


#: The child: the CLI's entry point, which at exit writes SQLite's peak heap (KiB, from the C
#: library's `sqlite3_memory_highwater`, as bench.apply_bench does) to the file named first.
CHILD = """
import atexit, ctypes, sys
heap_file = sys.argv.pop(1)
def _heap():
    try:
        import _sqlite3
        highwater = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_highwater
        highwater.restype, highwater.argtypes = ctypes.c_int64, [ctypes.c_int]
        with open(heap_file, "w") as out:
            out.write(str(int(highwater(0)) // 1024))
    except (OSError, AttributeError):
        pass
atexit.register(_heap)
from ledger.cli import main
sys.argv[0] = "rebate-ledger"
sys.exit(main())
"""


def say(text: str) -> None:
    print(text, flush=True)


def fresh(path: Path) -> Path:
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    return path


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                        help="book sizes in sales, smallest first, comma separated "
                             "(default 1000000,10000000; the ratios compare the last with "
                             "the first)")
    parser.add_argument("--agreements", type=int, default=5000,
                        help="agreements (one per customer) at every size (default 5,000)")
    parser.add_argument("--only", default="",
                        help="comma-separated command names to run (default: all), e.g. "
                             "'journal,trial-balance'")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out",
                        help="folder for the books, stores and scale-results.json")
    parser.add_argument("--keep-databases", action="store_true",
                        help="keep each size's store (and its apply figures) after the run")
    parser.add_argument("--reuse-store", action="store_true",
                        help="measure the commands on the store an earlier run kept "
                             "(--keep-databases) instead of writing and applying the book "
                             "again; implies --keep-databases. `import` adds to that store: "
                             "measure it last, once")
    parser.add_argument("--reuse", action="store_true",
                        help="take a size's figures from its scale-<sales>/figures.json when "
                             "an earlier run wrote it, instead of measuring it again")
    parser.add_argument("--measure-only", action="store_true",
                        help="measure the sizes (one is enough) and write each one's "
                             "figures.json, without comparing them: lets the sizes run as "
                             "separate processes, compared later with --reuse")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes: whole numbers of sales separated by commas, not {args.sizes!r}")
    fewest = 1 if args.measure_only else 2
    if len(args.sizes) < fewest or any(s < 1 for s in args.sizes) or args.sizes != sorted(
            args.sizes) or len(set(args.sizes)) != len(args.sizes):
        parser.error("--sizes: at least two different sizes, smallest first, e.g. "
                     "100000,1000000")
    if args.agreements < 1:
        parser.error("--agreements: 1 or more")
    if args.reuse_store:
        args.keep_databases = True
    return args


def measure_size(args: argparse.Namespace, sales: int) -> dict[str, Any]:
    out: Path = args.out / f"scale-{sales}"
    out.mkdir(parents=True, exist_ok=True)
    database = out / "ledger.db"
    applied_file = out / "apply.json"
    if args.reuse_store and database.exists() and applied_file.exists():
        # the store an earlier run applied and kept (--keep-databases), with its apply figures
        applied = orjson.loads(applied_file.read_bytes())
        say(f"-- {sales:,} sales over {args.agreements:,} agreements: the store of an earlier "
            f"run, {database}")
    else:
        say(f"-- {sales:,} sales over {args.agreements:,} agreements: writing the book ...")
        book = write_book(out, sales=sales, agreements=args.agreements, seed=args.seed,
                          name="book")
        applied_file.unlink(missing_ok=True)
        database = fresh(database)
        say("   apply (child process) ...")
        applied = run_ledger_child(database, book.agreements_path, book.sales_path)
        write_import_file(book.sales_path, out)
        if args.keep_databases:
            applied_file.write_bytes(orjson.dumps(applied) + b"\n")
    say(f"   apply: {applied['seconds']:.1f} s, {applied['sales_per_s']:,.0f} sales/s, peak "
        f"{applied['peak_rss_kib'] / 1024:.0f} MiB")
    url = f"sqlite:///{database}"
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    figures: dict[str, Any] = {"apply": {
        "seconds": applied["seconds"], "peak_rss_kib": applied["peak_rss_kib"], "exit": 0,
        "sqlite_heap_peak_kib": applied["sqlite_heap_peak_kib"]}}
    todo = [c for c in commands(agreement_id(0), applied["known_at_half"], out)
            if not wanted or c.name in wanted]
    if any(c.kafka for c in todo) and not any(c.name == RELAY for c in todo):
        # the readers of the topic are measured against a broker the relay filled
        todo = [c for c in commands(agreement_id(0), applied["known_at_half"], out)
                if c.name == RELAY] + todo
    broker: Any = None
    try:
        for command in todo:
            bootstrap = None
            if command.kafka:
                if broker is None:
                    from ledger.kafka.broker import EmbeddedBroker

                    broker = EmbeddedBroker(out, start_timeout_s=60)
                    broker_started = time.perf_counter()
                    broker.start()
                bootstrap = broker.bootstrap
            result = run_measured([*command.args, "--database", url],
                                  out / f"{command.name.replace(' ', '-')}.out", bootstrap)
            result["one_agreement"] = command.one_agreement
            figures[command.name] = result
            say(f"   {command.name:<24} {result['seconds']:8.2f} s "
                f"(CPU {result['cpu_seconds']:8.2f} s) "
                f"{result['peak_rss_kib'] / 1024:8.1f} MiB  exit {result['exit']}  "
                f"{result['output_bytes']:,} bytes  load {os.getloadavg()[0]:.1f}")
            if result["exit"] not in (0,):
                say(f"     stderr: {result['stderr'].strip()[-500:]}")
            if broker is not None and not any(c.kafka for c in todo[todo.index(command) + 1:]):
                peak = broker_peak_rss_kib(broker.pid)
                figures[BROKER] = {"seconds": time.perf_counter() - broker_started,
                                   "peak_rss_kib": peak or 0, "exit": 0, "info_only": True}
                say(f"   {BROKER:<24} peak {(peak or 0) / 1024:8.1f} MiB (not the commands' "
                    "memory: a real Kafka's disk)")
                broker.stop()
                broker = None
    finally:
        if broker is not None:
            broker.stop()
    if not args.keep_databases:
        fresh(database)
    earlier = out / "figures.json"
    if args.reuse_store and earlier.exists():
        # this run measured some commands again on the kept store: the others stay as they were
        figures = {**orjson.loads(earlier.read_bytes()), **figures}
    earlier.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2) + b"\n")
    return figures


def _both_with(first: dict[str, Any], last: dict[str, Any], targets: dict[str, Any],
               key: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(command, its figures at the first size, at the last) for each command compared whose
    figures at both sizes have `key`."""
    for name, mine in last.items():
        before = first.get(name)
        if before is not None and name in targets and mine.get(key) and before.get(key):
            yield name, before, mine


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "config": {"sizes": args.sizes, "agreements": args.agreements, "seed": args.seed,
                   "as_of": AS_OF.isoformat()},
        "machine": {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
                    "platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_at_start": os.getloadavg()},
        "sizes": {},
    }
    for sales in args.sizes:
        earlier = args.out / f"scale-{sales}" / "figures.json"
        if args.reuse and earlier.exists():
            say(f"-- {sales:,} sales: the figures of an earlier run, {earlier}")
            results["sizes"][str(sales)] = orjson.loads(earlier.read_bytes())
        else:
            results["sizes"][str(sales)] = measure_size(args, sales)
    if args.measure_only:
        return 0
    small, large = args.sizes[0], args.sizes[-1]
    r = large / small
    first, last = results["sizes"][str(small)], results["sizes"][str(large)]
    say("")
    say(f"== {large:,} sales against {small:,} (x{r:g}), {args.agreements:,} agreements, "
        f"SQLite, as of {AS_OF} ==")
    say(f"{'command':<24} {'time small':>10} {'time large':>10} {'ratio':>6} {'target':>7}"
        f"   {'MiB small':>9} {'MiB large':>9} {'ratio':>6} {'target':>7}")
    targets: dict[str, Any] = {}
    for name, mine in last.items():
        if name not in first:
            continue
        before = first[name]
        if mine.get("info_only"):
            say(f"{name:<24} {before['seconds']:9.2f}s {mine['seconds']:9.2f}s "
                f"{mine['seconds'] / before['seconds']:6.2f} {'':7}  "
                f"{before['peak_rss_kib'] / 1024:9.1f} {mine['peak_rss_kib'] / 1024:9.1f} "
                f"{mine['peak_rss_kib'] / max(before['peak_rss_kib'], 1):6.2f}  "
                "(information: the broker, no target)")
            continue
        time_ratio = mine["seconds"] / before["seconds"]
        memory_ratio = mine["peak_rss_kib"] / before["peak_rss_kib"]
        time_max = ONE_AGREEMENT_TIME_RATIO_MAX if mine.get("one_agreement") else r
        ok_time, ok_memory = time_ratio <= time_max, memory_ratio <= MEMORY_RATIO_MAX
        ok_exit = mine["exit"] == 0 and before["exit"] == 0
        targets[name] = {"time_ratio": time_ratio, "time_target": time_max,
                         "time_pass": ok_time, "memory_ratio": memory_ratio,
                         "memory_target": MEMORY_RATIO_MAX, "memory_pass": ok_memory,
                         "exit_ok": ok_exit}
        say(f"{name:<24} {before['seconds']:9.2f}s {mine['seconds']:9.2f}s {time_ratio:6.2f} "
            f"<={time_max:<5g} {verdict(ok_time)}  {before['peak_rss_kib'] / 1024:9.1f} "
            f"{mine['peak_rss_kib'] / 1024:9.1f} {memory_ratio:6.2f} <={MEMORY_RATIO_MAX:<5g} "
            f"{verdict(ok_memory)}" + ("" if ok_exit else "  (a run failed: see above)"))
    results["targets"] = targets
    say("")
    say("CPU time of each command's own process (user + system; not the broker's), which the "
        "other work on the machine changes far less than the wall time above: its ratio "
        "against the same target (information; the verdicts above are on wall time)")
    for name, before, mine in _both_with(first, last, targets, "cpu_seconds"):
        cpu_ratio = mine["cpu_seconds"] / before["cpu_seconds"]
        time_max = targets[name]["time_target"]
        targets[name]["cpu_ratio"] = cpu_ratio
        say(f"  {name:<24} CPU {before['cpu_seconds']:9.2f}s {mine['cpu_seconds']:9.2f}s "
            f"{cpu_ratio:6.2f} <={time_max:<5g} {verdict(cpu_ratio <= time_max)}")
    say("")
    say("peak memory less SQLite's own heap (its page cache: 8 MiB per reading connection, "
        "64 MiB once it writes, ledger/store.py; fills further on a larger store): what the "
        "ledger holds (information, no target)")
    for name, before, mine in _both_with(first, last, targets, "sqlite_heap_peak_kib"):
        own = [x["peak_rss_kib"] - x["sqlite_heap_peak_kib"] for x in (before, mine)]
        targets[name]["memory_less_sqlite_heap_ratio"] = own[1] / own[0]
        say(f"{name:<24} SQLite heap {before['sqlite_heap_peak_kib'] / 1024:6.1f} -> "
            f"{mine['sqlite_heap_peak_kib'] / 1024:6.1f} MiB; the rest {own[0] / 1024:6.1f} -> "
            f"{own[1] / 1024:6.1f} MiB: {own[1] / own[0]:.2f}")
    results["machine"]["load_average_at_end"] = os.getloadavg()
    load = results["machine"]
    say(f"load average at start {load['load_average_at_start'][0]:.2f}, at end "
        f"{load['load_average_at_end'][0]:.2f} on {load['cpus']} CPUs")
    path = args.out / "scale-results.json"
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    say(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
