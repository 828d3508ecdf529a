"""Issue 14 point 4, the generic reports: opportunities, positions, reconcile, diff, journal and
programs print money with thousands separators and the currency, quantities in units, rates as
`0.44 EUR/unit` or `4 %`, as a user types the commands; their json stays plain and exact.

The book (worked by hand): customer C1's quantity agreement pays 0.40 EUR/unit from 0 and
0.44 from 1,000 units (0.50 from 2,000); C1 bought 1,050 units for 70,000.00 EUR: basis 1,050
units, accrued 1,050 x 0.44 = 462.00 EUR, 950 units short of 2,000. C2's amount agreement pays
2 % from 0 and 4 % from 100,000.00 EUR; C2 bought 70,000.00 EUR: accrued 1,400.00 EUR, 30,000.00
EUR short of the 4 % tier."""

from __future__ import annotations

from decimal import Decimal

import pytest

from .conftest import Runner, agreement, sale


@pytest.fixture
def book(run: Runner) -> Runner:
    run.write("book.jsonl", [
        agreement("AQ", "C1", tiers=[{"from": "0", "rate": "0.40"},
                                     {"from": "1000", "rate": "0.44"},
                                     {"from": "2000", "rate": "0.50"}]),
        agreement("AP", "C2", basis="amount", rate_kind="percent",
                  tiers=[{"from": "0", "rate": "0.02"}, {"from": "100000", "rate": "0.04"}]),
        sale("S1", "C1", "1050", "70000.00", "2025-03-01"),
        sale("S2", "C2", "10", "70000.00", "2025-03-02"),
    ])
    assert run("apply", "book.jsonl", "-q").code == 0
    return run


def table(book: Runner, *args: str) -> str:
    done = book(*args, env={"COLUMNS": "250"})
    assert done.code == 0, str(done)
    return done.stdout


def test_opportunities_name_units_currency_and_rates(book: Runner) -> None:
    out = table(book, "opportunities", "--as-of", "2025-06-30")
    for text in ("1,050 units", "2,000 units", "950 units", "0.50 EUR/unit", "462.00 EUR",
                 "70,000.00 EUR", "100,000.00 EUR", "30,000.00 EUR", "4 %", "1,400.00 EUR"):
        assert text in out, (text, out)
    rows = {r["agreement_id"]: r for r in book("opportunities", "--as-of", "2025-06-30",
                                               "--format", "json").json()["rows"]}
    assert rows["AQ"]["basis"] == "1050" and rows["AQ"]["next_rate"] == "0.5"
    assert rows["AP"]["next_rate"] == "0.04" and rows["AP"]["rate_kind"] == "percent"
    assert Decimal(rows["AP"]["earned_now"]) == Decimal("1400.00")


def test_positions_show_the_tier_reached_and_the_next_in_people_terms(book: Runner) -> None:
    out = table(book, "positions", "--customer", "C1", "--as-of", "2025-06-30")
    for text in ("1,050 units", "1,000 units", "0.44 EUR/unit", "0.50 EUR/unit", "950 units",
                 "462.00 EUR"):
        assert text in out, (text, out)
    out = table(book, "positions", "--customer", "C2", "--as-of", "2025-06-30")
    for text in ("70,000.00 EUR", "2 %", "4 %", "30,000.00 EUR", "1,400.00 EUR"):
        assert text in out, (text, out)


def test_reconcile_and_journal_show_money_with_the_currency(book: Runner) -> None:
    out = table(book, "reconcile", "--as-of", "2025-06-30")
    assert "462.00 EUR" in out and "1,400.00 EUR" in out
    assert "EUR: accrued 1,862.00 EUR" in out  # the totals line: 462 + 1,400
    csv = book("reconcile", "--as-of", "2025-06-30", "--format", "csv").stdout
    assert ",462.00," in csv and "EUR " not in csv
    out = table(book, "journal", "--as-of", "2025-06-30")
    assert out.count("1,400.00 EUR") == 2 and out.count("462.00 EUR") == 2  # debit and credit


def test_diff_shows_the_change_in_money_and_units(book: Runner) -> None:
    moment = book("liability", "--as-of", "2025-06-30", "--format", "json").json()["known_at"]
    book.write("more.jsonl", [sale("S3", "C1", "1000", "60000.00", "2025-04-01")])
    assert book("apply", "more.jsonl", "-q").code == 0
    out = table(book, "diff", "--as-of", "2025-06-30", "--known-at", moment)
    # 2,050 units reach 0.50: 1,025.00 EUR, up 563.00 EUR from 462.00
    for text in ("1,050 units", "2,050 units", "462.00 EUR", "1,025.00 EUR", "563.00 EUR",
                 "liability change +563.00 EUR"):
        assert text in out, (text, out)
    rows = book("diff", "--as-of", "2025-06-30", "--known-at", moment, "--format",
                "json").json()["rows"]
    assert rows[0]["basis_after"] == "2050" and rows[0]["liability_change"] == "563.00"
