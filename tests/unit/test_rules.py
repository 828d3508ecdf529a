"""The rebate rules of contract section 2 (steps 5 to 9), as worked examples computed by hand.

Every expected figure below is worked out in the comment beside it from the contract text, not
copied from the code's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest

from ledger.rules import (
    Accrual,
    Tier,
    accrue,
    incremental_rebate,
    liability,
    postings,
    retroactive_rate,
)

D = Decimal

#: The table most examples use: 1 % from 0, 2 % from 1,000, 3 % from 5,000 (basis: amount).
STEPS = (
    Tier(D("0"), D("0.01")),
    Tier(D("1000"), D("0.02")),
    Tier(D("5000"), D("0.03")),
)

#: A table whose first tier starts above 0: nothing below 100 units, then 0.50 per unit.
FROM_100 = (Tier(D("100"), D("0.50")), Tier(D("500"), D("0.75")))


def accrue_with(
    *,
    basis: str,
    measure: str | None = None,
    tiers: Sequence[Tier] = STEPS,
    tier_method: str = "retroactive",
    accrual_method: str = "earned",
    forecast_basis: str | None = None,
    cap: str | None = None,
) -> Accrual:
    """`accrue` with M = B unless a different measure is given (basis and rate kind agree)."""
    return accrue(
        tiers=tiers,
        tier_method=tier_method,
        accrual_method=accrual_method,
        basis=D(basis),
        measure=D(measure if measure is not None else basis),
        forecast_basis=None if forecast_basis is None else D(forecast_basis),
        cap=None if cap is None else D(cap),
    )


# retroactive_rate: the rate of the highest tier with from <= X, 0 when none (2.5) ----------


@pytest.mark.parametrize(
    ("basis", "rate"),
    [
        ("0", "0.01"),  # the first tier starts at 0, so it is reached at 0
        ("999.99", "0.01"),
        ("1000", "0.02"),  # reached when the basis equals `from`
        ("4999.99", "0.02"),
        ("5000", "0.03"),
        ("1E+9", "0.03"),  # beyond the last tier: still the last rate
    ],
)
def test_retroactive_rate_is_the_rate_of_the_highest_tier_reached(basis: str, rate: str) -> None:
    assert retroactive_rate(STEPS, D(basis)) == D(rate)


@pytest.mark.parametrize(
    ("basis", "rate"),
    [("-5", "0"), ("0", "0"), ("99.999", "0"), ("100", "0.50"), ("499", "0.50"), ("500", "0.75")],
)
def test_retroactive_rate_is_zero_below_the_first_tier(basis: str, rate: str) -> None:
    assert retroactive_rate(FROM_100, D(basis)) == D(rate)


# incremental_rebate: each rate on its slice, the last tier unbounded (2.5) ------------------


@pytest.mark.parametrize(
    ("basis", "rebate"),
    [
        # 0.01 × 500 = 5
        ("500", "5"),
        # 0.01 × 1000 = 10 (the 2 % slice is still empty)
        ("1000", "10"),
        # 0.01 × 1000 + 0.02 × (2000 − 1000) = 10 + 20 = 30
        ("2000", "30"),
        # 0.01 × 1000 + 0.02 × 4000 = 10 + 80 = 90
        ("5000", "90"),
        # 0.01 × 1000 + 0.02 × 4000 + 0.03 × (6000 − 5000) = 10 + 80 + 30 = 120
        ("6000", "120"),
        # last tier unbounded: 10 + 80 + 0.03 × (1,000,000 − 5,000) = 90 + 29,850 = 29,940
        ("1000000", "29940"),
        # 0.01 × 1000 + 0.02 × (1000.5 − 1000) = 10 + 0.01 = 10.01
        ("1000.5", "10.01"),
        ("0", "0"),
        ("-250", "0"),  # no slice has a positive width
    ],
)
def test_incremental_rebate_pays_each_rate_on_its_slice(basis: str, rebate: str) -> None:
    assert incremental_rebate(STEPS, D(basis)) == D(rebate)


@pytest.mark.parametrize(
    ("basis", "rebate"),
    [
        ("50", "0"),  # below the first tier: no slice
        ("100", "0"),  # at the first threshold the slice has width 0
        ("150", "25"),  # 0.50 × (150 − 100) = 25
        ("600", "275"),  # 0.50 × (500 − 100) + 0.75 × (600 − 500) = 200 + 75 = 275
    ],
)
def test_incremental_rebate_starts_at_the_first_threshold(basis: str, rebate: str) -> None:
    assert incremental_rebate(FROM_100, D(basis)) == D(rebate)


# accrue, earned method (2.6) ------------------------------------------------------------------


def test_earned_retroactive_applies_the_rate_reached_to_all_of_the_measure() -> None:
    # rate(6000) = 0.03; 0.03 × 6000 = 180.00
    result = accrue_with(basis="6000")
    assert result.rate == D("0.03")
    assert result.uncapped == D("180")
    assert result.accrued == D("180.00")


def test_earned_retroactive_multiplies_by_the_measure_not_the_basis() -> None:
    # Basis = quantity (1,200 units reaches the 2 % tier from 1,000), rate kind = percent, so
    # M = A = 30,000.00: rate(1200) × M = 0.02 × 30,000.00 = 600.00.
    tiers = (Tier(D("0"), D("0.01")), Tier(D("1000"), D("0.02")))
    result = accrue_with(basis="1200", measure="30000.00", tiers=tiers)
    assert result.accrued == D("600.00")


def test_earned_retroactive_below_the_first_tier_accrues_nothing() -> None:
    # rate(99) = 0 on FROM_100, so 0 × 99 = 0
    assert accrue_with(basis="99", tiers=FROM_100).accrued == D("0.00")


def test_earned_incremental_is_the_sum_of_slices() -> None:
    # inc(6000) = 10 + 80 + 30 = 120.00 (worked out above)
    result = accrue_with(basis="6000", tier_method="incremental")
    assert result.rate is None
    assert result.accrued == D("120.00")


def test_earned_method_ignores_a_forecast() -> None:
    # A forecast of 6,000 would lift the rate to 3 %, but the earned method uses B only:
    # rate(2000) × 2000 = 0.02 × 2000 = 40.00
    result = accrue_with(basis="2000", forecast_basis="6000")
    assert result.effective_basis == D("2000")
    assert result.accrued == D("40.00")


# accrue, forecast method: E = max(B, F), E = B without F (2.6) ------------------------------


def test_forecast_retroactive_uses_the_rate_of_the_forecast_basis() -> None:
    # B = M = 2,000, F = 6,000: E = 6,000, rate(E) = 0.03; 0.03 × 2,000 = 60.00
    # (earned would give 0.02 × 2,000 = 40.00)
    result = accrue_with(basis="2000", accrual_method="forecast", forecast_basis="6000")
    assert result.effective_basis == D("6000")
    assert result.rate == D("0.03")
    assert result.accrued == D("60.00")


def test_forecast_retroactive_with_a_forecast_below_basis_uses_the_basis() -> None:
    # B = 6,000, F = 2,000: E = max(6000, 2000) = 6000; 0.03 × 6,000 = 180.00
    result = accrue_with(basis="6000", accrual_method="forecast", forecast_basis="2000")
    assert result.effective_basis == D("6000")
    assert result.accrued == D("180.00")


def test_forecast_retroactive_without_a_forecast_is_earned() -> None:
    # No F: E = B = 2,000; 0.02 × 2,000 = 40.00
    result = accrue_with(basis="2000", accrual_method="forecast")
    assert result.effective_basis == D("2000")
    assert result.accrued == D("40.00")


def test_forecast_incremental_scales_the_forecast_rebate_by_b_over_e() -> None:
    # B = 2,000, F = 6,000: E = 6,000; inc(6000) = 120; 120 × 2,000 / 6,000 = 40.00
    # (earned would give inc(2000) = 30.00)
    result = accrue_with(
        basis="2000", tier_method="incremental", accrual_method="forecast", forecast_basis="6000"
    )
    assert result.effective_basis == D("6000")
    assert result.accrued == D("40.00")


def test_forecast_incremental_divides_exactly_then_rounds() -> None:
    # B = 1,000, F = 3,000: inc(3000) = 0.01 × 1000 + 0.02 × 2000 = 10 + 40 = 50;
    # 50 × 1,000 / 3,000 = 16.666… → 16.67
    result = accrue_with(
        basis="1000", tier_method="incremental", accrual_method="forecast", forecast_basis="3000"
    )
    assert result.uncapped > D("16.6666666666")
    assert result.uncapped < D("16.6666666667")
    assert result.accrued == D("16.67")


def test_forecast_incremental_with_a_forecast_below_basis_is_earned() -> None:
    # B = 6,000, F = 2,000: E = B, so inc(E) × B / E = inc(6000) = 120.00
    result = accrue_with(
        basis="6000", tier_method="incremental", accrual_method="forecast", forecast_basis="2000"
    )
    assert result.accrued == D("120.00")


def test_forecast_incremental_without_a_forecast_is_earned() -> None:
    # No F: E = B = 2,000: inc(2000) = 10 + 20 = 30.00
    result = accrue_with(basis="2000", tier_method="incremental", accrual_method="forecast")
    assert result.accrued == D("30.00")


# B <= 0 gives 0 ----------------------------------------------------------------------------


@pytest.mark.parametrize("tier_method", ["retroactive", "incremental"])
@pytest.mark.parametrize("accrual_method", ["earned", "forecast"])
@pytest.mark.parametrize("basis", ["0", "-100"])
def test_no_rebate_when_the_basis_is_not_positive(
    tier_method: str, accrual_method: str, basis: str
) -> None:
    # Without the rule: the forecast of 6,000 would give retroactive 0.03 × −100 = −3 and
    # incremental 120 × −100 / 6000 = −2; with B = 0 and a separate measure of 100, a tier
    # from 0 would give 0.01 × 100 = 1. The contract says 0 whenever B ≤ 0.
    result = accrue_with(
        basis=basis,
        measure="100" if basis == "0" else basis,
        tier_method=tier_method,
        accrual_method=accrual_method,
        forecast_basis="6000",
    )
    assert result.uncapped == 0
    assert result.accrued == 0
    assert not result.accrued.is_signed()


# cap: min(accrued, cap), before rounding ------------------------------------------------


def test_a_binding_cap_limits_the_accrual() -> None:
    # 0.03 × 6,000 = 180 > cap 150 → 150.00
    result = accrue_with(basis="6000", cap="150")
    assert result.uncapped == D("180")
    assert result.capped == D("150")
    assert result.accrued == D("150.00")


def test_a_cap_above_the_accrual_changes_nothing() -> None:
    # 0.03 × 6,000 = 180 < cap 200 → 180.00
    assert accrue_with(basis="6000", cap="200").accrued == D("180.00")


def test_the_cap_applies_to_the_forecast_accrual() -> None:
    # forecast incremental 40 (worked out above) > cap 25 → 25.00
    result = accrue_with(
        basis="2000",
        tier_method="incremental",
        accrual_method="forecast",
        forecast_basis="6000",
        cap="25",
    )
    assert result.accrued == D("25.00")


def test_the_cap_is_applied_to_the_exact_value_before_rounding() -> None:
    # One tier of 1 %: 0.01 × 10,000.6 = 100.006 exact. Cap 100.004:
    # cap first  → min(100.006, 100.004) = 100.004 → rounds to 100.00  (the contract's order)
    # round first → 100.01, then min(100.01, 100.004) = 100.004, which is not even cents.
    tiers = (Tier(D("0"), D("0.01")),)
    result = accrue_with(basis="10000.6", tiers=tiers, cap="100.004")
    assert result.uncapped == D("100.006")
    assert result.capped == D("100.004")
    assert result.accrued == D("100.00")


# rounding: once, to cents, half up, from the exact value (2.7) ---------------------------------


def test_an_exact_half_cent_rounds_up() -> None:
    # One tier of 5 % on 100.10: 0.05 × 100.10 = 5.005 exactly → 5.01
    # (half even would give 5.00)
    tiers = (Tier(D("0"), D("0.05")),)
    result = accrue_with(basis="100.10", tiers=tiers)
    assert result.uncapped == D("5.005")
    assert result.accrued == D("5.01")


def test_rounding_happens_once_from_the_exact_value() -> None:
    # 0.044949 × 100 = 4.4949 → 4.49 once; rounding in two steps (4.495, then 4.50) is wrong.
    tiers = (Tier(D("0"), D("0.044949")),)
    result = accrue_with(basis="100", tiers=tiers)
    assert result.uncapped == D("4.4949")
    assert result.accrued == D("4.49")


def test_the_accrual_keeps_the_exact_figures_it_came_from() -> None:
    # 0.02 × 1,234.567 = 24.69134 exact → 24.69
    result = accrue_with(basis="1234.567")
    assert result.basis == D("1234.567")
    assert result.measure == D("1234.567")
    assert result.uncapped == D("24.69134")
    assert result.capped == result.uncapped
    assert result.accrued == D("24.69")


# liability = accrued − paid − written_off (2.9) -------------------------------------------


def test_liability_is_accrued_less_paid_less_written_off() -> None:
    # 180.00 − 100.00 − 30.00 = 50.00
    assert liability(D("180.00"), D("100.00"), D("30.00")) == D("50.00")


def test_liability_goes_negative_when_more_was_paid_than_accrued() -> None:
    # 40.00 − 60.00 − 0.00 = −20.00: the customer owes money back
    assert liability(D("40.00"), D("60.00"), D("0.00")) == D("-20.00")


# postings: differences of rounded cumulative figures (2.7) ----------------------------------


def test_postings_are_differences_of_rounded_cumulative_figures() -> None:
    # exact cumulative 10.005, 9.994, 20.0049 round to 10.01, 9.99, 20.00, so the postings are
    # 10.01, 9.99 − 10.01 = −0.02, 20.00 − 9.99 = 10.01; they add up to 20.00.
    moves = postings([D("10.005"), D("9.994"), D("20.0049")])
    assert moves == [D("10.01"), D("-0.02"), D("10.01")]
    assert sum(moves, D(0)) == D("20.00")


def test_sub_cent_accruals_post_only_when_the_rounded_figure_moves() -> None:
    # exact cumulative 0.004, 0.008, 0.012 round to 0.00, 0.01, 0.01: postings 0.00, 0.01,
    # 0.00, adding up to the reported 0.01. Rounding each exact increment of 0.004 instead
    # would post 0.00 three times and never reach the reported figure.
    moves = postings([D("0.004"), D("0.008"), D("0.012")])
    assert moves == [D("0.00"), D("0.01"), D("0.00")]
    assert sum(moves, D(0)) == D("0.01")


def test_no_cumulative_figures_no_postings() -> None:
    assert postings([]) == []
