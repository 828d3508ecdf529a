"""Contract v2, section 5: money that cannot move twice, and no mistyped percentage, through
the public `Ledger` API, on SQLite and PostgreSQL.

The book is agreement A1 (customer C1, EUR, 2025, retroactive on quantity at 1 EUR a unit) with
one sale of 100 units on 1 March: accrued 100.00 from then on. Every expected figure is worked
out by hand in the comment next to it.
"""

from __future__ import annotations

import pytest

from ledger import Ledger

from .helpers import (
    accepted_all,
    agreement,
    amend,
    approve,
    at,
    one_row,
    rejected_one,
    reverse_write_off,
    row,
    sale,
    settle,
    submit,
    tier_list,
    write_off,
)


def book(ledger: Ledger, *commands: dict) -> None:
    accepted_all(ledger, [agreement(), sale("S1", "100", "1000", "2025-03-01"), *commands])


def figures(ledger: Ledger, as_of: str = "2025-12-31", known_at: str | None = None) -> dict:
    return one_row(ledger, as_of, known_at)


# Write-offs with ids -----------------------------------------------------------------------


def test_a_write_off_sent_twice_is_a_duplicate_that_changes_nothing(ledger: Ledger) -> None:
    book(ledger, write_off("30", write_off_id="W1"))
    report = ledger.apply([write_off("30", write_off_id="W1")])
    assert report.accepted == 0 and not report.rejected
    assert report.duplicates == [(1, "write_off", "W1")]
    # written off once: 100 − 30 = 70.00
    assert figures(ledger) == row(basis="100", accrued="100.00", written_off="30.00",
                                  liability="70.00")


def test_a_write_off_resent_after_the_liability_fell_is_still_a_duplicate(
    ledger: Ledger,
) -> None:
    # all 100 written off: a resend must not be judged against the 0.00 left
    book(ledger, write_off("100", write_off_id="W1"))
    report = ledger.apply([write_off("100", write_off_id="W1")])
    assert report.duplicates == [(1, "write_off", "W1")] and not report.rejected
    assert figures(ledger) == row(basis="100", accrued="100.00", written_off="100.00",
                                  liability="0.00")


@pytest.mark.parametrize(
    "changed",
    [{"amount": "31"}, {"effective_date": "2025-11-30"}, {"reason": "other"},
     {"agreement_id": "A2"}],
)
def test_the_same_write_off_id_with_different_fields_is_rejected(
    ledger: Ledger, changed: dict
) -> None:
    book(ledger, agreement("A2", customer_id="C1"), write_off("30", write_off_id="W1"))
    command = {**write_off("30", write_off_id="W1"), **changed}
    reason = rejected_one(ledger, command)
    assert reason.startswith("write_off_id:") and "different fields" in reason
    assert figures(ledger)["written_off"] == "30.00"


def test_without_an_id_a_write_off_behaves_as_in_v1(ledger: Ledger) -> None:
    book(ledger, write_off("30"), write_off("30"))
    # two write-offs: 100 − 60 = 40.00
    assert figures(ledger) == row(basis="100", accrued="100.00", written_off="60.00",
                                  liability="40.00")


def test_a_reversed_write_off_stops_counting_from_reversed_on_as_known_from_its_recording(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        at("2025-03-02T09:00:00Z", agreement()),
        at("2025-03-02T09:00:00Z", sale("S1", "100", "1000", "2025-03-01")),
        at("2025-06-01T09:00:00Z", write_off("30", "2025-05-31", write_off_id="W1")),
        at("2025-07-01T09:00:00Z", reverse_write_off("W1", "2025-06-15")),
    ])
    # valid time: counts from 31 May, no longer from 15 June
    assert figures(ledger, "2025-05-31")["written_off"] == "30.00"
    assert figures(ledger, "2025-06-14")["written_off"] == "30.00"
    assert figures(ledger, "2025-06-15") == row(basis="100", accrued="100.00",
                                                liability="100.00")
    # transaction time: before the reversal was recorded, it still counted on 15 June
    assert figures(ledger, "2025-06-15", "2025-06-30T00:00:00Z")["written_off"] == "30.00"


def test_a_reversal_may_fall_on_the_write_offs_own_date(ledger: Ledger) -> None:
    book(ledger, write_off("30", "2025-05-31", write_off_id="W1"),
         reverse_write_off("W1", "2025-05-31"))
    assert figures(ledger, "2025-05-31")["written_off"] == "0.00"


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (reverse_write_off("W9", "2025-06-01"), "no write-off 'W9'"),
        (reverse_write_off("W1", "2025-05-30"), "reversed_on"),  # before its effective date
    ],
)
def test_a_reversal_needs_an_existing_write_off_and_a_date_on_or_after_it(
    ledger: Ledger, command: dict, words: str
) -> None:
    book(ledger, write_off("30", "2025-05-31", write_off_id="W1"))
    assert words in rejected_one(ledger, command)
    assert figures(ledger)["written_off"] == "30.00"


