"""Contract claims and write-offs (section 1 rules, section 2.8–2.9 figures), through the
public `Ledger` API, on SQLite and PostgreSQL.

Unless a test says otherwise the book is agreement A1 (customer C1, EUR, 2025, retroactive on
quantity at 1 EUR a unit) with one sale of 100 units on 1 March: earned and accrued 100.00
from then on. Every expected figure is worked out by hand in the comment next to it.
"""

from __future__ import annotations

import pytest

from ledger import Ledger

from .helpers import (
    Command,
    accepted_all,
    agreement,
    approve,
    one_row,
    reject,
    rejected_one,
    row,
    sale,
    settle,
    submit,
    write_off,
)


def book(ledger: Ledger, *commands: Command) -> None:
    accepted_all(ledger, [agreement(), sale("S1", "100", "1000", "2025-03-01"), *commands])


def figures(ledger: Ledger, as_of: str = "2025-12-31") -> dict[str, str]:
    return one_row(ledger, as_of)


# The happy paths ---------------------------------------------------------------------------


def test_a_claim_is_approved_then_settled_in_several_payments_up_to_the_approved_amount(
    ledger: Ledger,
) -> None:
    book(
        ledger,
        submit("X1", "60", "2025-06-01"),
        approve("X1", "2025-06-02"),
        settle("X1", "2025-06-03", "25", payment_ref="PAY-1"),
        settle("X1", "2025-06-04", "15", payment_ref="PAY-2"),
        settle("X1", "2025-06-05", payment_ref="PAY-3"),  # default: 60 − 40 = 20
    )
    # approved 60 (the claimed amount); paid 25 + 15 + 20 = 60; liability 100 − 60 = 40.00
    assert figures(ledger) == row(basis="100", accrued="100.00", approved="60.00",
                                  paid="60.00", liability="40.00")
    # 4 June: paid 25 + 15 = 40 → liability 60.00
    assert figures(ledger, "2025-06-04") == row(basis="100", accrued="100.00",
                                                approved="60.00", paid="40.00",
                                                liability="60.00")


def test_approved_amount_defaults_to_the_claimed_amount(ledger: Ledger) -> None:
    book(ledger, submit("X1", "37.45"), approve("X1"))
    assert figures(ledger) == row(basis="100", accrued="100.00", approved="37.45",
                                  liability="100.00")


def test_a_claim_may_be_approved_for_less_than_claimed(ledger: Ledger) -> None:
    # A claim may ask for more than is earned; only its approval is limited.
    book(ledger, submit("X1", "500"), approve("X1", approved_amount="70"), settle("X1"))
    # approved 70, paid defaults to 70 − 0 = 70; liability 100 − 70 = 30.00
    assert figures(ledger) == row(basis="100", accrued="100.00", approved="70.00",
                                  paid="70.00", liability="30.00")


def test_paid_amount_defaults_to_approved_minus_already_paid(ledger: Ledger) -> None:
    book(ledger, submit("X1", "80"), approve("X1"), settle("X1", paid_amount="30.55"))
    accepted_all(ledger, [settle("X1", "2025-06-04", payment_ref="PAY-2")])
    # second payment = 80 − 30.55 = 49.45; paid 80.00; liability 20.00
    assert figures(ledger) == row(basis="100", accrued="100.00", approved="80.00",
                                  paid="80.00", liability="20.00")
    assert figures(ledger, "2025-06-03") == row(basis="100", accrued="100.00",
                                                approved="80.00", paid="30.55",
                                                liability="69.45")


def test_a_submitted_claim_can_be_rejected(ledger: Ledger) -> None:
    book(ledger, submit("X1", "60"), reject("X1"))
    assert figures(ledger) == row(basis="100", accrued="100.00", liability="100.00")


# Moves the state machine refuses ----------------------------------------------------------


def _assert_rejected_naming(ledger: Ledger, command: Command, *words: str) -> None:
    reason = rejected_one(ledger, command)
    assert any(word in reason for word in words), reason


def test_a_claim_cannot_be_approved_twice(ledger: Ledger) -> None:
    book(ledger, submit("X1", "60"), approve("X1", approved_amount="50"))
    _assert_rejected_naming(ledger, approve("X1", "2025-06-05", "60"), "claim_id", "approved")
    assert figures(ledger) == row(basis="100", accrued="100.00", approved="50.00",
                                  liability="100.00")


