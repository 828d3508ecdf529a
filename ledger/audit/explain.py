"""`rebate-ledger explain`: the derivation of one agreement's liability at D as known at K,
step by step, in the words an auditor reads, every figure traced to the events behind it.

The figures come from `ledger.audit.facts` (the same rule functions as `Ledger.liability`), and
the explanation ends by checking its liability against `Ledger.liability` to the cent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.audit.facts import Facts, State, business_ids, event_ids, load_facts
from ledger.audit.output import Report, plain
from ledger.core import Ledger
from ledger.liability import FOREVER_US, LiabilityRow
from ledger.money import EXACT, ZERO, format_decimal, format_money, round_money
from ledger.projections.core import from_us, reversals, sales, to_us
from ledger.rules import retroactive_rate

TERM_FIELDS = ("period_start", "period_end", "basis", "tier_method", "rate_kind", "tiers",
               "products", "cap", "accrual_method", "forecast_basis")


@dataclass
class Step:
    """One step of the derivation: a title, the sentence, its figures and its events."""

    title: str
    text: str
    figures: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    #: event id -> the business ids it is about (`claim K1 approved`, `amendment of A1 from
    #: 2025-03-01`); not for sales batches, whose sale ids the figures list by month
    about: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "text": self.text, "figures": plain(self.figures),
                "events": self.events,
                "events_about": {e: self.about[e] for e in self.events if e in self.about}}

    def event_text(self) -> str:
        return ", ".join(f"{e} ({self.about[e]})" if e in self.about else e
                         for e in self.events)


@dataclass
class Explanation:
    agreement_id: str
    customer_id: str | None
    currency: str
    as_of: date
    known_at: datetime | None
    steps: list[Step]
    liability: Decimal
    matches_ledger: bool
    group_id: str | None = None  # contract 4: a group's agreement

    def to_dict(self) -> dict[str, Any]:
        return {
            "agreement_id": self.agreement_id, "customer_id": self.customer_id,
            "group_id": self.group_id,
            "currency": self.currency, "as_of": plain(self.as_of),
            "known_at": plain(self.known_at), "liability": format_money(self.liability),
            "matches_ledger": self.matches_ledger,
            "steps": [s.to_dict() for s in self.steps],
        }

    def lines(self) -> list[str]:
        known = "everything recorded" if self.known_at is None else plain(self.known_at)
        owner = (f"customer {self.customer_id}" if self.group_id is None
                 else f"group {self.group_id}")
        out = [f"Agreement {self.agreement_id} ({owner}, {self.currency}): "
               f"liability at {self.as_of}, as known at {known}"]
        for number, step in enumerate(self.steps, 1):
            out.append(f"{number}. {step.title}: {step.text}")
            if step.events:
                out.append(f"   events: {step.event_text()}")
        return out


def _value_text(name: str, value: Any) -> str:
    if value is None:
        return "none" if name != "products" else "all products"
    if name == "tiers":
        return ", ".join(f"from {format_decimal(t.threshold)}: {format_decimal(t.rate)}"
                         for t in value)
    if name == "products":
        return ", ".join(sorted(value))
    if isinstance(value, Decimal):
        return format_decimal(value)
    return str(value)


def explain(
    ledger: Ledger, agreement_id: str, as_of: date, known_at: datetime | None = None,
    *, ledger_row: LiabilityRow | None = None,
) -> Explanation:
    """`ledger_row`: this agreement's row of `ledger.liability(as_of, known_at)` when the
    caller has it already (the evidence pack explains every row): checked against, not
    computed again."""
    known_us = FOREVER_US if known_at is None else to_us(known_at)
    with Session(ledger.engine) as session:
        facts = load_facts(session, agreement_id, as_of, known_us)
        state = facts.state()
        assert state is not None
        names = event_ids(session, ledger.app.recorder,
                          {b.position for b in facts.basis_rows})
        steps = [
            _terms_step(facts, state),
            *_membership_steps(facts, state),
            _sales_step(session, facts, state, names),
            _tier_step(state),
            _formula_step(state),
            _cap_step(state),
            *_money_steps(facts),
        ]
    totals = facts.money_totals()
    paid, written_off = totals.get("paid", ZERO), totals.get("written_off", ZERO)
    liability = round_money(EXACT.subtract(EXACT.subtract(state.accrual.accrued, paid),
                                           written_off))
    steps.append(Step(
        "Liability",
        f"accrued {format_money(state.accrual.accrued)} - paid {format_money(paid)} - written "
        f"off {format_money(written_off)} = {format_money(liability)} {facts.currency}",
        {"accrued": state.accrual.accrued, "paid": paid, "written_off": written_off,
         "liability": liability},
    ))
    about = business_ids(facts)
    for step in steps:
        step.about = {e: about[e] for e in step.events if e in about}
    if ledger_row is None:
        (row,) = ledger.liability(as_of, known_at, agreement_id=agreement_id)
    else:
        assert ledger_row.agreement_id == agreement_id, ledger_row.agreement_id
        row = ledger_row
    return Explanation(agreement_id, facts.customer_id, facts.currency, as_of, known_at, steps,
                       liability, row.liability == liability and
                       row.accrued == state.accrual.accrued, facts.group_id)


def _terms_step(facts: Facts, state: State) -> Step:
    terms = state.terms
    by_event = {t.event_id: t for t in facts.terms_rows}
    created = next(t for t in facts.terms_rows if t.kind == "created")
    parts = []
    events: list[str] = []
    for name in TERM_FIELDS:
        source = terms.sources.get(name, created.event_id)
        if name == "forecast_basis":
            continue  # its own step below when the method is forecast
        record = by_event.get(source)
        origin = ("as created" if record is None or record.kind == "created" else
                  f"amendment {source} recorded {plain(from_us(record.recorded_us))}, "
                  f"effective {record.effective_from}")
        parts.append(f"{name} {_value_text(name, getattr(terms, name))} ({origin})")
        if source not in events:
            events.append(source)
    return Step(f"Terms in force on {facts.as_of}", "; ".join(parts),
                {name: _value_text(name, getattr(terms, name)) for name in TERM_FIELDS},
                events)


def _sales_step(session: Session, facts: Facts, state: State, names: dict[int, str]) -> Step:
    terms = state.terms
    rows = facts.eligible_rows(terms)
    months: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"rows": 0, "quantity": ZERO, "amount": ZERO, "events": set()}
    )
    for row in rows:
        month = months[row.invoice_date.strftime("%Y-%m")]
        month["rows"] += 1
        month["quantity"] = EXACT.add(month["quantity"], row.quantity)
        month["amount"] = EXACT.add(month["amount"], row.amount)
        month["events"].add(names.get(row.position, str(row.position)))
    sale_ids = _sale_ids(session, facts, state)
    figures = {
        month: {"quantity": data["quantity"], "amount": data["amount"],
                "sales": sale_ids.get(month, []), "events": sorted(data["events"])}
        for month, data in sorted(months.items())
    }
    last = min(terms.period_end, facts.as_of)
    products = "" if terms.products is None else " for products " + ", ".join(
        sorted(terms.products))
    whose = (f"customer {facts.customer_id}" if facts.group_id is None
             else f"the members of group {facts.group_id}, each on its member days,")
    text = (f"sales of {whose} in {facts.currency} invoiced "
            f"{terms.period_start} to {last}{products}, returns counted from their reversal day: "
            + "; ".join(f"{month} quantity {format_decimal(f['quantity'])} amount "
                        f"{format_money(f['amount'])} ({len(f['sales'])} sales)"
                        for month, f in figures.items())
            + f"; total quantity {format_decimal(state.quantity)}, amount "
              f"{format_money(state.amount)}")
    events = sorted({e for f in figures.values() for e in f["events"]})
    return Step("Eligible sales by month", text if figures else "no eligible sale", figures,
                events)


def _sale_ids(session: Session, facts: Facts, state: State) -> dict[str, list[str]]:
    """Sale ids (and reversed sale ids, marked) by invoice month, as known at K."""
    terms = state.terms
    # whether each sale is reversed by D as known at K, asked per sale in the same query (the
    # sale's reversal by its key), never by reading every reversal of the book
    reversed_by_d = (
        select(reversals.c.sale_id)
        .where(reversals.c.sale_id == sales.c.sale_id)
        .where(reversals.c.recorded_us <= facts.known_us)
        .where(reversals.c.reversed_day <= facts.as_of.toordinal())
        .exists()
    )
    found: dict[str, list[str]] = defaultdict(list)
    lines = sorted(
        line
        for customer, first, last in facts.buyers(terms)
        for line in session.execute(
            select(sales.c.invoice_day, sales.c.sale_id, sales.c.product_id, reversed_by_d)
            .where(sales.c.customer_id == customer)
            .where(sales.c.currency == facts.currency)
            .where(sales.c.invoice_day >= first).where(sales.c.invoice_day <= last)
            .where(sales.c.recorded_us <= facts.known_us)
        )
    )
    for invoice_day, sale_id, product_id, is_reversed in lines:
        if terms.covers(product_id):
            month = date.fromordinal(invoice_day).strftime("%Y-%m")
            found[month].append(sale_id + (" (reversed)" if is_reversed else ""))
    return found


def _membership_steps(facts: Facts, state: State) -> list[Step]:
    """Contract 4, for a group's agreement: who was a member on which days as known at K, and
    the joins and leaves (recorded order) that let members' sales in or kept them out."""
    if facts.group_id is None:
        return []
    windows = facts.member_windows()
    figures: dict[str, Any] = {}
    parts = []
    for customer in sorted({m.customer_id for m in facts.membership_rows}):
        changes = [m for m in facts.membership_rows if m.customer_id == customer]
        spans = [(date.fromordinal(a), None if b == date.max.toordinal() else date.fromordinal(b))
                 for a, b in windows.get(customer, [])]
        said = ", ".join(f"{a} to {b or 'open'}" for a, b in spans) or "never a member"
        history = "; ".join(
            f"{m.kind} effective {m.effective_from} recorded {plain(from_us(m.recorded_us))}"
            for m in changes)
        parts.append(f"{customer}: member {said} ({history})")
        figures[customer] = {
            "member_days": [[a.isoformat(), None if b is None else b.isoformat()]
                            for a, b in spans],
            "changes": [{"kind": m.kind, "effective_from": m.effective_from.isoformat(),
                         "recorded_at": plain(from_us(m.recorded_us)), "event": m.event_id}
                        for m in changes],
        }
    text = (f"group {facts.group_id}: a customer is a member on day X, as known at K, when "
            "its join or leave recorded last among those effective by X is a join; "
            + ("; ".join(parts) if parts else "no member yet"))
    return [Step("Members of the group", text, figures,
                 [m.event_id for m in facts.membership_rows])]


