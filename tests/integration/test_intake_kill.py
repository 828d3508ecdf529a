"""`kill -9` of `rebate-ledger intake` at random moments, then a restart: the store ends exactly
as applying the same lines with `Ledger.apply_lines` leaves a fresh one. No sale counted twice,
none lost, every poison record rejected exactly once in the store and at least once on the
rejected topic; on SQLite and PostgreSQL, with both clients."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from bench.generate import write_book
from consumers.intake import (
    FIELD_HEADER,
    REASON_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
    Intake,
    intake_metadata,
    intake_positions,
    produce_lines,
)
from consumers.topics import COMMANDS, REJECTED, SALES
from consumers.transport import Record, TopicPartition, Transport, transport
from ledger import Ledger
from ledger.config import Settings
from ledger.kafka.broker import EmbeddedBroker
from ledger.kafka.settings import KafkaSettings
from ledger.projections.core import ledger_state, rejections, reversals
from ledger.projections.core import sales as core_sales
from tests.integration.conftest import settings_for

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "rebate-ledger")
PARTITIONS = 4
#: Records per intake transaction in the killed processes: many commit boundaries to die at.
CHUNK_LINES = 500
SALES_COUNT = 30_000
AS_OF = (date(2025, 6, 30), date(2025, 12, 31))
_PREFIXES = itertools.count(1)

AGREEMENT = (
    b'{"type":"create_agreement","agreement_id":"A00001","customer_id":"C00001",'
    b'"currency":"EUR","period_start":"2025-01-01","period_end":"2025-12-31",'
    b'"basis":"amount","tier_method":"retroactive","rate_kind":"percent",'
    b'"tiers":[{"from":"0","rate":"0.01"}]}'
)


@dataclass(frozen=True)
class Book:
    commands: list[bytes]  # to the commands topic
    sales: list[bytes]  # to the sales topic
    poison: dict[str, set[bytes]]  # topic name (unprefixed) -> the records rejected
    reference: dict[str, Any]  # what apply_lines of the good lines leaves


def poison_sales(first_sale: bytes) -> list[bytes]:
    """One record of every kind intake must reject on the sales topic."""
    sale = orjson.loads(first_sale)
    changed = dict(sale, amount="999999.99")  # the same sale_id with different fields
    future = dict(sale, sale_id="POISON-FUTURE", recorded_at="2999-01-01T00:00:00Z")
    return [
        b"not json at all",
        b"[1, 2, 3]",
        b'{"type": "record_sale", "sale_id": "POISON-3", "customer_id": "C00001"}',
        AGREEMENT.replace(b"A00001", b"POISON-ON-SALES"),  # a valid command, not a sale
        b'{"type": "reverse_sale", "sale_id": "NO-SUCH-SALE", "reversed_on": "2025-12-31"}',
        orjson.dumps(changed),
        orjson.dumps(future),
    ]


def summary(ledger: Ledger) -> dict[str, Any]:
    """What must be the same as the reference: liabilities, core sale counts and sums."""
    with ledger.engine.connect() as connection:
        sales_rows = connection.execute(
            select(core_sales.c.a_micro, core_sales.c.amount, core_sales.c.q_micro)
        ).all()
        state = connection.execute(select(ledger_state)).one()
        reversed_count = connection.execute(
            select(func.count()).select_from(reversals)
        ).scalar_one()
    return {
        "liability": {
            str(d): [row.to_dict() for row in ledger.liability(d)] for d in AS_OF
        },
        "sales": len(sales_rows),
        "amount_micro": sum(r.a_micro or 0 for r in sales_rows),
        "quantity_micro": sum(r.q_micro or 0 for r in sales_rows),
        "inexact": sorted(r.amount for r in sales_rows if r.amount is not None),
        "reversals": reversed_count,
        "accepted": state.accepted,
    }


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Book:
    folder = tmp_path_factory.mktemp("intake-book")
    write_book(folder, sales=SALES_COUNT, agreements=100)
    commands = (folder / "book-agreements.jsonl").read_bytes().splitlines()
    sales = (folder / "book-sales.jsonl").read_bytes().splitlines()
    rng = random.Random(7)
    good = list(sales)
    # reversals of some sales and identical re-sends (duplicates), later in the stream
    picked = rng.sample(sales, 150)
    good += [
        orjson.dumps({"type": "reverse_sale", "sale_id": orjson.loads(line)["sale_id"],
                      "reversed_on": "2025-12-31"})
        for line in picked[:100]
    ]
    good += picked[100:]
    bad = poison_sales(sales[0])
    stream = list(good)
    for index, record in enumerate(bad):  # spread through the stream, after their originals
        stream.insert((index + 1) * len(stream) // (len(bad) + 1), record)
    taken = orjson.loads(commands[3])["agreement_id"].encode()  # an id already used
    command_poison = [b"{", AGREEMENT.replace(b"A00001", taken)]
    command_stream = commands[:50] + command_poison[:1] + commands[50:] + command_poison[1:]
    with Ledger(f"sqlite:///{folder / 'reference.db'}") as reference:
        reference.apply_lines(commands)
        reference.apply_lines(good)
        expected = summary(reference)
    assert expected["reversals"] == 100 and expected["sales"] == SALES_COUNT
    return Book(
        command_stream, stream, {SALES: {*bad, b""}, COMMANDS: set(command_poison)}, expected
    )


def kill_env(settings: KafkaSettings, bootstrap: str, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "LEDGER_HOME": str(home),
            "LEDGER_CHUNK_LINES": str(CHUNK_LINES),
            "LEDGER_KAFKA_INTAKE_POLL_RECORDS": str(CHUNK_LINES),
            "LEDGER_KAFKA_BOOTSTRAP": bootstrap,
            "LEDGER_KAFKA_CLIENT": settings.client,
            "LEDGER_KAFKA_TOPIC_PREFIX": settings.topic_prefix,
            "LEDGER_KAFKA_PARTITIONS": str(PARTITIONS),
            "LEDGER_KAFKA_SESSION_TIMEOUT_MS": str(settings.session_timeout_ms),
            "LEDGER_KAFKA_HEARTBEAT_INTERVAL_MS": str(settings.heartbeat_interval_ms),
            "LEDGER_KAFKA_REQUEST_TIMEOUT_MS": "10000",
            "LEDGER_KAFKA_SEND_TIMEOUT_MS": "10000",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def applied_offsets(ledger: Ledger, topics: list[str]) -> int:
    """The records the store has applied or rejected: the sum of its stored next offsets
    (fresh topics from an idempotent producer have no holes)."""
    with ledger.engine.connect() as connection:
        total = connection.execute(
            select(func.coalesce(func.sum(intake_positions.c.next_offset), 0)).where(
                intake_positions.c.topic.in_(topics)
            )
        ).scalar_one()
    return int(total)


def read_all(kafka: Transport, topic: str, idle_s: float = 1.5) -> list[Record]:
    """Every record of `topic`, read until a poll comes back empty after `idle_s`."""
    consumer = kafka.consumer()
    records: list[Record] = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = consumer.poll(10_000, idle_s)
            if not batch:
                break
            records += batch
    finally:
        consumer.close()
    return records


@pytest.fixture
def prefixed(client: str) -> KafkaSettings:
    prefix = f"kill{os.getpid()}x{next(_PREFIXES)}."
    return settings_for(client, topic_prefix=prefix, partitions=PARTITIONS)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:  # a failed assertion must not leave one running
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_intake_killed_at_random_moments_counts_everything_exactly_once(
    book: Book,
    kafka_broker: EmbeddedBroker,
    database_url: str,
    prefixed: KafkaSettings,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    # a killed member holds its partitions until its session expires: keep that short
    settings = prefixed.model_copy(update={"session_timeout_ms": 2000})
    kafka = transport(settings, kafka_broker.bootstrap)
    # produced with librdkafka whatever the client under test (it only makes the input)
    producer = transport(settings_for("confluent"), kafka_broker.bootstrap).producer()
    try:
        produce_lines(producer, settings.topic(COMMANDS), book.commands, key_field="agreement_id")
        produce_lines(producer, settings.topic(SALES), book.sales, key_field="customer_id")
        # (produce_lines leaves blank lines out, as `apply` does: an empty record, by hand)
        producer.send(settings.topic(SALES), b"C00001", b"")
        producer.flush(30)
    finally:
        producer.close()
    total = len(book.commands) + len(book.sales) + 1
    topics = [settings.topic(SALES), settings.topic(COMMANDS)]
    env = kill_env(settings, kafka_broker.bootstrap, tmp_path / "home")
    # one group per test: the session's broker is shared, and a group whose members read other
    # topics (other tests' prefixes) can keep a new member waiting for its assignment
    group = f"{settings.topic_prefix}intake"
    command = [CLI, "intake", "--database", database_url, "--group", group, "--until-idle", "60"]
    positions: list[int] = []
    mid_run = 0
    started = time.monotonic()
    with Ledger(database_url, settings=Settings(chunk_lines=CHUNK_LINES)) as ledger:
        intake_metadata.create_all(ledger.engine)  # to watch the positions from the start
        for trial in range(4):
            before = applied_offsets(ledger, topics) if trial else 0
            process = subprocess.Popen(
                command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            processes.append(process)
            if trial < 3:  # mid-run: once a random share of what is left has been applied
                # (a target in records, not in seconds: a fast machine applies it all in the
                # time a timed kill waits), then a few milliseconds more, at random
                target = before + max(1, int((total - before) * rng.uniform(0.1, 0.5)))
                deadline = time.monotonic() + 60
                while applied_offsets(ledger, topics) < target and process.poll() is None:
                    assert time.monotonic() < deadline, "intake made no progress"
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.03))
            else:  # any moment: starting, joining, applying
                time.sleep(rng.uniform(0.3, 4.0))
            assert process.poll() is None, process.communicate()[1].decode()[-3000:]
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
            assert process.stderr is not None
            process.stderr.close()
            positions.append(applied_offsets(ledger, topics))
            print(f"trial {trial}: killed at {time.monotonic() - started:.1f} s, "
                  f"{positions[-1]} applied")
            mid_run += before < positions[-1] < total
        # the restart: in this process, until the stored positions cover every record
        with Intake(ledger, kafka, settings, group_id=group) as intake:
            deadline = time.monotonic() + 120
            while applied_offsets(ledger, topics) < total:
                assert time.monotonic() < deadline, (applied_offsets(ledger, topics), total)
                intake.run_once()
        print(
            f"seed {seed}: records applied after each kill {positions} of {total}; the "
            f"restart read {intake.counters.records}, skipped {intake.counters.skipped}"
        )
        got = summary(ledger)
        with ledger.engine.connect() as connection:
            kept = connection.execute(
                select(rejections.c.source, rejections.c.reason, rejections.c.field)
            ).all()
    # nothing lost, nothing counted twice: identical to apply_lines of the good lines
    assert got == book.reference
    # every poison record rejected exactly once in the store, nothing else rejected
    coordinates: dict[str, bytes] = {}
    for name in (SALES, COMMANDS):
        for record in read_all(kafka, settings.topic(name)):
            if (record.value or b"") in book.poison[name]:
                source = f"kafka:{record.topic}/{record.partition}@{record.offset}"
                coordinates[source] = record.value or b""
    assert len(coordinates) == sum(len(p) for p in book.poison.values())
    sources = [row.source for row in kept]
    assert sorted(sources) == sorted(coordinates)
    # ... and at least once on the rejected topic, with the original bytes, the same reason
    reasons = {row.source: (row.reason, row.field) for row in kept}
    on_topic: dict[str, int] = {}
    for record in read_all(kafka, settings.topic(REJECTED)):
        headers = {name: value.decode() for name, value in record.headers}
        source = (
            f"kafka:{headers[SOURCE_TOPIC_HEADER]}/{headers[SOURCE_PARTITION_HEADER]}"
            f"@{headers[SOURCE_OFFSET_HEADER]}"
        )
        assert source in coordinates, source
        assert (record.value or b"") == coordinates[source]
        assert (headers[REASON_HEADER], headers[FIELD_HEADER]) == reasons[source]
        on_topic[source] = on_topic.get(source, 0) + 1
    assert set(on_topic) == set(coordinates), set(coordinates) - set(on_topic)
    assert mid_run >= 3, f"only {mid_run} kills landed mid-run: {positions} of {total}"


def test_a_database_error_while_partitions_are_assigned_is_raised_and_retried(
    kafka_broker: EmbeddedBroker, sqlite_url: str, prefixed: KafkaSettings,
) -> None:
    """The store failing inside the client's assignment callback (where librdkafka would
    mangle the error and kafka-python only log it) surfaces from `run_once` before anything
    is applied; the next call rejoins, starts from the stored positions, and applies all."""
    from sqlalchemy.exc import OperationalError

    settings = prefixed
    kafka = transport(settings, kafka_broker.bootstrap)
    lines = [AGREEMENT] + [
        orjson.dumps({"type": "record_sale", "sale_id": f"S{n}", "customer_id": "C00001",
                      "product_id": "P1", "quantity": "1", "amount": "10.00",
                      "currency": "EUR", "invoice_date": "2025-03-01"})
        for n in range(50)
    ]
    producer = kafka.producer()
    try:
        produce_lines(producer, settings.topic(COMMANDS), lines)
    finally:
        producer.close()
    with Ledger(sqlite_url) as ledger, Intake(
        ledger, kafka, settings, group_id=f"{settings.topic_prefix}intake"
    ) as intake:
        real = intake._read_positions
        calls: list[int] = []

        def failing_once(connection: Any, partitions: Any) -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise OperationalError("SELECT …", {}, Exception("the database is away"))
            return real(connection, partitions)

        intake._read_positions = failing_once  # type: ignore[method-assign]
        deadline = time.monotonic() + 30
        failed = 0
        while applied_offsets(ledger, [settings.topic(COMMANDS)]) < len(lines):
            assert time.monotonic() < deadline
            try:
                intake.run_once()
            except OperationalError as error:
                assert "the database is away" in str(error)
                assert ledger.state()["accepted"] == 0  # nothing applied from unset positions
                failed += 1
        assert failed == 1
        assert intake.counters.reopened == 1
        assert ledger.state()["accepted"] == len(lines)
        assert intake.counters.records == len(lines)  # read once after the retry, not twice


def test_commands_without_recorded_at_take_the_time_of_application_and_offsets_reach_kafka(
    kafka_broker: EmbeddedBroker, sqlite_url: str, prefixed: KafkaSettings,
) -> None:
    """Contract 1 through Kafka: a command without `recorded_at` is stamped by the ledger's
    clock when intake applies it (not when it was produced); one with it keeps it. After each
    batch the stored positions are also committed to the group, for monitoring."""
    from datetime import UTC, datetime

    from ledger.projections.core import agreements, to_us

    settings = prefixed
    group = f"{settings.topic_prefix}intake"
    kafka = transport(settings, kafka_broker.bootstrap)
    given = "2025-01-02T03:04:05Z"
    # history first (recorded_at may not go back), both on one partition to keep that order
    lines = [
        AGREEMENT.replace(b"A00001", b"A00002")[:-1] + f',"recorded_at":"{given}"}}'.encode(),
        AGREEMENT,
    ]
    producer = kafka.producer()
    try:
        produce_lines(producer, settings.topic(COMMANDS), lines, constant_key=b"history")
    finally:
        producer.close()
    applied_at = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # the ledger's clock, later
    with Ledger(sqlite_url, clock=lambda: applied_at) as ledger, Intake(
        ledger, kafka, settings, group_id=group
    ) as intake:
        deadline = time.monotonic() + 30
        while applied_offsets(ledger, [settings.topic(COMMANDS)]) < len(lines):
            assert time.monotonic() < deadline
            intake.run_once()
        stored = intake.stored_positions()
        with ledger.engine.connect() as connection:
            recorded = dict(
                connection.execute(select(agreements.c.agreement_id, agreements.c.recorded_us))
                .tuples()
                .all()
            )
    assert recorded == {
        "A00001": to_us(applied_at),
        "A00002": to_us(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
    }
    monitor = kafka.consumer(group)
    try:
        committed = monitor.committed(list(stored))
    finally:
        monitor.close()
    assert committed == stored and sum(stored.values()) == len(lines)


def sale_line(number: int) -> bytes:
    return orjson.dumps({
        "type": "record_sale", "sale_id": f"S{number:05d}", "customer_id": "C00001",
        "product_id": "P1", "quantity": "1", "amount": "10.00", "currency": "EUR",
        "invoice_date": "2025-03-01",
    })


def test_a_broker_that_comes_back_empty_is_read_from_its_start(
    client: str, sqlite_url: str, tmp_path: Path,
) -> None:
    """The embedded broker restarted (EMPTY, a new cluster id, offsets from 0 again) while
    intake runs: the ERP's next records sit at offsets the store has already passed on the old
    log; intake notices the new cluster and applies them all, once, and nothing twice."""
    from sqlalchemy.exc import OperationalError

    from consumers.transport import TransportError

    settings = settings_for(client, topic_prefix="restart.", partitions=PARTITIONS)
    group = "restart-intake"
    before, after = [sale_line(n) for n in range(60)], [sale_line(n) for n in range(100, 130)]
    broker = EmbeddedBroker(tmp_path / "kafka")
    broker.start()
    port = broker.port
    try:
        with Ledger(sqlite_url) as ledger:
            kafka = transport(settings, broker.bootstrap)
            producer = kafka.producer()
            produce_lines(producer, settings.topic(SALES), before)
            producer.close()
            intake = Intake(ledger, kafka, settings, group_id=group)
            try:
                deadline = time.monotonic() + 30
                while applied_offsets(ledger, [settings.topic(SALES)]) < len(before):
                    assert time.monotonic() < deadline
                    intake.run_once()
                old_cluster = broker.cluster_id
                broker.stop()
                broker = EmbeddedBroker(tmp_path / "kafka", port=port)
                broker.start()
                assert broker.cluster_id != old_cluster
                producer = transport(settings, broker.bootstrap).producer()
                produce_lines(producer, settings.topic(SALES), after)  # offsets 0… again
                producer.close()
                deadline = time.monotonic() + 60
                while ledger.state()["accepted"] < len(before) + len(after):
                    assert time.monotonic() < deadline, ledger.state()
                    try:
                        intake.run_once()
                    except (TransportError, OperationalError):  # as `run` retries them
                        time.sleep(0.2)
                # and then nothing more: what came after the restart is applied once
                for _ in range(5):
                    intake.run_once(timeout_s=0.2)
            finally:
                intake.close()
            with ledger.engine.connect() as connection:
                counted = connection.execute(select(func.count()).select_from(core_sales))
                clusters = connection.execute(select(intake_positions.c.cluster_id)).scalars()
                assert counted.scalar_one() == len(before) + len(after)
                assert set(clusters.all()) <= {old_cluster, broker.cluster_id}
            assert ledger.state()["accepted"] == len(before) + len(after)
            assert ledger.state()["rejected"] == 0
            assert intake.counters.reopened >= 1
    finally:
        broker.stop()