def test_a_submitted_claim_cannot_be_settled(ledger: Ledger) -> None:
    book(ledger, submit("X1", "60"))
    _assert_rejected_naming(ledger, settle("X1", paid_amount="60"), "claim_id", "submitted")
    assert figures(ledger) == row(basis="100", accrued="100.00", liability="100.00")


def test_an_approved_claim_cannot_be_rejected(ledger: Ledger) -> None:
    book(ledger, submit("X1", "60"), approve("X1"))
    _assert_rejected_naming(ledger, reject("X1"), "claim_id", "approved")
    assert figures(ledger) == row(basis="100", accrued="100.00", approved="60.00",
                                  liability="100.00")


@pytest.mark.parametrize(
    "move",
    [approve("X1"), settle("X1", paid_amount="10"), reject("X1", "2025-06-03")],
    ids=["approve", "settle", "reject-again"],
)
def test_a_rejected_claim_makes_no_further_move(ledger: Ledger, move: Command) -> None:
    book(ledger, submit("X1", "60"), reject("X1"))
    _assert_rejected_naming(ledger, move, "claim_id", "rejected")
    assert figures(ledger) == row(basis="100", accrued="100.00", liability="100.00")


def test_a_settlement_beyond_the_approved_amount_is_rejected(ledger: Ledger) -> None:
    book(ledger, submit("X1", "60"), approve("X1"), settle("X1", paid_amount="30"))
    # 60 − 30 = 30 left to pay: 30.01 is too much, 30 is the rest.
    _assert_rejected_naming(
        ledger, settle("X1", paid_amount="30.01", payment_ref="PAY-2"), "paid_amount"
    )
    assert figures(ledger) == row(basis="100", accrued="100.00", approved="60.00",
                                  paid="30.00", liability="70.00")
    accepted_all(ledger, [settle("X1", paid_amount="30", payment_ref="PAY-2")])
    assert figures(ledger) == row(basis="100", accrued="100.00", approved="60.00",
                                  paid="60.00", liability="40.00")


@pytest.mark.parametrize("paid_amount", [None, "0.01"])
def test_a_fully_settled_claim_cannot_be_settled_again(
    ledger: Ledger, paid_amount: str | None
) -> None:
    book(ledger, submit("X1", "60"), approve("X1"), settle("X1"))
    _assert_rejected_naming(
        ledger, settle("X1", "2025-06-10", paid_amount, payment_ref="PAY-2"),
        "claim_id", "paid_amount", "settled",
    )
    assert figures(ledger) == row(basis="100", accrued="100.00", approved="60.00",
                                  paid="60.00", liability="40.00")


@pytest.mark.parametrize(
    "move",
    [approve("X1", "2025-06-10"), reject("X1", "2025-06-10")],
    ids=["approve", "reject"],
)
def test_a_settled_claim_makes_no_further_move(ledger: Ledger, move: Command) -> None:
    book(ledger, submit("X1", "60"), approve("X1"), settle("X1"))
    _assert_rejected_naming(ledger, move, "claim_id", "settled")
    assert figures(ledger) == row(basis="100", accrued="100.00", approved="60.00",
                                  paid="60.00", liability="40.00")


def test_a_partly_paid_claim_cannot_be_rejected(ledger: Ledger) -> None:
    book(ledger, submit("X1", "60"), approve("X1"), settle("X1", paid_amount="10"))
    _assert_rejected_naming(ledger, reject("X1", "2025-06-10"), "claim_id", "approved")
    assert figures(ledger) == row(basis="100", accrued="100.00", approved="60.00",
                                  paid="10.00", liability="90.00")


@pytest.mark.parametrize(
    "command",
    [approve("X404"), reject("X404"), settle("X404", paid_amount="1")],
    ids=["approve", "reject", "settle"],
)
def test_moves_on_an_unknown_claim_are_rejected(ledger: Ledger, command: Command) -> None:
    book(ledger)
    _assert_rejected_naming(ledger, command, "claim_id")
    assert figures(ledger) == row(basis="100", accrued="100.00", liability="100.00")


@pytest.mark.parametrize(
    "again",
    [submit("X1", "10"), submit("X1", "20", "2025-07-01")],
    ids=["identical", "different-fields"],
)
def test_claim_ids_are_unique(ledger: Ledger, again: Command) -> None:
    book(ledger, submit("X1", "10"))
    _assert_rejected_naming(ledger, again, "claim_id")
    # The first claim is still the one there: approving it defaults to its 10.
    accepted_all(ledger, [approve("X1")])
    assert figures(ledger) == row(basis="100", accrued="100.00", approved="10.00",
                                  liability="100.00")


