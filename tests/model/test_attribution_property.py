"""Hypothesis property (issue 12 point 3): the sales projection's attribution at (D, K),
summed per agreement, is the quantity and amount the liability's basis uses at (D, K), on
generated books whose amendments change products and period mid-period, with reversals and a
buying group's joins and leaves, each recorded at its own time.

The sales projection is fed here straight from the store's events (the Kafka path is tested
in tests/integration), into an in-memory SQLite database."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session

from ledger import Ledger
from ledger.events.codec import decode_event
from ledger.projections.generations import memory_engine
from ledger.projections.read_models import (
    Delivered,
    ProjectionOutdated,
    SalesModel,
    attribution,
)
from tests.contract import helpers as h

START = datetime(2025, 1, 1, tzinfo=UTC)
PRODUCTS = ("P1", "P2", "P3")
CUSTOMERS = ("C1", "C2")
DAYS = st.integers(0, 364).map(lambda n: (date(2025, 1, 1) + timedelta(days=n)).isoformat())


def stamp(n: int) -> str:
    return (START + timedelta(hours=n)).isoformat()


@st.composite
def books(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Two customer agreements (one on a product list) and a group's agreement, then a mix of
    sales, reversals, amendments of products and period, joins and leaves."""
    commands: list[dict[str, Any]] = [
        h.agreement("A1", customer_id="C1", products=["P1", "P2"]),
        h.agreement("A2", customer_id="C2", basis="amount", rate_kind="percent",
                    tiers=(("0", "0.05"),)),
        h.group(),
        h.join("C1", draw(DAYS)),
        h.group_agreement("GA", products=["P3"]),
    ]
    sales: list[tuple[str, str]] = []
    for n in range(draw(st.integers(4, 25))):
        kind = draw(st.sampled_from(["sale"] * 4 + ["reversal", "amend", "member"]))
        if kind == "sale":
            sale_id, invoice = f"S{n}", draw(DAYS)
            sign = draw(st.sampled_from(["", "", "", "-"]))
            commands.append(h.sale(
                sale_id, f"{sign}{draw(st.integers(1, 40))}",
                f"{sign}{draw(st.integers(1, 9000))}.{draw(st.integers(0, 99)):02d}",
                invoice, customer_id=draw(st.sampled_from(CUSTOMERS)),
                product_id=draw(st.sampled_from(PRODUCTS)),
            ))
            sales.append((sale_id, invoice))
        elif kind == "reversal" and sales:
            sale_id, invoice = sales.pop(draw(st.integers(0, len(sales) - 1)))
            reversed_on = max(invoice, draw(DAYS))
            commands.append(h.reversal(sale_id, reversed_on))
        elif kind == "amend":
            changes: dict[str, Any] = {}
            if draw(st.booleans()):
                changes["products"] = draw(st.one_of(
                    st.none(),
                    st.lists(st.sampled_from(PRODUCTS), min_size=1, max_size=3, unique=True),
                ))
            if draw(st.booleans()) or not changes:
                changes["period_end"] = draw(DAYS)
            commands.append(h.amend(draw(st.sampled_from(["A1", "A2", "GA"])), draw(DAYS),
                                    **changes))
        elif kind == "member":
            customer = draw(st.sampled_from(CUSTOMERS))
            make = draw(st.sampled_from([h.join, h.leave]))
            commands.append(make(customer, draw(DAYS)))
    return [h.at(stamp(n), command) for n, command in enumerate(commands)]


def sales_projection(ledger: Ledger) -> Any:
    """The sales projection of everything stored, in store order (as one partition would)."""
    engine = memory_engine()
    model = SalesModel()
    model.create(engine)
    items = [
        Delivered(n.id, 0, "", f"{n.originator_id}/{n.originator_version}",
                  decode_event(n.topic, n.state))
        for n in ledger.app.recorder.select_notifications(start=1, limit=100_000)
    ]
    with Session(engine) as session, session.begin():
        model.apply(session, items)
    return engine


def sums_per_agreement(session: Session, as_of: date,
                       known_at: datetime | None) -> dict[str, tuple[Decimal, Decimal]]:
    sums: dict[str, tuple[Decimal, Decimal]] = {}
    for row in attribution(session, as_of, known_at):
        quantity, amount = sums.get(row.agreement_id, (Decimal(0), Decimal(0)))
        sums[row.agreement_id] = (quantity + row.quantity, amount + row.amount)
    return sums


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book=books(), dates=st.lists(DAYS, min_size=2, max_size=4))
def test_attribution_summed_per_agreement_is_the_liability_basis_at_every_d_and_k(
    book: list[dict[str, Any]], dates: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp, \
            Ledger(f"sqlite:///{Path(tmp) / 'ledger.db'}") as ledger:
        ledger.apply(book)
        engine = sales_projection(ledger)
        try:
            known = [None, *(START + timedelta(hours=n, minutes=30)
                             for n in range(3, len(book), max(1, len(book) // 4)))]
            with Session(engine) as session:
                for as_of in [date.fromisoformat(d) for d in dates]:
                    for known_at in known:
                        expected = {
                            row.agreement_id: (row.quantity, row.amount)
                            for row in ledger.liability(as_of, known_at)
                            if row.quantity or row.amount
                        }
                        assert sums_per_agreement(session, as_of, known_at) == expected, (
                            as_of, known_at)
        finally:
            engine.dispose()


def test_products_amended_mid_period_count_by_the_terms_in_force_at_d(tmp_path: Path) -> None:
    """A1 covers P1 until an amendment effective 1 May makes it P2: at 30 April the P1 sales
    count (not by the latest terms), from 1 May the P2 ones; as known before the amendment
    was recorded, P1 still counts at 31 December."""
    book = [h.at(stamp(n), c) for n, c in enumerate([
        h.agreement("A1", products=["P1"]),
        h.sale("S1", "3", "30", "2025-02-10", product_id="P1"),
        h.sale("S2", "5", "50", "2025-03-10", product_id="P2"),
        h.amend("A1", "2025-05-01", products=["P2"]),
    ])]
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        ledger.apply(book)
        engine = sales_projection(ledger)
        try:
            with Session(engine) as session:
                before_amendment_known = START + timedelta(hours=2, minutes=30)
                got = {
                    (as_of, known_at): [(r.month, r.quantity) for r in
                                        attribution(session, as_of, known_at)]
                    for as_of, known_at in [(date(2025, 4, 30), None),
                                            (date(2025, 5, 1), None),
                                            (date(2025, 12, 31), before_amendment_known)]
                }
                assert got == {
                    (date(2025, 4, 30), None): [("2025-02", Decimal(3))],
                    (date(2025, 5, 1), None): [("2025-03", Decimal(5))],
                    (date(2025, 12, 31), before_amendment_known): [("2025-02", Decimal(3))],
                }
                # a projection built before the terms history was kept refuses, naming replay
                session.execute(text("DELETE FROM sa_terms_changes"))
                with pytest.raises(ProjectionOutdated, match="rebate-ledger replay sales"):
                    attribution(session, date(2025, 12, 31))
        finally:
            engine.dispose()
