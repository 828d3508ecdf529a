"""Projections fed only from the events topic, on the real embedded broker: equal to the core
at several (as_of, known_at), idempotent on redelivery, a runner killed with kill -9, a broker
replaced by an empty one and refilled, read your writes, atomic replay, audit views. SQLite and
PostgreSQL."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from consumers.relay import Relay, relay_state
from consumers.transport import Transport, transport
from ledger import Ledger
from ledger.config import Settings
from ledger.events import SalesRecorded
from ledger.events.codec import decode_event, encode_event
from ledger.events.envelope import (
    ENVELOPE_KIND,
    GENESIS,
    KIND_HEADER,
    WATERMARK_KIND,
    ChainHead,
    Envelope,
    envelope_bytes,
    link_record,
    split_sales,
    watermark_bytes,
)
from ledger.kafka.broker import EmbeddedBroker
from ledger.kafka.ports import partition_of
from ledger.kafka.settings import KafkaSettings
from ledger.liability import liability_rows
from ledger.projections import core
from ledger.projections.generations import (
    Generation,
    live_generation,
    live_or_new,
    new_generation,
)
from ledger.projections.read_models import Delivered, attribution, claim_rows, model
from ledger.projections.reader import CORE, liability_answer, store_position
from ledger.projections.runner import ProjectionRunner, delivered_linked, delivered_of
from replay.rebuild import audit_view, replay_projection
from tests.contract import helpers as h

from .conftest import settings_for

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 3
_PREFIXES = itertools.count(1)
CUSTOMERS = ("C1", "C2", "C3", "C4", "C5")
START = datetime(2025, 1, 1, tzinfo=UTC)


def unique_settings(client: str = "confluent") -> KafkaSettings:
    prefix = f"proj{os.getpid()}x{next(_PREFIXES)}."
    return settings_for(client, topic_prefix=prefix, partitions=PARTITIONS)


def stamp(n: int) -> str:
    return (START + timedelta(hours=n)).isoformat()


def book(rounds: int = 6, first_sale: int = 1, first_hour: int = 0) -> list[h.Command]:
    """Five agreements, an amendment of period and products, forecasts, claims approved,
    settled and rejected, write-offs, sales and a reversal, each recorded an hour apart."""
    commands: list[h.Command] = []
    for number, customer in enumerate(CUSTOMERS, start=1):
        agreement = h.agreement(f"A{number}", customer_id=customer,
                                tiers=(("0", "1"), ("10", "2")))
        if number == 1:
            agreement["products"] = ["P1", "P9"]
        commands.append(agreement)
    commands.append(h.amend("A2", "2025-04-01", tiers=h.tier_list((("0", "3"),))))
    commands.append(h.forecast("A3", "100", "2025-02-01"))
    sale = first_sale
    for round_ in range(rounds):
        for number, customer in enumerate(CUSTOMERS, start=1):
            commands.append(h.sale(
                f"S{sale}", f"{number}.5", f"{50 + round_}.25",
                (date(2025, 2, 20) + timedelta(days=9 * round_)).isoformat(),
                customer_id=customer, product_id=f"P{1 + (sale % 3) * 4}",
            ))
            sale += 1
        if round_ == 2:
            commands.append(h.amend("A4", "2025-03-01", period_end="2025-03-31"))
    commands.append(h.reversal(f"S{first_sale}", "2025-05-01"))
    commands.append(h.submit("K1", "2", agreement_id="A1"))
    commands.append(h.approve("K1", approved_amount="1.5"))
    commands.append(h.settle("K1", paid_amount="1"))
    commands.append(h.settle("K1", paid_on="2025-06-04", paid_amount="0.5", payment_ref="P2"))
    commands.append(h.submit("K2", "5", agreement_id="A4"))
    commands.append(h.reject("K2"))
    commands.append(h.submit("K3", "1", agreement_id="A2"))
    commands.append(h.write_off("1", "2025-06-30", agreement_id="A5"))
    return [h.at(stamp(first_hour + n), c) for n, c in enumerate(commands)]


CHECKPOINTS = (
    (date(2025, 3, 15), None),
    (date(2025, 12, 31), None),
    (date(2025, 6, 30), START + timedelta(hours=20)),
    (date(2025, 3, 31), START + timedelta(hours=30, minutes=30)),
    (date(2025, 4, 15), START + timedelta(hours=45)),
    (date(2024, 12, 31), None),
)


def apply_clean(ledger: Ledger, commands: list[h.Command]) -> None:
    report = ledger.apply(commands)
    assert not report.rejected, report.to_dict()["rejections"]


def publish(ledger: Ledger, kafka: Transport, settings: KafkaSettings) -> int:
    with Relay(ledger, kafka, settings, chunk_records=40) as relay:
        relay.run_once()
    return store_position(ledger)


def feed(gen: Generation, name: str, kafka: Transport, settings: KafkaSettings,
         position: int) -> ProjectionRunner:
    engine = gen.engine()
    runner = ProjectionRunner(engine, model(name), kafka, settings, poll_records=50)
    try:
        with runner:
            runner.run_until(position, timeout_s=60)
    finally:
        engine.dispose()
    return runner


def feed_all(ledger: Ledger, kafka: Transport, settings: KafkaSettings) -> dict[str, int]:
    position = publish(ledger, kafka, settings)
    applied = {}
    for name in ("liability", "claims", "sales"):
        runner = feed(live_or_new(ledger.engine, name), name, kafka, settings, position)
        applied[name] = runner.applied
    return applied


def read(gen: Generation, query):  # type: ignore[no-untyped-def]
    engine = gen.engine(read_only=True)
    try:
        with Session(engine) as session:
            return query(session)
    finally:
        engine.dispose()


def live(ledger: Ledger, name: str) -> Generation:
    gen = live_generation(ledger.engine, name)
    assert gen is not None
    return gen


# --- expected answers computed from the store and from the commands ----------------------


def expected_claims(ledger: Ledger) -> dict[str, tuple[str, str, Decimal, Decimal, Decimal]]:
    """(agreement, status, claimed, approved, paid) per claim from the core's money rows."""
    sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    with ledger.engine.connect() as connection:
        claims: dict[str, str] = {
            claim: agreement for claim, agreement in connection.execute(
                select(core.claims.c.claim_id, core.claims.c.agreement_id)
            )
        }
        for claim_id, kind, amount in connection.execute(
            select(core.money.c.claim_id, core.money.c.kind, core.money.c.amount)
            .where(core.money.c.claim_id.is_not(None))
        ):
            sums[claim_id][kind] += Decimal(amount)
    return {
        claim: (agreement, "", sums[claim]["claimed"], sums[claim]["approved"],
                sums[claim]["paid"])
        for claim, agreement in claims.items()
    }


