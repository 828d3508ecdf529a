"""The basis summed by blocks (`core_basis_blocks`, issue 13's benchmark): a point query takes
whole blocks where they count whole at (D, K) and reads `core_basis` rows for the rest. Checked
against a naive sum of the commands themselves at many (D, K), with late sales, reversals,
periods that start and end inside blocks, sums too large for 64-bit integers, and a store made
before the table existed. On SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from ledger import Ledger
from ledger.audit.tables import verify_tables
from ledger.projections import core
from tests.contract import helpers as h

START = datetime(2025, 1, 1, tzinfo=UTC)


def _book(seed: int = 13) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Commands in recorded order (sales recorded up to 200 days after their invoice,
    reversals of recorded sales), and the same facts for the naive sum."""
    rng = random.Random(seed)
    commands: list[dict[str, Any]] = [
        h.at("2025-01-01T00:00:00Z", h.agreement("A1")),
        h.at("2025-01-01T00:00:00Z", h.agreement(
            "A2", period_start="2025-02-10", period_end="2025-11-20", basis="amount",
            rate_kind="percent", tiers=(("0", "0.01"),))),
    ]
    facts: list[dict[str, Any]] = []
    now = START
    recorded: list[dict[str, Any]] = []
    for n in range(500):
        now += timedelta(hours=rng.randrange(1, 30))
        if recorded and rng.random() < 0.1:
            sale = recorded.pop(rng.randrange(len(recorded)))
            latest = min(now.date(), date(2025, 12, 31))
            reversed_on = sale["invoice"] + timedelta(
                days=rng.randrange(0, max(1, (latest - sale["invoice"]).days + 40)))
            commands.append(h.at(now.isoformat(), h.reversal(sale["id"],
                                                             reversed_on.isoformat())))
            facts.append({**sale, "sign": -1, "effective": reversed_on, "recorded": now})
            continue
        invoice = min(now.date(), date(2025, 12, 31)) - timedelta(days=rng.randrange(0, 200))
        invoice = max(invoice, date(2024, 12, 1))
        quantity = Decimal(rng.randrange(1, 10_000)) / 100
        amount = Decimal(rng.randrange(1, 10_000_000)) / 100
        sale = {"id": f"S{n}", "invoice": invoice, "quantity": quantity, "amount": amount}
        commands.append(h.at(now.isoformat(), h.sale(
            sale["id"], str(quantity), str(amount), invoice.isoformat(),
            product_id=rng.choice(["P1", "P2", "P3"]))))
        facts.append({**sale, "sign": 1, "effective": invoice, "recorded": now})
        recorded.append(sale)
    return commands, facts


def _naive(facts: list[dict[str, Any]], first: date, last: date, as_of: date,
           known: datetime, field: str) -> Decimal:
    last = min(last, as_of)
    return sum((f["sign"] * f[field] for f in facts
                if first <= f["invoice"] <= last and f["effective"] <= as_of
                and f["recorded"] <= known), Decimal(0))


def test_the_basis_read_by_blocks_equals_the_naive_sum_at_every_d_and_k(
        database_url: str) -> None:
    commands, facts = _book()
    end = max(f["recorded"] for f in facts)
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, commands)
        with ledger.engine.connect() as connection:
            blocks = connection.execute(select(core.basis_blocks)).all()
        assert 0 < len(blocks) < len(facts)  # summed, not copied

        @settings(max_examples=60, deadline=None)
        @given(as_of=st.dates(date(2024, 12, 1), date(2026, 3, 1)),
               known=st.integers(0, int((end - START).total_seconds()) + 86_400))
        def check(as_of: date, known: int) -> None:
            known_at = START + timedelta(seconds=known)
            by_id = {r.agreement_id: r for r in ledger.liability(as_of, known_at)}
            assert by_id["A1"].basis == _naive(
                facts, date(2025, 1, 1), date(2025, 12, 31), as_of, known_at, "quantity")
            assert by_id["A2"].basis == _naive(
                facts, date(2025, 2, 10), date(2025, 11, 20), as_of, known_at, "amount")

        check()
        # everything recorded: only whole blocks but the ends of A2's period
        rows = {r.agreement_id: r for r in ledger.liability(date(2025, 12, 31))}
        assert rows["A1"].basis == _naive(facts, date(2025, 1, 1), date(2025, 12, 31),
                                          date(2025, 12, 31), end, "quantity")


def test_sums_past_64_bit_integers_are_exact(database_url: str) -> None:
    huge = "9000000000000.000001"  # 9e18 millionths: one fits, two overflow 64 bits
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, [
            h.at("2025-01-01T00:00:00Z", h.agreement("A1", basis="amount")),
            *(h.at(f"2025-03-0{n}T00:00:00Z", h.sale(f"S{n}", "1", huge, f"2025-02-0{n}"))
              for n in range(1, 5)),
        ])
        with ledger.engine.connect() as connection:
            sums = connection.execute(select(core.basis_blocks.c.a_micro)).scalars().all()
        assert None in sums  # the block gave up its sum in millionths
        (row,) = ledger.liability(date(2025, 12, 31))
        assert row.basis == 4 * Decimal(huge)


def test_a_store_made_before_the_blocks_gets_them_on_opening(database_url: str) -> None:
    commands, facts = _book(seed=7)
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, commands)
        before = [r.to_dict() for r in ledger.liability(date(2025, 9, 30))]
        with ledger.engine.begin() as connection:
            made = sorted(connection.execute(select(core.basis_blocks)).all())
            core.basis_blocks.drop(connection)
    with Ledger(database_url) as ledger:
        with ledger.engine.connect() as connection:
            assert sorted(connection.execute(select(core.basis_blocks)).all()) == made
        assert [r.to_dict() for r in ledger.liability(date(2025, 9, 30))] == before
        assert verify_tables(ledger).ok


