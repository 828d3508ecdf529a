"""The Kafka intake on the real embedded broker: end to end against `apply_lines`, poison
records, redelivery, two workers in one group, and the `produce`/`intake` commands; SQLite and
PostgreSQL, both clients for the end-to-end test (`kill -9`: test_intake_kill.py)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from consumers.intake import (
    FIELD_HEADER,
    REASON_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
    Intake,
    IntakeStalled,
)
from consumers.topics import COMMANDS, REJECTED, SALES
from consumers.transport import Record, TopicPartition, Transport, transport
from ledger import Ledger
from ledger.kafka.broker import EmbeddedBroker
from ledger.kafka.settings import KafkaSettings
from ledger.projections.core import sales as core_sales
from tests.contract import helpers as h

from .conftest import settings_for

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "rebate-ledger")
PARTITIONS = 4
AS_OF = date(2025, 12, 31)
CUSTOMERS = ("C1", "C2", "C3", "C4", "C5")
_PREFIXES = itertools.count(1)


def unique_settings(client: str = "confluent") -> KafkaSettings:
    prefix = f"intake{os.getpid()}x{next(_PREFIXES)}."
    return settings_for(client, topic_prefix=prefix, partitions=PARTITIONS)


def group(settings: KafkaSettings) -> str:
    """A consumer group of this test only (groups of other tests on the session broker with
    other topics can hold up a join of the default group for tens of seconds)."""
    return f"{settings.topic_prefix}intake"


# --- a book in three phases -------------------------------------------------------------------


def agreements() -> list[h.Command]:
    commands = [
        h.agreement(f"A{n}", customer_id=customer, tiers=(("0", "1"), ("10", "2")))
        for n, customer in enumerate(CUSTOMERS, start=1)
    ]
    commands.append(h.amend("A2", "2025-04-01", tiers=h.tier_list((("0", "3"),))))
    commands.append(h.forecast("A3", "100", "2025-02-01"))
    return commands


def sales(first: int, count: int) -> list[h.Command]:
    return [
        h.sale(
            f"S{n}", str(n % 7 + 1), f"{n % 13 + 1}.25", f"2025-{n % 9 + 1:02d}-{n % 28 + 1:02d}",
            customer_id=CUSTOMERS[n % len(CUSTOMERS)], product_id=f"P{n % 3}",
        )
        for n in range(first, first + count)
    ]


def after_sales() -> list[h.Command]:
    return [
        h.reversal("S1", "2025-10-01"),
        h.submit("K1", "2", agreement_id="A1"),
        h.approve("K1"),
        h.settle("K1"),
        h.submit("K2", "5", agreement_id="A4"),
        h.reject("K2"),
        h.write_off("1", "2025-11-30", agreement_id="A5"),
    ]


def line(command: h.Command) -> bytes:
    return orjson.dumps(command)


def produce(
    kafka: Transport, topic: str, values: Sequence[bytes], keys: Sequence[bytes | None]
) -> None:
    producer = kafka.producer()
    try:
        for key, value in zip(keys, values, strict=True):
            producer.send(topic, key, value)
        producer.flush(30)
    finally:
        producer.close()


def produce_commands(kafka: Transport, settings: KafkaSettings, commands: list[h.Command]) -> None:
    """Commands on ONE key (as `rebate-ledger produce --topic commands` does): in order."""
    produce(kafka, settings.topic(COMMANDS), [line(c) for c in commands],
            [b"history"] * len(commands))


def produce_sales(kafka: Transport, settings: KafkaSettings, commands: list[h.Command]) -> None:
    """Sales keyed by customer (a reversal by the customer of its sale)."""
    produce(kafka, settings.topic(SALES), [line(c) for c in commands],
            [str(c["customer_id"]).encode() for c in commands])


def reference(tmp_path: Path, phases: list[list[h.Command]]) -> Ledger:
    """The same commands applied with `apply_lines` to a fresh SQLite store."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'reference.db'}")
    for phase in phases:
        report = ledger.apply_lines([line(c) for c in phase])
        assert not report.rejected, report.to_dict()["rejections"]
    return ledger


