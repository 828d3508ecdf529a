"""Contract section 2 (liability at a point in time), through the public `Ledger` API, on
SQLite and PostgreSQL.

Every expected row is a worked example computed by hand from the contract text; the arithmetic
is in the comment next to it. Unless a test says otherwise, agreement A1 is customer C1's, in
EUR, for 2025, retroactive on quantity at 1 EUR a unit. Tests that ask "as known at K" load
their history with explicit `recorded_at` times.
"""

from __future__ import annotations

from typing import Any

from ledger import Ledger

from .helpers import (
    accepted_all,
    agreement,
    amend,
    approve,
    at,
    forecast,
    one_row,
    reversal,
    row,
    rows,
    sale,
    settle,
    submit,
    tier_list,
    write_off,
)

# Recorded times used by the "as known at K" tests.
T1 = "2025-01-02T09:00:00Z"
T2 = "2025-03-02T09:00:00Z"
T3 = "2025-04-10T09:00:00Z"
T4 = "2025-05-15T09:00:00Z"
T5 = "2025-07-01T09:00:00Z"


def zero() -> dict[str, str]:
    return row(basis="0", accrued="0.00", liability="0.00")


# 2.1 Terms in force at D ------------------------------------------------------------------


def test_an_amendment_applies_from_its_effective_date_to_every_eligible_sale(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        agreement(),
        sale("S1", "10", "100", "2025-03-01"),
        sale("S2", "5", "50", "2025-08-01"),
        amend("A1", "2025-07-01", tiers=tier_list((("0", "2"),))),
    ])
    # 30 June: creation terms, B = 10 → 1 × 10 = 10.00
    assert one_row(ledger, "2025-06-30") == row(basis="10", accrued="10.00", liability="10.00")
    # 1 July: the amendment is in force; it prices the March sale too: 2 × 10 = 20.00
    assert one_row(ledger, "2025-07-01") == row(basis="10", accrued="20.00", liability="20.00")
    # 31 August: B = 10 + 5 = 15 → 2 × 15 = 30.00
    assert one_row(ledger, "2025-08-31") == row(basis="15", accrued="30.00", liability="30.00")


def test_amendments_are_laid_over_in_recorded_order_not_effective_order(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(),
        sale("S1", "10", "100", "2025-02-01"),
        amend("A1", "2025-05-01", tiers=tier_list((("0", "3"),))),  # recorded first
        amend("A1", "2025-04-01", tiers=tier_list((("0", "2"),))),  # recorded second
    ])
    # 31 March: neither in force: 1 × 10 = 10.00
    assert one_row(ledger, "2025-03-31") == row(basis="10", accrued="10.00", liability="10.00")
    # 15 April: only the second: 2 × 10 = 20.00
    assert one_row(ledger, "2025-04-15") == row(basis="10", accrued="20.00", liability="20.00")
    # 1 June: both in force, laid in recorded order, so the second (rate 2) is on top:
    # 2 × 10 = 20.00 (not 3 × 10 = 30.00, which ordering by effective_from would give).
    assert one_row(ledger, "2025-06-01") == row(basis="10", accrued="20.00", liability="20.00")


def test_of_two_amendments_with_the_same_effective_from_the_later_recorded_wins(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        at(T1, agreement()),
        at(T1, sale("S1", "10", "100", "2025-02-01")),
        at(T2, amend("A1", "2025-04-01", tiers=tier_list((("0", "3"),)))),
        at(T3, amend("A1", "2025-04-01", tiers=tier_list((("0", "2"),)))),
    ])
    # Now: the later recorded (rate 2) wins: 2 × 10 = 20.00
    assert one_row(ledger, "2025-05-01") == row(basis="10", accrued="20.00", liability="20.00")
    # As known at T2 only the first exists: 3 × 10 = 30.00
    assert one_row(ledger, "2025-05-01", known_at=T2) == row(
        basis="10", accrued="30.00", liability="30.00"
    )