def test_a_claim_on_an_unknown_agreement_is_rejected(ledger: Ledger) -> None:
    book(ledger)
    _assert_rejected_naming(ledger, submit("X1", "10", agreement_id="A9"), "agreement_id")
    # The claim id stayed free.
    accepted_all(ledger, [submit("X1", "10"), approve("X1")])
    assert figures(ledger)["approved"] == "10.00"


@pytest.mark.parametrize(
    "command",
    [submit("X2", "0"), approve("X1", approved_amount="0"), approve("X1", approved_amount="-1"),
     settle("X1", paid_amount="0")],
    ids=["claim-zero", "approve-zero", "approve-negative", "settle-zero"],
)
def test_claim_amounts_must_be_positive(ledger: Ledger, command: Command) -> None:
    book(ledger, submit("X1", "60"))
    _assert_rejected_naming(ledger, command, "amount")
    assert figures(ledger) == row(basis="100", accrued="100.00", liability="100.00")


# Approval limits ------------------------------------------------------------------------------


def test_approved_amount_may_not_exceed_the_claimed_amount(ledger: Ledger) -> None:
    book(ledger, submit("X1", "60"))
    _assert_rejected_naming(ledger, approve("X1", approved_amount="60.01"), "approved_amount")
    assert figures(ledger)["approved"] == "0.00"
    accepted_all(ledger, [approve("X1", approved_amount="60")])  # equal is fine
    assert figures(ledger)["approved"] == "60.00"


def test_approval_is_limited_to_earned_minus_other_approved_claims(ledger: Ledger) -> None:
    book(ledger, submit("X1", "80"), approve("X1"), submit("X2", "30"))
    # available = earned 100 − approved 80 on X1 = 20: the default (30) is too much
    _assert_rejected_naming(ledger, approve("X2"), "approved_amount", "available")
    _assert_rejected_naming(ledger, approve("X2", approved_amount="20.01"),
                            "approved_amount", "available")
    accepted_all(ledger, [approve("X2", approved_amount="20")])
    # approved 80 + 20 = 100.00
    assert figures(ledger) == row(basis="100", accrued="100.00", approved="100.00",
                                  liability="100.00")


def test_a_settled_claims_approval_still_uses_up_the_available_amount(ledger: Ledger) -> None:
    book(ledger, submit("X1", "90"), approve("X1"), settle("X1"), submit("X2", "20"))
    # available = 100 − 90 (X1 approved, now settled) = 10
    _assert_rejected_naming(ledger, approve("X2"), "approved_amount", "available")
    accepted_all(ledger, [approve("X2", approved_amount="10")])
    assert figures(ledger) == row(basis="100", accrued="100.00", approved="100.00",
                                  paid="90.00", liability="10.00")


def test_submitted_and_rejected_claims_do_not_use_up_the_available_amount(
    ledger: Ledger,
) -> None:
    book(ledger, submit("X1", "80"), submit("X2", "70"), reject("X2"), submit("X3", "100"))
    # X1 is only submitted and X2 rejected: available = 100 − 0 = 100
    accepted_all(ledger, [approve("X3")])
    assert figures(ledger)["approved"] == "100.00"


def test_claims_approved_at_a_later_date_still_count_against_an_approval(
    ledger: Ledger,
) -> None:
    book(ledger, submit("X1", "100"), approve("X1", "2025-09-01"), submit("X2", "10"))
    # X2 approved on 1 June: earned 100 as of 1 June, minus X1's 100 (approved on 1 September,
    # but an approved claim all the same) = 0 available
    _assert_rejected_naming(ledger, approve("X2", "2025-06-01"), "approved_amount", "available")
    assert figures(ledger)["approved"] == "100.00"


def test_approval_is_limited_to_what_is_earned_as_of_the_approval_date(ledger: Ledger) -> None:
    book(ledger, sale("S2", "50", "500", "2025-07-01"), submit("X1", "150"))
    # Earned as of 30 June: B = 100 → 100; the July sale is not yet invoiced.
    _assert_rejected_naming(ledger, approve("X1", "2025-06-30", "100.01"),
                            "approved_amount", "available")
    # As of 1 July: B = 150 → 150 available.
    accepted_all(ledger, [approve("X1", "2025-07-01", "150")])
    assert figures(ledger) == row(basis="150", accrued="150.00", approved="150.00",
                                  liability="150.00")


