"""Enrollment at a glance (contract v2): `rebate-ledger positions --customer C` and
`rebate-ledger programs`.

`positions` lists every agreement that covers a customer at D as known at K: its own, and those
of every buying group it is a member of at D (contract 4), with the program of each; per
agreement the basis, the tier reached, the next tier and what is still needed to reach it, and
the money (accrued, claimed, approved, paid, written off, liability); for a group's agreement,
the customer's own share of the group's basis (its sales on its member days).

`programs` lists each program (the label agreements were made from) with its enrolled
agreements and their totals per currency.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from ledger.audit.facts import load_money
from ledger.audit.output import Report, basis_figure, money, money_figure, rate_figure
from ledger.audit.reconcile import _rejected
from ledger.core import Ledger
from ledger.liability import FOREVER_US, LiabilityRow, customer_totals, member_windows
from ledger.money import EXACT, ZERO, format_decimal
from ledger.projections.core import to_us


@dataclass(frozen=True)
class Position:
    row: LiabilityRow
    tier_from: Decimal | None  # the tier reached (None: below the first)
    tier_rate: Decimal | None
    next_from: Decimal | None  # the next tier (None: at the top)
    next_rate: Decimal | None
    claimed: Decimal  # submitted by D and not rejected by D
    share: Decimal | None  # a group's agreement: the customer's part of the basis

    @property
    def needed(self) -> Decimal | None:
        return None if self.next_from is None else EXACT.subtract(self.next_from,
                                                                 self.row.basis)

    def to_row(self) -> dict[str, object]:
        row = self.row
        assert row.terms is not None
        return {
            "agreement_id": row.agreement_id,
            "via": "own" if row.group_id is None else f"group {row.group_id}",
            "program_id": row.program_id,
            "currency": row.currency,
            "basis_kind": row.terms.basis,
            "rate_kind": row.terms.rate_kind,
            "basis": _plain(row.basis),
            "customer_share": _plain(self.share),
            "tier_reached": _plain(self.tier_from),
            "rate": _plain(self.tier_rate),
            "next_tier": _plain(self.next_from),
            "next_rate": _plain(self.next_rate),
            "still_needed": _plain(self.needed),
            "accrued": money(row.accrued),
            "claimed": money(self.claimed),
            "approved": money(row.approved),
            "paid": money(row.paid),
            "written_off": money(row.written_off),
            "liability": money(row.liability),
        }


def _plain(value: Decimal | None) -> Decimal | None:
    """A decimal without the trailing zeros of its stored form ("3413.94", not "3413.940000")."""
    return None if value is None else Decimal(format_decimal(value))


def positions(
    ledger: Ledger, customer_id: str, as_of: date, known_at: datetime | None = None
) -> list[Position]:
    known_us = FOREVER_US if known_at is None else to_us(known_at)
    found = []
    with Session(ledger.engine) as session:
        for row in ledger.liability(as_of, known_at, customer_id=customer_id):
            terms = row.terms
            assert terms is not None
            reached = [t for t in terms.tiers if t.threshold <= row.basis]
            above = [t for t in terms.tiers if t.threshold > row.basis]
            money_rows = load_money(session, row.agreement_id, as_of, known_us)
            rejected = _rejected(ledger, money_rows, as_of, known_us)
            claimed = sum((m.amount for m in money_rows
                           if m.kind == "claimed" and m.claim_id not in rejected), ZERO)
            share = None
            if row.group_id is not None:
                share = _share(session, row, customer_id, as_of, known_us)
            found.append(Position(
                row,
                reached[-1].threshold if reached else None, reached[-1].rate if reached else None,
                above[0].threshold if above else None, above[0].rate if above else None,
                claimed, share,
            ))
    return found


def _share(session: Session, row: LiabilityRow, customer_id: str, as_of: date,
           known_us: int) -> Decimal:
    """The customer's part of a group agreement's basis: its eligible sales on the days it is
    a member, as known at K."""
    terms = row.terms
    assert terms is not None and terms.group_id is not None
    last = min(terms.period_end, as_of)
    quantity, amount = ZERO, ZERO
    if last >= terms.period_start:
        for member, first, final in member_windows(session, terms.group_id,
                                                   terms.period_start, last, known_us):
            if member == customer_id:
                q, a = customer_totals(session, terms, member, first, final, as_of, known_us)
                quantity, amount = EXACT.add(quantity, q), EXACT.add(amount, a)
    return quantity if terms.basis == "quantity" else amount


POSITION_COLUMNS = (
    "agreement_id", "via", "program_id", "currency", "basis_kind", "rate_kind", "basis",
    "customer_share",
    "tier_reached", "rate", "next_tier", "next_rate", "still_needed", "accrued", "claimed",
    "approved", "paid", "written_off", "liability",
)


#: the table shows figures for people: the basis in units or money, rates per unit or in %
POSITION_FIGURES = {
    **dict.fromkeys(("basis", "customer_share", "tier_reached", "next_tier", "still_needed"),
                    basis_figure()),
    **dict.fromkeys(("rate", "next_rate"), rate_figure()),
    **dict.fromkeys(("accrued", "claimed", "approved", "paid", "written_off", "liability"),
                    money_figure()),
}


def positions_report(
    ledger: Ledger, customer_id: str, as_of: date, known_at: datetime | None = None
) -> Report:
    found = positions(ledger, customer_id, as_of, known_at)
    known = "everything recorded" if known_at is None else known_at.isoformat()
    notes = [f"{len(found)} agreements cover customer {customer_id} at {as_of} "
             f"(as known at {known}): its own and its buying groups'"]
    if not found:
        notes = [f"no agreement covers customer {customer_id!r} at {as_of} (as known at "
                 f"{known}); customer ids are case-sensitive: `rebate-ledger liability "
                 f"--as-of {as_of}` lists every agreement"]
    return Report(
        title=f"Positions of customer {customer_id} at {as_of}",
        columns=POSITION_COLUMNS,
        rows=[p.to_row() for p in found],
        meta={"customer_id": customer_id, "as_of": as_of, "known_at": known_at},
        extra={"agreements": len(found)},
        figures=POSITION_FIGURES,
        notes=notes,
    )


def programs_report(ledger: Ledger, as_of: date, known_at: datetime | None = None) -> Report:
    """Per program and currency: the enrolled agreements and their totals at D."""
    groups: dict[tuple[str, str], list[LiabilityRow]] = defaultdict(list)
    for row in ledger.liability(as_of, known_at):
        if row.program_id is not None:
            groups[(row.program_id, row.currency)].append(row)
    rows = []
    for (program, currency), enrolled in sorted(groups.items()):
        def total(name: str, enrolled: list[LiabilityRow] = enrolled) -> Decimal:
            return money(sum((getattr(r, name) for r in enrolled), ZERO))

        rows.append({
            "program_id": program, "currency": currency, "agreements": len(enrolled),
            "enrolled": [r.customer_id or f"group {r.group_id}" for r in enrolled],
            "accrued": total("accrued"), "approved": total("approved"), "paid": total("paid"),
            "written_off": total("written_off"), "liability": total("liability"),
        })
    notes = [f"{len({p for p, _ in groups})} programs; `rebate-ledger liability --program ID` "
             "shows one program's agreements"]
    if not groups:
        notes = ["no agreement names a program_id (create_agreement's program_id) at "
                 f"{as_of}"]
    return Report(
        title=f"Programs at {as_of}",
        columns=("program_id", "currency", "agreements", "accrued", "approved", "paid",
                 "written_off", "liability", "enrolled"),
        rows=rows, meta={"as_of": as_of, "known_at": known_at}, notes=notes,
        figures=dict.fromkeys(("accrued", "approved", "paid", "written_off", "liability"),
                              money_figure()),
    )