def test_commands_with_equal_recorded_at_take_effect_in_the_order_applied(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        at(T1, agreement()),
        at(T1, sale("S1", "10", "100", "2025-02-01")),
        at(T2, amend("A1", "2025-04-01", tiers=tier_list((("0", "3"),)))),
        at(T2, amend("A1", "2025-04-01", tiers=tier_list((("0", "2"),)))),
    ])
    # Both recorded at T2; the one applied second is on top: 2 × 10 = 20.00
    assert one_row(ledger, "2025-05-01", known_at=T2) == row(
        basis="10", accrued="20.00", liability="20.00"
    )


def test_a_retroactive_amendment_changes_a_closed_period_as_known_now_not_as_known_at_close(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        at(T1, agreement()),
        at(T2, sale("S1", "10", "100", "2025-03-01")),
        # Recorded in May, effective from the start of the year:
        at(T4, amend("A1", "2025-01-01", tiers=tier_list((("0", "1.5"),)))),
    ])
    # Q1 as known at close (T3, 10 April): 1 × 10 = 10.00
    assert one_row(ledger, "2025-03-31", known_at=T3) == row(
        basis="10", accrued="10.00", liability="10.00"
    )
    # Q1 as known now: 1.5 × 10 = 15.00
    assert one_row(ledger, "2025-03-31") == row(basis="10", accrued="15.00", liability="15.00")


def test_an_amended_cap_of_null_removes_the_cap(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(cap="50"),
        sale("S1", "80", "800", "2025-03-01"),
        amend("A1", "2025-07-01", cap=None),
    ])
    # 30 June: min(1 × 80, 50) = 50.00
    assert one_row(ledger, "2025-06-30") == row(basis="80", accrued="50.00", liability="50.00")
    # 1 July: no cap: 1 × 80 = 80.00
    assert one_row(ledger, "2025-07-01") == row(basis="80", accrued="80.00", liability="80.00")


def test_an_amended_cap_replaces_the_cap(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(),
        sale("S1", "80", "800", "2025-03-01"),
        amend("A1", "2025-07-01", cap="60"),
    ])
    # 30 June: no cap: 80.00; 1 July: min(80, 60) = 60.00
    assert one_row(ledger, "2025-06-30") == row(basis="80", accrued="80.00", liability="80.00")
    assert one_row(ledger, "2025-07-01") == row(basis="80", accrued="60.00", liability="60.00")


def test_an_amended_period_end_extends_the_period_from_its_effective_date(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        agreement(period_end="2025-06-30"),
        sale("S1", "10", "100", "2025-05-01"),
        sale("S2", "20", "200", "2025-08-01"),
    ])
    # Before the amendment: S2 lies after period_end: B = 10 → 10.00
    assert one_row(ledger, "2025-09-30") == row(basis="10", accrued="10.00", liability="10.00")
    accepted_all(ledger, [amend("A1", "2025-07-01", period_end="2025-12-31")])
    # 30 September: period to 31 December, B = 10 + 20 = 30 → 30.00
    assert one_row(ledger, "2025-09-30") == row(basis="30", accrued="30.00", liability="30.00")
    # 30 June: the creation period still: B = 10 → 10.00
    assert one_row(ledger, "2025-06-30") == row(basis="10", accrued="10.00", liability="10.00")


def test_an_amended_period_end_can_shorten_the_period(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(),
        sale("S1", "10", "100", "2025-02-01"),
        sale("S2", "20", "200", "2025-05-01"),
        amend("A1", "2025-01-01", period_end="2025-03-31"),
    ])
    # Period now [1 January, 31 March]: only S1, B = 10 → 10.00
    assert one_row(ledger, "2025-12-31") == row(basis="10", accrued="10.00", liability="10.00")


def test_an_amended_product_list_applies_from_its_effective_date(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(products=["P1"]),
        sale("S1", "10", "100", "2025-02-01", product_id="P1"),
        sale("S2", "20", "200", "2025-03-01", product_id="P2"),
        amend("A1", "2025-07-01", products=["P1", "P2"]),
    ])
    # 30 June: only P1: B = 10 → 10.00; 1 July: P1 and P2: B = 30 → 30.00
    assert one_row(ledger, "2025-06-30") == row(basis="10", accrued="10.00", liability="10.00")
    assert one_row(ledger, "2025-07-01") == row(basis="30", accrued="30.00", liability="30.00")


