"""The limits a claim's approval and a write-off must keep (contract section 1): pure rules,
given the figures the write path reads from the store (no I/O here).

- `approve_claim`: the approved amount (the claimed amount when none is given) is at most the
  claimed amount, and at most the rebate earned by the approval date less what the agreement's
  other claims have had approved.
- `write_off`: the amount is at most the agreement's liability at the effective date.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from ledger.errors import RuleViolation
from ledger.money import EXACT, format_money


def check_approval(amount: Decimal, *, claimed: Decimal, earned: Decimal,
                   approved_elsewhere: Decimal, agreement_id: str, approved_on: date,
                   amount_given: bool = True) -> None:
    """Refuse (RuleViolation naming the field) an approval above either limit."""
    if amount > claimed:
        raise RuleViolation(
            "approved_amount" if amount_given else "amount",
            f"approved amount {amount} is more than the claimed amount {claimed}")
    available = EXACT.subtract(earned, approved_elsewhere)
    if amount > available:
        raise RuleViolation(
            "approved_amount",
            f"approving {amount} exceeds the available amount {format_money(available)} of "
            f"agreement {agreement_id!r} (earned {format_money(earned)} as of "
            f"{approved_on}, less {format_money(approved_elsewhere)} approved on its other "
            "claims); approve a smaller approved_amount or wait until more is earned",
        )


def check_write_off(amount: Decimal, *, liability: Decimal, agreement_id: str,
                    effective_date: date) -> None:
    """Refuse a write-off above the agreement's liability at its effective date."""
    if amount > liability:
        raise RuleViolation(
            "amount",
            f"write-off {amount} exceeds the liability {format_money(liability)} of agreement "
            f"{agreement_id!r} as of {effective_date}; write off at most that",
        )