def expected_attribution(
    commands: list[h.Command],
) -> dict[tuple[str, str], tuple[int, Decimal, Decimal]]:
    """Per (agreement, month) from the commands alone: latest period and products (the terms
    in force at any D after every amendment's effective date)."""
    terms: dict[str, dict[str, object]] = {}
    sales: dict[str, h.Command] = {}
    for command in commands:
        kind = command["type"]
        if kind == "create_agreement":
            terms[command["agreement_id"]] = dict(command)
        elif kind == "amend_agreement":
            terms[command["agreement_id"]].update(
                {k: v for k, v in command.items() if k in ("period_end", "products")}
            )
        elif kind == "record_sale":
            sales[command["sale_id"]] = command
        elif kind == "reverse_sale":
            sales.pop(command["sale_id"])
    result: dict[tuple[str, str], list[object]] = {}
    for agreement, t in terms.items():
        for s in sales.values():
            products: list[str] | None = t.get("products")  # type: ignore[assignment]
            if (s["customer_id"] == t["customer_id"] and s["currency"] == t["currency"]
                    and t["period_start"] <= s["invoice_date"] <= t["period_end"]
                    and (products is None or s["product_id"] in products)):
                bucket = result.setdefault((agreement, s["invoice_date"][:7]),
                                           [0, Decimal(0), Decimal(0)])
                bucket[0] += 1  # type: ignore[operator]
                bucket[1] += Decimal(s["quantity"])  # type: ignore[operator]
                bucket[2] += Decimal(s["amount"])  # type: ignore[operator]
    return {k: (v[0], v[1], v[2]) for k, v in result.items()}  # type: ignore[misc]