def test_approval_uses_the_earned_method_even_for_a_forecast_agreement(ledger: Ledger) -> None:
    accepted_all(ledger, [
        agreement(tiers=(("0", "1"), ("1000", "2")), accrual_method="forecast",
                  forecast_basis="1000"),
        sale("S1", "100", "1000", "2025-03-01"),
        submit("X1", "200"),
    ])
    # Accrued (forecast): E = max(100, 1000) = 1000 → rate 2 × 100 = 200.00
    # Available (earned): rate(100) = 1 × 100 = 100.00
    _assert_rejected_naming(ledger, approve("X1", approved_amount="100.01"),
                            "approved_amount", "available")
    _assert_rejected_naming(ledger, approve("X1"), "approved_amount", "available")
    accepted_all(ledger, [approve("X1", approved_amount="100")])
    assert figures(ledger) == row(basis="100", accrued="200.00", approved="100.00",
                                  liability="200.00")


def test_approval_counts_a_late_sale_recorded_before_it(ledger: Ledger) -> None:
    book(ledger, submit("X1", "130"))
    # A sale invoiced in April arrives after the claim; it is in the ledger when the approval
    # is applied, so earned as of 2 June = 1 × (100 + 30) = 130.
    accepted_all(ledger, [sale("S2", "30", "300", "2025-04-15"), approve("X1")])
    assert figures(ledger)["approved"] == "130.00"


# Write-offs -----------------------------------------------------------------------------------


def test_a_write_off_is_limited_to_the_liability_as_of_its_effective_date(
    ledger: Ledger,
) -> None:
    book(ledger, submit("X1", "30"), approve("X1"), settle("X1", "2025-05-01"),
         sale("S2", "50", "500", "2025-07-01"))
    # Liability as of 30 June = 100 − 30 paid = 70 (the July sale is not yet counted)
    _assert_rejected_naming(ledger, write_off("70.01", "2025-06-30"), "amount")
    accepted_all(ledger, [write_off("70", "2025-06-30")])
    # Now 0 is left as of 30 June: even a cent is too much.
    _assert_rejected_naming(ledger, write_off("0.01", "2025-06-30"), "amount")
    # 30 June: 100 − 30 − 70 = 0.00; 31 December: 150 − 30 − 70 = 50.00
    assert figures(ledger, "2025-06-30") == row(basis="100", accrued="100.00",
                                                approved="30.00", paid="30.00",
                                                written_off="70.00", liability="0.00")
    assert figures(ledger) == row(basis="150", accrued="150.00", approved="30.00",
                                  paid="30.00", written_off="70.00", liability="50.00")


def test_a_write_off_is_checked_against_the_liability_as_of_its_own_effective_date(
    ledger: Ledger,
) -> None:
    # The letter of the contract: "amount ≤ the liability as of effective_date"; write-offs
    # effective later do not reduce the liability at an earlier date.
    book(ledger, write_off("70", "2025-12-31"))
    # Liability as of 30 June = 100 (the December write-off is not yet effective): 100 fits.
    accepted_all(ledger, [write_off("100", "2025-06-30")])
    # 30 June: 100 − 100 = 0.00; 31 December: 100 − 100 − 70 = −70.00
    assert figures(ledger, "2025-06-30") == row(basis="100", accrued="100.00",
                                                written_off="100.00", liability="0.00")
    assert figures(ledger) == row(basis="100", accrued="100.00", written_off="170.00",
                                  liability="-70.00")


def test_a_write_off_counts_from_its_effective_date(ledger: Ledger) -> None:
    book(ledger, write_off("25.50", "2025-09-30"))
    # 29 September: 100.00; 30 September: 100 − 25.50 = 74.50
    assert figures(ledger, "2025-09-29") == row(basis="100", accrued="100.00",
                                                liability="100.00")
    assert figures(ledger, "2025-09-30") == row(basis="100", accrued="100.00",
                                                written_off="25.50", liability="74.50")


def test_nothing_can_be_written_off_when_nothing_is_owed(ledger: Ledger) -> None:
    book(ledger)
    # As of 28 February nothing is earned yet: liability 0
    _assert_rejected_naming(ledger, write_off("1", "2025-02-28"), "amount")
    assert figures(ledger) == row(basis="100", accrued="100.00", liability="100.00")


def test_a_write_off_on_an_unknown_agreement_is_rejected(ledger: Ledger) -> None:
    book(ledger)
    _assert_rejected_naming(ledger, write_off("1", agreement_id="A9"), "agreement_id")
    assert figures(ledger) == row(basis="100", accrued="100.00", liability="100.00")
