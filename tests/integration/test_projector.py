"""The projection worker (`consumers.projector.Projector`) and the `replay`, `audit-view` and
`liability` commands on the real embedded broker, SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from consumers.projector import Projector
from consumers.relay import Relay, relay_state
from consumers.transport import Transport, transport
from ledger import Ledger
from ledger.config import Settings
from ledger.kafka.broker import EmbeddedBroker
from ledger.kafka.settings import KafkaSettings
from ledger.projections import core
from ledger.projections.generations import live_generation, live_or_new, projection_registry
from ledger.projections.read_models import LiabilityModel, claim_rows
from ledger.projections.reader import CORE, liability_answer, store_position
from ledger.projections.runner import projection_offsets
from replay.rebuild import replay_projection
from tests.contract import helpers as h

from .conftest import settings_for

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 3
_PREFIXES = itertools.count(1)
START = datetime(2025, 1, 1, tzinfo=UTC)
AS_OF = date(2025, 12, 31)


def unique_settings(client: str = "confluent") -> KafkaSettings:
    prefix = f"projector{os.getpid()}x{next(_PREFIXES)}."
    return settings_for(client, topic_prefix=prefix, partitions=PARTITIONS)


def small_book(first_sale: int = 1, sales: int = 12, first_hour: int = 0) -> list[h.Command]:
    """Three agreements, sales spread over their customers, a claim approved and settled."""
    commands: list[h.Command] = [
        h.agreement(f"A{n}", customer_id=f"C{n}", tiers=(("0", "1"), ("10", "2")))
        for n in (1, 2, 3)
    ]
    for n in range(first_sale, first_sale + sales):
        commands.append(h.sale(f"S{n}", f"{n % 4 + 1}", f"{10 * n}.50",
                               (date(2025, 2, 1) + timedelta(days=n % 90)).isoformat(),
                               customer_id=f"C{n % 3 + 1}"))
    commands += [h.submit("K1", "2", agreement_id="A1"), h.approve("K1", approved_amount="2"),
                 h.settle("K1", paid_amount="1.5")]
    return [h.at((START + timedelta(hours=first_hour + i)).isoformat(), c)
            for i, c in enumerate(commands)]


def apply_clean(ledger: Ledger, commands: list[h.Command]) -> None:
    report = ledger.apply(commands)
    assert not report.rejected, report.to_dict()["rejections"]


def publish(ledger: Ledger, kafka: Transport, settings: KafkaSettings) -> int:
    with Relay(ledger, kafka, settings, chunk_records=10) as relay:
        relay.run_once()
    return store_position(ledger)


def run_until(projector: Projector, position: int, limit: int = 200) -> None:
    for _ in range(limit):
        if projector.caught_up_to() >= position:
            return
        projector.run_once(0.2)
    raise AssertionError(f"not caught up with {position}: {projector.counters()}")


@pytest.fixture
def book_ledger(database_url: str):  # type: ignore[no-untyped-def]
    with Ledger(database_url, settings=Settings(chunk_lines=5)) as ledger:
        yield ledger


def test_projector_feeds_every_projection_and_follows_a_replay(
    book_ledger: Ledger, kafka_broker: EmbeddedBroker
) -> None:
    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    apply_clean(book_ledger, small_book())
    position = publish(book_ledger, kafka, settings)
    with Projector(book_ledger, kafka, settings, poll_records=7) as projector:
        assert projector.caught_up_to() == 0
        run_until(projector, position)
        assert projector.caught_up_to() == position
        counters = projector.counters()
        assert set(counters) == {"liability", "claims", "sales"}
        assert all(c["applied"] > 0 and c["watermark"] == position for c in counters.values())
        rows, source = liability_answer(book_ledger, AS_OF, settings=settings)
        assert source == "projection liability g1"
        assert rows == book_ledger.liability(AS_OF) and any(r.liability for r in rows)

        # a replay swaps generation 2 in and drops 1: the worker follows it
        replay_projection(book_ledger, "liability", kafka, settings)
        more = small_book(first_sale=100, sales=4, first_hour=100)
        apply_clean(book_ledger, [c for c in more if c["type"] == "record_sale"])
        position = publish(book_ledger, kafka, settings)
        _, source = liability_answer(book_ledger, AS_OF, settings=settings)
        assert source == CORE  # the projection has not seen the new sales yet
        run_until(projector, position)
        generation = live_generation(book_ledger.engine, "liability")
        assert generation is not None and generation.number == 2
        rows, source = liability_answer(book_ledger, AS_OF, settings=settings)
        assert source == "projection liability g2"
        assert rows == book_ledger.liability(AS_OF)
    with book_ledger.engine.connect() as connection:
        registry = {row.name: (row.generation, row.location)
                    for row in connection.execute(select(projection_registry))}
    assert registry["liability"] == (2, generation.location)
    claims = live_generation(book_ledger.engine, "claims")
    assert claims is not None
    engine = claims.engine(read_only=True)
    try:
        with Session(engine) as session:
            (claim,) = claim_rows(session)
    finally:
        engine.dispose()
    assert (claim.claim_id, claim.status, claim.approved, claim.paid) == (
        "K1", "settled", Decimal("2"), Decimal("1.5"))


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args], cwd=ROOT, env=env, capture_output=True,
        timeout=120, check=False,
    )


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_cli_replay_and_audit_view_find_an_altered_core_row_on_postgres(
    database_url: str, kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """The commands on PostgreSQL (test_projections.py runs them on SQLite): a projection in
    a schema of its own, and an altered `core_basis` row caught by the audit view."""
    settings = unique_settings()
    with Ledger(database_url, settings=Settings(chunk_lines=5)) as ledger:
        apply_clean(ledger, small_book())
        expected = [r.to_dict() for r in ledger.liability(AS_OF)]
    env = {**os.environ, "LEDGER_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
           "LEDGER_KAFKA_TOPIC_PREFIX": settings.topic_prefix,
           "LEDGER_KAFKA_PARTITIONS": str(PARTITIONS), "LEDGER_HOME": str(tmp_path / "home"),
           "LEDGER_DATABASE_URL": database_url}
    # no projection yet: the core answers, and says so on stderr (table format only)
    done = _cli(["liability", "--as-of", AS_OF.isoformat(), "-v"], env)
    assert done.returncode == 0 and "answered from core" in done.stderr.decode()
    done = _cli(["liability", "--as-of", AS_OF.isoformat(), "--format", "json"], env)
    assert done.returncode == 0 and b"answered from" not in done.stderr
    done = _cli(["liability", "--as-of", AS_OF.isoformat()], env)  # no internal words
    assert done.returncode == 0 and b"answered from" not in done.stderr

    done = _cli(["replay", "liability"], env)
    assert done.returncode == 0, done.stderr.decode()
    assert "replay: liability generation 1 is live" in done.stdout.decode()
    done = _cli(["liability", "--as-of", AS_OF.isoformat(), "--format", "json"], env)
    assert orjson.loads(done.stdout)["rows"] == expected
    done = _cli(["liability", "--as-of", AS_OF.isoformat(), "--verbose"], env)
    assert "answered from projection liability g1" in done.stderr.decode()

    done = _cli(["audit-view", "--as-of", AS_OF.isoformat(), "--format", "json"], env)
    assert done.returncode == 0, done.stderr.decode()
    report = orjson.loads(done.stdout)
    assert report["differences"] == [] and report["rows"] == len(expected)
    assert report["projection"] == {"source": "projection liability g1", "rows": len(expected),
                                    "differences": []}

    # behind the ledger's back: the basis of customer C2 counts twice its quantity and amount
    # (in both read tables the liability may read: its rows, and its whole blocks)
    with Ledger(database_url) as ledger, ledger.engine.begin() as connection:
        for table in (core.basis_table, core.basis_blocks):
            connection.execute(
                update(table).where(table.c.customer_id == "C2")
                .values(q_micro=table.c.q_micro * 2, a_micro=table.c.a_micro * 2)
            )
    done = _cli(["audit-view", "--as-of", AS_OF.isoformat(), "--format", "json"], env)
    assert done.returncode == 1, done.stderr.decode()
    differences = orjson.loads(done.stdout)["differences"]
    assert {d["agreement_id"] for d in differences} == {"A2"}
    assert {"basis", "liability"} <= {d["field"] for d in differences}
    (basis_difference,) = [d for d in differences if d["field"] == "basis"]
    a2 = next(row for row in expected if row["agreement_id"] == "A2")
    assert basis_difference["log"] == a2["basis"]
    assert basis_difference["core"] != basis_difference["log"]
    done = _cli(["audit-view", "--as-of", AS_OF.isoformat()], env)
    assert done.returncode == 1
    assert "differences" in done.stdout.decode() and "A2" in done.stdout.decode()
    done = _cli(["audit-view", "--as-of", AS_OF.isoformat(), "--format", "csv"], env)
    assert done.returncode == 1
    header, *lines = done.stdout.decode().splitlines()
    assert header == "agreement_id,field,log,core,projection"
    assert len(lines) == len(differences)
    assert {line.split(",")[0] for line in lines} == {"A2"}
    # the live projection (generation 1) was built from the log: it agrees with the log
    assert any(line.split(",")[2] == line.split(",")[4] != line.split(",")[3] for line in lines)
    assert f"A2,basis,{a2['basis']}," in done.stdout.decode()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_dropping_an_old_generation_does_not_deadlock_with_its_last_reader(
    database_url: str,
) -> None:
    """PostgreSQL: a reader that took the pointer just before a swap reads the old schema
    table after table while DROP SCHEMA ... CASCADE locks it table after table: without the
    drop's lock timeout and retries, one of them dies of a deadlock."""
    with Ledger(database_url) as ledger:
        old = live_or_new(ledger.engine, "liability")
        engine = old.engine()
        LiabilityModel().create(engine)
        projection_offsets.create(engine, checkfirst=True)
        errors: list[BaseException] = []
        try:
            with engine.connect() as reader:
                reader.execute(select(projection_offsets)).all()  # as the reader does first
                dropper = threading.Thread(
                    target=lambda: _catch(errors, lambda: old.drop(ledger.engine))
                )
                dropper.start()
                time.sleep(0.3)  # the drop now holds some tables and waits for this one
                for table in core.metadata.sorted_tables:
                    reader.execute(select(table)).all()  # must not die of a deadlock
                time.sleep(1.2)  # past the deadlock timeout (1 s): nobody was a victim
                assert old.exists(ledger.engine)
                reader.rollback()
            dropper.join(30)
        finally:
            engine.dispose()
        assert not errors, errors
        assert not old.exists(ledger.engine)


