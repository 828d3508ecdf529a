"""The whole pipeline in one process, for the demo: an ERP stand-in producing sales to the
sales topic, intake applying them to the store, the relay publishing every stored event to the
events topic, and the liability projection reading it, each worker in its own thread.

In production each worker is its own process (`rebate-ledger intake | relay | project`, the
services of docker-compose.yml); here they share one process and one embedded broker so that a
fresh machine shows the whole path with one command.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import orjson
from sqlalchemy import func, select

from consumers.intake import Intake
from consumers.projector import Projector
from consumers.relay import Relay
from consumers.topics import SALES, ensure_topics
from consumers.transport import Transport
from ledger.core import Ledger
from ledger.kafka.settings import KafkaSettings

CENT = Decimal("0.01")


@dataclass
class Worker:
    """One worker loop in a thread; an exception stops it and is kept to be raised later."""

    name: str
    loop: Callable[[threading.Event], None]
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self) -> None:
        def target() -> None:
            try:
                self.loop(self.stop)
            except BaseException as error:  # kept and re-raised by `check`
                self.error = error

        self.thread = threading.Thread(target=target, name=self.name, daemon=True)
        self.thread.start()

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the {self.name} worker failed: {self.error}") from self.error

    def join(self, timeout_s: float = 30.0) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout_s)


class Pipeline:
    """Intake, relay and the liability projection of one store on one Kafka cluster."""

    def __init__(self, ledger: Ledger, kafka: Transport, settings: KafkaSettings) -> None:
        self.ledger = ledger
        self.kafka = kafka
        self.settings = settings
        admin = kafka.admin()
        try:
            ensure_topics(admin, settings)
        finally:
            admin.close()
        self.intake = Intake(ledger, kafka, settings)
        self.relay = Relay(ledger, kafka, settings)
        self.projector = Projector(ledger, kafka, settings)
        self.workers = [
            Worker("intake", self.intake.run),
            Worker("relay", self.relay.run),
            Worker("projection", self.projector.run),
        ]

    def __enter__(self) -> Pipeline:
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *_: object) -> None:
        for worker in self.workers:
            worker.join()
        for part in (self.intake, self.relay, self.projector):
            part.close()

    def check(self) -> None:
        for worker in self.workers:
            worker.check()

    def store_position(self) -> int:
        return int(self.ledger.app.recorder.max_notification_id() or 0)  # type: ignore[attr-defined]

    def status(self) -> dict[str, int]:
        return {
            "store": self.store_position(),
            "relay": self.relay.stored().position,
            "projection": self.projector.caught_up_to(),
            "applied": self.ledger.state()["accepted"] + self.ledger.state()["rejected"],
        }


def erp_sales(
    customers: list[tuple[str, str, dict[str, Decimal]]], count: int, first_day: date,
    last_day: date, seed: int,
) -> Iterator[tuple[bytes, bytes]]:
    """`count` sales lines as an ERP sends them: no `recorded_at` (the ledger stamps them on
    arrival), keyed by customer; one in fifty a return. `customers`: (id, currency,
    {product: unit price})."""
    rng = random.Random(seed)
    days = (last_day - first_day).days
    for number in range(1, count + 1):
        customer_id, currency, prices = customers[rng.randrange(len(customers))]
        product_id = rng.choice(sorted(prices))
        quantity = rng.randint(1, 40) * (-1 if rng.randrange(50) == 0 else 1)
        amount = (prices[product_id] * quantity).quantize(CENT, ROUND_HALF_UP)
        line = {
            "type": "record_sale", "sale_id": f"ERP-{seed}-{number:07d}",
            "customer_id": customer_id, "product_id": product_id,
            "quantity": str(quantity), "amount": str(amount), "currency": currency,
            "invoice_date": (first_day + timedelta(days=rng.randint(0, days))).isoformat(),
        }
        yield customer_id.encode(), orjson.dumps(line)


def produce_sales(kafka: Transport, settings: KafkaSettings,
                  records: Iterator[tuple[bytes, bytes]]) -> int:
    producer = kafka.producer()
    topic = settings.topic(SALES)
    count = 0
    try:
        for key, value in records:
            producer.send(topic, key, value)
            count += 1
        producer.flush(120.0)
    finally:
        producer.close()
    return count


def wait_until(predicate: Callable[[], bool], timeout_s: float, tick: Callable[[], None],
               step_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tick()
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()


def count_rows(ledger: Ledger, table: Any) -> int:
    with ledger.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


# The demo's pipeline phase -----------------------------------------------------------------

FEED_SALES = 20_000
#: Records an ERP sends by mistake: each lands on the rejected topic with its reason.
POISON = (
    b"not json at all",
    b'{"type": "record_sale", "sale_id": "ERP-BAD-1", "customer_id": "C0001"}',
    b'{"type": "create_agreement", "agreement_id": "NOT-A-SALE"}',
)


@dataclass
class PipelineResult:
    produced: int
    poison: int
    seconds: float
    store_position: int
    projection_position: int
    source: str
    before: list[Any]
    after: list[Any]
    core_after: list[Any]
    rejected_topic: list[tuple[str, str]]


def run_pipeline_demo(
    console: Any, ledger: Ledger, plan: Any, bootstrap: str, settings: KafkaSettings,
    *, feed: int = FEED_SALES, as_of: date = date(2025, 12, 31), seed: int = 2025,
) -> PipelineResult:
    """The ERP sends `feed` late December invoices to the sales topic; intake, relay and the
    liability projection run until the projection has caught up; the liability at `as_of` is
    then read from the projection and checked against the core."""
    from rich.live import Live
    from rich.table import Table

    from ledger.projections.reader import liability_answer

    kafka_ = _transport(settings, bootstrap)
    started_at = ledger.clock()
    before = ledger.liability(as_of)
    customers = [(c.customer_id, c.currency, c.prices) for c in plan.customers
                 if c.churn_on is None]
    pipeline = Pipeline(ledger, kafka_, settings)
    started = time.perf_counter()
    produced = 0

    def progress() -> Table:
        status = pipeline.status()
        table = Table.grid(padding=(0, 2))
        table.add_row("ERP → rebate.sales", f"{produced:,} records produced")
        table.add_row("intake → store", f"{status['applied']:,} commands applied, "
                      f"store position {status['store']:,}")
        table.add_row("relay → rebate.events", f"published up to position {status['relay']:,}")
        table.add_row("projection", f"caught up to position {status['projection']:,}")
        return table

    applied_before = ledger.state()["accepted"] + ledger.state()["rejected"]
    with pipeline, Live(progress(), console=console, refresh_per_second=8,
                        transient=not console.is_terminal) as live:
        producer = kafka_.producer()
        topic = settings.topic(SALES)
        try:
            records = erp_sales(customers, feed, as_of.replace(day=1), as_of, seed)
            for number, (key, value) in enumerate(records, start=1):
                producer.send(topic, key, value)
                produced += 1
                if number == feed // 2:
                    for bad in POISON:  # mid-stream: the records around them still apply
                        producer.send(topic, b"C-POISON", bad)
                if number % 2000 == 0:
                    live.update(progress())
            producer.flush(120.0)
        finally:
            producer.close()

        def done() -> bool:
            pipeline.check()
            status = pipeline.status()
            return (status["applied"] - applied_before >= feed + len(POISON)
                    and status["projection"] >= status["store"])

        if not wait_until(done, 600.0, lambda: live.update(progress())):
            raise RuntimeError(f"the pipeline did not catch up: {pipeline.status()}")
        live.update(progress())
        seconds = time.perf_counter() - started
        status = pipeline.status()
    after, source = liability_answer(ledger, as_of, settings=settings)
    core_after = ledger.liability(as_of)
    rejected = read_rejected(kafka_, settings, len(POISON))
    del started_at
    return PipelineResult(feed, len(POISON), seconds, status["store"], status["projection"],
                          source, before, after, core_after, rejected)


def _transport(settings: KafkaSettings, bootstrap: str) -> Transport:
    from consumers.transport import transport

    return transport(settings, bootstrap)


def read_rejected(kafka: Transport, settings: KafkaSettings, expected: int,
                  timeout_s: float = 10.0) -> list[tuple[str, str]]:
    """(source, reason) of the last `expected` records of the rejected topic."""
    from consumers.topics import REJECTED
    from consumers.transport import TopicPartition

    topic = settings.topic(REJECTED)
    admin = kafka.admin()
    try:
        partitions = admin.list_topics().get(topic, 0)
    finally:
        admin.close()
    consumer = kafka.consumer()
    found: list[tuple[str, str]] = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            records = consumer.poll(1000, 0.5)
            if not records and len(found) >= expected:
                break
            for record in records:
                headers = {name: value.decode(errors="replace") for name, value in record.headers}
                source = (f"{headers.get('ledger-source-topic', '?')}/"
                          f"{headers.get('ledger-source-partition', '?')}@"
                          f"{headers.get('ledger-source-offset', '?')}")
                found.append((source, headers.get("ledger-reason", "?")))
    finally:
        consumer.close()
    return found[-expected:]