def test_a_block_that_counts_in_part_is_read_row_by_row(database_url: str) -> None:
    """Two reversals of sales invoiced on 20 January take effect on 20 February and 15 March
    (one effective block: 14 February to 17 March), and two more sales of 20 January are
    recorded on 12 February and 10 March (one recorded block: 9 February to 12 March): at
    D = 1 March, and as known at 1 March, only one of each counts."""
    assert {core.day(date(2025, 2, 20)) // core.BLOCK_DAYS,
            core.day(date(2025, 3, 15)) // core.BLOCK_DAYS} == {23103}
    assert {core.to_us(h.moment(t)) // core.BLOCK_US
            for t in ("2025-02-12T00:00:00Z", "2025-03-10T00:00:00Z")} == {629}
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, [
            h.at("2025-01-01T00:00:00Z", h.agreement("A1")),
            h.at("2025-01-25T00:00:00Z", h.sale("S1", "5", "50", "2025-01-20")),
            h.at("2025-01-25T00:00:00Z", h.sale("S2", "7", "70", "2025-01-20")),
            h.at("2025-02-10T00:00:00Z", h.reversal("S1", "2025-02-20")),
            h.at("2025-02-10T00:00:00Z", h.reversal("S2", "2025-03-15")),
            h.at("2025-02-12T00:00:00Z", h.sale("S3", "11", "110", "2025-01-20")),
            h.at("2025-03-10T00:00:00Z", h.sale("S4", "13", "130", "2025-01-20")),
        ])
        assert h.one_row(ledger, "2025-03-01", "2025-03-01T00:00:00Z")["basis"] == "18"
        assert h.one_row(ledger, "2025-03-31", "2025-03-01T00:00:00Z")["basis"] == "11"
        assert h.one_row(ledger, "2025-03-01")["basis"] == "31"
        assert h.one_row(ledger, "2025-03-31")["basis"] == "24"


def test_blocks_upserted_in_many_statements_are_the_blocks_of_one(
        database_url: str, monkeypatch: Any) -> None:
    """`add_to_blocks` upserts `BLOCKS_PER_STATEMENT` blocks a statement: split in threes (a
    chunk's blocks take many statements; the second half of the book meets blocks the first
    stored), every block is the sum of its `core_basis` rows."""
    commands, _ = _book(seed=3)
    half = len(commands) // 2
    monkeypatch.setattr(core, "BLOCKS_PER_STATEMENT", 3)
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, commands[:half])
        h.accepted_all(ledger, commands[half:])
        with ledger.engine.connect() as connection:
            stored = {tuple(row[:5]): list(row[5:])
                      for row in connection.execute(select(core.basis_blocks))}
            rows = connection.execute(
                select(*(core.basis.c[name] for name in core.BASIS_COLUMNS))).all()
    assert len(stored) > 6
    assert stored == core.block_sums(rows)


_MICROS = st.one_of(st.none(), st.integers(-core.BLOCK_LIMIT - 2, core.BLOCK_LIMIT + 2),
                    st.sampled_from([core.BLOCK_LIMIT - 1, 1 - core.BLOCK_LIMIT,
                                     core.BLOCK_LIMIT, -core.BLOCK_LIMIT]))


@given(st.lists(st.tuples(st.sampled_from(["C1", "C2"]), st.integers(0, 70),
                          st.integers(0, 70), st.integers(0, 3 * core.BLOCK_US),
                          _MICROS, _MICROS), max_size=40))
@settings(max_examples=300, deadline=None)
def test_block_sums_are_exact_or_none_and_none_only_past_the_limit(
        rows: list[tuple[Any, ...]]) -> None:
    # the rule `block_sums` writes out in its loop for speed, and `_merged` (a store made
    # before the blocks) keeps with `_bounded_sum`: a block's sum is the exact sum of its rows
    # and inside the limit, or None; it is None only when a row has no figure in millionths
    # or a figure or a running total leaves the limit
    basis_rows = [(customer, "EUR", "P1", invoice, effective, recorded, q, a, None, None, n)
                  for n, (customer, invoice, effective, recorded, q, a) in enumerate(rows)]
    folded: dict[core.BlockKey, core.BlockSum] = {}
    for row in basis_rows:
        for key, one in core.block_sums([row]).items():
            folded[key] = one if key not in folded else core._merged(folded[key], one)
    summed = core.block_sums(basis_rows)
    assert summed.keys() == folded.keys()
    limit = core.BLOCK_LIMIT
    for key, found in summed.items():
        inside = [r for r in basis_rows if (r[0], r[1], r[3] // core.BLOCK_DAYS,
                                            r[4] // core.BLOCK_DAYS,
                                            r[5] // core.BLOCK_US) == key]
        assert found[2:] == folded[key][2:] == [
            min(r[4] for r in inside), max(r[4] for r in inside),
            min(r[5] for r in inside), max(r[5] for r in inside)]
        for column, total in ((6, found[0]), (7, found[1])):
            parts = [r[column] for r in inside]
            always_inside = None not in parts and all(
                -limit < part < limit and -limit < sum(parts[:n + 1]) < limit
                for n, part in enumerate(parts))
            for blocks in (summed, folded):
                total = blocks[key][column - 6]
                assert total is None or (None not in parts and total == sum(parts)
                                         and -limit < total < limit), (column, parts, total)
                assert total is not None or not always_inside, (column, parts)
