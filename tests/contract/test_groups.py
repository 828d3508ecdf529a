"""Contract v2, section 4: buying groups, bitemporal membership, group agreements and
programs, through the public `Ledger` API, on SQLite and PostgreSQL.

Unless a test says otherwise: group G1; its agreement GA in EUR for 2025, retroactive on
quantity, 1 EUR a unit from 0 and 2 EUR a unit from 100 units. Every expected figure is worked
out by hand in the comment next to it.
"""

from __future__ import annotations

import pytest

from ledger import Ledger

from .helpers import (
    accepted_all,
    agreement,
    amend,
    at,
    group,
    group_agreement,
    join,
    leave,
    one_row,
    rejected_one,
    reversal,
    row,
    rows,
    sale,
)

TIERS = (("0", "1"), ("100", "2"))


def group_row(**figures: str) -> dict[str, str | None]:
    return row(agreement_id="GA", customer_id=None, group_id="G1", **figures)


def ga(ledger: Ledger, as_of: str = "2025-12-31", known_at: str | None = None) -> dict:
    return one_row(ledger, as_of, known_at, agreement_id="GA")


# Who counts ----------------------------------------------------------------------------------


def test_members_sales_count_on_the_days_they_are_members(ledger: Ledger) -> None:
    accepted_all(ledger, [
        group(), group_agreement(tiers=TIERS),
        join("C1", "2025-01-01"), join("C2", "2025-03-01"),
        sale("S1", "10", "100", "2025-02-01", customer_id="C1"),  # member: counts
        sale("S2", "10", "100", "2025-02-15", customer_id="C2"),  # before C2 joined: not
        sale("S3", "10", "100", "2025-03-10", customer_id="C2"),  # member: counts
        sale("S4", "10", "100", "2025-03-10", customer_id="C9"),  # never a member: not
    ])
    # B = 10 + 10 = 20 units, below 100: 1 EUR a unit: 20.00; a group row has no customer
    assert ga(ledger) == group_row(basis="20", accrued="20.00", liability="20.00")
    # on 28 February only S1 counts
    assert ga(ledger, "2025-02-28") == group_row(basis="10", accrued="10.00",
                                                 liability="10.00")


def test_the_members_purchases_reach_the_groups_tiers_together(ledger: Ledger) -> None:
    accepted_all(ledger, [
        group(), group_agreement(tiers=TIERS),
        join("C1", "2025-01-01"), join("C2", "2025-01-01"),
        sale("S1", "60", "600", "2025-02-01", customer_id="C1"),
        sale("S2", "60", "600", "2025-03-01", customer_id="C2"),
    ])
    # neither reaches 100 alone; together 120 ≥ 100: retroactive 2 EUR x 120 = 240.00
    assert ga(ledger) == group_row(basis="120", accrued="240.00", liability="240.00")
    assert ga(ledger, "2025-02-28") == group_row(basis="60", accrued="60.00",
                                                 liability="60.00")


def test_a_join_recorded_late_counts_from_its_effective_date_only_as_known_from_then(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        at("2025-01-02T09:00:00Z", group()),
        at("2025-01-02T09:00:00Z", group_agreement(tiers=TIERS)),
        at("2025-03-02T09:00:00Z", sale("S1", "10", "100", "2025-03-01", customer_id="C1")),
        # head office tells us in July that C1 joined on 1 March
        at("2025-07-15T09:00:00Z", join("C1", "2025-03-01")),
    ])
    # as known before the join was recorded: nobody was a member in March
    assert ga(ledger, "2025-03-31", "2025-07-14T23:59:59Z") == group_row(
        basis="0", accrued="0.00", liability="0.00")
    # as known from then on, the March sale counts: 10 x 1 = 10.00
    assert ga(ledger, "2025-03-31", "2025-07-15T09:00:00Z") == group_row(
        basis="10", accrued="10.00", liability="10.00")
    assert ga(ledger, "2025-03-31") == group_row(basis="10", accrued="10.00",
                                                 liability="10.00")


