"""`positions` and `programs` (contract v2 enrollment at a glance), worked by hand, through the
library and the CLI."""

from __future__ import annotations

import subprocess
from decimal import Decimal
from pathlib import Path

import orjson

from ledger import Ledger
from ledger.audit.positions import positions, programs_report
from tests.contract.helpers import (
    accepted_all,
    agreement,
    approve,
    at,
    day,
    group,
    group_agreement,
    join,
    moment,
    reject,
    sale,
    submit,
)

CLI = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "rebate-ledger"
TIERS = (("0", "1"), ("100", "2"), ("200", "3"))


def book(ledger: Ledger) -> None:
    accepted_all(ledger, [
        at("2025-01-02T09:00:00Z", group()),
        at("2025-01-02T09:00:00Z", group_agreement(tiers=TIERS, program_id="P-COOP")),
        at("2025-01-02T09:00:00Z", agreement("A1", customer_id="C1", program_id="P-STD")),
        at("2025-01-02T09:00:00Z", agreement("A2", customer_id="C2", program_id="P-STD")),
        at("2025-01-02T09:00:00Z", join("C1", "2025-01-01")),
        at("2025-01-02T09:00:00Z", join("C2", "2025-01-01")),
        at("2025-03-02T09:00:00Z", sale("S1", "70", "700", "2025-03-01", customer_id="C1")),
        at("2025-03-02T09:00:00Z", sale("S2", "50", "500", "2025-03-01", customer_id="C2")),
        at("2025-06-01T09:00:00Z", submit("X1", "40", "2025-06-01", agreement_id="GA")),
        at("2025-06-01T09:00:00Z", submit("X2", "10", "2025-06-01", agreement_id="GA")),
        at("2025-06-02T09:00:00Z", approve("X1", "2025-06-02")),
        at("2025-06-02T09:00:00Z", reject("X2", "2025-06-02")),
        # C3 joined from February; head office tells us in August
        at("2025-08-01T09:00:00Z", join("C3", "2025-02-01")),
    ])


def test_positions_lists_the_customers_own_and_its_groups_agreements(ledger: Ledger) -> None:
    book(ledger)
    found = {p.row.agreement_id: p for p in positions(ledger, "C1", day("2025-06-30"))}
    assert sorted(found) == ["A1", "GA"]
    own, grouped = found["A1"], found["GA"]
    # A1: 70 units at 1 EUR: 70.00; one tier only: reached 0, no next tier
    assert (own.row.basis, own.row.accrued, own.tier_from, own.next_from) == (
        Decimal(70), Decimal("70.00"), Decimal(0), None)
    assert own.share is None and own.row.program_id == "P-STD"
    # GA: 70 + 50 = 120 units ≥ 100: 2 EUR a unit, 240.00; next tier 200: 80 still needed;
    # C1's own share 70; claimed 40 (X2 was rejected), approved 40, liability 240.00
    assert (grouped.row.basis, grouped.row.accrued) == (Decimal(120), Decimal("240.00"))
    assert (grouped.tier_from, grouped.tier_rate) == (Decimal(100), Decimal(2))
    assert (grouped.next_from, grouped.needed) == (Decimal(200), Decimal(80))
    assert grouped.share == Decimal(70)
    assert (grouped.claimed, grouped.row.approved) == (Decimal(40), Decimal(40))
    assert grouped.row.program_id == "P-COOP"


def test_positions_of_a_late_joiner_depend_on_when_it_was_known(ledger: Ledger) -> None:
    book(ledger)
    assert [p.row.agreement_id for p in positions(ledger, "C3", day("2025-06-30"))] == ["GA"]
    assert positions(ledger, "C3", day("2025-06-30"), moment("2025-07-31T00:00:00Z")) == []


def test_programs_total_their_agreements(ledger: Ledger) -> None:
    book(ledger)
    report = programs_report(ledger, day("2025-06-30"))
    by_program = {r["program_id"]: r for r in report.rows}
    assert by_program["P-STD"]["agreements"] == 2
    # A1 70.00 + A2 50.00 (both 1 EUR a unit)
    assert by_program["P-STD"]["accrued"] == Decimal("120.00")
    assert by_program["P-STD"]["enrolled"] == ["C1", "C2"]
    assert by_program["P-COOP"]["enrolled"] == ["group G1"]