def check_equal(ledger: Ledger, commands: list[h.Command]) -> None:
    gen = live(ledger, "liability")
    for as_of, known_at in CHECKPOINTS:
        core_rows = ledger.liability(as_of, known_at)
        mine = read(gen, lambda s, a=as_of, k=known_at: liability_rows(s, a, k))
        assert [r.to_dict() for r in mine] == [r.to_dict() for r in core_rows], (as_of, known_at)
        assert [(r.quantity, r.amount) for r in mine] == [
            (r.quantity, r.amount) for r in core_rows
        ]
    assert any(r.liability for r in ledger.liability(date(2025, 12, 31)))
    claims = read(live(ledger, "claims"), claim_rows)
    expected = expected_claims(ledger)
    assert {c.claim_id: (c.agreement_id, "", c.claimed, c.approved or 0, c.paid)
            for c in claims} == expected
    assert {c.claim_id: c.status for c in claims}.get("K2") == "rejected"
    # after every amendment's effective date, the terms in force are the latest ones
    rows = read(live(ledger, "sales"), lambda s: attribution(s, date(2025, 12, 31)))
    assert {(r.agreement_id, r.month): (r.sales, r.quantity, r.amount) for r in rows} == (
        expected_attribution(commands)
    )
    # at every (D, K): summed per agreement, the basis the liability uses
    for as_of, known_at in CHECKPOINTS:
        rows = read(live(ledger, "sales"),
                    lambda s, a=as_of, k=known_at: attribution(s, a, k))
        sums: dict[str, tuple[Decimal, Decimal]] = {}
        for r in rows:
            q, a_ = sums.get(r.agreement_id, (Decimal(0), Decimal(0)))
            sums[r.agreement_id] = (q + r.quantity, a_ + r.amount)
        assert sums == {
            r.agreement_id: (r.quantity, r.amount)
            for r in ledger.liability(as_of, known_at) if r.quantity or r.amount
        }, (as_of, known_at)


def table_snapshot(gen: Generation) -> dict[str, list[tuple[object, ...]]]:
    def take(session: Session) -> dict[str, list[tuple[object, ...]]]:
        names = [n for n in ("core_basis", "core_sales", "core_money", "core_terms_changes",
                             "claims_register", "sa_sales", "sa_agreements")
                 if session.get_bind().dialect.has_table(session.connection(), n)]
        return {n: sorted(map(tuple, session.execute(text(f"SELECT * FROM {n}")).all()),
                          key=repr)
                for n in names}

    return read(gen, take)  # type: ignore[no-any-return]


# --- tests ---------------------------------------------------------------------------------


@pytest.fixture
def small_ledger(database_url: str):  # type: ignore[no-untyped-def]
    with Ledger(database_url, settings=Settings(chunk_lines=7)) as book_:
        yield book_


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_projections_equal_core_and_redelivery_changes_nothing(
    small_ledger: Ledger, kafka_broker: EmbeddedBroker, client: str
) -> None:
    settings = unique_settings(client)
    kafka = transport(settings, kafka_broker.bootstrap)
    commands = book()
    apply_clean(small_ledger, commands)
    applied = feed_all(small_ledger, kafka, settings)
    assert applied["liability"] > len(CUSTOMERS)
    check_equal(small_ledger, commands)
    before = {n: table_snapshot(live(small_ledger, n)) for n in ("liability", "claims", "sales")}
    # redelivery: the relay forgets its position and publishes everything again
    with small_ledger.engine.begin() as connection:
        connection.execute(update(relay_state).values(position=0))
    applied = feed_all(small_ledger, kafka, settings)
    assert applied == {"liability": 0, "claims": 0, "sales": 0}
    after = {n: table_snapshot(live(small_ledger, n)) for n in ("liability", "claims", "sales")}
    assert after == before
    # more commands later: applied incrementally, still equal
    more = book(rounds=2, first_sale=1000, first_hour=200)[5:]
    more = [c for c in more if c["type"] in ("record_sale", "amend_agreement")]
    apply_clean(small_ledger, more)
    feed_all(small_ledger, kafka, settings)
    check_equal(small_ledger, commands + more)