def test_a_leave_and_its_correction_by_a_later_join(ledger: Ledger) -> None:
    accepted_all(ledger, [
        at("2025-01-02T09:00:00Z", group()),
        at("2025-01-02T09:00:00Z", group_agreement(tiers=TIERS)),
        at("2025-01-02T09:00:00Z", join("C1", "2025-01-01")),
        at("2025-05-02T09:00:00Z", sale("S1", "10", "100", "2025-05-01", customer_id="C1")),
        at("2025-07-02T09:00:00Z", sale("S2", "20", "200", "2025-07-01", customer_id="C1")),
        # a leave from 1 June recorded on 10 July, in error ...
        at("2025-07-10T09:00:00Z", leave("C1", "2025-06-01")),
        # ... corrected on 20 July by a join from 1 June: the join is recorded last
        at("2025-07-20T09:00:00Z", join("C1", "2025-06-01")),
    ])
    k_before, k_leave, k_fixed = ("2025-07-09T00:00:00Z", "2025-07-15T00:00:00Z",
                                  "2025-07-20T09:00:00Z")
    # before the leave was known: both sales count, 30 x 1 = 30.00
    assert ga(ledger, "2025-07-31", k_before) == group_row(basis="30", accrued="30.00",
                                                           liability="30.00")
    # while the leave stood: only May's sale (C1 not a member from 1 June)
    assert ga(ledger, "2025-07-31", k_leave) == group_row(basis="10", accrued="10.00",
                                                          liability="10.00")
    # after the correction: both again
    assert ga(ledger, "2025-07-31", k_fixed) == group_row(basis="30", accrued="30.00",
                                                          liability="30.00")


def test_membership_is_laid_in_recorded_order_not_effective_order(ledger: Ledger) -> None:
    accepted_all(ledger, [
        group(), group_agreement(tiers=TIERS),
        join("C1", "2025-01-01"),
        leave("C1", "2025-06-01"),
        join("C1", "2025-03-01"),  # recorded last: a member from 1 March on, whatever came before
        sale("S1", "10", "100", "2025-02-01", customer_id="C1"),  # the first join: member
        sale("S2", "10", "100", "2025-08-01", customer_id="C1"),  # the last join: member
    ])
    # the leave of 1 June is overridden by the join effective 1 March recorded after it
    assert ga(ledger) == group_row(basis="20", accrued="20.00", liability="20.00")


def test_a_leave_is_effective_from_its_first_day_out(ledger: Ledger) -> None:
    accepted_all(ledger, [
        group(), group_agreement(tiers=TIERS),
        join("C1", "2025-01-01"), leave("C1", "2025-06-01"),
        sale("S1", "10", "100", "2025-05-31", customer_id="C1"),  # the last member day
        sale("S2", "10", "100", "2025-06-01", customer_id="C1"),  # the first day out
    ])
    assert ga(ledger) == group_row(basis="10", accrued="10.00", liability="10.00")


def test_a_member_in_two_groups_counts_in_both(ledger: Ledger) -> None:
    accepted_all(ledger, [
        group("G1"), group("G2"),
        group_agreement("GA", "G1", tiers=TIERS), group_agreement("GB", "G2", tiers=TIERS),
        join("C1", "2025-01-01", "G1"), join("C1", "2025-01-01", "G2"),
        sale("S1", "10", "100", "2025-02-01", customer_id="C1"),
    ])
    found = {r["agreement_id"]: r for r in rows(ledger, "2025-12-31")}
    assert found["GA"] == group_row(basis="10", accrued="10.00", liability="10.00")
    assert found["GB"] == row(agreement_id="GB", customer_id=None, group_id="G2",
                              basis="10", accrued="10.00", liability="10.00")


def test_a_members_own_agreement_and_its_groups_both_count_its_sales(ledger: Ledger) -> None:
    accepted_all(ledger, [
        group(), group_agreement(tiers=TIERS), agreement("A1", customer_id="C1"),
        join("C1", "2025-01-01"),
        sale("S1", "10", "100", "2025-02-01", customer_id="C1"),
    ])
    found = {r["agreement_id"]: r for r in rows(ledger, "2025-12-31")}
    assert found["A1"] == row(basis="10", accrued="10.00", liability="10.00")
    assert found["GA"] == group_row(basis="10", accrued="10.00", liability="10.00")


def test_a_reversed_member_sale_stops_counting_from_its_reversal_day(ledger: Ledger) -> None:
    accepted_all(ledger, [
        group(), group_agreement(tiers=TIERS), join("C1", "2025-01-01"),
        sale("S1", "10", "100", "2025-02-01", customer_id="C1"),
        reversal("S1", "2025-04-01"),
    ])
    assert ga(ledger, "2025-03-31") == group_row(basis="10", accrued="10.00",
                                                 liability="10.00")
    assert ga(ledger, "2025-04-01") == group_row(basis="0", accrued="0.00",
                                                 liability="0.00")


