"""The rebate rules of the contract (section 2, steps 3 to 7), as pure functions over Decimal.

Nothing here does I/O: auditors can read it, and property tests hammer it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from ledger.money import EXACT, ZERO, round_money

BASIS_KINDS = ("quantity", "amount")
RATE_KINDS = ("per_unit", "percent")
TIER_METHODS = ("retroactive", "incremental")
ACCRUAL_METHODS = ("earned", "forecast")


@dataclass(frozen=True, slots=True)
class Tier:
    """A tier is reached when the basis is at least `threshold` (the contract's `from`)."""

    threshold: Decimal
    rate: Decimal


def retroactive_rate(tiers: Sequence[Tier], basis: Decimal) -> Decimal:
    """`rate(X)`: the rate of the highest tier whose threshold is at most X; 0 when none."""
    rate = ZERO
    for tier in tiers:
        if tier.threshold <= basis:
            rate = tier.rate
        else:
            break
    return rate


def incremental_rebate(tiers: Sequence[Tier], basis: Decimal) -> Decimal:
    """`inc(X)`: each tier's rate on the slice of X between its threshold and the next one's."""
    total = ZERO
    for index, tier in enumerate(tiers):
        upper = tiers[index + 1].threshold if index + 1 < len(tiers) else None
        top = basis if upper is None else min(basis, upper)
        width = EXACT.subtract(top, tier.threshold)
        if width > 0:
            total = EXACT.add(total, EXACT.multiply(tier.rate, width))
    return total


@dataclass(frozen=True, slots=True)
class Accrual:
    """An accrual, before and after the cap and rounding, with the figures that produced it."""

    basis: Decimal  # B
    measure: Decimal  # M
    effective_basis: Decimal  # E (= B under the earned method)
    rate: Decimal | None  # the retroactive rate applied, None for incremental
    uncapped: Decimal  # exact, before the cap
    capped: Decimal  # exact, after the cap
    accrued: Decimal  # rounded once to cents, half up


def accrue(
    *,
    tiers: Sequence[Tier],
    tier_method: str,
    accrual_method: str,
    basis: Decimal,
    measure: Decimal,
    forecast_basis: Decimal | None,
    cap: Decimal | None,
) -> Accrual:
    """Section 2, steps 5 to 7: the accrued rebate for basis B and measure M.

    - earned: retroactive `rate(B) × M`; incremental `inc(B)`;
    - forecast, E = max(B, F) (E = B without F): retroactive `rate(E) × M`;
      incremental `inc(E) × B / E` (0 when E = 0);
    - 0 when B ≤ 0; then at most the cap; then rounded once to cents, half up.
    """
    assert tier_method in TIER_METHODS, tier_method
    assert accrual_method in ACCRUAL_METHODS, accrual_method
    assert len(tiers) > 0, "an agreement always has at least one tier"
    if accrual_method == "forecast" and forecast_basis is not None:
        effective = max(basis, forecast_basis)
    else:
        effective = basis
    rate: Decimal | None = None
    if basis <= 0:
        uncapped = ZERO
    elif tier_method == "retroactive":
        rate = retroactive_rate(tiers, effective)
        uncapped = EXACT.multiply(rate, measure)
    elif effective == basis:
        uncapped = incremental_rebate(tiers, basis)
    elif effective == 0:  # pragma: no cover - E ≥ B > 0 here; kept for the letter of 2.6
        uncapped = ZERO
    else:
        uncapped = EXACT.divide(
            EXACT.multiply(incremental_rebate(tiers, effective), basis), effective
        )
    capped = min(uncapped, cap) if cap is not None else uncapped
    return Accrual(
        basis=basis,
        measure=measure,
        effective_basis=effective,
        rate=rate,
        uncapped=uncapped,
        capped=capped,
        accrued=round_money(capped),
    )


def liability(accrued: Decimal, paid: Decimal, written_off: Decimal) -> Decimal:
    """Section 2.9: what is still owed (negative: the customer owes money back)."""
    return EXACT.subtract(EXACT.subtract(accrued, paid), written_off)


def postings(cumulative: Sequence[Decimal]) -> list[Decimal]:
    """Contract 2.7: money that moves is the difference of rounded cumulative figures.

    Given the exact cumulative accruals at successive moments, each posting is the change in
    the rounded figure, so the postings always add up to the last reported (rounded) figure.
    """
    moves: list[Decimal] = []
    previous = ZERO
    for figure in cumulative:
        rounded = round_money(figure)
        moves.append(EXACT.subtract(rounded, previous))
        previous = rounded
    return moves