# 2.2 Eligible sales -----------------------------------------------------------------------


def eligibility_book(ledger: Ledger, products: list[str] | None) -> None:
    """Quantities are powers of two, so the basis tells which sales were counted."""
    extra: dict[str, Any] = {} if products is None else {"products": products}
    accepted_all(ledger, [
        agreement(period_start="2025-02-01", period_end="2025-11-30", **extra),
        sale("S1", "1", "10", "2025-03-01"),  # eligible
        sale("S2", "2", "20", "2025-02-01", product_id="P2"),  # eligible: first day
        sale("S3", "4", "40", "2025-03-01", product_id="P3"),  # product not listed
        sale("S4", "8", "80", "2025-03-01", customer_id="C2"),  # another customer
        sale("S5", "16", "160", "2025-03-01", currency="USD"),  # another currency
        sale("S6", "32", "320", "2025-01-31"),  # before period_start
        sale("S7", "64", "640", "2025-12-01"),  # after period_end
        sale("S8", "128", "1280", "2025-11-30"),  # eligible: last day
        sale("S9", "256", "2560", "2025-06-15"),  # eligible from its invoice date
    ])


def test_eligible_sales_match_customer_currency_product_period_and_invoice_date(
    ledger: Ledger,
) -> None:
    eligibility_book(ledger, products=["P1", "P2"])
    # 14 June: S1 + S2 = 1 + 2 = 3 → 3.00
    assert one_row(ledger, "2025-06-14") == row(basis="3", accrued="3.00", liability="3.00")
    # 15 June: + S9 = 3 + 256 = 259 → 259.00
    assert one_row(ledger, "2025-06-15") == row(basis="259", accrued="259.00",
                                                liability="259.00")
    # 31 December: + S8 = 259 + 128 = 387 → 387.00
    assert one_row(ledger, "2025-12-31") == row(basis="387", accrued="387.00",
                                                liability="387.00")


def test_an_agreement_without_products_covers_every_product(ledger: Ledger) -> None:
    eligibility_book(ledger, products=None)
    # 31 December: S1 + S2 + S3 + S8 + S9 = 1 + 2 + 4 + 128 + 256 = 391 → 391.00
    assert one_row(ledger, "2025-12-31") == row(basis="391", accrued="391.00",
                                                liability="391.00")


def test_a_sale_is_excluded_from_its_reversal_date_on(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(),
        sale("S1", "10", "100", "2025-03-01"),
        sale("S2", "5", "50", "2025-03-05"),
        reversal("S1", "2025-04-30"),
    ])
    # 29 April: the reversal is later than D, S1 still counts: B = 15 → 15.00
    assert one_row(ledger, "2025-04-29") == row(basis="15", accrued="15.00", liability="15.00")
    # 30 April: reversed_on ≤ D, S1 is out: B = 5 → 5.00
    assert one_row(ledger, "2025-04-30") == row(basis="5", accrued="5.00", liability="5.00")


def test_a_reversal_recorded_after_k_is_ignored_as_known_at_k(ledger: Ledger) -> None:
    accepted_all(ledger, [
        at(T1, agreement()),
        at(T2, sale("S1", "10", "100", "2025-03-01")),
        at(T4, reversal("S1", "2025-03-31")),
    ])
    # Q1 as known at T3: the reversal was not yet recorded: 10.00
    assert one_row(ledger, "2025-03-31", known_at=T3) == row(
        basis="10", accrued="10.00", liability="10.00"
    )
    # Q1 as known now: 0.00
    assert one_row(ledger, "2025-03-31") == zero()


def test_a_reversed_return_adds_its_quantity_back(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(),
        sale("S1", "10", "100", "2025-03-01"),
        sale("R1", "-4", "-40", "2025-03-10"),
        reversal("R1", "2025-04-01"),
    ])
    # 31 March: B = 10 − 4 = 6 → 6.00; 1 April: the return is reversed: B = 10 → 10.00
    assert one_row(ledger, "2025-03-31") == row(basis="6", accrued="6.00", liability="6.00")
    assert one_row(ledger, "2025-04-01") == row(basis="10", accrued="10.00", liability="10.00")


