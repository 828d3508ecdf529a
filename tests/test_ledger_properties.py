"""Hypothesis properties of the whole ledger (commands in, liability out), on SQLite:

- a sale followed by its reversal (dated the invoice day) changes no liability at any date;
- a query as known at K ignores everything recorded after K, whatever it is;
- (contract v2) a group with one member always in it gives the figures of that customer's own
  agreement with the same terms; a group's figures as known at K ignore every membership change
  recorded after K, and its basis is the naive sum over members' sales on member days.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Ledger

START = datetime(2025, 1, 1, tzinfo=UTC)
QUERY_DATES = [date(2025, 3, 31), date(2025, 6, 30), date(2025, 12, 31)]
PROPERTY_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def stamp(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


@st.composite
def agreements(draw: st.DrawFn) -> dict[str, Any]:
    basis = draw(st.sampled_from(["quantity", "amount"]))
    tier_method = draw(st.sampled_from(["retroactive", "incremental"]))
    # contract: incremental tiers measure what the basis measures
    rate_kind = (
        draw(st.sampled_from(["per_unit", "percent"])) if tier_method == "retroactive"
        else "per_unit" if basis == "quantity" else "percent"
    )
    step = 50 if basis == "quantity" else 5000
    first = draw(st.integers(0, step))
    tiers = [{"from": str(first), "rate": "0.05" if rate_kind == "percent" else "1.25"}]
    if draw(st.booleans()):
        tiers.append({"from": str(first + draw(st.integers(1, step))),
                      "rate": "0.08" if rate_kind == "percent" else "2.00"})
    command: dict[str, Any] = {
        "type": "create_agreement", "agreement_id": "A1", "customer_id": "C1",
        "currency": "EUR", "period_start": "2025-01-01", "period_end": "2025-12-31",
        "basis": basis, "tier_method": tier_method,
        "rate_kind": rate_kind, "tiers": tiers,
    }
    if draw(st.booleans()):
        command["cap"] = str(draw(st.integers(1, 5000)))
    return command


@st.composite
def sales(draw: st.DrawFn, prefix: str, count: int) -> list[dict[str, Any]]:
    result = []
    for n in range(count):
        quantity = draw(st.integers(-5, 40).filter(lambda q: q != 0))
        price = draw(st.integers(1, 300))
        result.append({
            "type": "record_sale", "sale_id": f"{prefix}{n}", "customer_id": "C1",
            "product_id": f"P{draw(st.integers(1, 3))}", "quantity": str(quantity),
            "amount": f"{quantity * price}.{draw(st.integers(0, 99)):02d}"
            if quantity > 0 else f"{quantity * price}.00",
            "currency": "EUR",
            "invoice_date": (date(2025, 1, 1) + timedelta(days=draw(st.integers(0, 364))))
            .isoformat(),
        })
    return result


def stamped(commands: list[dict[str, Any]], first_minute: int) -> list[dict[str, Any]]:
    return [{**c, "recorded_at": stamp(first_minute + i)} for i, c in enumerate(commands)]


def figures(ledger: Ledger, known_at: datetime | None = None) -> list[list[dict[str, str]]]:
    return [[row.to_dict() for row in ledger.liability(d, known_at)] for d in QUERY_DATES]


@PROPERTY_SETTINGS
@given(agreement=agreements(), book=st.integers(0, 8).flatmap(lambda n: sales("S", n)),
       extra=sales("X", 1))
def test_a_sale_followed_by_its_reversal_changes_nothing(
    agreement: dict[str, Any], book: list[dict[str, Any]], extra: list[dict[str, Any]]
) -> None:
    with tempfile.TemporaryDirectory() as folder, Ledger(
        f"sqlite:///{Path(folder) / 'ledger.db'}"
    ) as ledger:
        report = ledger.apply(stamped([agreement, *book], 0))
        assert not report.rejected, report.to_dict()
        before = figures(ledger)
        sale = extra[0]
        reversal = {"type": "reverse_sale", "sale_id": sale["sale_id"],
                    "reversed_on": sale["invoice_date"]}
        report = ledger.apply(stamped([sale, reversal], 1000))
        assert report.accepted == 2, report.to_dict()
        assert figures(ledger) == before


@PROPERTY_SETTINGS
@given(agreement=agreements(), early=st.integers(0, 6).flatmap(lambda n: sales("S", n)),
       late=st.integers(1, 6).flatmap(lambda n: sales("L", n)),
       reverse_early=st.booleans(), amend=st.booleans())
def test_a_query_as_known_at_k_ignores_everything_recorded_after_k(
    agreement: dict[str, Any], early: list[dict[str, Any]], late: list[dict[str, Any]],
    reverse_early: bool, amend: bool,
) -> None:
    with tempfile.TemporaryDirectory() as folder, Ledger(
        f"sqlite:///{Path(folder) / 'ledger.db'}"
    ) as ledger:
        report = ledger.apply(stamped([agreement, *early], 0))
        assert not report.rejected, report.to_dict()
        known_at = START + timedelta(minutes=500)
        before = figures(ledger, known_at)
        later: list[dict[str, Any]] = list(late)
        if reverse_early and early:
            later.append({"type": "reverse_sale", "sale_id": early[0]["sale_id"],
                          "reversed_on": early[0]["invoice_date"]})
        if amend:
            later.append({"type": "amend_agreement", "agreement_id": "A1",
                          "effective_from": "2025-01-01",
                          "tiers": [{"from": "0", "rate": "0.5"}]})
        later.append({"type": "write_off", "agreement_id": "A1", "amount": "0.01",
                      "effective_date": "2025-12-31", "reason": "test"})
        ledger.apply(stamped(later, 1000))
        assert figures(ledger, known_at) == before
        # and the later commands did change what is known now (the property is not vacuous)
        assert ledger.state()["accepted"] > len(early) + 1


# Contract v2, section 4: buying groups ---------------------------------------------------------


def as_group_agreement(agreement: dict[str, Any], agreement_id: str = "GA") -> dict[str, Any]:
    command = {k: v for k, v in agreement.items() if k != "customer_id"}
    return {**command, "agreement_id": agreement_id, "group_id": "G1"}


@PROPERTY_SETTINGS
@given(agreement=agreements(), book=st.integers(0, 10).flatmap(lambda n: sales("S", n)))
def test_a_group_with_one_member_always_in_it_equals_that_customers_own_agreement(
    agreement: dict[str, Any], book: list[dict[str, Any]],
) -> None:
    with tempfile.TemporaryDirectory() as folder, Ledger(
        f"sqlite:///{Path(folder) / 'ledger.db'}"
    ) as ledger:
        setup = [{"type": "create_group", "group_id": "G1"},
                 {"type": "join_group", "group_id": "G1", "customer_id": "C1",
                  "effective_from": "2024-01-01"},
                 agreement, as_group_agreement(agreement), *book]
        report = ledger.apply(stamped(setup, 0))
        assert not report.rejected, report.to_dict()
        for as_of in QUERY_DATES:
            own, group = ledger.liability(as_of)  # sorted: A1, then GA
            assert (own.agreement_id, group.agreement_id) == ("A1", "GA")
            figures_of = lambda r: (r.basis, r.accrued, r.approved, r.paid,  # noqa: E731
                                    r.written_off, r.liability)
            assert figures_of(own) == figures_of(group), as_of


@st.composite
def memberships(draw: st.DrawFn, count: int) -> list[dict[str, Any]]:
    return [
        {"type": draw(st.sampled_from(["join_group", "leave_group"])), "group_id": "G1",
         "customer_id": draw(st.sampled_from(["C1", "C2"])),
         "effective_from": (date(2025, 1, 1) + timedelta(days=draw(st.integers(-10, 364))))
         .isoformat()}
        for _ in range(count)
    ]


@PROPERTY_SETTINGS
@given(agreement=agreements(), book=st.integers(1, 8).flatmap(lambda n: sales("S", n)),
       early=st.integers(0, 4).flatmap(memberships),
       late=st.integers(1, 4).flatmap(memberships))
def test_a_group_query_as_known_at_k_ignores_membership_changes_recorded_after_k(
    agreement: dict[str, Any], book: list[dict[str, Any]], early: list[dict[str, Any]],
    late: list[dict[str, Any]],
) -> None:
    """The group's figures at every D as known at K equal those of a book that never had
    the joins and leaves recorded after K; and they equal the contract's rule evaluated
    naively (tests/model)."""
    from model.contract_model import is_member

    with tempfile.TemporaryDirectory() as folder, Ledger(
        f"sqlite:///{Path(folder) / 'ledger.db'}"
    ) as ledger:
        first = [{"type": "create_group", "group_id": "G1"}, {
            "type": "join_group", "group_id": "G1", "customer_id": "C1",
            "effective_from": "2025-01-01"}, as_group_agreement(agreement), *book, *early]
        ledger.apply(stamped(first, 0))
        known_at = START + timedelta(minutes=500)
        before = figures(ledger, known_at)
        ledger.apply(stamped(late, 1000))
        assert figures(ledger, known_at) == before
        # now, the basis is the naive sum over the sales of members on their invoice days
        accepted = [c for c in first[1:2] + early + late
                    if c["type"] == "join_group" or any(
                        j["type"] == "join_group" and j["customer_id"] == c["customer_id"]
                        for j in (first[1:2] + early + late)[:(first[1:2] + early + late)
                                                             .index(c)])]
        known = [{**c, "effective_from": date.fromisoformat(c["effective_from"])}
                 for c in accepted]
        for as_of in QUERY_DATES:
            counted = [s for s in book if s["invoice_date"] <= as_of.isoformat()
                       and is_member(known, "G1", s["customer_id"],
                                     date.fromisoformat(s["invoice_date"]))]
            key = "quantity" if agreement["basis"] == "quantity" else "amount"
            expected = sum((Decimal(s[key]) for s in counted), Decimal(0))
            (row,) = ledger.liability(as_of)
            assert row.basis == expected, (as_of, counted)