def test_read_your_writes_routes_to_core_until_caught_up(
    small_ledger: Ledger, kafka_broker: EmbeddedBroker
) -> None:
    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    as_of = date(2025, 12, 31)
    # no projection at all: the core answers
    rows, source = liability_answer(small_ledger, as_of, settings=settings)
    assert (rows, source) == ([], CORE)
    apply_clean(small_ledger, book())
    feed_all(small_ledger, kafka, settings)
    rows, source = liability_answer(small_ledger, as_of, settings=settings)
    assert source.startswith("projection liability")
    assert rows == small_ledger.liability(as_of)
    # a write the projection has not seen: the core answers, and it includes the write
    apply_clean(small_ledger, [h.sale("S-new", "1000", "100000", "2025-03-03",
                                      customer_id="C2", product_id="P1")])
    rows, source = liability_answer(small_ledger, as_of, settings=settings)
    assert source == CORE
    assert rows == small_ledger.liability(as_of)
    stale = read(live(small_ledger, "liability"), lambda s: liability_rows(s, as_of))
    assert stale != rows  # the projection alone would have answered stale
    feed_all(small_ledger, kafka, settings)
    rows, source = liability_answer(small_ledger, as_of, settings=settings)
    assert source.startswith("projection liability") and rows == small_ledger.liability(as_of)


def test_broker_replaced_by_empty_one_and_refilled(
    small_ledger: Ledger, tmp_path: Path
) -> None:
    settings = unique_settings()
    commands = book()
    apply_clean(small_ledger, commands[:30])
    with EmbeddedBroker(tmp_path / "b1") as first:
        feed_all(small_ledger, transport(settings, first.bootstrap), settings)
    apply_clean(small_ledger, commands[30:])
    with EmbeddedBroker(tmp_path / "b2") as second:
        kafka = transport(settings, second.bootstrap)
        position = publish(small_ledger, kafka, settings)  # the relay refills from 1
        runner = feed(live(small_ledger, "liability"), "liability", kafka, settings, position)
        assert runner.reseeks == 1 and runner.skipped > 0
        for name in ("claims", "sales"):
            feed(live(small_ledger, name), name, kafka, settings, position)
        check_equal(small_ledger, commands)


def test_replay_swaps_atomically_while_read(
    small_ledger: Ledger, kafka_broker: EmbeddedBroker
) -> None:
    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    commands = book(rounds=12)
    apply_clean(small_ledger, commands)
    feed_all(small_ledger, kafka, settings)
    old = live(small_ledger, "liability")
    as_of = date(2025, 12, 31)
    expected = small_ledger.liability(as_of)
    sources: list[str] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def reader() -> None:
        with Ledger(small_ledger.database_url) as other:
            while not stop.is_set():
                try:
                    rows, source = liability_answer(other, as_of, settings=settings)
                    assert rows == expected, source
                    sources.append(source)
                except BaseException as error:  # noqa: BLE001 - reported below
                    failures.append(error)
                    return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        new = replay_projection(small_ledger, "liability", kafka, settings)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert not failures, failures
    assert new.number == old.number + 1
    assert live(small_ledger, "liability") == new
    assert not old.exists(small_ledger.engine) and new.exists(small_ledger.engine)
    assert f"projection liability g{old.number}" in sources
    assert sources[-1] == f"projection liability g{new.number}"
    check_equal(small_ledger, commands)