def test_a_write_off_is_reversed_once_and_its_id_stays_taken(ledger: Ledger) -> None:
    book(ledger, write_off("30", "2025-05-31", write_off_id="W1"),
         reverse_write_off("W1", "2025-06-01"))
    assert "already reversed" in rejected_one(ledger, reverse_write_off("W1", "2025-06-02"))
    # the same write-off sent again after its reversal is still a duplicate: nothing moves
    report = ledger.apply([write_off("30", "2025-05-31", write_off_id="W1")])
    assert report.duplicates == [(1, "write_off", "W1")]
    assert figures(ledger) == row(basis="100", accrued="100.00", liability="100.00")


def test_the_released_amount_can_be_written_off_again_under_a_new_id(ledger: Ledger) -> None:
    book(ledger, write_off("100", "2025-05-31", write_off_id="W1"),
         reverse_write_off("W1", "2025-06-01"), write_off("100", "2025-06-02", write_off_id="W2"))
    assert figures(ledger)["liability"] == "0.00"


# Settlements by payment_ref ----------------------------------------------------------------


def test_a_settlement_sent_twice_is_a_duplicate(ledger: Ledger) -> None:
    book(ledger, submit("X1", "60"), approve("X1"), settle("X1", "2025-06-03", "20"))
    report = ledger.apply([settle("X1", "2025-06-03", "20")])
    assert report.duplicates == [(1, "settle_claim", "X1 payment_ref PAY-1")]
    assert not report.rejected and report.accepted == 0
    # paid once: 20; liability 100 − 20 = 80.00
    assert figures(ledger) == row(basis="100", accrued="100.00", approved="60.00",
                                  paid="20.00", liability="80.00")


def test_a_settlement_that_settled_the_claim_sent_again_is_a_duplicate_not_an_error(
    ledger: Ledger,
) -> None:
    book(ledger, submit("X1", "60"), approve("X1"), settle("X1", "2025-06-03"))  # pays 60
    report = ledger.apply([settle("X1", "2025-06-03")])
    assert report.duplicates == [(1, "settle_claim", "X1 payment_ref PAY-1")]
    assert figures(ledger)["paid"] == "60.00"


@pytest.mark.parametrize(
    "resend",
    [settle("X1", "2025-06-03", "25"), settle("X1", "2025-06-04", "20")],
    ids=["other-amount", "other-date"],
)
def test_the_same_payment_ref_with_different_fields_is_rejected(
    ledger: Ledger, resend: dict
) -> None:
    book(ledger, submit("X1", "60"), approve("X1"), settle("X1", "2025-06-03", "20"))
    reason = rejected_one(ledger, resend)
    assert reason.startswith("payment_ref:"), reason
    assert figures(ledger)["paid"] == "20.00"


def test_the_same_payment_ref_on_another_claim_is_another_payment(ledger: Ledger) -> None:
    book(ledger, submit("X1", "30"), approve("X1"), submit("X2", "30"), approve("X2"),
         settle("X1", "2025-06-03", "10"), settle("X2", "2025-06-03", "10"))
    assert figures(ledger)["paid"] == "20.00"


# Percent rates -----------------------------------------------------------------------------


def test_a_percent_rate_above_one_is_rejected_saying_what_it_means(ledger: Ledger) -> None:
    reason = rejected_one(ledger, agreement(basis="amount", rate_kind="percent",
                                            tiers=(("0", "0.01"), ("1000", "2"))))
    assert reason.startswith("tiers[1].rate:"), reason
    assert '"0.05" means 5 %' in reason and "200 %" in reason


def test_a_percent_rate_of_exactly_one_and_a_per_unit_rate_above_one_are_accepted(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        agreement("A1", basis="amount", rate_kind="percent", tiers=(("0", "1"),)),
        agreement("A2", rate_kind="per_unit", tiers=(("0", "2.50"),)),
    ])


@pytest.mark.parametrize(
    "amendment",
    [
        amend("A1", "2025-06-01", tiers=tier_list((("0", "1.5"),))),
        amend("A1", "2025-06-01", rate_kind="percent", basis="amount"),  # keeps rate 2
    ],
    ids=["tiers", "rate_kind"],
)
def test_an_amendment_cannot_make_a_percent_rate_above_one(
    ledger: Ledger, amendment: dict
) -> None:
    if amendment.get("rate_kind") == "percent":
        accepted_all(ledger, [agreement(tiers=(("0", "2"),))])
    else:
        accepted_all(ledger, [agreement(basis="amount", rate_kind="percent",
                                        tiers=(("0", "0.05"),))])
    reason = rejected_one(ledger, amendment)
    assert "tiers[0].rate" in reason and "5 %" in reason
