"""The diff as it was before it streamed (ledger/audit/diff.py at 8070bc2, verbatim below this
docstring but for this note): the reference that tests/audit/test_diff_stream.py compares the
streamed diff with, byte for byte. It read every sale recorded in (K1, K2] of the whole book
in one query and held every change in memory."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.audit.close import close_covering
from ledger.audit.facts import agreement_ids, load_facts
from ledger.audit.output import Report, basis_figure, money_figure, money_text
from ledger.core import Ledger
from ledger.liability import FOREVER_US, LiabilityRow
from ledger.money import EXACT, ZERO, format_decimal
from ledger.projections.core import from_us, reversals, sales, to_us

FIGURES = ("basis", "accrued", "approved", "paid", "written_off", "liability")
MONEY_KINDS = {"claimed": "claim submitted", "approved": "claim approved",
               "paid": "settlement", "written_off": "write-off"}


@dataclass(frozen=True)
class Cause:
    kind: str
    recorded_at: datetime
    event: str
    detail: str
    post_close: bool = False  # recorded after the close of the period that holds D

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "recorded_at": self.recorded_at, "event": self.event,
                "detail": self.detail, "post_close_adjustment": self.post_close}


@dataclass
class Change:
    agreement_id: str
    customer_id: str | None  # None: a buying group's agreement
    currency: str
    before: dict[str, Decimal]
    after: dict[str, Decimal]
    causes: list[Cause] = field(default_factory=list)
    #: `quantity` or `amount`: how the basis reads (the terms in force at D)
    basis_kind: str = "amount"

    @property
    def delta(self) -> dict[str, Decimal]:
        return {f: EXACT.subtract(self.after[f], self.before[f]) for f in FIGURES}

    @property
    def changed(self) -> bool:
        return any(self.delta.values()) or bool(self.causes)


def _figures(row: LiabilityRow | None) -> dict[str, Decimal]:
    if row is None:
        return dict.fromkeys(FIGURES, ZERO)
    return {f: getattr(row, f) for f in FIGURES}


def diff(ledger: Ledger, as_of: date, k1: datetime, k2: datetime | None = None, *,
         agreement_id: str | None = None) -> list[Change]:
    """Every agreement whose position at D differs between K1 and K2 (or that any event
    recorded in between concerns), with the causes; only `agreement_id` when given."""
    before = {r.agreement_id: r for r in ledger.liability(as_of, k1, agreement_id=agreement_id)}
    after = {r.agreement_id: r for r in ledger.liability(as_of, k2, agreement_id=agreement_id)}
    k1_us = to_us(k1)
    k2_us = FOREVER_US if k2 is None else to_us(k2)
    close = close_covering(ledger, as_of, k2)
    changes = []
    with Session(ledger.engine) as session:
        late = _recorded_between(session, k1_us, k2_us)
        for agreement in agreement_ids(session, k2_us):
            if agreement_id is not None and agreement != agreement_id:
                continue
            row = after.get(agreement) or before.get(agreement)
            assert row is not None
            change = Change(agreement, row.customer_id, row.currency,
                            _figures(before.get(agreement)), _figures(after.get(agreement)),
                            basis_kind=row.terms.basis if row.terms is not None else "amount")
            change.causes = _causes(session, agreement, as_of, k1_us, k2_us, late)
            if close is not None:
                change.causes = [replace(x, post_close=x.recorded_at > close.closed_at)
                                 for x in change.causes]
            if change.changed:
                changes.append(change)
    return changes


@dataclass
class Recorded:
    """The sales and reversals recorded in (K1, K2], by customer, in recorded order: read in
    two queries for the whole diff (one query per agreement and buyer scanned the sales
    table each time: 8.7 s on the demo book)."""

    sales: dict[str, list[Any]] = field(default_factory=dict)
    reversals: dict[str, list[Any]] = field(default_factory=dict)


def _recorded_between(session: Session, k1_us: int, k2_us: int) -> Recorded:
    found = Recorded()
    for row in session.execute(
        select(sales.c.customer_id, sales.c.sale_id, sales.c.currency, sales.c.invoice_day,
               sales.c.product_id, sales.c.quantity, sales.c.q_micro, sales.c.recorded_us)
        .where(sales.c.recorded_us > k1_us).where(sales.c.recorded_us <= k2_us)
        .order_by(sales.c.recorded_us, sales.c.sale_id)
    ):
        found.sales.setdefault(row[0], []).append(tuple(row[1:]))
    for row in session.execute(
        select(sales.c.customer_id, reversals.c.sale_id, sales.c.currency,
               sales.c.invoice_day, sales.c.product_id, reversals.c.reversed_day,
               reversals.c.recorded_us)
        .join(sales, sales.c.sale_id == reversals.c.sale_id)
        .where(reversals.c.recorded_us > k1_us).where(reversals.c.recorded_us <= k2_us)
        .order_by(reversals.c.recorded_us, reversals.c.sale_id)
    ):
        found.reversals.setdefault(row[0], []).append(tuple(row[1:]))
    return found


def _causes(session: Session, agreement: str, as_of: date, k1_us: int,
            k2_us: int, between: Recorded) -> list[Cause]:
    facts = load_facts(session, agreement, as_of, k2_us)
    causes: list[Cause] = []
    for t in facts.terms_rows:
        if t.recorded_us <= k1_us or (t.effective_from is not None and t.effective_from > as_of):
            continue  # known before K1, or takes effect after D: no part of the position at D
        recorded = from_us(t.recorded_us)
        if t.kind == "created":
            causes.append(Cause("new agreement", recorded, t.event_id,
                                f"created for {t.data['period_start']} to "
                                f"{t.data['period_end']}"))
        elif t.kind == "forecast":
            causes.append(Cause("forecast revision", recorded, t.event_id,
                                f"forecast basis {t.data['forecast_basis']} effective "
                                f"{t.effective_from}"))
        else:
            assert t.effective_from is not None
            retro = t.effective_from < recorded.date()
            names: Any = t.data.get("changed", [])
            changed = ", ".join(str(name) for name in names)
            causes.append(Cause(
                "retroactive amendment" if retro else "amendment", recorded, t.event_id,
                f"{changed} effective {t.effective_from}"))
    for j in facts.membership_rows:
        if j.recorded_us > k1_us and j.effective_from <= as_of:
            recorded = from_us(j.recorded_us)
            late = j.effective_from < recorded.date()
            word = "join" if j.kind == "join" else "leave"
            causes.append(Cause(
                f"late {word}" if late else word, recorded, j.event_id,
                f"{j.customer_id} {'joins' if j.kind == 'join' else 'leaves'} group "
                f"{facts.group_id} effective {j.effective_from}"))
    for m in facts.money_rows:
        if m.recorded_us > k1_us:
            claim = f" (claim {m.claim_id})" if m.claim_id else ""
            causes.append(Cause(MONEY_KINDS.get(m.kind, m.kind), from_us(m.recorded_us),
                                m.event_id, f"{m.amount} on {m.valid_date}{claim}"))
    state = facts.state()
    if state is not None:
        terms = state.terms
        k1_day = from_us(k1_us).date().toordinal()
        buyers = facts.buyers(terms)
        for customer, first, last in buyers:
            for sale_id, currency, invoice_day, product, q_text, q_micro, recorded_us in \
                    between.sales.get(customer, ()):
                if currency != facts.currency or not first <= invoice_day <= last \
                        or not terms.covers(product):
                    continue
                negative = (q_micro is not None and q_micro < 0) or (
                    q_text is not None and str(q_text).startswith("-"))
                kind = "return" if negative else (
                    "late sale" if invoice_day <= k1_day else "sale")
                causes.append(Cause(kind, from_us(recorded_us), sale_id,
                                    f"invoiced {date.fromordinal(invoice_day)}, product "
                                    f"{product}"))
        for customer, first, last in buyers:
            for sale_id, currency, invoice_day, product, reversed_day, recorded_us in \
                    between.reversals.get(customer, ()):
                if currency != facts.currency or not first <= invoice_day <= last \
                        or reversed_day > as_of.toordinal() or not terms.covers(product):
                    continue
                causes.append(Cause("reversal", from_us(recorded_us), sale_id,
                                    f"invoiced {date.fromordinal(invoice_day)}, reversed "
                                    f"{date.fromordinal(reversed_day)}"))
    causes.sort(key=lambda c: (c.recorded_at, c.kind))
    return causes


#: the order causes are summarised in: sales first, then terms, memberships, money
CAUSE_ORDER = ("late sale", "sale", "return", "reversal", "retroactive amendment",
               "amendment", "forecast revision", "new agreement", "late join", "join",
               "late leave", "leave", *MONEY_KINDS.values())


def by_cause(changes: list[Change]) -> list[dict[str, Any]]:
    """Per kind of cause: how many events, how many agreements, how many after the close."""
    found: dict[str, dict[str, Any]] = {}
    for change in changes:
        for cause in change.causes:
            entry = found.setdefault(cause.kind, {"cause": cause.kind, "events": 0,
                                                  "agreements": set(), "post_close": 0})
            entry["events"] += 1
            entry["agreements"].add(change.agreement_id)
            entry["post_close"] += cause.post_close
    order = {kind: n for n, kind in enumerate(CAUSE_ORDER)}
    return [{**e, "agreements": len(e["agreements"])}
            for e in sorted(found.values(), key=lambda e: (order.get(e["cause"], 99),
                                                           e["cause"]))]


def _counts(causes: list[Cause]) -> str:
    """`2 late sale (2 post-close), 1 retroactive amendment`: the causes of one agreement."""
    return "; ".join(
        f"{e['events']} {e['cause']}" + (f" ({e['post_close']} post-close)"
                                         if e["post_close"] else "")
        for e in by_cause([Change("", None, "", {}, {}, causes)]))


def diff_report(ledger: Ledger, as_of: date, k1: datetime,
                k2: datetime | None = None, *, agreement_id: str | None = None,
                detail: bool = False) -> Report:
    """Per agreement, or with `detail` one row per cause (every event recorded in between
    that moved the position); `extra` holds the summary by cause and every change."""
    changes = diff(ledger, as_of, k1, k2, agreement_id=agreement_id)
    rows: list[dict[str, Any]] = []
    for c in changes:
        if detail:
            rows += [{"agreement_id": c.agreement_id, "customer_id": c.customer_id,
                      "currency": c.currency, "cause": x.kind,
                      "post_close": x.post_close, "recorded_at": x.recorded_at,
                      "event": x.event, "detail": x.detail} for x in c.causes]
            continue
        delta = c.delta
        rows.append({
            "agreement_id": c.agreement_id, "customer_id": c.customer_id,
            "currency": c.currency, "basis_kind": c.basis_kind,
            "basis_before": format_decimal(c.before["basis"]),
            "basis_after": format_decimal(c.after["basis"]),
            **{f"{f}_before": c.before[f] for f in ("accrued", "liability")},
            **{f"{f}_after": c.after[f] for f in ("accrued", "liability")},
            "liability_change": delta["liability"],
            "causes": _counts(c.causes),
        })
    k2_text = "now" if k2 is None else k2.isoformat()
    close = close_covering(ledger, as_of, k2)
    close_note = [] if close is None else [
        f"{close.period} ({close.start} to {close.end}) was closed at "
        f"{close.closed_at.isoformat()}: changes recorded after it are post-close adjustments"]
    total: dict[str, Decimal] = {}
    for c in changes:
        total[c.currency] = EXACT.add(total.get(c.currency, ZERO), c.delta["liability"])
    columns = (("agreement_id", "customer_id", "currency", "cause", "post_close",
                "recorded_at", "event", "detail") if detail else
               ("agreement_id", "customer_id", "currency", "basis_kind", "basis_before",
                "basis_after",
                "accrued_before", "accrued_after", "liability_before", "liability_after",
                "liability_change", "causes"))
    return Report(
        title=f"Position at {as_of}: as known at {k1.isoformat()} vs {k2_text}"
              + (", every cause" if detail else ""),
        columns=columns,
        rows=rows,
        meta={"as_of": as_of, "known_at": k1, "vs": k2, "agreement_id": agreement_id},
        extra={"by_cause": by_cause(changes),
               "changes": [{"agreement_id": c.agreement_id,
                            "before": _texts(c.before), "after": _texts(c.after),
                            "causes": [x.to_dict() for x in c.causes]} for c in changes],
               "total_change": {k: str(v) for k, v in total.items()},
               "close": None if close is None else {
                   "period": close.period, "closed_at": close.closed_at,
                   "event": close.event_id}},
        figures={**dict.fromkeys(("basis_before", "basis_after"), basis_figure()),
                 **dict.fromkeys(("accrued_before", "accrued_after", "liability_before",
                                  "liability_after", "liability_change"), money_figure())},
        notes=[f"{len(changes)} agreements changed; liability change "
               + (", ".join(("+" if v >= 0 else "") + money_text(v, k)
                            for k, v in sorted(total.items())) or "none"),
               *close_note],
    )


def _texts(figures: dict[str, Decimal]) -> dict[str, str]:
    return {f: format_decimal(v) if f == "basis" else f"{v:.2f}" for f, v in figures.items()}
