"""`opportunities` (issue 4, item 6) on the worked book of conftest.py, on SQLite and
PostgreSQL, and through the CLI."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from ledger import Ledger
from ledger.audit.opportunities import opportunities
from tests.e2e.conftest import Runner


def test_next_tier_gap_extra_rebate_and_run_rate(book: Ledger) -> None:
    found = opportunities(book, date(2025, 2, 10))
    assert [o.agreement_id for o in found] == ["A1", "A2"]  # by extra rebate: 160 then 42
    a1, a2 = found
    # A1 at 02-10: S1 60 units (S2 is invoiced 02-15); tiers 1.50 / 2.50 from 100 (the
    # amendment, retroactive to 01-01): 40 more units; now 60 x 1.50 = 90.00, at 100 units
    # 100 x 2.50 = 250.00: 160.00 more. 324 days left (to 12-31); run rate 60 / 41 days x 365
    # = 534.1 units: reaches it.
    assert (a1.basis, a1.next_tier, a1.gap, a1.days_left) == (
        Decimal("60"), Decimal("100"), Decimal("40"), 324)
    assert (a1.earned_now, a1.earned_at_next_tier, a1.extra_rebate) == (
        Decimal("90.00"), Decimal("250.00"), Decimal("160.00"))
    assert a1.projected_basis.quantize(Decimal("0.1")) == Decimal("534.1") and a1.reaches
    # A2: amount 400.00 at 2 % = 8.00; 5 % from 1000: 600.00 more makes 50.00, +42.00
    assert (a2.gap, a2.earned_now, a2.earned_at_next_tier, a2.extra_rebate) == (
        Decimal("600.00"), Decimal("8.00"), Decimal("50.00"), Decimal("42.00"))


def test_top_tier_and_finished_periods_are_no_opportunity(book: Ledger) -> None:
    # at 2025-06-30 A1 has 115 units, above its top threshold; A2 is still below 1000
    assert [o.agreement_id for o in opportunities(book, date(2025, 6, 30))] == ["A2"]
    assert opportunities(book, date(2026, 1, 15)) == []  # both periods ended


def test_a_run_rate_that_falls_short_is_said(book: Ledger) -> None:
    # A2 at 2025-12-30: 400.00 over 364 days projects 401.10 for the year, short of 1000
    (a2,) = opportunities(book, date(2025, 12, 30))
    assert a2.days_left == 1 and not a2.reaches


def test_cli_opportunities_as_a_user_types_it(cli: Runner) -> None:
    done = cli("opportunities", "--as-of", "2025-02-10", "--format", "json")
    assert done.code == 0, str(done)
    rows = done.json()["rows"]
    assert [(r["agreement_id"], r["extra_rebate"], r["reaches_at_run_rate"]) for r in rows] == [
        ("A1", "160.00", "yes"), ("A2", "42.00", "yes")]
    done = cli("opportunities", "--as-of", "2025-02-10", "--limit", "1", "--format", "csv")
    assert len(done.stdout.splitlines()) == 2


def test_cli_opportunities_for_one_agreement(cli: Runner) -> None:
    """Issue 14, point 8: --agreement on every per-agreement report."""
    every = cli("opportunities", "--as-of", "2025-02-10", "--format", "json").json()["rows"]
    done = cli("opportunities", "--as-of", "2025-02-10", "--agreement", "A2", "--format", "json")
    assert done.code == 0, str(done)
    assert done.json()["rows"] == [r for r in every if r["agreement_id"] == "A2"] != []
    unknown = cli("opportunities", "--as-of", "2025-02-10", "--agreement", "a2")
    assert unknown.code == 2 and "A2" in unknown.stderr, str(unknown)