def _tier_step(state: State) -> Step:
    terms, accrual = state.terms, state.accrual
    method = terms.accrual_method
    text = f"basis B = {terms.basis} = {format_decimal(accrual.basis)}"
    figures: dict[str, Any] = {"basis": accrual.basis}
    events: list[str] = []
    if method == "forecast" and state.forecast_basis is not None:
        text += (f"; forecast method: F = {format_decimal(state.forecast_basis)} (from "
                 f"{state.forecast_source}), E = max(B, F) = "
                 f"{format_decimal(accrual.effective_basis)}")
        figures["forecast_basis"] = state.forecast_basis
        if state.forecast_source:
            events.append(state.forecast_source)
    figures["effective_basis"] = accrual.effective_basis
    reached = [t for t in terms.tiers if t.threshold <= accrual.effective_basis]
    if accrual.basis <= 0:
        text += "; B <= 0: nothing accrues"
    elif reached:
        top = reached[-1]
        text += (f"; tier reached: from {format_decimal(top.threshold)} at "
                 f"{format_decimal(top.rate)}")
        figures["tier_from"], figures["tier_rate"] = top.threshold, top.rate
    else:
        text += "; no tier reached"
    return Step("Tier reached", text, figures, events)


def _formula_step(state: State) -> Step:
    terms, accrual = state.terms, state.accrual
    unit = "per unit" if terms.rate_kind == "per_unit" else "of the amount"
    if accrual.basis <= 0:
        return Step("Formula", "B <= 0: rebate 0", {"uncapped": ZERO})
    if terms.tier_method == "retroactive":
        rate = retroactive_rate(terms.tiers, accrual.effective_basis)
        text = (f"retroactive: rate {format_decimal(rate)} {unit} x measure "
                f"{format_decimal(accrual.measure)} = {format_decimal(accrual.uncapped)}")
        return Step("Formula", text, {"rate": rate, "measure": accrual.measure,
                                      "uncapped": accrual.uncapped})
    bands = []
    target = accrual.effective_basis
    for index, tier in enumerate(terms.tiers):
        upper = terms.tiers[index + 1].threshold if index + 1 < len(terms.tiers) else None
        top = target if upper is None else min(target, upper)
        width = EXACT.subtract(top, tier.threshold)
        if width > 0:
            bands.append((tier, width, EXACT.multiply(tier.rate, width)))
    text = "incremental: " + " + ".join(
        f"{format_decimal(w)} x {format_decimal(t.rate)} = {format_decimal(v)}"
        for t, w, v in bands) if bands else "incremental: no band reached"
    if accrual.effective_basis != accrual.basis:
        text += (f"; scaled by B / E = {format_decimal(accrual.basis)} / "
                 f"{format_decimal(accrual.effective_basis)}")
    text += f" = {format_decimal(accrual.uncapped)}"
    return Step("Formula", text, {"bands": [
        {"from": t.threshold, "width": w, "rate": t.rate, "rebate": v} for t, w, v in bands],
        "uncapped": accrual.uncapped})