# 2.3–2.5 Basis, measure and tiers ----------------------------------------------------------


def test_retroactive_quantity_per_unit_tier_is_reached_exactly_at_from(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(tiers=(("0", "1"), ("100", "1.5"), ("200", "2"))),
        sale("S1", "99", "990", "2025-03-01"),
        sale("S2", "1", "10", "2025-04-01"),
        sale("S3", "150", "1500", "2025-05-01"),
    ])
    # 31 March: B = 99 → rate 1 → 99.00
    assert one_row(ledger, "2025-03-31") == row(basis="99", accrued="99.00", liability="99.00")
    # 30 April: B = 100 = from of tier 2 → rate 1.5 on all 100 units → 150.00
    assert one_row(ledger, "2025-04-30") == row(basis="100", accrued="150.00",
                                                liability="150.00")
    # 31 May: B = 250 → rate 2 → 500.00
    assert one_row(ledger, "2025-05-31") == row(basis="250", accrued="500.00",
                                                liability="500.00")


def test_retroactive_amount_percent(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(basis="amount", rate_kind="percent", tiers=(("0", "0.01"), ("10000", "0.03"))),
        sale("S1", "3", "9999.99", "2025-03-01"),
        sale("S2", "1", "0.01", "2025-04-01"),
    ])
    # 31 March: A = 9999.99 → 0.01 × 9999.99 = 99.9999 → 100.00
    assert one_row(ledger, "2025-03-31") == row(basis="9999.99", accrued="100.00",
                                                liability="100.00")
    # 30 April: A = 10000 (tier reached) → 0.03 × 10000 = 300.00
    assert one_row(ledger, "2025-04-30") == row(basis="10000", accrued="300.00",
                                                liability="300.00")


def test_retroactive_quantity_basis_with_a_percent_rate_applies_to_the_amount(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        agreement(basis="quantity", rate_kind="percent", tiers=(("0", "0"), ("100", "0.05"))),
        sale("S1", "60", "1345.67", "2025-03-01"),
        sale("S2", "40", "1000", "2025-04-01"),
    ])
    # 31 March: B = Q = 60 → rate 0 → 0.00
    assert one_row(ledger, "2025-03-31") == row(basis="60", accrued="0.00", liability="0.00")
    # 30 April: B = 100 → rate 0.05, M = A = 2345.67 → 117.2835 → 117.28
    assert one_row(ledger, "2025-04-30") == row(basis="100", accrued="117.28",
                                                liability="117.28")


def test_retroactive_amount_basis_with_a_per_unit_rate_applies_to_the_quantity(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        agreement(basis="amount", rate_kind="per_unit", tiers=(("0", "0.5"), ("1000", "0.75"))),
        sale("S1", "40", "1000", "2025-03-01"),
    ])
    # B = A = 1000 → rate 0.75; M = Q = 40 → 0.75 × 40 = 30.00
    assert one_row(ledger, "2025-12-31") == row(basis="1000", accrued="30.00", liability="30.00")


def test_retroactive_rate_is_zero_below_the_first_tier(ledger: Ledger) -> None:
    accepted_all(ledger, [agreement(tiers=(("100", "2"),)), sale("S1", "80", "800")])
    # B = 80 < 100: no tier reached → rate 0 → 0.00
    assert one_row(ledger, "2025-12-31") == row(basis="80", accrued="0.00", liability="0.00")


def test_incremental_quantity_per_unit(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(tier_method="incremental", tiers=(("0", "1"), ("100", "1.5"), ("200", "2"))),
        sale("S1", "100", "1000", "2025-03-01"),
        sale("S2", "50", "500", "2025-04-01"),
        sale("S3", "100", "1000", "2025-05-01"),
    ])
    # 31 March: inc(100) = 1 × 100 + 1.5 × 0 = 100.00
    assert one_row(ledger, "2025-03-31") == row(basis="100", accrued="100.00",
                                                liability="100.00")
    # 30 April: inc(150) = 1 × 100 + 1.5 × 50 = 175.00
    assert one_row(ledger, "2025-04-30") == row(basis="150", accrued="175.00",
                                                liability="175.00")
    # 31 May: inc(250) = 1 × 100 + 1.5 × 100 + 2 × 50 = 350.00 (last tier unbounded)
    assert one_row(ledger, "2025-05-31") == row(basis="250", accrued="350.00",
                                                liability="350.00")