def test_the_positions_command_answers_as_a_user_types_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(url) as ledger:
        book(ledger)
    done = subprocess.run(
        [str(CLI), "positions", "--customer", "C1", "--as-of", "2025-06-30", "--format",
         "json", "--database", url], capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    document = orjson.loads(done.stdout)
    rows = {r["agreement_id"]: r for r in document["rows"]}
    assert rows["GA"]["via"] == "group G1" and rows["GA"]["customer_share"] == "70"
    assert rows["GA"]["still_needed"] == "80" and rows["GA"]["liability"] == "240.00"
    unknown = subprocess.run(
        [str(CLI), "positions", "--customer", "c1", "--as-of", "2025-06-30", "--database",
         url], capture_output=True, timeout=120, check=False)
    # issue 14: a customer the store has never seen is an error, not an empty answer
    assert unknown.returncode == 2 and unknown.stdout == b""
    assert unknown.stderr.decode().splitlines()[-1] == (
        "error: --customer: no customer 'c1' in this store; did you mean 'C1'?")


def test_opportunities_show_a_group_below_its_next_tier_with_each_members_share(
    ledger: Ledger,
) -> None:
    from ledger.audit.opportunities import opportunities

    book(ledger)
    (found,) = [o for o in opportunities(ledger, day("2025-06-30")) if o.agreement_id == "GA"]
    # 120 units (C1 70, C2 50; C3 joined late but bought nothing) below the tier from 200
    assert (found.group_id, found.basis, found.next_tier, found.gap) == (
        "G1", Decimal(120), Decimal(200), Decimal(80))
    # every member is listed, one that bought nothing with 0
    assert found.member_shares == (("C1", Decimal(70)), ("C2", Decimal(50)), ("C3", Decimal(0)))


def test_simulate_runs_a_draft_group_agreement_over_the_members_recorded_sales(
    ledger: Ledger,
) -> None:
    from ledger.audit.simulate import read_draft, simulate

    book(ledger)
    draft = read_draft([orjson.dumps(group_agreement("DRAFT", tiers=(("0", "0.5"),)))])
    months = simulate(ledger, draft, day("2025-03-31"))
    # C1 70 + C2 50 units in March (C3, a member from February, bought nothing): 120 x 0.5
    assert [(m.end.isoformat(), m.basis, m.accrued) for m in months] == [
        ("2025-01-31", Decimal(0), Decimal("0.00")),
        ("2025-02-28", Decimal(0), Decimal("0.00")),
        ("2025-03-31", Decimal(120), Decimal("60.00")),
    ]
    # beside it, the group's existing agreement: GA at 1 EUR a unit below 100... 120 ≥ 100: 2
    assert months[-1].existing == {"GA": Decimal("240.00")}


def test_explain_names_the_members_and_the_membership_events_of_a_group_agreement(
    ledger: Ledger,
) -> None:
    from ledger.audit.explain import explain

    book(ledger)
    explanation = explain(ledger, "GA", day("2025-06-30"))
    assert explanation.group_id == "G1" and explanation.customer_id is None
    (members,) = [s for s in explanation.steps if s.title == "Members of the group"]
    assert set(members.figures) == {"C1", "C2", "C3"}
    assert members.figures["C3"]["member_days"] == [["2025-02-01", None]]
    assert len(members.events) == 3  # the three joins
    assert explanation.matches_ledger and explanation.liability == Decimal("240.00")
    # as known before C3's join was recorded, C3 is not a member
    earlier = explain(ledger, "GA", day("2025-06-30"), moment("2025-07-31T00:00:00Z"))
    (members,) = [s for s in earlier.steps if s.title == "Members of the group"]
    assert set(members.figures) == {"C1", "C2"}


def test_diff_names_a_late_join_as_the_cause_of_a_change(ledger: Ledger) -> None:
    from ledger.audit.diff import diff

    accepted_all(ledger, [
        at("2025-01-02T09:00:00Z", group()),
        at("2025-01-02T09:00:00Z", group_agreement(tiers=TIERS)),
        at("2025-03-02T09:00:00Z", sale("S1", "30", "300", "2025-03-01", customer_id="C7")),
        at("2025-08-01T09:00:00Z", join("C7", "2025-02-01")),
    ])
    (change,) = diff(ledger, day("2025-06-30"), moment("2025-07-10T00:00:00Z"))
    assert change.agreement_id == "GA"
    # 0 → 30 units at 1 EUR: 30.00
    assert (change.before["accrued"], change.after["accrued"]) == (Decimal(0), Decimal("30.00"))
    assert [c.kind for c in change.causes] == ["late join"]
    assert "C7 joins group G1 effective 2025-02-01" in change.causes[0].detail


def test_the_journal_accrues_a_group_agreement_and_posts_a_write_off_reversal_back(
    ledger: Ledger,
) -> None:
    from ledger.audit.journal import postings, trial_balance
    from tests.contract.helpers import reverse_write_off, write_off

    book(ledger)
    accepted_all(ledger, [
        at("2025-09-01T09:00:00Z", write_off("20", "2025-08-31", agreement_id="GA",
                                             write_off_id="W1")),
        at("2025-09-02T09:00:00Z", reverse_write_off("W1", "2025-08-31")),
    ])
    lines = postings(ledger, day("2025-12-31"), agreement_id="GA")
    kinds = [line.kind for line in lines]
    assert "write-off" in kinds and "write-off reversal" in kinds
    # the write-off and its reversal cancel: the liability account holds the 240.00 accrued
    # (the claim was approved but not paid)
    balances = {b.account: b.balance for b in trial_balance(lines)}
    assert balances["accrued rebate liability"] == Decimal("-240.00")
