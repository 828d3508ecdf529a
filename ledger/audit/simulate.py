"""`rebate-ledger simulate --draft FILE`: how a draft deal would have performed on the sales
already recorded, without storing anything.

FILE holds one `create_agreement` and optional `amend_agreement` lines for the same agreement,
in the contract's format, validated as `apply` validates them (the same error messages). The
draft terms are run over the customer's recorded sales (as known now) with the contract's rule
functions: what it would have accrued at the end of every month of its period (up to --as-of),
next to what the customer's existing agreements accrued at the same dates. The store is only
read.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from ledger import commands as c
from ledger.audit.facts import load_basis
from ledger.audit.output import Report, basis_figure, money, money_figure, money_text
from ledger.core import Ledger
from ledger.errors import Rejection
from ledger.liability import FOREVER_US, member_windows
from ledger.money import EXACT, ZERO, format_decimal
from ledger.rules import accrue
from ledger.terms import (
    TERM_FIELDS,
    Terms,
    TermsChange,
    changes_of,
    check_amendment,
    check_new_terms,
    terms_in_force,
    terms_of,
)


class DraftError(Rejection):
    """A line of the draft is not a valid command, or not one a draft may hold."""

    def __init__(self, line: int, rejection: Rejection) -> None:
        super().__init__(rejection.field, rejection.message,
                         reason=f"line {line}: {rejection.reason}")
        self.line = line


@dataclass(frozen=True)
class Draft:
    created: Terms
    amendments: tuple[TermsChange, ...]


def read_draft(lines: list[bytes]) -> Draft:
    created: Terms | None = None
    amendments: list[TermsChange] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            command = c.parse_line(line)
            if isinstance(command, c.CreateAgreement):
                if created is not None:
                    raise Rejection("type", "a draft holds one create_agreement")
                created = _terms(command)
                check_new_terms(created)
            elif isinstance(command, c.AmendAgreement):
                if created is None:
                    raise Rejection("type", "the create_agreement comes first in a draft")
                if command.agreement_id != created.agreement_id:
                    raise Rejection("agreement_id", f"{command.agreement_id!r} is not the "
                                    f"draft's agreement {created.agreement_id!r}")
                change = TermsChange(seq=number, effective_from=command.effective_from,
                                     changes=_changes(command), source=f"draft line {number}")
                check_amendment(created, amendments, change)
                amendments.append(change)
            else:
                raise Rejection("type", f"{command.kind} cannot be simulated; a draft holds "
                                "create_agreement and amend_agreement lines")
        except Rejection as rejection:
            raise DraftError(number, rejection) from None
    if created is None:
        raise Rejection("type", "the draft has no create_agreement line")
    return Draft(created, tuple(amendments))


def _terms(cmd: c.CreateAgreement) -> Terms:
    return terms_of({name: getattr(cmd, name) for name in TERM_FIELDS})


def _changes(cmd: c.AmendAgreement) -> dict[str, Any]:
    changes = cmd.changes()
    return changes_of(changes, changes)


@dataclass(frozen=True)
class Month:
    end: date
    basis: Decimal
    accrued: Decimal
    existing: dict[str, Decimal]


def month_ends(start: date, end: date) -> list[date]:
    found = []
    year, month = start.year, start.month
    while True:
        last = date(year, month, monthrange(year, month)[1])
        found.append(min(last, end))
        if last >= end:
            return found
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def simulate(ledger: Ledger, draft: Draft, as_of: date | None = None) -> list[Month]:
    created = draft.created
    last = min(created.period_end, as_of) if as_of is not None else created.period_end
    if last < created.period_start:
        return []
    months = []
    # a customer's draft: its own sales; a group's draft (contract 4): each member's sales on
    # the days it is a member, as the group's joins and leaves stand now
    windows: dict[str, list[tuple[int, int]]] | None = None
    with Session(ledger.engine) as session:
        if created.group_id is None:
            assert created.customer_id is not None
            rows = load_basis(session, created.customer_id, created.currency, last, FOREVER_US)
        else:
            windows = {}
            for member, first, final in member_windows(
                session, created.group_id, created.period_start, last, FOREVER_US
            ):
                windows.setdefault(member, []).append((first.toordinal(), final.toordinal()))
            rows = [row for member in sorted(windows)
                    for row in load_basis(session, member, created.currency, last, FOREVER_US)]
    for end in month_ends(created.period_start, last):
        terms = terms_in_force(created, draft.amendments, end)
        top = min(terms.period_end, end).toordinal()
        quantity = amount = ZERO
        for row in rows:
            if (created.period_start.toordinal() <= row.invoice_day <= top
                    and row.effective_day <= end.toordinal() and terms.covers(row.product_id)
                    and (windows is None or any(a <= row.invoice_day <= b
                                                for a, b in windows[row.customer_id]))):
                quantity = EXACT.add(quantity, row.quantity)
                amount = EXACT.add(amount, row.amount)
        basis = quantity if terms.basis == "quantity" else amount
        accrual = accrue(
            tiers=terms.tiers, tier_method=terms.tier_method,
            accrual_method=terms.accrual_method, basis=basis,
            measure=quantity if terms.rate_kind == "per_unit" else amount,
            forecast_basis=terms.forecast_basis, cap=terms.cap,
        )
        beside = (ledger.liability(end, customer_id=created.customer_id)
                  if created.group_id is None
                  else ledger.liability(end, group_id=created.group_id))
        existing = {r.agreement_id: r.accrued for r in beside
                    if r.currency == created.currency}
        months.append(Month(end, basis, accrual.accrued, existing))
    return months


def simulate_report(ledger: Ledger, draft: Draft, as_of: date | None = None) -> Report:
    months = simulate(ledger, draft, as_of)
    agreements = sorted({a for m in months for a in m.existing})
    rows = []
    previous = ZERO
    for m in months:
        rows.append({
            "month_end": m.end, "draft_basis": format_decimal(m.basis),
            "draft_accrued": money(m.accrued),
            "draft_change": money(EXACT.subtract(m.accrued, previous)),
            **{f"{a} accrued": money(m.existing.get(a, ZERO)) for a in agreements},
        })
        previous = m.accrued
    created = draft.created
    final = months[-1] if months else None
    owner = (f"customer {created.customer_id}" if created.group_id is None
             else f"the members of group {created.group_id}")
    notes = [f"draft {created.agreement_id} for {owner} "
             f"({created.currency}): nothing was stored"]
    if final is not None:
        notes.append(
            f"at {final.end}: the draft would have accrued "
            f"{money_text(final.accrued, created.currency)}; the "
            f"{'customer' if created.group_id is None else 'group'}'s existing agreements "
            "accrued "
            f"{money_text(sum(final.existing.values(), ZERO), created.currency)}")
    return Report(
        title=f"What-if: draft {created.agreement_id} over the recorded sales of {owner}",
        columns=("month_end", "draft_basis", "draft_accrued", "draft_change",
                 *[f"{a} accrued" for a in agreements]),
        rows=rows,
        meta={"agreement_id": created.agreement_id, "customer_id": created.customer_id,
              "group_id": created.group_id,
              "currency": created.currency, "as_of": as_of},
        figures={"draft_basis": basis_figure(kind=created.basis, currency=created.currency),
                 **dict.fromkeys(("draft_accrued", "draft_change",
                                  *(f"{a} accrued" for a in agreements)),
                                 money_figure(currency=created.currency))},
        extra={"final": None if final is None else {
            "month_end": final.end.isoformat(), "draft_accrued": f"{final.accrued:.2f}",
            "existing": {a: f"{v:.2f}" for a, v in final.existing.items()}}},
        notes=notes,
    )