def _catch(errors: list[BaseException], work: Callable[[], None]) -> None:
    try:
        work()
    except BaseException as error:  # noqa: BLE001 - asserted by the test
        errors.append(error)


def wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str,
    threads: Sequence[threading.Thread] = (),
) -> None:
    """Wait until `condition()`; fail at once when one of `threads` has stopped (its
    exception is then in pytest's thread-exception warning)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        stopped = [thread.name for thread in threads if not thread.is_alive()]
        if stopped:
            raise AssertionError(f"{', '.join(stopped)} stopped while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_broker_restarted_empty_under_running_relay_and_projector(
    database_url: str, tmp_path: Path, client: str
) -> None:
    """The broker dies and an empty one takes its port while the relay and the projector run
    in threads and the store grows: the relay refills it, the projector notices the new
    cluster id, reads again from offset 0 and ends equal to the core, nothing lost or
    counted twice. The first log is written in many small chunks (many watermarks), the
    refill in large ones, so the offsets of the two logs disagree."""
    settings = unique_settings(client)
    broker = EmbeddedBroker(tmp_path / "kafka")
    broker.start()
    port, first_cluster = broker.port, broker.cluster_id
    stop = threading.Event()
    try:
        kafka = transport(settings, broker.bootstrap)
        with Ledger(database_url, settings=Settings(chunk_lines=2)) as ledger, \
                Relay(ledger, kafka, settings, chunk_records=3) as relay, \
                Projector(ledger, kafka, settings, names=("liability",)) as projector:
            threads = [
                threading.Thread(target=relay.run, args=(stop, 0.02),
                                 kwargs={"retry_sleep_s": 0.2}, name="the relay thread"),
                threading.Thread(target=projector.run, args=(stop,),
                                 kwargs={"retry_sleep_s": 0.2}, name="the projector thread"),
            ]
            for thread in threads:
                thread.start()
            commands = small_book(sales=60)
            for start in range(0, len(commands), 6):  # the store grows while published
                apply_clean(ledger, commands[start:start + 6])
                time.sleep(0.02)
            position = store_position(ledger)
            wait_for(lambda: projector.caught_up_to() >= position, 30, "the first log", threads)
            broker.stop()
            relay.chunk_records = 1000  # the refill: few chunks, few watermarks
            broker = EmbeddedBroker(tmp_path / "kafka", port=port)
            broker.start()
            assert broker.cluster_id != first_cluster
            more = small_book(first_sale=500, sales=30, first_hour=500)
            apply_clean(ledger, [c for c in more if c["type"] == "record_sale"])
            position = store_position(ledger)
            wait_for(lambda: relay.refills >= 1 and projector.caught_up_to() >= position, 60,
                     "the refilled log", threads)
            stop.set()
            for thread in threads:
                thread.join(30)
            assert relay.refills == 1
            assert projector.runners["liability"].reseeks >= 1
            assert projector.runners["liability"].skipped > 0
            rows, source = liability_answer(ledger, AS_OF, settings=settings)
            assert source.startswith("projection liability")
            for as_of in (date(2025, 3, 1), AS_OF):
                rows, _ = liability_answer(ledger, as_of, settings=settings)
                assert rows == ledger.liability(as_of)
            assert any(r.liability for r in rows)
    finally:
        stop.set()
        broker.stop()


def test_a_projection_never_reads_an_events_topic_partitioned_otherwise_than_its_positions(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The CI failure this guards against: the broker came back empty and the embedded broker
    created the events topic with its default 4 partitions on the kafka-python consumer's
    metadata request; a relay that did not know its count (a store from before it kept it)
    refilled that topic, and the projection, keeping its positions per partition, applied
    events a second time. Now the projection reads nothing from a topic partitioned otherwise
    (queries answer from the core) until it is rebuilt with replay, which adopts the count."""
    settings = unique_settings("kafka-python")
    topic = settings.topic("events")
    broker = EmbeddedBroker(tmp_path / "kafka")
    broker.start()
    port = broker.port
    try:
        kafka = transport(settings, broker.bootstrap)
        with Ledger(sqlite_url, settings=Settings(chunk_lines=3)) as ledger, \
                Projector(ledger, kafka, settings, names=("liability",)) as projector:
            apply_clean(ledger, small_book())
            run_until(projector, publish(ledger, kafka, settings))
            broker.stop()
            broker = EmbeddedBroker(tmp_path / "kafka", port=port)
            broker.start()
            runner = projector.runners["liability"]
            for _ in range(3):  # the consumer's metadata requests make the topic, 4 partitions
                runner.step(0.3)
            admin = kafka.admin()
            try:
                admin.create_topics([topic], 4)  # in case the client did not make it
                assert admin.list_topics()[topic] == 4
            finally:
                admin.close()
            with ledger.engine.begin() as connection:  # a relay that never stored its count
                connection.execute(update(relay_state).values(partitions=None))
            apply_clean(ledger, small_book(first_sale=100, sales=6, first_hour=300)[3:-3])
            position = publish(ledger, kafka, settings)  # the refill, into 4 partitions
            applied = runner.applied
            for _ in range(10):
                runner.step(0.3)
            assert runner.applied == applied  # read nothing: no event counted twice
            assert runner.reseeks == 1
            assert runner.caught_up_to() < position
            rows, source = liability_answer(ledger, AS_OF, settings=settings)
            assert source == CORE
        with Ledger(sqlite_url) as ledger:
            replay_projection(ledger, "liability", kafka, settings, publish=False)
            rows, source = liability_answer(ledger, AS_OF, settings=settings)
            assert source.startswith("projection liability")
            assert rows == ledger.liability(AS_OF)
            assert any(row.liability for row in rows)
    finally:
        broker.stop()