def _cap_step(state: State) -> Step:
    accrual, cap = state.accrual, state.terms.cap
    if cap is None:
        text = "no cap"
    elif accrual.uncapped > cap:
        text = f"capped at {format_decimal(cap)}"
    else:
        text = f"cap {format_decimal(cap)} not reached"
    text += (f"; rounded once to cents, half up: accrued {format_money(accrual.accrued)}")
    return Step("Cap and rounding", text, {"cap": cap, "capped": accrual.capped,
                                           "accrued": accrual.accrued},
                [state.terms.sources["cap"]] if "cap" in state.terms.sources else [])


def _money_steps(facts: Facts) -> list[Step]:
    labels = {"claimed": "Claims submitted", "approved": "Claims approved",
              "paid": "Settlements", "written_off": "Write-offs"}
    steps = []
    for kind, title in labels.items():
        rows = [r for r in facts.money_rows if r.kind == kind]
        if not rows:
            steps.append(Step(title, "none", {"total": ZERO}))
            continue
        total = sum((r.amount for r in rows), ZERO)
        text = "; ".join(
            f"{format_money(r.amount)} on {r.valid_date}"
            + (f" (claim {r.claim_id})" if r.claim_id else "") for r in rows
        ) + f"; total {format_money(total)}"
        steps.append(Step(title, text, {"total": total},
                          list(dict.fromkeys(r.event_id for r in rows))))
    return steps


def explain_report(
    ledger: Ledger, agreement_id: str, as_of: date, known_at: datetime | None = None
) -> Report:
    explanation = explain(ledger, agreement_id, as_of, known_at)
    return Report(
        title=explanation.lines()[0],
        columns=("step", "title", "text", "events"),
        rows=[{"step": n, "title": s.title, "text": s.text, "events": s.events,
               "events_about": s.to_dict()["events_about"]}
              for n, s in enumerate(explanation.steps, 1)],
        meta={"agreement_id": agreement_id, "as_of": as_of, "known_at": known_at},
        extra={"liability": format_money(explanation.liability),
               "matches_ledger": explanation.matches_ledger,
               "steps_detail": [s.to_dict() for s in explanation.steps]},
        notes=[f"liability {format_money(explanation.liability)} {explanation.currency}: "
               + ("equal to `rebate-ledger liability`" if explanation.matches_ledger
                  else "DIFFERENT from `rebate-ledger liability`")],
    )
