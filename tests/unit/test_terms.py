"""Agreement terms (ledger.terms): amendments laid over the creation terms (contract 2.1) and the
rules that keep terms valid (contract section 1: period order, incremental combinations, tiers)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from ledger.errors import RuleViolation
from ledger.rules import Tier
from ledger.terms import Terms, TermsChange, check_amendment, check_terms, terms_in_force

D = Decimal

ONE_TIER = (Tier(D("0"), D("1.00")),)
TWO_TIERS = (Tier(D("0"), D("1.00")), Tier(D("1000"), D("1.50")))


def creation_terms(**overrides: Any) -> Terms:
    """Valid creation terms: quantity basis, per-unit rates, retroactive, capped at 1,000."""
    values: dict[str, Any] = {
        "agreement_id": "A1",
        "customer_id": "C1",
        "currency": "EUR",
        "period_start": date(2025, 1, 1),
        "period_end": date(2025, 12, 31),
        "basis": "quantity",
        "tier_method": "retroactive",
        "rate_kind": "per_unit",
        "tiers": ONE_TIER,
        "cap": D("1000"),
    }
    values.update(overrides)
    return Terms(**values)


def change(seq: int, effective_from: date, **changes: Any) -> TermsChange:
    return TermsChange(
        seq=seq, effective_from=effective_from, changes=changes, source=f"event-{seq}"
    )


# overlay -------------------------------------------------------------------------------------


def test_overlay_replaces_only_the_fields_it_names() -> None:
    terms = creation_terms()
    amended = terms.overlay({"cap": D("500"), "tiers": list(TWO_TIERS)}, source="event-1")
    assert amended.cap == D("500")
    assert amended.tiers == TWO_TIERS
    assert isinstance(amended.tiers, tuple)  # terms stay immutable
    assert (amended.basis, amended.period_end) == (terms.basis, terms.period_end)
    assert terms.cap == D("1000")  # the original terms are untouched


def test_overlay_with_a_null_cap_removes_the_cap() -> None:
    assert creation_terms().overlay({"cap": None}).cap is None


def test_overlay_of_products_restricts_what_is_covered() -> None:
    terms = creation_terms()
    assert terms.covers("anything")  # no products: every product
    amended = terms.overlay({"products": ["P1", "P2"]})
    assert amended.products == frozenset({"P1", "P2"})
    assert amended.covers("P1")
    assert not amended.covers("P3")


def test_overlay_records_which_event_set_each_term() -> None:
    amended = creation_terms().overlay({"cap": D("500")}, source="event-7")
    assert amended.sources["cap"] == "event-7"
    assert "tiers" not in amended.sources


def test_overlay_refuses_a_field_an_amendment_cannot_change() -> None:
    # The customer of an agreement is fixed; asking to change it is a programmer error.
    with pytest.raises(AssertionError, match="customer_id"):
        creation_terms().overlay({"customer_id": "C2"})


# terms_in_force ------------------------------------------------------------------------------


def test_without_amendments_the_creation_terms_are_in_force() -> None:
    terms = creation_terms()
    assert terms_in_force(terms, [], date(2025, 6, 1)) == terms


def test_an_amendment_is_in_force_from_its_effective_date_on() -> None:
    amendments = [change(1, date(2025, 4, 1), cap=D("500"))]
    created = creation_terms()
    assert terms_in_force(created, amendments, date(2025, 3, 31)).cap == D("1000")
    assert terms_in_force(created, amendments, date(2025, 4, 1)).cap == D("500")
    assert terms_in_force(created, amendments, date(2025, 12, 31)).cap == D("500")


def test_amendments_are_laid_over_in_the_order_recorded_not_by_effective_date() -> None:
    # Recorded first: cap 500 from 1 March. Recorded second: cap 300 from 1 February.
    # On 15 March both are effective; laid in recorded order, the second (300) wins even though
    # it took effect earlier.
    amendments = [
        change(1, date(2025, 3, 1), cap=D("500")),
        change(2, date(2025, 2, 1), cap=D("300")),
    ]
    created = creation_terms()
    assert terms_in_force(created, amendments, date(2025, 1, 15)).cap == D("1000")
    assert terms_in_force(created, amendments, date(2025, 2, 15)).cap == D("300")
    assert terms_in_force(created, amendments, date(2025, 3, 15)).cap == D("300")


def test_recorded_order_holds_whatever_order_the_amendments_are_passed_in() -> None:
    first = change(1, date(2025, 3, 1), cap=D("500"))
    second = change(2, date(2025, 2, 1), cap=D("300"))
    created = creation_terms()
    as_of = date(2025, 3, 15)
    assert terms_in_force(created, [second, first], as_of).cap == D("300")


def test_amendments_of_different_fields_combine() -> None:
    amendments = [
        change(1, date(2025, 2, 1), tiers=TWO_TIERS),
        change(2, date(2025, 3, 1), cap=None),
    ]
    terms = terms_in_force(creation_terms(), amendments, date(2025, 3, 1))
    assert terms.tiers == TWO_TIERS
    assert terms.cap is None
    assert terms.sources["tiers"] == "event-1"
    assert terms.sources["cap"] == "event-2"


# check_terms -----------------------------------------------------------------------------------


def test_valid_terms_pass() -> None:
    check_terms(creation_terms())
    check_terms(creation_terms(period_end=date(2025, 1, 1)))  # a one-day period is allowed


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    terms = creation_terms(period_start=date(2025, 6, 1), period_end=date(2025, 5, 31))
    with pytest.raises(RuleViolation) as caught:
        check_terms(terms)
    assert caught.value.field == "period_end"
    assert "period_start" in str(caught.value)
    assert "2025-05-31" in str(caught.value)


@pytest.mark.parametrize(("basis", "rate_kind"), [("quantity", "per_unit"), ("amount", "percent")])
def test_incremental_tiers_are_allowed_where_basis_and_rate_kind_agree(
    basis: str, rate_kind: str
) -> None:
    check_terms(creation_terms(tier_method="incremental", basis=basis, rate_kind=rate_kind))


@pytest.mark.parametrize(("basis", "rate_kind"), [("quantity", "percent"), ("amount", "per_unit")])
def test_incremental_tiers_are_refused_where_basis_and_rate_kind_differ(
    basis: str, rate_kind: str
) -> None:
    terms = creation_terms(tier_method="incremental", basis=basis, rate_kind=rate_kind)
    with pytest.raises(RuleViolation) as caught:
        check_terms(terms)
    assert caught.value.field == "tier_method"
    assert f"{basis}/{rate_kind}" in str(caught.value)


@pytest.mark.parametrize(("basis", "rate_kind"), [("quantity", "percent"), ("amount", "per_unit")])
def test_retroactive_tiers_allow_any_basis_and_rate_kind(basis: str, rate_kind: str) -> None:
    check_terms(creation_terms(tier_method="retroactive", basis=basis, rate_kind=rate_kind))


@pytest.mark.parametrize(
    ("tiers", "field"),
    [
        ((), "tiers"),
        ((Tier(D("0"), D("1")), Tier(D("0"), D("2"))), "tiers[1].from"),  # equal thresholds
        ((Tier(D("10"), D("1")), Tier(D("5"), D("2"))), "tiers[1].from"),  # decreasing
        ((Tier(D("-1"), D("1")),), "tiers[0].from"),
        ((Tier(D("0"), D("1")), Tier(D("5"), D("-0.01"))), "tiers[1].rate"),
    ],
    ids=["empty", "equal-from", "decreasing-from", "negative-from", "negative-rate"],
)
def test_tiers_must_be_non_empty_increasing_and_non_negative(
    tiers: tuple[Tier, ...], field: str
) -> None:
    with pytest.raises(RuleViolation) as caught:
        check_terms(creation_terms(tiers=tiers))
    assert caught.value.field == field
    assert field in str(caught.value)


@pytest.mark.parametrize("name", ["cap", "forecast_basis"])
@pytest.mark.parametrize("value", ["0", "-5"])
def test_cap_and_forecast_basis_must_be_positive(name: str, value: str) -> None:
    with pytest.raises(RuleViolation) as caught:
        check_terms(creation_terms(**{name: D(value)}))
    assert caught.value.field == name
    assert name in str(caught.value)


# check_amendment ----------------------------------------------------------------------------


def test_a_valid_amendment_passes() -> None:
    check_amendment(creation_terms(), [], change(1, date(2025, 4, 1), tiers=TWO_TIERS))


def test_an_amendment_invalid_at_its_own_date_is_refused() -> None:
    # Creation: quantity / percent, retroactive (valid). Switching to incremental leaves
    # quantity / percent incremental, which the contract forbids.
    created = creation_terms(rate_kind="percent")
    with pytest.raises(RuleViolation) as caught:
        check_amendment(created, [], change(1, date(2025, 4, 1), tier_method="incremental"))
    assert caught.value.field == "tier_method"


def test_an_amendment_that_ends_the_period_before_it_starts_is_refused() -> None:
    with pytest.raises(RuleViolation) as caught:
        check_amendment(
            creation_terms(), [], change(1, date(2025, 4, 1), period_end=date(2024, 12, 31))
        )
    assert caught.value.field == "period_end"


def test_an_amendment_invalid_at_a_later_amendments_date_is_refused() -> None:
    # Recorded: from 1 June, rate_kind percent (quantity / percent retroactive: valid).
    # New: from 1 March, tier_method incremental. On 1 March: quantity / per_unit incremental,
    # valid. On 1 June both apply, the new one laid last: quantity / percent incremental, invalid.
    recorded = [change(1, date(2025, 6, 1), rate_kind="percent")]
    new = change(2, date(2025, 3, 1), tier_method="incremental")
    check_terms(terms_in_force(creation_terms(), [*recorded, new], date(2025, 3, 1)))
    with pytest.raises(RuleViolation) as caught:
        check_amendment(creation_terms(), recorded, new)
    assert caught.value.field == "tier_method"


def test_a_new_amendment_laid_last_can_keep_a_later_date_valid() -> None:
    # Recorded: from 1 June, rate_kind percent. New: from 1 March, incremental and per_unit.
    # On 1 June the new amendment is laid over the recorded one (recorded order), so per_unit
    # wins: quantity / per_unit incremental, valid at every date.
    recorded = [change(1, date(2025, 6, 1), rate_kind="percent")]
    new = change(2, date(2025, 3, 1), tier_method="incremental", rate_kind="per_unit")
    check_amendment(creation_terms(), recorded, new)
    terms = terms_in_force(creation_terms(), [*recorded, new], date(2025, 6, 1))
    assert (terms.tier_method, terms.rate_kind) == ("incremental", "per_unit")


def test_an_earlier_effective_amendment_is_not_rechecked_before_the_new_date() -> None:
    # Recorded: incremental from 1 February (quantity / per_unit, valid). New from 1 September:
    # basis amount and rate_kind percent together, valid incremental on and after 1 September.
    recorded = [change(1, date(2025, 2, 1), tier_method="incremental")]
    new = change(2, date(2025, 9, 1), basis="amount", rate_kind="percent")
    check_amendment(creation_terms(), recorded, new)


def test_an_amendment_breaking_an_earlier_amendment_from_its_own_date_is_refused() -> None:
    # Recorded: incremental from 1 February. New from 1 September: rate_kind percent alone,
    # which leaves quantity / percent incremental from 1 September on.
    recorded = [change(1, date(2025, 2, 1), tier_method="incremental")]
    new = change(2, date(2025, 9, 1), rate_kind="percent")
    with pytest.raises(RuleViolation) as caught:
        check_amendment(creation_terms(), recorded, new)
    assert caught.value.field == "tier_method"
