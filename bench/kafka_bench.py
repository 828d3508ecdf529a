"""`python -m bench.kafka_bench`: the Kafka backbone's benchmark (issue 3, point 9; issue 11,
point 3), on the embedded broker:

1. pipeline: N sales produced to the sales topic (as an ERP would, untimed), then timed from the
   moment the workers, started and built (interpreter, imports, store opened, intake's
   consumer group joined: untimed, as a service starts once), are told to go, until the
   liability projection has caught up with the store: intake, relay and projection running
   concurrently. Against the raw ceiling of consuming the same records and producing them
   again with the same client (its consumer and producer made untimed too). Target: >= 0.30.
   Each worker's CPU seconds and peak RSS are printed, the broker's CPU seconds, the group
   join's seconds and when the store held every sale (intake done).
2. replay: the liability projection rebuilt from the start of the events topic (the N sales
   published by the relay), against consuming and decoding the same topic with the same
   client. Targets: under 60 s for 1,000,000 sales, and >= 0.30 of the raw consume rate.

Every figure is taken `--runs` times (default 3), each run on a fresh broker and store; each
ratio prints as the spread of the runs (min-max, and each run's) and passes only when every
run passes. Writes them to bench/out/kafka-results.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import queue
import resource
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench.generate import SEED, write_book
from bench.kafka_raw import consume_only, consume_reproduce, produce_lines
from consumers.intake import Intake
from consumers.projector import Projector
from consumers.relay import Relay
from consumers.topics import EVENTS, SALES, ensure_topics
from consumers.transport import transport
from ledger.core import Ledger
from ledger.kafka.broker import EmbeddedBroker
from ledger.kafka.settings import KafkaSettings
from ledger.projections.reader import from_projection, store_position
from replay.rebuild import replay_projection

PIPELINE_RATIO_MIN = 0.30
REPLAY_RATIO_MIN = 0.30
REPLAY_SECONDS_MAX = 60.0


def say(text: str) -> None:
    print(text, flush=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.kafka_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=1_000_000)
    parser.add_argument("--agreements", type=int, default=1000)
    parser.add_argument("--client", choices=["confluent", "kafka-python"], default="confluent")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    parser.add_argument("--quick", action="store_true", help="5,000 sales over 20 agreements")
    parser.add_argument("--runs", type=int, default=3,
                        help="runs, each on a fresh broker and store (default 3): the ratios "
                             "print as the spread over them, and pass when every run passes")
    parser.add_argument(
        "--workers", choices=["processes", "threads"], default="processes",
        help="run intake, relay and projection as separate processes (as deployed: separate "
        "services) or as threads of one process (as `demo` does)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sales, args.agreements = 5000, 20
    if args.runs < 1:
        parser.error("--runs: 1 or more")
    return args


def _worker_process(kind: str, url: str, settings_json: str, bootstrap: str, stop: Any,
                    cpu: Any, ready: Any, go: Any) -> None:
    """One pipeline worker in a process of its own (the benchmark's `--workers processes`):
    once imported and built it puts its kind on `ready` and waits for `go` (a service starts
    once, not per sale: the clock starts at `go`); when stopped, it puts (kind, CPU seconds
    used since `go`, the process's peak resident memory in MiB) on `cpu`."""
    settings = KafkaSettings.model_validate_json(settings_json)
    kafka = transport(settings, bootstrap)
    profile_dir = os.environ.get("BENCH_KAFKA_PROFILE")  # a folder: one cProfile per worker
    if profile_dir:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    with Ledger(url) as ledger:
        worker: Any
        join_s = 0.0
        if kind == "intake":
            worker = Intake(ledger, kafka, settings)
            join_s = join_group(worker)
        elif kind == "relay":
            worker = Relay(ledger, kafka, settings)
        else:
            worker = Projector(ledger, kafka, settings, names=("liability",))
        ready.put((kind, join_s))
        go.wait()
        cpu_at_go = time.process_time()
        try:
            worker.run(stop)  # intake: the records read while joining first, on the clock
        finally:
            worker.close()
            peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB (Linux)
            cpu.put((kind, time.process_time() - cpu_at_go, peak_mib))
            if profile_dir:
                profiler.disable()
                profiler.dump_stats(str(Path(profile_dir) / f"{kind}.prof"))


def join_group(intake: Intake, timeout_s: float = 120.0) -> float:
    """Intake's clients made and its group joined, as a service does once when it starts
    (untimed, as the raw ceiling's clients are made untimed): the broker's group join takes
    about 5 s here (docs/kafka-notes.md), which at 1,000,000 sales was a tenth of the
    pipeline's time. The records polled while waiting for the assignment are applied by
    intake's first `run_once`, on the clock. Returns the seconds the join took."""
    started = time.perf_counter()
    intake.wait_for_assignment(timeout_s)
    return time.perf_counter() - started


def projection_caught_up(ledger: Ledger, settings: KafkaSettings) -> bool:
    """Whether the live liability projection (fed in another process) holds the whole store."""
    return from_projection(ledger, "liability", lambda _: True, settings=settings) is not None


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user and system, all threads) used so far by process `pid`."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def pipeline_processes(
    ledger: Ledger, url: str, settings: KafkaSettings, bootstrap: str, sales: int,
    *, broker_pid: int | None = None,
) -> dict[str, Any]:
    """Intake, relay and projection as three processes, as the compose stack deploys them;
    time until the projection has caught up with a store that holds every produced sale.
    With `broker_pid`, the broker's CPU seconds over the same span are reported too (the
    workers share the machine's cores with it)."""
    context = multiprocessing.get_context("spawn")  # librdkafka's threads do not survive fork
    stop = context.Event()
    cpu, ready, go = context.Queue(), context.Queue(), context.Event()
    base = ledger.state()["accepted"]
    workers = [
        context.Process(target=_worker_process, daemon=True,
                        args=(kind, url, settings.model_dump_json(), bootstrap, stop, cpu,
                              ready, go))
        for kind in ("intake", "relay", "projection")
    ]
    for worker in workers:
        worker.start()

    def failed() -> str | None:
        dead = [w for w in workers if not w.is_alive()]
        return f"a worker process exited with {dead[0].exitcode}" if dead else None

    try:
        waiting = time.perf_counter()
        joins: dict[str, float] = {}
        for _ in workers:  # every worker imported and built (untimed)
            while True:
                try:
                    kind, join_s = ready.get(timeout=1)
                    joins[kind] = join_s
                    break
                except queue.Empty:
                    problem = failed()
                    if problem is not None or time.perf_counter() - waiting > 600:
                        why = problem or "the workers did not start in 600 s"
                        raise RuntimeError(why) from None
        started = time.perf_counter()
        parent_cpu = time.process_time()
        broker_cpu = process_cpu_s(broker_pid) if broker_pid is not None else 0.0
        go.set()
        intake_done: list[float] = []  # when the store first held every sale

        def caught_up() -> bool:
            if not intake_done:
                if ledger.state()["accepted"] - base < sales:
                    return False
                intake_done.append(time.perf_counter() - started)
            return projection_caught_up(ledger, settings)

        seconds = wait_caught_up(started, failed, caught_up)
        if broker_pid is not None:
            broker_cpu = process_cpu_s(broker_pid) - broker_cpu
    finally:
        stop.set()
        go.set()  # a worker still waiting for it sees `stop` and ends
        for worker in workers:
            worker.join(60)
            if worker.is_alive():
                worker.kill()
    used: dict[str, float] = {}
    peak_mib: dict[str, float] = {}
    while len(used) < len(workers):
        try:
            kind, seconds_used, peak = cpu.get(timeout=5)
        except queue.Empty:
            break
        used[kind], peak_mib[kind] = seconds_used, peak
    used["bench (polling)"] = time.process_time() - parent_cpu
    if broker_pid is not None:
        used["broker"] = broker_cpu
    return {"sales": sales, "seconds": seconds, "sales_per_s": sales / seconds,
            "intake_done_s": intake_done[0], "intake_join_s_untimed": joins.get("intake"),
            "workers": "processes", "store_position": store_position(ledger),
            "cpu_seconds": dict(sorted(used.items())),
            "peak_rss_mib": dict(sorted(peak_mib.items())),
            "intake_poll_records": settings.intake_poll_records}