def test_a_group_with_one_member_always_in_it_equals_that_customers_own_agreement(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        group(), group_agreement(tiers=TIERS), agreement("A1", customer_id="C1", tiers=TIERS),
        join("C1", "2024-01-01"),
        sale("S1", "70", "700", "2025-02-01", customer_id="C1"),
        sale("S2", "40", "400", "2025-05-01", customer_id="C1"),
        reversal("S2", "2025-09-01"),
    ])
    for as_of in ("2025-01-31", "2025-03-31", "2025-06-30", "2025-12-31"):
        own, grouped = one_row(ledger, as_of), ga(ledger, as_of)
        for name in ("basis", "accrued", "approved", "paid", "written_off", "liability"):
            assert own[name] == grouped[name], (as_of, name, own, grouped)


# Filters -------------------------------------------------------------------------------------


def test_customer_selects_its_own_agreements_and_its_groups_at_d_as_known_at_k(
    ledger: Ledger,
) -> None:
    accepted_all(ledger, [
        at("2025-01-02T09:00:00Z", group()),
        at("2025-01-02T09:00:00Z", group_agreement(tiers=TIERS)),
        at("2025-01-02T09:00:00Z", agreement("A1", customer_id="C1")),
        at("2025-01-02T09:00:00Z", agreement("A2", customer_id="C2")),
        at("2025-01-02T09:00:00Z", join("C1", "2025-01-01")),
        at("2025-08-01T09:00:00Z", leave("C1", "2025-07-01")),
    ])

    def ids(as_of: str, known_at: str | None = None) -> list[str]:
        return [r["agreement_id"] for r in rows(ledger, as_of, known_at, customer_id="C1")]

    assert ids("2025-06-30") == ["A1", "GA"]  # a member on 30 June
    assert ids("2025-07-31") == ["A1"]  # left from 1 July
    assert ids("2025-07-31", "2025-07-31T00:00:00Z") == ["A1", "GA"]  # the leave not yet known
    assert [r["agreement_id"] for r in rows(ledger, "2025-06-30", customer_id="C2")] == ["A2"]


def test_group_and_program_filters(ledger: Ledger) -> None:
    accepted_all(ledger, [
        group("G1"), group("G2"),
        group_agreement("GA", "G1"), group_agreement("GB", "G2", program_id="P1"),
        agreement("A1", customer_id="C1", program_id="P1"),
        agreement("A2", customer_id="C2"),
    ])
    assert [r["agreement_id"] for r in rows(ledger, "2025-06-30", group_id="G2")] == ["GB"]
    found = rows(ledger, "2025-06-30", program_id="P1")
    assert [(r["agreement_id"], r["program_id"]) for r in found] == [("A1", "P1"), ("GB", "P1")]
    assert rows(ledger, "2025-06-30", group_id="nope") == []


# Rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "names"),
    [
        ({**group_agreement("GX"), "customer_id": "C1"}, "got both"),  # both ids
        ({k: v for k, v in agreement().items() if k != "customer_id"}, "customer_id"),
        (group_agreement("GX", "G-UNKNOWN"), "no group 'G-UNKNOWN'"),
        (join("C1", "2025-01-01", "G-UNKNOWN"), "no group 'G-UNKNOWN'"),
        (leave("C2", "2025-01-01"), "needs an earlier join_group"),
        (group("G1"), "already exists"),
        (amend("GA", "2025-01-01", group_id="G2"), "cannot change"),
        (amend("GA", "2025-01-01", customer_id="C1"), "cannot change"),
        (amend("GA", "2025-01-01", program_id="P9"), "cannot change"),
    ],
)
def test_group_rules_reject_with_a_reason(ledger: Ledger, command: dict, names: str) -> None:
    accepted_all(ledger, [group(), group_agreement(), join("C1", "2025-01-01")])
    reason = rejected_one(ledger, command)
    assert names in reason, reason
    # nothing changed: the group agreement is still the only agreement
    assert [r["agreement_id"] for r in rows(ledger, "2025-12-31")] == ["GA"]


def test_a_leave_needs_a_join_to_that_group_not_another(ledger: Ledger) -> None:
    accepted_all(ledger, [group("G1"), group("G2"), join("C1", "2025-01-01", "G2")])
    reason = rejected_one(ledger, leave("C1", "2025-03-01", "G1"))
    assert "customer_id" in reason and "G1" in reason