def test_audit_view_no_difference_then_a_corrupted_core_row(
    small_ledger: Ledger, kafka_broker: EmbeddedBroker
) -> None:
    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    apply_clean(small_ledger, book())
    for as_of, known_at in CHECKPOINTS[:4]:
        result = audit_view(small_ledger, kafka, settings, as_of, known_at)
        assert result.differences == [] and result.log_rows == result.core_rows
    assert result.core_rows
    # corrupt the core: the paid amount of claim K1's first settlement
    with small_ledger.engine.begin() as connection:
        connection.execute(
            update(core.money).where(core.money.c.claim_id == "K1")
            .where(core.money.c.kind == "paid").where(core.money.c.amount == "1")
            .values(amount="0.75")
        )
    result = audit_view(small_ledger, kafka, settings, date(2025, 12, 31), None)
    fields = {(d.agreement_id, d.field): (d.log, d.core) for d in result.differences}
    assert fields[("A1", "paid")] == ("1.50", "1.25")
    assert ("A1", "liability") in fields
    assert {a for a, _ in fields} == {"A1"}


def test_audit_view_rebuilds_the_log_view_in_a_scratch_file_it_removes(
    small_ledger: Ledger, kafka_broker: EmbeddedBroker, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The view rebuilt from the log goes into a SQLite file in a temporary folder, not an
    in-memory database (which grew with the book: 250 MiB of SQLite heap at 1M sales), and
    the folder is gone afterwards; the answer is the same."""
    import tempfile

    import replay.rebuild as rebuild

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    made: list[Path] = []
    real = rebuild.scratch_engine

    def spy(path: Path) -> object:
        made.append(path)
        return real(path)

    monkeypatch.setattr(rebuild, "scratch_engine", spy)
    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    apply_clean(small_ledger, book())
    result = audit_view(small_ledger, kafka, settings, date(2025, 12, 31), None)
    assert result.differences == [] and result.log_rows == result.core_rows and result.log_rows
    scratch, = made
    assert scratch.parent.parent == tmp_path and scratch.parent.name.startswith(
        "rebate-ledger-audit-view-")
    assert not scratch.parent.exists()  # removed, file and folder
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("rebate-ledger-audit")]


def _cli(args: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-m", "ledger.cli", *args], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs,
    )


def test_runner_killed_with_sigkill_and_restarted_ends_equal(
    database_url: str, kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    commands = book(rounds=60)
    # one sale per event: ~320 store positions, ~80 transactions of --batch 4, so that a
    # kill at the first sign of progress always lands before the end (three per event
    # once let a fast machine finish all 118 positions inside the random pause)
    with Ledger(database_url, settings=Settings(chunk_lines=1)) as ledger:
        apply_clean(ledger, commands)
        position = publish(ledger, kafka, settings)
        gen = live_or_new(ledger.engine, "liability")
        for name in ("claims", "sales"):
            live_or_new(ledger.engine, name)
    env = {**os.environ, "LEDGER_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
           "LEDGER_KAFKA_TOPIC_PREFIX": settings.topic_prefix,
           "LEDGER_KAFKA_PARTITIONS": str(PARTITIONS), "LEDGER_HOME": str(tmp_path / "home"),
           "LEDGER_DATABASE_URL": database_url}
    seen: list[int] = []  # the liability projection's applied position after each kill
    rng = random.Random(3)
    for _ in range(3):
        # small transactions (--batch 4) so that a kill lands between and inside them
        process = _cli(["project", "--until-idle", "30", "--batch", "4"], env)
        deadline = time.monotonic() + 60
        last = (seen or [0])[-1]
        while time.monotonic() < deadline and applied_position(gen) == last < position:
            time.sleep(0.02)
        if seen:  # the first kill comes at once: it must cut the run short
            time.sleep(rng.uniform(0.0, 0.4))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        seen.append(applied_position(gen))
        if seen[-1] >= position:
            break
    assert 0 < seen[0] < position, seen  # the first kill really cut the run short
    process = _cli(["project", "--until-idle", "1.5"], env)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()
    with Ledger(database_url) as ledger:
        check_equal(ledger, commands)
        liability = _cli(["liability", "--as-of", "2025-12-31", "-v"], env)
        out, err = liability.communicate(timeout=60)
        assert liability.returncode == 0
        assert "answered from projection liability" in err.decode(), err.decode()


def applied_position(gen: Generation) -> int:
    """The highest store position the projection has applied (0 before it starts)."""
    try:
        return int(read(gen, lambda s: s.execute(
            text("SELECT coalesce(max(position), 0) FROM projection_offsets")
        ).scalar()))
    except Exception:  # noqa: BLE001 - tables not created yet
        return 0


def test_new_generation_is_not_live_until_swapped(small_ledger: Ledger) -> None:
    first = live_or_new(small_ledger.engine, "claims")
    second = new_generation(small_ledger.engine, "claims")
    assert live(small_ledger, "claims") == first and second.number == first.number + 1
    assert second.exists(small_ledger.engine)


def test_audit_view_compares_the_log_with_the_live_projection_too(
    small_ledger: Ledger, kafka_broker: EmbeddedBroker
) -> None:
    """`liability` queries read the live projection once it has caught up, so the audit view
    checks that answer as well: a projection row altered behind the ledger's back (or a
    record the projection skipped) shows as a difference against the projection, with the
    core still equal to the log."""
    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    apply_clean(small_ledger, book())
    as_of = date(2025, 12, 31)
    result = audit_view(small_ledger, kafka, settings, as_of, None)
    assert result.projection_source is None and result.projection_differences == []
    generation = replay_projection(small_ledger, "liability", kafka, settings)
    result = audit_view(small_ledger, kafka, settings, as_of, None)
    assert result.projection_source == f"projection liability g{generation.number}"
    assert result.projection_rows == result.log_rows == result.core_rows
    assert result.clean and result.table() == []
    engine = generation.engine()
    try:
        with engine.begin() as connection:
            connection.execute(
                update(core.money).where(core.money.c.claim_id == "K1")
                .where(core.money.c.kind == "paid").where(core.money.c.amount == "1")
                .values(amount="0.75")
            )
    finally:
        engine.dispose()
    result = audit_view(small_ledger, kafka, settings, as_of, None)
    assert result.differences == [] and not result.clean
    fields = {(d.agreement_id, d.field): (d.log, d.core) for d in result.projection_differences}
    assert fields[("A1", "paid")] == ("1.50", "1.25")
    assert {a for a, _ in fields} == {"A1"}
    paid = next(row for row in result.table() if row["field"] == "paid")
    assert paid == {"agreement_id": "A1", "field": "paid", "log": "1.50", "core": "1.50",
                    "projection": "1.25"}


def test_audit_view_reports_a_forged_envelope_in_the_log(
    sqlite_ledger: Ledger, kafka_broker: EmbeddedBroker
) -> None:
    settings = unique_settings()
    kafka = transport(settings, kafka_broker.bootstrap)
    apply_clean(sqlite_ledger, book())
    position = publish(sqlite_ledger, kafka, settings)
    assert audit_view(sqlite_ledger, kafka, settings, date(2025, 12, 31), None).differences == []
    # forge: customer C1's part of the last sales batch again, under new sale ids, as a
    # part no relay ever sent, chained after the last record of C1's partition (envelope v2:
    # an unchained v1 record there would be quarantined), followed by watermarks
    notifications = [
        n for n in sqlite_ledger.app.recorder.select_notifications(start=1, limit=10_000)
        if "SalesRecorded" in n.topic
    ]
    batch = decode_event(notifications[-1].topic, notifications[-1].state)
    assert isinstance(batch, SalesRecorded)
    customer, part = next((c, p) for c, p in split_sales(batch) if c == "C1")
    state = orjson.loads(encode_event(part))
    state["sales"]["sale_id"] = [f"FORGED-{i}" for i, _ in enumerate(state["sales"]["sale_id"])]
    state["reversals"] = {name: [] for name in state["reversals"]}  # sales only
    unchained = envelope_bytes(part, orjson.dumps(state), position, customer, part=99,
                               parts=100)
    target = partition_of(customer.encode(), PARTITIONS)
    with Relay(sqlite_ledger, kafka, settings) as relay:
        head = relay.heads(PARTITIONS)[target]
    forged, _ = link_record(unchained, head, None)
    producer = kafka.producer()
    producer.send(settings.topic("events"), customer.encode(), forged,
                  [(KIND_HEADER, ENVELOPE_KIND)], partition=target)
    for partition in range(PARTITIONS):
        producer.send(settings.topic("events"), None, watermark_bytes(position),
                      [(KIND_HEADER, WATERMARK_KIND)], partition=partition)
    producer.flush(30)
    producer.close()
    result = audit_view(sqlite_ledger, kafka, settings, date(2025, 12, 31), None)
    fields = {d.field for d in result.differences}
    assert {d.agreement_id for d in result.differences} == {"A1"}
    assert {"basis", "accrued", "liability"} <= fields
    log_row = next(r for r in result.log_rows if r.agreement_id == "A1")
    core_row = next(r for r in result.core_rows if r.agreement_id == "A1")
    forged_quantity = sum(
        (s.quantity for s in part.sales.rows() if s.product_id in ("P1", "P9")), Decimal(0)
    )
    assert forged_quantity > 0
    assert log_row.quantity - core_row.quantity == forged_quantity


def test_cli_replay_audit_view_and_liability_source(
    sqlite_url: str, kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = unique_settings()
    with Ledger(sqlite_url, settings=Settings(chunk_lines=7)) as ledger:
        apply_clean(ledger, book())
    env = {**os.environ, "LEDGER_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
           "LEDGER_KAFKA_TOPIC_PREFIX": settings.topic_prefix,
           "LEDGER_KAFKA_PARTITIONS": str(PARTITIONS), "LEDGER_HOME": str(tmp_path / "home"),
           "LEDGER_DATABASE_URL": sqlite_url, "COLUMNS": "200"}
    before = _cli(["liability", "--as-of", "2025-12-31", "--format", "json"], env)
    core_out, core_err = before.communicate(timeout=60)
    assert before.returncode == 0 and b"answered from" not in core_err
    table = _cli(["liability", "--as-of", "2025-12-31", "-v"], env)
    _, err = table.communicate(timeout=60)
    assert table.returncode == 0 and b"answered from core" in err
    for number in (1, 2):
        replay = _cli(["replay", "liability"], env)
        out, err = replay.communicate(timeout=120)
        assert replay.returncode == 0, err.decode()
        assert f"liability generation {number} is live".encode() in out
    after = _cli(["liability", "--as-of", "2025-12-31", "--format", "json"], env)
    out, err = after.communicate(timeout=60)
    assert after.returncode == 0
    assert orjson.loads(out)["rows"] == orjson.loads(core_out)["rows"] != []
    table = _cli(["liability", "--as-of", "2025-12-31", "-v"], env)
    _, err = table.communicate(timeout=60)
    assert b"answered from projection liability g2" in err, err
    audit = _cli(["audit-view", "--as-of", "2025-06-30", "--known-at", stamp(40),
                  "--format", "json"], env)
    out, err = audit.communicate(timeout=120)
    assert audit.returncode == 0, err.decode()
    document = orjson.loads(out)
    assert document["differences"] == [] and document["rows"] == 5
    with Ledger(sqlite_url) as ledger, ledger.engine.begin() as connection:
        connection.execute(
            update(core.money).where(core.money.c.kind == "written_off").values(amount="2")
        )
    audit = _cli(["audit-view", "--as-of", "2025-12-31"], env)
    out, err = audit.communicate(timeout=120)
    assert audit.returncode == 1, err.decode()
    assert b"differences" in out
    assert b"written_off" in out and b"A5" in out


def test_envelope_decoding_matches_full_validation_and_refuses_a_bad_head(
    sqlite_ledger: Ledger,
) -> None:
    from consumers.relay import sales_records

    apply_clean(sqlite_ledger, book(rounds=2))
    checked = shared = 0
    for n in sqlite_ledger.app.recorder.select_notifications(start=1, limit=1_000):
        if "SalesRecorded" not in n.topic:
            continue
        for _, value in sales_records(n.id, n.state):
            full = Envelope.model_validate_json(value)
            mine = delivered_of(value)
            assert mine == Delivered(full.position, full.part, full.key, full.event_id,
                                     full.event())
            # lines recorded at one moment (same text) share one datetime, as apply's do
            texts = orjson.loads(value)["payload"]["sales"]["recorded_at"]
            assert isinstance(mine.event, SalesRecorded)
            times = mine.event.sales.recorded_at
            for i in range(1, len(times)):
                assert (times[i] is times[i - 1]) == (texts[i] == texts[i - 1]), i
                shared += texts[i] == texts[i - 1]
            checked += 1
    assert checked >= len(CUSTOMERS)
    data = orjson.loads(value)
    if not shared:  # this book records every line at its own hour: each line twice
        columns = data["payload"]["sales"]
        doubled = {**data, "payload": {**data["payload"], "sales": {
            name: [item for item in column for _ in (0, 1)] for name, column in columns.items()
        }}}
        event = delivered_of(orjson.dumps(doubled)).event
        assert isinstance(event, SalesRecorded)
        times = event.sales.recorded_at
        assert len(times) >= 2 and times[1] is times[0]
        assert [t.isoformat() for t in times] == [
            t.isoformat() for t in Envelope.model_validate(doubled).event().sales.recorded_at]
    with pytest.raises(ValidationError):  # a head of a wrong type: full validation
        delivered_of(orjson.dumps({**data, "position": "x"}))
    del data["key"]
    with pytest.raises(ValidationError):
        delivered_of(orjson.dumps(data))


def test_envelope_decoding_resolves_no_topic_and_keeps_every_edge_of_the_head_check(
    sqlite_ledger: Ledger, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 11 point 3: the runner decodes an envelope's event by the class its type names,
    not through `decode_event`'s topic (resolved once per record before), and checks the head's
    types in one pass: the same answers as before. A bool where an int belongs (a subclass, not
    the type) and a payload that carries its own `schema_version` decode as they did."""
    from consumers.relay import sales_records
    from ledger.events import codec

    apply_clean(sqlite_ledger, book(rounds=2))
    unlinked = [value for n in sqlite_ledger.app.recorder.select_notifications(start=1, limit=200)
                if "SalesRecorded" in n.topic for _, value in sales_records(n.id, n.state)]
    assert unlinked
    # v1 as made, and v2 as the relay sends them: one chain, each linked to the one before
    values, head = list(unlinked), GENESIS
    for value in unlinked:
        data = orjson.loads(value)
        linked, link = link_record(value, head, None)
        values.append(linked)
        head = ChainHead(data["position"], data["part"], link)
    expected = [delivered_linked(value) for value in values]
    half = len(unlinked)
    assert all(previous is None for _, previous, _ in expected[:half])
    assert all(previous is not None and mine is not None for _, previous, mine in expected[half:])

    def no_topic(topic: str) -> type:
        raise AssertionError(f"topic {topic} resolved per record")

    monkeypatch.setattr(codec, "resolve_topic", no_topic)
    assert [delivered_linked(value) for value in values] == expected
    monkeypatch.undo()
    data = orjson.loads(values[-1])
    # a bool is not an int to the head check: the envelope's full validation decides
    flagged = {**data, "part": True}
    full = Envelope.model_validate(flagged)
    assert delivered_of(orjson.dumps(flagged)) == Delivered(
        full.position, full.part, full.key, full.event_id, full.event())
    # the payload's own schema_version is the one read (and taken out), as decode_event did
    same = {**data, "payload": {**data["payload"], "schema_version": 1}}
    assert delivered_of(orjson.dumps(same)) == expected[-1][0]