def wait_caught_up(
    started: float, failed: Callable[[], str | None], caught_up: Callable[[], bool]
) -> float:
    """Poll until `caught_up()`; raise as soon as `failed()` says why, or after an hour.
    Returns the seconds since `started`."""
    while not caught_up():
        problem = failed()
        if problem is not None:
            raise RuntimeError(problem)
        if time.perf_counter() - started > 3600:
            raise RuntimeError("the pipeline did not catch up within an hour")
        time.sleep(0.05)
    return time.perf_counter() - started


def pipeline_run(
    ledger: Ledger, settings: KafkaSettings, bootstrap: str, sales: int
) -> dict[str, Any]:
    """Start intake, relay and projection in threads; time until the projection has caught up
    with a store that holds every produced sale."""
    kafka = transport(settings, bootstrap)
    base = ledger.state()["accepted"]
    stop = threading.Event()
    intake = Intake(ledger, kafka, settings)
    relay = Relay(ledger, kafka, settings)
    projector = Projector(ledger, kafka, settings, names=("liability",))
    errors: list[BaseException] = []

    def guard(loop: Any) -> Any:
        def target() -> None:
            try:
                loop(stop)
            except BaseException as error:
                errors.append(error)
        return target

    threads = [threading.Thread(target=guard(w.run), daemon=True)
               for w in (intake, relay, projector)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    try:
        seconds = wait_caught_up(
            started, lambda: f"a worker failed: {errors[0]!r}" if errors else None,
            lambda: ledger.state()["accepted"] - base >= sales
            and projector.caught_up_to() >= store_position(ledger),
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        for worker in (intake, relay, projector):
            worker.close()
    return {"sales": sales, "seconds": seconds, "sales_per_s": sales / seconds,
            "workers": "threads", "store_position": store_position(ledger)}


def one_run(args: argparse.Namespace, book: Any, run: int) -> dict[str, Any]:
    """One run on a fresh broker and a fresh store: raw ceiling, pipeline, raw consume of the
    events topic, replay; each figure printed as it comes."""
    def tell(text: str) -> None:
        say(f"[run {run}/{args.runs}] {text}")

    with tempfile.TemporaryDirectory(dir=args.out) as folder, \
            EmbeddedBroker(Path(folder)) as broker:
        settings = KafkaSettings(client=args.client, topic_prefix="bench.", partitions=4)
        kafka = transport(settings, broker.bootstrap)
        admin = kafka.admin()
        ensure_topics(admin, settings)
        admin.close()
        url = f"sqlite:///{Path(folder) / 'ledger.db'}"
        with Ledger(url) as ledger:
            with book.agreements_path.open("rb") as lines:
                report = ledger.apply_lines(lines)
            assert not report.rejected, report.to_dict()
            tell("producing the sales to the sales topic (untimed) ...")
            with book.sales_path.open("rb") as lines:
                produced = produce_lines(kafka, settings.topic(SALES), lines)
            assert produced == args.sales, produced

            tell("raw ceiling: consume the sales topic and produce every record again ...")
            raw = consume_reproduce(kafka, settings.topic(SALES), settings.topic("copy"),
                                    produced)
            tell(f"  {raw['records_per_s']:,.0f} records/s")

            tell(f"pipeline: intake + relay + liability projection ({args.workers}) until "
                 "caught up ...")
            if args.workers == "processes":
                pipeline = pipeline_processes(ledger, url, settings, broker.bootstrap, produced,
                                              broker_pid=broker.pid)
            else:
                pipeline = pipeline_run(ledger, settings, broker.bootstrap, produced)
            cpu = pipeline.get("cpu_seconds")
            peak = pipeline.get("peak_rss_mib")
            done = pipeline.get("intake_done_s")
            join = pipeline.get("intake_join_s_untimed")
            if join is not None:
                tell(f"  (intake joined its group in {join:.1f} s before the clock started)")
            tell(f"  {pipeline['sales_per_s']:,.0f} sales/s ({pipeline['seconds']:.1f} s"
                 + (f"; every sale in the store at {done:.1f} s" if done is not None else "")
                 + ")"
                 + (" CPU s: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
                    if cpu else ""))
            if peak:
                tell(f"  peak RSS MiB ({pipeline['intake_poll_records']:,} records a poll): "
                     + ", ".join(f"{k} {v:.0f}" for k, v in peak.items()))
            ratio = pipeline["sales_per_s"] / raw["records_per_s"]
            tell(f"  pipeline / raw consume+produce: {ratio:.2f}")

            events_topic = settings.topic(EVENTS)
            tell("raw consume of the events topic ...")
            # every record the relay published: events, sales parts and watermarks
            counted = count_records(kafka, events_topic)
            consume = consume_only(kafka, events_topic, counted)
            tell(f"  {consume['records_per_s']:,.0f} records/s over {counted:,} records")

            tell("replay: rebuild the liability projection from the start of the log ...")
            profile_dir = os.environ.get("BENCH_KAFKA_PROFILE")
            if profile_dir:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            started, cpu_started = time.perf_counter(), time.process_time()
            replay_projection(ledger, "liability", kafka, settings, publish=False)
            replay_s = time.perf_counter() - started
            # this process's CPU (librdkafka's threads included): less load-sensitive than time
            replay_cpu = time.process_time() - cpu_started
            if profile_dir:
                profiler.disable()
                profiler.dump_stats(str(Path(profile_dir) / "replay.prof"))
            replay_rate = counted / replay_s
            replay_ratio = replay_rate / consume["records_per_s"]
            tell(f"  {replay_s:.1f} s ({replay_cpu:.1f} CPU s), {args.sales / replay_s:,.0f} "
                 f"sales/s, {replay_rate:,.0f} records/s; replay / raw consume: "
                 f"{replay_ratio:.2f}")
    return {
        "raw_consume_produce": raw, "pipeline": pipeline, "raw_consume_events": consume,
        "replay": {"seconds": replay_s, "cpu_seconds": replay_cpu, "records": counted,
                   "records_per_s": replay_rate, "sales_per_s": args.sales / replay_s},
        "pipeline_over_raw": ratio, "replay_over_raw": replay_ratio,
        "replay_seconds_per_million": replay_s * 1_000_000 / args.sales,
        "load_average_at_end": os.getloadavg(),
    }


def spread(values: list[float]) -> str:
    """`min-max (a, b, c)`: the spread of the runs' figures, in run order."""
    shown = ", ".join(f"{v:.2f}" for v in values)
    return f"{min(values):.2f}-{max(values):.2f} over {len(values)} runs ({shown})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "config": {"sales": args.sales, "agreements": args.agreements, "client": args.client,
                   "workers": args.workers, "runs": args.runs},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_at_start": os.getloadavg()},
    }
    say(f"kafka bench: {args.sales:,} sales over {args.agreements:,} agreements, "
        f"client {args.client}, {args.runs} runs, load average {os.getloadavg()[0]:.2f}")
    book = write_book(args.out, sales=args.sales, agreements=args.agreements, seed=SEED,
                      name="kafka")
    runs = [one_run(args, book, run) for run in range(1, args.runs + 1)]
    # Each verdict is the worst run's: a ratio passes when every run passes it
    ratios = [r["pipeline_over_raw"] for r in runs]
    replay_ratios = [r["replay_over_raw"] for r in runs]
    scaled = [r["replay_seconds_per_million"] for r in runs]
    ok_pipeline = min(ratios) >= PIPELINE_RATIO_MIN
    ok_replay = min(replay_ratios) >= REPLAY_RATIO_MIN
    ok_seconds = max(scaled) < REPLAY_SECONDS_MAX
    say(f"ratio pipeline / raw consume+produce: {spread(ratios)} "
        f"(target >= {PIPELINE_RATIO_MIN} in every run) {verdict(ok_pipeline)}")
    say(f"ratio replay / raw consume: {spread(replay_ratios)} (target >= {REPLAY_RATIO_MIN} "
        f"in every run) {verdict(ok_replay)}")
    say(f"replay time per 1,000,000 sales: {min(scaled):.1f}-{max(scaled):.1f} s over "
        f"{len(scaled)} runs (target < {REPLAY_SECONDS_MAX:.0f} s) {verdict(ok_seconds)}")
    last = runs[-1]
    results.update({
        # the last run's figures at the top level; every run's under "runs"
        "raw_consume_produce": last["raw_consume_produce"], "pipeline": last["pipeline"],
        "raw_consume_events": last["raw_consume_events"], "replay": last["replay"],
        "runs": runs,
        "targets": {
            "pipeline_over_raw": {"ratio": min(ratios), "ratios": ratios,
                                  "target": f">= {PIPELINE_RATIO_MIN}", "pass": ok_pipeline},
            "replay_over_raw": {"ratio": min(replay_ratios), "ratios": replay_ratios,
                                "target": f">= {REPLAY_RATIO_MIN}", "pass": ok_replay},
            "replay_seconds_per_million": {"seconds": max(scaled), "all_seconds": scaled,
                                           "target": f"< {REPLAY_SECONDS_MAX}",
                                           "pass": ok_seconds},
        },
    })
    results["machine"]["load_average_at_end"] = os.getloadavg()
    say(f"load average at start {results['machine']['load_average_at_start'][0]:.2f}, at end "
        f"{results['machine']['load_average_at_end'][0]:.2f} on {os.cpu_count()} CPUs")
    (args.out / "kafka-results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


def count_records(kafka: Any, topic: str) -> int:
    """How many records `topic` holds, by reading it to the end (end_offsets() is not
    trusted on the embedded broker): read until a poll of 2 s brings nothing."""
    from consumers.transport import TopicPartition

    admin = kafka.admin()
    partitions = admin.list_topics()[topic]
    admin.close()
    consumer = kafka.consumer()
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    count = 0
    try:
        while True:
            records = consumer.poll(50_000, 2.0)
            if not records:
                return count
            count += len(records)
    finally:
        consumer.close()


if __name__ == "__main__":
    raise SystemExit(main())