def test_incremental_amount_percent(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(basis="amount", rate_kind="percent", tier_method="incremental",
                  tiers=(("0", "0.01"), ("5000", "0.02"), ("20000", "0.04"))),
        sale("S1", "7", "25000.50"),
    ])
    # inc(25000.50) = 0.01 × 5000 + 0.02 × 15000 + 0.04 × 5000.50 = 50 + 300 + 200.02 = 550.02
    assert one_row(ledger, "2025-12-31") == row(basis="25000.5", accrued="550.02",
                                                liability="550.02")


def test_incremental_with_a_first_tier_above_zero_pays_nothing_below_it(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(tier_method="incremental", tiers=(("100", "2"),)),
        sale("S1", "80", "800", "2025-03-01"),
        sale("S2", "70", "700", "2025-04-01"),
    ])
    # 31 March: inc(80) = 2 × max(0, 80 − 100) = 0.00
    assert one_row(ledger, "2025-03-31") == row(basis="80", accrued="0.00", liability="0.00")
    # 30 April: inc(150) = 2 × (150 − 100) = 100.00
    assert one_row(ledger, "2025-04-30") == row(basis="150", accrued="100.00",
                                                liability="100.00")


def test_returns_reduce_the_basis_below_a_tier(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(tiers=(("0", "1"), ("100", "1.5"))),
        sale("S1", "120", "1200", "2025-03-01"),
        sale("R1", "-30", "-300", "2025-04-01"),
    ])
    # 31 March: B = 120 → 1.5 × 120 = 180.00
    assert one_row(ledger, "2025-03-31") == row(basis="120", accrued="180.00",
                                                liability="180.00")
    # 30 April: B = 120 − 30 = 90 → back to rate 1 → 90.00
    assert one_row(ledger, "2025-04-30") == row(basis="90", accrued="90.00", liability="90.00")


def test_a_basis_of_zero_accrues_nothing_even_when_the_measure_is_positive(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        agreement(basis="quantity", rate_kind="percent", tiers=(("0", "0.1"),)),
        sale("S1", "10", "100", "2025-03-01"),
        sale("R1", "-10", "-50", "2025-04-01"),  # returned at a lower credit price
    ])
    # B = Q = 10 − 10 = 0 ≤ 0 → accrued 0, though rate(0) × A = 0.1 × 50 would be 5
    assert one_row(ledger, "2025-12-31") == row(basis="0", accrued="0.00", liability="0.00")


def test_a_negative_basis_accrues_nothing_under_the_forecast_method(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(basis="quantity", rate_kind="percent", tiers=(("0", "0.1"),),
                  accrual_method="forecast", forecast_basis="1000"),
        sale("S1", "10", "100", "2025-03-01"),
        sale("R1", "-15", "-60", "2025-04-01"),
    ])
    # B = 10 − 15 = −5 ≤ 0 → 0, though E = max(−5, 1000) and rate(E) × A = 0.1 × 40 = 4
    assert one_row(ledger, "2025-12-31") == row(basis="-5", accrued="0.00", liability="0.00")


# 2.4 and 2.6 Forecast method ---------------------------------------------------------------

FORECAST_TIERS = (("0", "1"), ("1000", "1.2"), ("1400", "1.5"))


def test_forecast_method_prices_the_basis_at_the_forecast_tier(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(tiers=FORECAST_TIERS, accrual_method="forecast", forecast_basis="1200"),
        sale("S1", "300", "3000"),
    ])
    # E = max(300, 1200) = 1200 → rate 1.2 × M = 300 → 360.00
    assert one_row(ledger, "2025-12-31") == row(basis="300", accrued="360.00",
                                                liability="360.00")


def test_forecast_below_the_basis_uses_the_basis(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(tiers=FORECAST_TIERS, accrual_method="forecast", forecast_basis="200"),
        sale("S1", "1100", "11000"),
    ])
    # E = max(1100, 200) = 1100 → rate 1.2 × 1100 = 1320.00
    assert one_row(ledger, "2025-12-31") == row(basis="1100", accrued="1320.00",
                                                liability="1320.00")