def sales_summary(ledger: Ledger) -> tuple[int, int, int, int]:
    """Count, and sums of quantity, amount (µ-units) and invoice day of core_sales."""
    with ledger.engine.connect() as connection:
        row = connection.execute(
            select(
                func.count(), func.sum(core_sales.c.q_micro), func.sum(core_sales.c.a_micro),
                func.sum(core_sales.c.invoice_day),
            )
        ).one()
    return (int(row[0]), int(row[1] or 0), int(row[2] or 0), int(row[3] or 0))


def assert_same_book(ledger: Ledger, expected: Ledger) -> None:
    assert sales_summary(ledger) == sales_summary(expected)
    liability = ledger.liability(AS_OF)
    assert liability and liability == expected.liability(AS_OF)


def run_until_idle(*intakes: Intake, idle_s: float = 1.5) -> None:
    """Run every intake in a thread until each saw nothing for `idle_s` after joining."""
    errors: list[BaseException] = []

    def run(intake: Intake) -> None:
        try:
            intake.run(threading.Event(), until_idle_s=idle_s)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in intakes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive()
    assert not errors, errors


def read_all(kafka: Transport, topic: str, count: int, timeout_s: float = 30) -> list[Record]:
    """At least `count` records of `topic` (every partition, from the start)."""
    consumer = kafka.consumer()
    consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count:
            assert time.monotonic() < deadline, f"{len(records)} of {count} records"
            records.extend(consumer.poll(1000, 0.3))
    finally:
        consumer.close()
    return records


# --- end to end -------------------------------------------------------------------------------


def test_end_to_end_equals_apply_lines(
    client: str, kafka_broker: EmbeddedBroker, database_url: str, tmp_path: Path
) -> None:
    settings = unique_settings(client)
    kafka = transport(settings, kafka_broker.bootstrap)
    book = [agreements(), sales(1, 300), after_sales()]
    with Ledger(database_url) as ledger, Intake(
        ledger, kafka, settings, group_id=group(settings), poll_records=97, poll_timeout_s=0.2
    ) as intake:
        produce_commands(kafka, settings, book[0])
        produce_sales(kafka, settings, book[1])
        run_until_idle(intake)
        produce_commands(kafka, settings, book[2])
        run_until_idle(intake)
        assert intake.counters.rejected == 0
        assert intake.counters.applied == sum(map(len, book))
        assert ledger.rejections() == []
        with reference(tmp_path, book) as expected:
            assert_same_book(ledger, expected)
        stored = intake.stored_positions()
        assert sum(stored.get(TopicPartition(settings.topic(SALES), p), 0)
                   for p in range(PARTITIONS)) == 300
        assert sum(stored.get(TopicPartition(settings.topic(COMMANDS), p), 0)
                   for p in range(PARTITIONS)) == len(book[0]) + len(book[2])


# --- poison records ---------------------------------------------------------------------------


