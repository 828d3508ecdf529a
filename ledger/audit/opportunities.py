"""`rebate-ledger opportunities --as-of D`: per agreement whose period is running and which has
a tier above its basis: the basis so far, the basis still needed to reach the next tier, the
days left in the period, the extra rebate reaching it would bring (the earned rebate at the
next tier's threshold minus the earned rebate now; with a retroactive table the new rate counts
on the whole basis), and a run-rate projection (basis per elapsed day times the period's days)
of whether the customer gets there; sorted by the extra rebate, largest first.

When the rebate is measured in another unit than the basis (a percent of the amount on a
quantity basis, say), the measure is assumed to grow in proportion to the basis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from ledger.audit.output import (
    Report,
    basis_figure,
    count_figure,
    money,
    money_figure,
    rate_figure,
)
from ledger.core import Ledger
from ledger.liability import FOREVER_US, customer_totals, member_windows
from ledger.money import EXACT, ZERO, format_decimal
from ledger.projections.core import to_us
from ledger.rules import accrue
from ledger.terms import Terms


@dataclass(frozen=True)
class Opportunity:
    agreement_id: str
    customer_id: str | None  # None: a buying group's agreement
    currency: str
    basis_kind: str
    basis: Decimal
    next_tier: Decimal
    next_rate: Decimal
    gap: Decimal
    days_left: int
    earned_now: Decimal
    earned_at_next_tier: Decimal
    projected_basis: Decimal
    reaches: bool
    group_id: str | None = None
    #: a group's agreement (contract 4): each member's part of the basis, largest first
    member_shares: tuple[tuple[str, Decimal], ...] = ()
    #: `per_unit` or `percent`: how `next_rate` reads
    rate_kind: str = "per_unit"

    @property
    def extra_rebate(self) -> Decimal:
        return EXACT.subtract(self.earned_at_next_tier, self.earned_now)

    def to_row(self) -> dict[str, object]:
        return {
            "agreement_id": self.agreement_id, "customer_id": self.customer_id,
            "group_id": self.group_id,
            "currency": self.currency, "basis_kind": self.basis_kind,
            "basis": format_decimal(self.basis), "next_tier": format_decimal(self.next_tier),
            "next_rate": format_decimal(self.next_rate), "rate_kind": self.rate_kind,
            "gap": format_decimal(self.gap),
            "days_left": self.days_left, "earned_now": money(self.earned_now),
            "earned_at_next_tier": money(self.earned_at_next_tier),
            "extra_rebate": money(self.extra_rebate),
            "projected_basis": format_decimal(self.projected_basis.quantize(Decimal("0.01"))),
            "reaches_at_run_rate": "yes" if self.reaches else "no",
            "member_shares": [f"{member}: {format_decimal(share)}"
                              for member, share in self.member_shares],
        }


def opportunities(
    ledger: Ledger, as_of: date, known_at: datetime | None = None, *,
    customer_id: str | None = None, agreement_id: str | None = None,
) -> list[Opportunity]:
    found = []
    for row in ledger.liability(as_of, known_at, customer_id=customer_id,
                                agreement_id=agreement_id):
        terms = row.terms
        assert terms is not None and row.accrual is not None
        if not terms.period_start <= as_of <= terms.period_end:
            continue  # not running at D
        basis = row.accrual.basis
        above = [t for t in terms.tiers if t.threshold > basis]
        if not above:
            continue  # at the top tier already
        target = above[0]
        gap = EXACT.subtract(target.threshold, basis)
        measure = row.accrual.measure
        if terms.basis == ("quantity" if terms.rate_kind == "per_unit" else "amount"):
            new_measure = EXACT.add(measure, gap)
        elif basis > 0:
            new_measure = EXACT.divide(EXACT.multiply(measure, target.threshold), basis)
        else:
            new_measure = ZERO

        def earned(b: Decimal, m: Decimal, terms: Terms = terms) -> Decimal:
            return accrue(tiers=terms.tiers, tier_method=terms.tier_method,
                          accrual_method="earned", basis=b, measure=m, forecast_basis=None,
                          cap=terms.cap).accrued

        elapsed = (as_of - terms.period_start).days + 1
        period_days = (terms.period_end - terms.period_start).days + 1
        projected = EXACT.divide(EXACT.multiply(basis, Decimal(period_days)), Decimal(elapsed))
        found.append(Opportunity(
            row.agreement_id, row.customer_id, row.currency, terms.basis, basis,
            target.threshold, target.rate, gap, (terms.period_end - as_of).days,
            earned(basis, measure), earned(target.threshold, new_measure), projected,
            projected >= target.threshold, row.group_id,
            member_shares(ledger, terms, as_of, known_at) if row.group_id else (),
            terms.rate_kind,
        ))
    found.sort(key=lambda o: (-o.extra_rebate, o.agreement_id))
    return found


def member_shares(
    ledger: Ledger, terms: Terms, as_of: date, known_at: datetime | None
) -> tuple[tuple[str, Decimal], ...]:
    """Each member's part of a group agreement's basis at D as known at K (its eligible sales
    on its member days), largest first."""
    assert terms.group_id is not None
    known_us = FOREVER_US if known_at is None else to_us(known_at)
    last = min(terms.period_end, as_of)
    shares: dict[str, Decimal] = {}
    with Session(ledger.engine) as session:
        for member, first, final in member_windows(session, terms.group_id,
                                                   terms.period_start, last, known_us):
            q, a = customer_totals(session, terms, member, first, final, as_of, known_us)
            part = q if terms.basis == "quantity" else a
            shares[member] = EXACT.add(shares.get(member, ZERO), part)
    return tuple(sorted(shares.items(), key=lambda item: (-item[1], item[0])))


def opportunities_report(
    ledger: Ledger, as_of: date, known_at: datetime | None = None, *,
    customer_id: str | None = None, limit: int | None = None,
    agreement_id: str | None = None,
) -> Report:
    found = opportunities(ledger, as_of, known_at, customer_id=customer_id,
                          agreement_id=agreement_id)
    shown = found[:limit] if limit else found
    return Report(
        title=f"Next-tier opportunities at {as_of}, by extra rebate",
        columns=("agreement_id", "customer_id", "group_id", "currency", "basis_kind", "basis",
                 "next_tier", "next_rate", "rate_kind", "gap", "days_left", "earned_now",
                 "earned_at_next_tier", "extra_rebate", "projected_basis",
                 "reaches_at_run_rate", "member_shares"),
        rows=[o.to_row() for o in shown],
        meta={"as_of": as_of, "known_at": known_at},
        extra={"agreements": len(found)},
        figures={**dict.fromkeys(("basis", "next_tier", "gap", "projected_basis"),
                                 basis_figure()),
                 "next_rate": rate_figure(), "days_left": count_figure(),
                 **dict.fromkeys(("earned_now", "earned_at_next_tier", "extra_rebate"),
                                 money_figure())},
        notes=[f"{len(found)} agreements below a next tier; "
               f"{sum(1 for o in found if o.reaches)} reach it at their run rate"],
    )