def test_forecast_method_without_a_forecast_uses_the_basis(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(tiers=FORECAST_TIERS, accrual_method="forecast"),
        sale("S1", "300", "3000"),
    ])
    # No F: E = B = 300 → rate 1 → 300.00
    assert one_row(ledger, "2025-12-31") == row(basis="300", accrued="300.00",
                                                liability="300.00")


def test_the_earned_method_is_the_default_and_ignores_a_forecast(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(tiers=FORECAST_TIERS, forecast_basis="1500"),
        sale("S1", "300", "3000"),
        forecast("A1", "2000", "2025-01-01"),
    ])
    # Earned: rate(B = 300) = 1 → 300.00
    assert one_row(ledger, "2025-12-31") == row(basis="300", accrued="300.00",
                                                liability="300.00")


def test_the_latest_recorded_forecast_revision_in_force_wins(ledger: Ledger) -> None:
    accepted_all(ledger, [
        at(T1, agreement(tiers=FORECAST_TIERS, accrual_method="forecast",
                         forecast_basis="1100")),
        at(T1, sale("S1", "300", "3000", "2025-02-01")),
        at(T2, forecast("A1", "500", "2025-06-01")),  # recorded first, effective later
        at(T3, forecast("A1", "1500", "2025-04-01")),  # recorded second, effective earlier
    ])
    # 31 March: no revision in force, the creation F = 1100: rate(1100) = 1.2 → 360.00
    assert one_row(ledger, "2025-03-31") == row(basis="300", accrued="360.00",
                                                liability="360.00")
    # 30 April: F = 1500 → rate 1.5 × 300 = 450.00
    assert one_row(ledger, "2025-04-30") == row(basis="300", accrued="450.00",
                                                liability="450.00")
    # 30 June: both in force; the latest recorded (F = 1500) wins → 450.00
    # (the latest effective, F = 500, would give E = 500 → rate 1 → 300.00)
    assert one_row(ledger, "2025-06-30") == row(basis="300", accrued="450.00",
                                                liability="450.00")
    # 30 June as known at T2, before the second revision: F = 500 → E = 500 → 300.00
    assert one_row(ledger, "2025-06-30", known_at=T2) == row(
        basis="300", accrued="300.00", liability="300.00"
    )


def test_incremental_forecast_spreads_the_forecast_rebate_over_the_basis(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        agreement(tier_method="incremental", tiers=(("0", "1"), ("100", "2")),
                  accrual_method="forecast", forecast_basis="200"),
        sale("S1", "50", "500", "2025-03-01"),
        forecast("A1", "300", "2025-07-01"),
    ])
    # 30 June: E = 200, inc(200) = 1 × 100 + 2 × 100 = 300; × B / E = 300 × 50 / 200 = 75.00
    assert one_row(ledger, "2025-06-30") == row(basis="50", accrued="75.00", liability="75.00")
    # 1 July: E = 300, inc(300) = 100 + 2 × 200 = 500; 500 × 50 / 300 = 83.333… → 83.33
    assert one_row(ledger, "2025-07-01") == row(basis="50", accrued="83.33", liability="83.33")


def test_an_amendment_can_switch_the_accrual_method(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(tiers=FORECAST_TIERS, forecast_basis="1500"),
        sale("S1", "300", "3000", "2025-02-01"),
        amend("A1", "2025-07-01", accrual_method="forecast"),
    ])
    # 30 June: earned, rate(300) = 1 → 300.00; 1 July: forecast, rate(1500) = 1.5 → 450.00
    assert one_row(ledger, "2025-06-30") == row(basis="300", accrued="300.00",
                                                liability="300.00")
    assert one_row(ledger, "2025-07-01") == row(basis="300", accrued="450.00",
                                                liability="450.00")


# 2.6–2.7 Cap and rounding ------------------------------------------------------------------