def test_project_command_with_a_broker_of_its_own_fills_it_from_the_store(
    sqlite_url: str, tmp_path: Path
) -> None:
    """No cluster configured and no `rebate-ledger broker` running: `project` starts a private
    (empty) broker, has the relay fill it from the store, and catches every projection up."""
    with Ledger(sqlite_url, settings=Settings(chunk_lines=5)) as ledger:
        apply_clean(ledger, small_book())
        position = store_position(ledger)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("LEDGER_KAFKA_")}
    env.update({"LEDGER_HOME": str(tmp_path / "home"), "LEDGER_DATABASE_URL": sqlite_url,
                "LEDGER_KAFKA_TOPIC_PREFIX": unique_settings().topic_prefix})
    done = _cli(["project", "--until-idle", "1"], env)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert f"filled from the store up to position {position}" in out
    lines = {line.split(":")[1].strip(): line for line in out.splitlines()
             if line.startswith("project: ") and "applied" in line}
    assert set(lines) == {"liability", "claims", "sales"}
    assert all(line.endswith(f"watermark {position}") for line in lines.values()), lines
    done = _cli(["liability", "--as-of", AS_OF.isoformat(), "-v"], env)
    assert done.returncode == 0
    assert "answered from projection liability g1" in done.stderr.decode()
