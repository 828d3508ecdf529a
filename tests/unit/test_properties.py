"""Properties of the pure rebate arithmetic (ledger.rules, ledger.money), checked by hypothesis.

Examples are kept modest (settings below) so that these run in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.money import CENT, format_decimal, format_money, parse_decimal, round_money
from ledger.rules import (
    ACCRUAL_METHODS,
    TIER_METHODS,
    Accrual,
    Tier,
    accrue,
    incremental_rebate,
    postings,
    retroactive_rate,
)

D = Decimal
HALF_CENT = D("0.005")

PROPERTY = settings(max_examples=150, deadline=None)

# Strategies ------------------------------------------------------------------------------

#: A basis or amount as a ledger sees them: up to a billion, to 4 places (can be negative).
bases = st.decimals(min_value=-1000, max_value=10**9, places=4)
positive_bases = st.decimals(min_value=D("0.0001"), max_value=10**9, places=4)
rates = st.decimals(min_value=0, max_value=5, places=6)
caps = st.decimals(min_value=D("0.01"), max_value=10**8, places=2)
#: Caps with sub-cent digits, which the contract does not forbid.
fine_caps = st.decimals(min_value=D("0.000001"), max_value=10**8, places=6)


@st.composite
def tier_tables(draw: st.DrawFn, *, rising_rates: bool = False) -> tuple[Tier, ...]:
    """A valid tier table: 1 to 6 tiers, thresholds ≥ 0 strictly increasing, rates ≥ 0."""
    thresholds = draw(
        st.lists(
            st.decimals(min_value=0, max_value=10**7, places=2),
            min_size=1,
            max_size=6,
            unique=True,
        )
    )
    tier_rates = draw(st.lists(rates, min_size=len(thresholds), max_size=len(thresholds)))
    if rising_rates:
        tier_rates.sort()
    return tuple(Tier(t, r) for t, r in zip(sorted(thresholds), tier_rates, strict=True))


def earned(
    tiers: Sequence[Tier], tier_method: str, basis: Decimal, cap: Decimal | None = None
) -> Decimal:
    """The earned accrual with M = B (basis and rate kind agree)."""
    return accrue(
        tiers=tiers,
        tier_method=tier_method,
        accrual_method="earned",
        basis=basis,
        measure=basis,
        forecast_basis=None,
        cap=cap,
    ).accrued


# The rebate never decreases as the basis grows (rates that do not decrease) ----------------


@PROPERTY
@given(
    tiers=tier_tables(rising_rates=True),
    tier_method=st.sampled_from(TIER_METHODS),
    low=bases,
    extra=st.decimals(min_value=0, max_value=10**8, places=4),
    cap=st.none() | caps,
)
def test_the_earned_rebate_never_decreases_as_the_basis_grows(
    tiers: tuple[Tier, ...], tier_method: str, low: Decimal, extra: Decimal, cap: Decimal | None
) -> None:
    high = low + extra
    assert earned(tiers, tier_method, low, cap) <= earned(tiers, tier_method, high, cap)


@PROPERTY
@given(tiers=tier_tables(), low=bases, extra=st.decimals(min_value=0, max_value=10**8, places=4))
def test_the_incremental_rebate_never_decreases_whatever_the_rates(
    tiers: tuple[Tier, ...], low: Decimal, extra: Decimal
) -> None:
    # Every slice only widens as X grows and rates are ≥ 0, so rising rates are not needed here.
    assert incremental_rebate(tiers, low) <= incremental_rebate(tiers, low + extra)


@PROPERTY
@given(tiers=tier_tables(rising_rates=True), low=bases, extra=st.decimals(0, 10**8, places=4))
def test_the_retroactive_rate_never_decreases_when_rates_do_not(
    tiers: tuple[Tier, ...], low: Decimal, extra: Decimal
) -> None:
    assert retroactive_rate(tiers, low) <= retroactive_rate(tiers, low + extra)


# One tier from 0: incremental equals retroactive ------------------------------------------


@PROPERTY
@given(
    rate=rates,
    basis=bases,
    accrual_method=st.sampled_from(ACCRUAL_METHODS),
    forecast=st.none() | positive_bases,
    cap=st.none() | caps,
)
def test_for_one_tier_from_zero_incremental_equals_retroactive(
    rate: Decimal,
    basis: Decimal,
    accrual_method: str,
    forecast: Decimal | None,
    cap: Decimal | None,
) -> None:
    # M = B (quantity/per_unit or amount/percent): retroactive rate(E) × B = r × B and
    # incremental r × E × B / E = r × B, under either method.
    tiers = (Tier(D(0), rate),)
    results = {
        method: accrue(
            tiers=tiers,
            tier_method=method,
            accrual_method=accrual_method,
            basis=basis,
            measure=basis,
            forecast_basis=forecast,
            cap=cap,
        )
        for method in TIER_METHODS
    }
    assert results["incremental"].capped == results["retroactive"].capped
    assert results["incremental"].accrued == results["retroactive"].accrued


@PROPERTY
@given(
    threshold=st.decimals(min_value=D("0.01"), max_value=10**6, places=2),
    rate=rates,
    basis=positive_bases,
)
def test_for_one_tier_above_zero_retroactive_also_pays_below_the_threshold(
    threshold: Decimal, rate: Decimal, basis: Decimal
) -> None:
    # The contrast that shows why the equality needs the tier to start at 0: once reached,
    # retroactive pays r × B and incremental r × (B − from); below it both pay 0.
    tiers = (Tier(threshold, rate),)
    retroactive = retroactive_rate(tiers, basis) * basis
    incremental = incremental_rebate(tiers, basis)
    if basis >= threshold:
        assert retroactive - incremental == rate * threshold
    else:
        assert retroactive == incremental == 0


# Forecast method with F <= B is the earned method -----------------------------------------


@PROPERTY
@given(
    tiers=tier_tables(),
    tier_method=st.sampled_from(TIER_METHODS),
    basis=positive_bases,
    share=st.decimals(min_value=D("0.0001"), max_value=1, places=4),
    measure=bases,
    cap=st.none() | caps,
)
def test_the_forecast_method_with_a_forecast_at_most_the_basis_is_earned(
    tiers: tuple[Tier, ...],
    tier_method: str,
    basis: Decimal,
    share: Decimal,
    measure: Decimal,
    cap: Decimal | None,
) -> None:
    forecast = basis * share  # 0 < F ≤ B
    # M only matters for retroactive tiers; incremental terms always have M = B.
    m = measure if tier_method == "retroactive" else basis

    def by(accrual_method: str, forecast_basis: Decimal | None) -> Accrual:
        return accrue(
            tiers=tiers,
            tier_method=tier_method,
            accrual_method=accrual_method,
            basis=basis,
            measure=m,
            forecast_basis=forecast_basis,
            cap=cap,
        )

    by_forecast = by("forecast", forecast)
    by_earnings = by("earned", None)
    assert by_forecast.effective_basis == basis
    assert by_forecast.capped == by_earnings.capped
    assert by_forecast.accrued == by_earnings.accrued


# Cap and rounding ------------------------------------------------------------------------------


def any_accrual(
    tiers: Sequence[Tier],
    tier_method: str,
    accrual_method: str,
    basis: Decimal,
    measure: Decimal,
    forecast: Decimal | None,
    cap: Decimal | None,
) -> tuple[Decimal, Decimal, Decimal]:
    result = accrue(
        tiers=tiers,
        tier_method=tier_method,
        accrual_method=accrual_method,
        basis=basis,
        measure=measure if tier_method == "retroactive" else basis,
        forecast_basis=forecast,
        cap=cap,
    )
    return result.uncapped, result.capped, result.accrued


accruals = {
    "tiers": tier_tables(),
    "tier_method": st.sampled_from(TIER_METHODS),
    "accrual_method": st.sampled_from(ACCRUAL_METHODS),
    "basis": bases,
    "measure": bases,
    "forecast": st.none() | positive_bases,
}


@PROPERTY
@given(**accruals, cap=caps)
def test_a_cap_in_cents_is_never_exceeded(cap: Decimal, **kwargs: object) -> None:
    uncapped, capped, accrued = any_accrual(cap=cap, **kwargs)  # type: ignore[arg-type]
    assert capped <= cap
    assert accrued <= cap
    assert capped == min(uncapped, cap)


@PROPERTY
@given(**accruals, cap=fine_caps)
def test_a_sub_cent_cap_is_exceeded_by_at_most_the_rounding(cap: Decimal, **kwargs: object) -> None:
    # The cap applies to the exact value, then the result is rounded half up (2.6, 2.7), so a
    # cap of 10.005 reports 10.01: never more than the cap rounded the same way.
    _, capped, accrued = any_accrual(cap=cap, **kwargs)  # type: ignore[arg-type]
    assert capped <= cap
    assert accrued <= round_money(cap)


@PROPERTY
@given(**accruals, cap=st.none() | fine_caps)
def test_accrued_is_whole_cents_within_half_a_cent_of_the_exact_capped_value(
    cap: Decimal | None, **kwargs: object
) -> None:
    _, capped, accrued = any_accrual(cap=cap, **kwargs)  # type: ignore[arg-type]
    assert accrued % CENT == 0
    assert accrued.as_tuple().exponent == -2
    assert abs(accrued - capped) <= HALF_CENT
    # B ≤ 0 gives 0 and rates are ≥ 0, so only a negative measure (B = Q > 0 while
    # M = A < 0, say after an amount-only credit note) can make the rebate negative.
    measure = kwargs["measure"] if kwargs["tier_method"] == "retroactive" else kwargs["basis"]
    assert isinstance(measure, Decimal)
    if measure >= 0:
        assert accrued >= 0


# Postings add up -------------------------------------------------------------------------


cumulative_figures = st.lists(
    st.decimals(min_value=-(10**6), max_value=10**6, places=6), min_size=1, max_size=30
)


@PROPERTY
@given(cumulative=cumulative_figures)
def test_postings_add_up_to_the_last_reported_figure(cumulative: list[Decimal]) -> None:
    # ledger.rules.postings: each posting is the change of the rounded cumulative figure.
    moves = postings(cumulative)
    assert len(moves) == len(cumulative)
    assert sum(moves, D(0)) == round_money(cumulative[-1])
    running = D(0)
    for move, figure in zip(moves, cumulative, strict=True):
        assert move % CENT == 0  # money that moves is whole cents
        running += move
        assert running == round_money(figure)  # every prefix adds up to what was reported


# Exact decimals round-trip ---------------------------------------------------------------


@st.composite
def acceptable_decimals(draw: st.DrawFn) -> Decimal:
    """Finite decimals within what parse_decimal accepts: ≤ 18 places, < 1E+31."""
    sign = draw(st.integers(0, 1))
    digits = draw(st.integers(min_value=0, max_value=10**30 - 1))
    exponent = draw(st.integers(min_value=-18, max_value=10))
    value = Decimal((sign, tuple(int(c) for c in str(digits)), exponent))
    return value if value.is_zero() or value.adjusted() <= 30 else value.scaleb(-10)


@PROPERTY
@given(value=acceptable_decimals())
def test_parse_decimal_of_str_gives_back_the_same_decimal(value: Decimal) -> None:
    parsed = parse_decimal(str(value))
    assert parsed == value
    assert str(parsed) == str(value)  # the same digits and exponent, not merely equal


@PROPERTY
@given(value=acceptable_decimals())
def test_format_decimal_reads_back_as_the_same_number(value: Decimal) -> None:
    text = format_decimal(value)
    assert "E" not in text.upper()
    assert parse_decimal(text) == value


@PROPERTY
@given(value=st.decimals(min_value=-(10**12), max_value=10**12, places=6))
def test_format_money_is_the_half_up_cents_with_two_decimals(value: Decimal) -> None:
    text = format_money(value)
    whole, _, cents = text.lstrip("-").partition(".")
    assert whole.isdigit() and len(cents) == 2 and cents.isdigit()
    assert D(text) == round_money(value)
    assert abs(D(text) - value) <= HALF_CENT