def test_the_cap_limits_the_accrued_rebate(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(cap="250"),
        sale("S1", "200", "2000", "2025-03-01"),
        sale("S2", "100", "1000", "2025-04-01"),
    ])
    # 31 March: min(200, 250) = 200.00; 30 April: min(300, 250) = 250.00
    assert one_row(ledger, "2025-03-31") == row(basis="200", accrued="200.00",
                                                liability="200.00")
    assert one_row(ledger, "2025-04-30") == row(basis="300", accrued="250.00",
                                                liability="250.00")


def test_the_cap_applies_before_the_one_rounding(ledger: Ledger) -> None:
    accepted_all(ledger, [agreement(cap="100.005"), sale("S1", "200", "2000")])
    # min(200, 100.005) = 100.005 → rounded half up once → 100.01
    assert one_row(ledger, "2025-12-31") == row(basis="200", accrued="100.01",
                                                liability="100.01")


def test_accrued_is_rounded_once_half_up_from_the_exact_value(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(tiers=(("0", "0.125"),)),
        sale("S1", "1", "10", "2025-03-01"),
        sale("S2", "1", "10", "2025-04-01"),
        sale("S3", "1", "10", "2025-05-01"),
    ])
    # 31 March: 0.125 × 1 = 0.125 → half up 0.13 (half even would give 0.12)
    assert one_row(ledger, "2025-03-31") == row(basis="1", accrued="0.13", liability="0.13")
    # 31 May: 0.125 × 3 = 0.375 → 0.38 (rounding each sale would give 3 × 0.13 = 0.39)
    assert one_row(ledger, "2025-05-31") == row(basis="3", accrued="0.38", liability="0.38")


def test_rounding_half_up_on_a_percent_of_amount(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(basis="amount", rate_kind="percent", tiers=(("0", "0.01"),)),
        sale("S1", "1", "12.50", "2025-03-01"),
        sale("S2", "1", "12.50", "2025-04-01"),
    ])
    # 31 March: 0.01 × 12.50 = 0.125 → 0.13 (half even would give 0.12)
    assert one_row(ledger, "2025-03-31") == row(basis="12.5", accrued="0.13", liability="0.13")
    # 30 April: 0.01 × 25.00 = 0.25 → 0.25 (the March figure is not carried rounded)
    assert one_row(ledger, "2025-04-30") == row(basis="25", accrued="0.25", liability="0.25")


# 2.8–2.9 Approved, paid, written off and the liability ------------------------------------


def test_approved_paid_and_written_off_count_by_their_dates_and_recorded_times(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        at(T1, agreement()),
        at(T1, sale("S1", "100", "1000", "2025-03-01")),
        at(T2, submit("X1", "60", "2025-05-01")),
        at(T2, approve("X1", "2025-05-10")),
        at(T2, settle("X1", "2025-05-20", "40", payment_ref="PAY-1")),
        at(T4, settle("X1", "2025-06-10", payment_ref="PAY-2")),  # the remaining 20
        at(T4, write_off("10", "2025-06-30")),
    ])
    # accrued = 1 × 100 = 100.00 throughout
    # As known at T1, no claim exists: nothing approved even at 30 June.
    assert one_row(ledger, "2025-06-30", known_at=T1) == row(
        basis="100", accrued="100.00", liability="100.00"
    )
    # 9 May: nothing approved yet: liability 100.00
    assert one_row(ledger, "2025-05-09") == row(basis="100", accrued="100.00",
                                                liability="100.00")
    # 10 May: approved 60.00; nothing paid: liability 100.00
    assert one_row(ledger, "2025-05-10") == row(basis="100", accrued="100.00",
                                                approved="60.00", liability="100.00")
    # 20 May: paid 40.00: liability 100 − 40 = 60.00
    assert one_row(ledger, "2025-05-20") == row(basis="100", accrued="100.00",
                                                approved="60.00", paid="40.00",
                                                liability="60.00")
    # 10 June: paid 40 + 20 = 60.00: liability 40.00
    assert one_row(ledger, "2025-06-10") == row(basis="100", accrued="100.00",
                                                approved="60.00", paid="60.00",
                                                liability="40.00")
    # 30 June: written off 10.00: liability 100 − 60 − 10 = 30.00
    assert one_row(ledger, "2025-06-30") == row(basis="100", accrued="100.00",
                                                approved="60.00", paid="60.00",
                                                written_off="10.00", liability="30.00")
    # 30 June as known at T3: the second payment and the write-off were recorded later:
    # liability 100 − 40 = 60.00
    assert one_row(ledger, "2025-06-30", known_at=T3) == row(
        basis="100", accrued="100.00", approved="60.00", paid="40.00", liability="60.00"
    )


