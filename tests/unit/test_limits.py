"""The approval and write-off limits (contract section 1), as pure rules: ledger.limits."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import RuleViolation
from ledger.limits import check_approval, check_write_off

D = date(2025, 6, 30)
cents = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1e9"), places=2)


def approve(amount: str, claimed: str = "100", earned: str = "100", elsewhere: str = "0",
            given: bool = True) -> None:
    check_approval(Decimal(amount), claimed=Decimal(claimed), earned=Decimal(earned),
                   approved_elsewhere=Decimal(elsewhere), agreement_id="A1", approved_on=D,
                   amount_given=given)


def test_an_approval_within_both_limits_passes() -> None:
    approve("60", claimed="60", earned="100", elsewhere="40")  # exactly the available 60


def test_an_approval_above_the_claim_names_the_field_it_came_from() -> None:
    with pytest.raises(RuleViolation) as given_amount:
        approve("101")
    assert given_amount.value.field == "approved_amount"
    assert "more than the claimed amount 100" in given_amount.value.reason
    with pytest.raises(RuleViolation) as claimed_amount:
        approve("101", given=False)
    assert claimed_amount.value.field == "amount"


def test_an_approval_above_what_is_earned_less_other_approvals_says_by_how_much() -> None:
    with pytest.raises(RuleViolation) as refused:
        approve("60.01", claimed="80", earned="100", elsewhere="40")
    reason = refused.value.reason
    assert refused.value.field == "approved_amount"
    assert "available amount 60.00" in reason and "earned 100.00" in reason
    assert "less 40.00 approved" in reason and "approve a smaller approved_amount" in reason


@given(cents, cents, cents, cents)
def test_approval_passes_exactly_when_within_both_limits(amount: Decimal, claimed: Decimal,
                                                         earned: Decimal,
                                                         elsewhere: Decimal) -> None:
    allowed = amount <= claimed and amount <= earned - elsewhere
    try:
        check_approval(amount, claimed=claimed, earned=earned, approved_elsewhere=elsewhere,
                       agreement_id="A1", approved_on=D)
    except RuleViolation:
        assert not allowed
    else:
        assert allowed


@given(cents, st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=2))
def test_a_write_off_passes_exactly_up_to_the_liability(amount: Decimal,
                                                       liability: Decimal) -> None:
    try:
        check_write_off(amount, liability=liability, agreement_id="A1", effective_date=D)
    except RuleViolation as refused:
        assert amount > liability
        assert refused.field == "amount" and "write off at most that" in refused.reason
    else:
        assert amount <= liability