def test_poison_records_go_to_the_rejected_topic_and_the_rest_applies(
    kafka_broker: EmbeddedBroker, database_url: str, tmp_path: Path
) -> None:
    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    good_sales = sales(1, 40)
    poison_sales: list[tuple[bytes, str]] = [  # (value, field the reason names)
        (b"", ""),
        (b"{not json", ""),
        (b"[1, 2]", ""),
        (line({"type": "record_sale", "sale_id": "X1"}), "customer_id"),
        (line(h.agreement("A9", customer_id="C1")), "type"),  # not a sale on the sales topic
        (line(h.reversal("NOPE", "2025-10-01")), "sale_id"),  # rule: unknown sale
        (line(h.sale("X2", "1", "-5", customer_id="C1")), "amount"),
    ]
    poison_commands: list[tuple[bytes, str]] = [
        (b"\xff\xfe", ""),
        (line(h.approve("K404")), "claim_id"),  # rule: unknown claim
    ]
    values: list[bytes] = []
    keys: list[bytes | None] = []
    for index, sale in enumerate(good_sales):  # poison between good sales, same partitions
        values.append(line(sale))
        keys.append(str(sale["customer_id"]).encode())
        if index % 5 == 2 and index // 5 < len(poison_sales):
            values.append(poison_sales[index // 5][0])
            keys.append(str(sale["customer_id"]).encode())
    with Ledger(database_url) as ledger, Intake(
        ledger, kafka, settings, group_id=group(settings), poll_records=50, poll_timeout_s=0.2
    ) as intake:
        produce_commands(kafka, settings, agreements())
        produce(kafka, settings.topic(SALES), values, keys)
        produce(kafka, settings.topic(COMMANDS), [v for v, _ in poison_commands],
                [b"history"] * len(poison_commands))
        run_until_idle(intake)
        poison = len(poison_sales) + len(poison_commands)
        assert intake.counters.rejected == poison
        with reference(tmp_path, [agreements(), good_sales]) as expected:
            assert_same_book(ledger, expected)
        kept = ledger.rejections()
    rejected = read_all(kafka, settings.topic(REJECTED), poison)
    assert len(rejected) == poison
    fields_by_value = {v: f for v, f in poison_sales + poison_commands}
    sources = {r.source for r in kept}
    for record in rejected:
        headers = dict(record.headers)
        assert record.value is not None and record.value in fields_by_value
        assert headers[REASON_HEADER], headers
        assert headers[FIELD_HEADER].decode() == fields_by_value[record.value], headers
        topic = headers[SOURCE_TOPIC_HEADER].decode()
        partition = int(headers[SOURCE_PARTITION_HEADER])
        offset = int(headers[SOURCE_OFFSET_HEADER])
        assert topic in (settings.topic(SALES), settings.topic(COMMANDS))
        assert f"kafka:{topic}/{partition}@{offset}" in sources
        # the coordinates name the very record: read it back there
        consumer = kafka.consumer()
        try:
            consumer.assign([TopicPartition(topic, partition)])
            consumer.seek(TopicPartition(topic, partition), offset)
            original: list[Record] = []
            deadline = time.monotonic() + 10
            while not original and time.monotonic() < deadline:
                original = consumer.poll(1, 0.3)
        finally:
            consumer.close()
        assert original and original[0].offset == offset
        assert (original[0].value or b"") == record.value
    assert len(kept) == poison
    not_a_sale = [r for r in kept if r.command_type == "create_agreement"]
    assert len(not_a_sale) == 1 and "sales topic" in not_a_sale[0].reason


def test_a_record_whose_handling_raises_is_rejected_alone_and_intake_goes_on(
    client: str, kafka_broker: EmbeddedBroker, database_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 15: a `record_sale` with `recorded_at` 9999-12-31T23:59:59-01:00 (its conversion to
    UTC overflowed, outside any validator) put intake in a crash loop, and the good records of
    the same poll never applied. Likewise any record whose handling raises (a bug: here a
    handler made to raise for sale BOOM). Each goes to the rejected topic with its reason and
    its position; every other record applies; intake goes on, with both clients."""
    from ledger.handlers import Batch

    settings = unique_settings(client)
    kafka = transport(settings, kafka_broker.bootstrap)
    overflow = line(h.sale("X9", "1", "5", customer_id="C1",
                           recorded_at="9999-12-31T23:59:59-01:00"))
    boom = line(h.sale("BOOM", "1", "5", customer_id="C2"))
    handle = Batch.handle

    def handle_or_raise(self: Batch, command: object) -> str:
        if getattr(command, "sale_id", None) == "BOOM":
            raise RuntimeError("a bug in a handler")
        return handle(self, command)  # type: ignore[arg-type]

    monkeypatch.setattr(Batch, "handle", handle_or_raise)
    good = sales(1, 30)
    values = [line(s) for s in good[:10]] + [overflow] + [line(s) for s in good[10:20]] + [
        boom] + [line(s) for s in good[20:]]
    keys = [b"C1"] * len(values)  # one partition: the poison sits between good records
    with Ledger(database_url) as ledger, Intake(
        ledger, kafka, settings, group_id=group(settings), poll_records=100, poll_timeout_s=0.2
    ) as intake:
        produce_commands(kafka, settings, agreements())
        run_until_idle(intake)
        produce(kafka, settings.topic(SALES), values, keys)
        run_until_idle(intake)
        assert intake.counters.rejected == 2
        assert intake.counters.applied == len(agreements()) + len(good)
        with reference(tmp_path, [agreements(), good]) as expected:
            assert_same_book(ledger, expected)
        kept = {r.source: r for r in ledger.rejections()}
        positions = intake.stored_positions()
    sales_partition = read_all(kafka, settings.topic(SALES), len(values))[0].partition
    assert positions[TopicPartition(settings.topic(SALES), sales_partition)] == len(values)
    rejected = read_all(kafka, settings.topic(REJECTED), 2)
    assert sorted(r.value for r in rejected) == sorted([overflow, boom])
    for record in rejected:
        headers = dict(record.headers)
        offset = values.index(record.value) if record.value else -1
        assert headers[SOURCE_TOPIC_HEADER].decode() == settings.topic(SALES)
        assert int(headers[SOURCE_PARTITION_HEADER]) == sales_partition
        assert int(headers[SOURCE_OFFSET_HEADER]) == offset
        source = f"kafka:{settings.topic(SALES)}/{sales_partition}@{offset}"
        assert kept[source].reason == headers[REASON_HEADER].decode()
        assert kept[source].command == (record.value or b"").decode()
    boom_reason = dict(next(r for r in rejected if r.value == boom).headers)[REASON_HEADER]
    assert b"RuntimeError: a bug in a handler" in boom_reason
    assert len(kept) == 2


# --- a stalled group ---------------------------------------------------------------------------


class StuckTransport:
    """The real transport, except that its group consumers never get a partition or a record:
    what two fresh workers saw of the default group after a broker restart (issue 15), which
    then printed "0 records … stopped" and exited 0 while the topic held 22,000 records."""

    def __init__(self, real: Transport) -> None:
        self.real = real

    def producer(self) -> Any:
        return self.real.producer()

    def admin(self) -> Any:
        return self.real.admin()

    def consumer(self, group_id: str | None = None) -> Any:
        consumer = self.real.consumer(group_id)
        if group_id is None:  # the positions check's own consumer: the real one
            return consumer

        class Stuck:
            def subscribe(self, *_: Any, **__: Any) -> None:
                pass

            def assignment(self) -> set[TopicPartition]:
                return set()

            def poll(self, max_records: int, timeout_s: float) -> list[Record]:
                time.sleep(timeout_s)
                return []

            def commit(self, *_: Any) -> None:
                pass

            def close(self) -> None:
                consumer.close()

        return Stuck()


def test_until_idle_never_exits_quietly_while_records_wait(
    client: str, kafka_broker: EmbeddedBroker, sqlite_url: str
) -> None:
    settings = unique_settings(client)
    kafka = transport(settings, kafka_broker.bootstrap)
    with Ledger(sqlite_url) as ledger, Intake(
        ledger, StuckTransport(kafka), settings, group_id=group(settings),  # type: ignore[arg-type]
        poll_timeout_s=0.2,
    ) as intake:
        intake.open()  # the topics exist before the sales go to them
        produce_commands(kafka, settings, agreements())
        produce_sales(kafka, settings, sales(1, 50))
        started = time.monotonic()
        with pytest.raises(IntakeStalled, match="stalled: at least") as stalled:
            intake.run(threading.Event(), until_idle_s=1.0, stall_s=3.0)
        assert time.monotonic() - started < 20  # not after the join wait of 30 s
        assert intake.counters.records == 0 and intake.counters.stalls == 1
        waiting = intake.waiting()
        # the high-water marks may be too small on this broker, never too large
        assert 0 < sum(waiting.values()) <= 50 + len(agreements())
        assert str(settings.topic(SALES)) in str(stalled.value)
    # and a worker that can read them applies everything and exits 0 with nothing waiting
    with Ledger(sqlite_url) as ledger, Intake(
        ledger, kafka, settings, group_id=group(settings), poll_timeout_s=0.2
    ) as intake:
        run_until_idle(intake)
        assert intake.counters.applied == 50 + len(agreements())
        assert intake.waiting() == {}


def test_a_running_worker_reports_a_stalled_group_and_rejoins(
    kafka_broker: EmbeddedBroker, sqlite_url: str
) -> None:
    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    stop, told = threading.Event(), []

    def on_stall(stalled: IntakeStalled) -> None:
        told.append(stalled)
        stop.set()

    with Ledger(sqlite_url) as ledger, Intake(
        ledger, StuckTransport(kafka), settings, group_id=group(settings),  # type: ignore[arg-type]
        poll_timeout_s=0.2,
    ) as intake:
        intake.open()
        produce_sales(kafka, settings, sales(1, 20))
        reopened = intake.counters.reopened
        intake.run(stop, stall_s=2.0, on_stall=on_stall)
        assert len(told) == 1 and "records wait" in str(told[0])
        assert intake.counters.stalls == 1 and intake.counters.reopened == reopened + 1


def test_intake_stops_promptly_on_sigint_while_its_broker_is_frozen(
    client: str, tmp_path: Path
) -> None:
    """Ctrl-C while the broker does not answer (SIGSTOP): closing the clients may wait on the
    group coordinator; intake gives them CLOSE_TIMEOUT_S and exits 0. At worst twice: a
    close of clients that failed may be under way when Ctrl-C comes."""
    import signal

    from consumers.intake import CLOSE_TIMEOUT_S

    settings = unique_settings(client)
    with EmbeddedBroker(tmp_path / "kafka") as broker:
        env = intake_env(settings, broker.bootstrap, tmp_path / "home")
        worker = subprocess.Popen(
            [CLI, "intake", "--database", f"sqlite:///{tmp_path / 'ledger.db'}"],
            env={**env, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        try:
            assert worker.stdout is not None
            for text in worker.stdout:  # until it runs
                if b"Ctrl-C stops it" in text:
                    break
            time.sleep(3)  # joining the group
            os.kill(broker.pid, signal.SIGSTOP)
            time.sleep(1)
            asked = time.monotonic()
            worker.send_signal(signal.SIGINT)
            out, _ = worker.communicate(timeout=60)
            took = time.monotonic() - asked
        finally:
            os.kill(broker.pid, signal.SIGCONT)
            if worker.poll() is None:
                worker.kill()
    assert worker.returncode == 0, out.decode()[-2000:]
    assert b"stopped" in out
    assert took < 2 * CLOSE_TIMEOUT_S + 3, took


# --- redelivery -------------------------------------------------------------------------------


def test_redelivered_records_count_nothing_twice(
    kafka_broker: EmbeddedBroker, database_url: str, tmp_path: Path
) -> None:
    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    book = [agreements(), sales(1, 200)]
    with Ledger(database_url) as ledger:
        with Intake(ledger, kafka, settings, group_id=group(settings), poll_timeout_s=0.2) as first:
            produce_commands(kafka, settings, book[0])
            produce_sales(kafka, settings, book[1])
            run_until_idle(first)
        before = sales_summary(ledger)
        state = ledger.state()
        # every record again, straight into the apply step: all below the stored positions
        records = read_all(kafka, settings.topic(SALES), 200) + read_all(
            kafka, settings.topic(COMMANDS), len(book[0])
        )
        with Intake(
            ledger, kafka, settings, group_id=f"{settings.topic_prefix}another"
        ) as again:
            report = again.apply(records)
            assert report.accepted == 0 and not report.duplicates and not report.rejected
            assert again.counters.skipped == len(records)
            # and a new group reading the topics: starts at the stored positions
            run_until_idle(again)
            assert again.counters.applied == 0
        assert sales_summary(ledger) == before
        assert ledger.state()["accepted"] == state["accepted"]
        with reference(tmp_path, book) as expected:
            assert_same_book(ledger, expected)


def test_plain_sales_skip_the_general_parse_and_a_straddling_batch_applies_its_new_part(
    kafka_broker: EmbeddedBroker, database_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 11 point 3: intake takes an ordinary sale line straight to `plain_sale` (the
    general `parse_line` is for every other line); and a batch of records of which only some
    are below the stored positions (read again after the first half was applied) applies the
    others, exactly once, as `apply_lines` would."""
    from ledger import commands

    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    book = [agreements(), sales(1, 60)]
    parse = commands.parse_line
    general: list[bytes] = []

    def counted_parse(text: bytes | str) -> commands.Command:
        general.append(text if isinstance(text, bytes) else text.encode())
        return parse(text)

    with Ledger(database_url) as ledger:
        with Intake(ledger, kafka, settings, group_id=group(settings), poll_timeout_s=0.2) as first:
            produce_commands(kafka, settings, book[0])
            produce_sales(kafka, settings, book[1][:30])
            run_until_idle(first)
        produce_sales(kafka, settings, book[1][30:])
        records = read_all(kafka, settings.topic(SALES), 60)
        assert all(commands.plain_sale(r.value or b"") is not None for r in records)
        monkeypatch.setattr(commands, "parse_line", counted_parse)
        with Intake(ledger, kafka, settings, group_id=f"{settings.topic_prefix}again") as again:
            report = again.apply(records)
        assert report.accepted == 30 and not report.duplicates and not report.rejected
        assert again.counters.skipped == 30
        assert general == []  # every one of them a plain sale
        with reference(tmp_path, book) as expected:
            assert_same_book(ledger, expected)


def test_records_polled_while_waiting_for_the_assignment_are_applied_first(
    kafka_broker: EmbeddedBroker, sqlite_url: str, tmp_path: Path
) -> None:
    """`wait_for_assignment` (a service's start-up, bench.kafka_bench's untimed join) keeps
    what its polls return; the next `run_once` applies exactly those first, and nothing is
    skipped: the book equals `apply_lines` of the same commands."""
    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    book = [agreements(), sales(1, 40)]
    produce_commands(kafka, settings, book[0])
    produce_sales(kafka, settings, book[1])
    with Ledger(sqlite_url) as ledger, Intake(
        ledger, kafka, settings, group_id=group(settings), poll_timeout_s=0.2
    ) as intake:
        kept = 0
        for _ in range(10):  # the poll that brings the assignment may return no record yet
            kept = intake.wait_for_assignment(60)
            assert intake.assignment()
            if kept:
                break
            intake.close()  # a new join reads from the stored positions (none yet)
        assert kept >= 1, "no join polled a record: nothing to check"
        assert ledger.state()["accepted"] == 0
        assert intake.run_once() == kept  # the kept records, not a new poll of up to 50,000
        assert intake.counters.applied == kept
        run_until_idle(intake)
        with reference(tmp_path, book) as expected:
            assert_same_book(ledger, expected)


# --- two workers ------------------------------------------------------------------------------


def test_two_workers_in_one_group_share_the_partitions(
    kafka_broker: EmbeddedBroker, database_url: str, tmp_path: Path
) -> None:
    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    book = [agreements(), sales(1, 1500)]
    with Ledger(database_url) as ledger:
        produce_commands(kafka, settings, book[0])
        one = Intake(
            ledger, kafka, settings, group_id=group(settings), poll_records=50,
            poll_timeout_s=0.2,
        )
        two = Intake(
            ledger, kafka, settings, group_id=group(settings), poll_records=50,
            poll_timeout_s=0.2,
        )
        stop = threading.Event()
        feeder_errors: list[BaseException] = []

        def feed() -> None:  # sales arrive while the group rebalances
            try:
                for first in range(1, 1501, 100):
                    produce_sales(kafka, settings, sales(first, 100))
                    time.sleep(0.1)
            except BaseException as error:
                feeder_errors.append(error)

        feeder = threading.Thread(target=feed)
        with one, two:
            feeder.start()
            runner = threading.Thread(target=one.run, args=(stop,))
            runner.start()
            time.sleep(1.0)  # the second joins later: a rebalance while the first applies
            run_until_idle(two, idle_s=3.0)
            feeder.join(60)
            stop.set()
            runner.join(60)
            run_until_idle(one, two)
        assert not feeder_errors
        applied = one.counters.applied + two.counters.applied
        print(f"worker 1: {one.counters}, {sorted(one.assigned_ever)}; "
              f"worker 2: {two.counters}, {sorted(two.assigned_ever)}")
        assert applied == 1500 + len(book[0])
        assert one.counters.applied > 0 and two.counters.applied > 0
        with reference(tmp_path, book) as expected:
            assert_same_book(ledger, expected)


# --- the CLI ----------------------------------------------------------------------------------


def intake_env(settings: KafkaSettings, bootstrap: str, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "LEDGER_HOME": str(home),
            "LEDGER_KAFKA_BOOTSTRAP": bootstrap,
            "LEDGER_KAFKA_CLIENT": settings.client,
            "LEDGER_KAFKA_TOPIC_PREFIX": settings.topic_prefix,
            "LEDGER_KAFKA_PARTITIONS": str(PARTITIONS),
            "LEDGER_KAFKA_SESSION_TIMEOUT_MS": "3000",
            "LEDGER_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "LEDGER_KAFKA_REQUEST_TIMEOUT_MS": "10000",
            "LEDGER_KAFKA_SEND_TIMEOUT_MS": "10000",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


# --- the CLI: produce a file, intake until idle -----------------------------------------------


def test_produce_then_intake_commands(
    kafka_broker: EmbeddedBroker, sqlite_url: str, tmp_path: Path
) -> None:
    settings = unique_settings("kafka-python")
    kafka = transport(settings, kafka_broker.bootstrap)
    env = intake_env(settings, kafka_broker.bootstrap, tmp_path / "home")
    book = [agreements(), sales(1, 120)]
    commands_file, sales_file = tmp_path / "commands.jsonl", tmp_path / "sales.jsonl"
    commands_file.write_bytes(b"\n".join(line(c) for c in book[0]) + b"\n\n")
    sales_file.write_bytes(b"\n".join(line(c) for c in book[1]) + b"\n")
    for file, topic, count in ((commands_file, "commands", len(book[0])),
                               (sales_file, "sales", len(book[1]))):
        done = subprocess.run(
            [CLI, "produce", str(file), "--topic", topic], env=env, cwd=tmp_path,
            capture_output=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        assert f"produced {count} records to {settings.topic(topic)}" in done.stdout.decode()
    # sales keyed by sale id, commands by the one key `history` (so one partition, in order)
    for record in read_all(kafka, settings.topic(SALES), len(book[1])):
        assert record.value is not None
        assert record.key == orjson.loads(record.value)["sale_id"].encode()
    commands = read_all(kafka, settings.topic(COMMANDS), len(book[0]))
    assert {r.key for r in commands} == {b"history"} and len({r.partition for r in commands}) == 1
    assert [r.value for r in sorted(commands, key=lambda r: r.offset)] == [
        line(c) for c in book[0]
    ]
    done = subprocess.run(
        [CLI, "intake", "--database", sqlite_url, "--until-idle", "1.5",
         "--group", f"{settings.topic_prefix}cli"],  # the session broker's other tests' groups
        env=env, cwd=tmp_path, capture_output=True, timeout=120,
    )
    assert "applied" in done.stdout.decode(), done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    with Ledger(sqlite_url) as ledger, reference(tmp_path, book) as expected:
        assert_same_book(ledger, expected)


def test_a_reversal_produced_later_lands_on_its_sales_partition_and_never_overtakes_it(
    kafka_broker: EmbeddedBroker, sqlite_url: str, tmp_path: Path
) -> None:
    """Issue 12, point 5: `produce --topic sales` keyed a reverse_sale (which has no customer)
    by nothing, so it could land on another partition than its sale and be applied first (and
    rejected). Keyed by sale_id, a sale and its reversal share one partition, also when they
    are produced by two separate runs."""
    settings = unique_settings("kafka-python")
    kafka = transport(settings, kafka_broker.bootstrap)
    env = intake_env(settings, kafka_broker.bootstrap, tmp_path / "home")
    sold = sales(1, 40)
    reversals = [h.reversal(f"S{n}", "2025-11-30") for n in range(1, 41)]
    files = []
    for name, commands in (("commands", agreements()), ("sales", sold), ("sales", reversals)):
        file = tmp_path / f"{name}-{len(files)}.jsonl"
        file.write_bytes(b"\n".join(line(c) for c in commands) + b"\n")
        files.append((file, name))
    for file, topic in files:  # three separate runs of `produce`
        done = subprocess.run([CLI, "produce", str(file), "--topic", topic], env=env,
                              cwd=tmp_path, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    records = read_all(kafka, settings.topic(SALES), 80)
    partition_of: dict[str, set[int]] = {}
    for record in records:
        assert record.value is not None
        partition_of.setdefault(orjson.loads(record.value)["sale_id"], set()).add(
            record.partition)
    assert len(partition_of) == 40 and all(len(p) == 1 for p in partition_of.values())
    assert len({p for parts in partition_of.values() for p in parts}) > 1  # spread, not one
    done = subprocess.run(
        [CLI, "intake", "--database", sqlite_url, "--until-idle", "1.5",
         "--group", f"{settings.topic_prefix}cli"],
        env=env, cwd=tmp_path, capture_output=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    with Ledger(sqlite_url) as ledger:
        assert ledger.rejections() == []
        assert ledger.state()["accepted"] == len(agreements()) + 80


def test_produce_without_a_broker_that_outlives_it_is_an_error(tmp_path: Path) -> None:
    """Issue 12, point 6: with no LEDGER_KAFKA_BOOTSTRAP and no running `rebate-ledger
    broker`, produce used to send into a private broker that vanished with it (exit 0,
    'produced 3 records'); now it refuses and says what to do."""
    file = tmp_path / "sales.jsonl"
    file.write_bytes(b"\n".join(line(c) for c in sales(1, 3)) + b"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_HOME"] = str(tmp_path / "home")
    done = subprocess.run([CLI, "produce", str(file)], env=env, cwd=tmp_path,
                          capture_output=True, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    message = done.stderr.decode()
    assert "rebate-ledger broker" in message and "LEDGER_KAFKA_BOOTSTRAP" in message
    assert "produced" not in done.stdout.decode()


def test_a_store_that_refuses_writes_stops_intake_and_rejects_no_record(
    kafka_broker: EmbeddedBroker, sqlite_url: str
) -> None:
    """The store's chain was emptied behind the ledger (issue 12 point 7): every write is
    refused. That is no record's fault: intake must not reject the sales one by one onto the
    rejected topic (they would be lost to the book) but stop, saying why."""
    from sqlalchemy import delete

    from ledger.audit.chain import event_chain
    from ledger.errors import StoreDamaged

    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    with Ledger(sqlite_url) as ledger:
        report = ledger.apply_lines([line(c) for c in agreements()])
        assert not report.rejected
        with ledger.engine.begin() as connection:
            connection.execute(delete(event_chain))
        produce_sales(kafka, settings, sales(1, 5))
        with Intake(ledger, kafka, settings, group_id=group(settings), poll_records=97,
                    poll_timeout_s=0.2) as intake, \
                pytest.raises(StoreDamaged, match="does not re-chain them"):
            intake.run(threading.Event(), until_idle_s=5)
        assert sales_summary(ledger)[0] == 0
    assert intake.counters.rejected == 0