def test_liability_goes_negative_when_paid_sales_are_reversed(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(),
        sale("S1", "100", "1000", "2025-03-01"),
        submit("X1", "100", "2025-04-01"),
        approve("X1", "2025-04-02"),
        settle("X1", "2025-04-03"),
        reversal("S1", "2025-06-01"),
    ])
    # 31 May: 100 − 100 paid = 0.00
    assert one_row(ledger, "2025-05-31") == row(basis="100", accrued="100.00",
                                                approved="100.00", paid="100.00",
                                                liability="0.00")
    # 1 June: B = 0 → accrued 0; liability 0 − 100 = −100.00 (the customer owes it back)
    assert one_row(ledger, "2025-06-01") == row(basis="0", accrued="0.00", approved="100.00",
                                                paid="100.00", liability="-100.00")


# Known at K, ordering and filters ---------------------------------------------------------


def test_a_query_as_known_at_k_ignores_everything_recorded_after_k(ledger: Ledger) -> None:
    accepted_all(ledger, [
        at(T1, agreement()),
        at(T2, sale("S1", "10", "100", "2025-02-01")),
        # A late sale: invoiced in February, recorded in May.
        at(T4, sale("S2", "5", "50", "2025-02-15")),
        at(T5, agreement("A2")),
    ])
    # Before the agreement was recorded it does not exist.
    assert rows(ledger, "2025-03-31", known_at="2025-01-02T08:59:59Z") == []
    # At exactly T1 it does (recorded at or before K), with no sales yet.
    assert rows(ledger, "2025-03-31", known_at=T1) == [zero()]
    # As known at T3: only S1: B = 10 → 10.00
    assert rows(ledger, "2025-03-31", known_at=T3) == [
        row(basis="10", accrued="10.00", liability="10.00")
    ]
    # As known now: S1 + S2 = 15 → 15.00 for A1, and A2 counts the same sales.
    assert rows(ledger, "2025-03-31") == [
        row(basis="15", accrued="15.00", liability="15.00"),
        row(agreement_id="A2", basis="15", accrued="15.00", liability="15.00"),
    ]


def test_rows_are_sorted_by_agreement_id_and_can_be_filtered(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement("B2", customer_id="C2", currency="USD"),
        agreement("A10", customer_id="C1", tiers=(("0", "2"),)),
        agreement("A1", customer_id="C1"),
        sale("S1", "10", "100", customer_id="C1"),
        sale("S2", "7", "70", customer_id="C2", currency="USD"),
    ])
    a1 = row(agreement_id="A1", basis="10", accrued="10.00", liability="10.00")  # 1 × 10
    a10 = row(agreement_id="A10", basis="10", accrued="20.00", liability="20.00")  # 2 × 10
    b2 = row(agreement_id="B2", customer_id="C2", currency="USD", basis="7", accrued="7.00",
             liability="7.00")  # 1 × 7
    assert rows(ledger, "2025-12-31") == [a1, a10, b2]
    assert rows(ledger, "2025-12-31", agreement_id="A10") == [a10]
    assert rows(ledger, "2025-12-31", customer_id="C1") == [a1, a10]
    assert rows(ledger, "2025-12-31", customer_id="C2") == [b2]
    assert rows(ledger, "2025-12-31", agreement_id="A1", customer_id="C2") == []
    assert rows(ledger, "2025-12-31", agreement_id="A404") == []


def test_an_agreement_exists_at_every_valid_date_once_recorded(ledger: Ledger) -> None:
    accepted_all(ledger, [agreement(period_start="2025-06-01"), sale("S1", "10", "100")])
    # D before the period: a row with nothing eligible (the sale of 1 March is outside).
    assert rows(ledger, "2024-12-31") == [zero()]
