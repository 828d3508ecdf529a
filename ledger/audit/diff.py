"""`rebate-ledger diff --as-of D --known-at K1 --vs K2`: what changed in the position at D
between two moments of knowledge ("as reported at close" vs "as known now"), agreement by
agreement, with the events recorded in (K1, K2] that made each change: late sales, returns and
reversals, amendments (retroactive when they take effect before they were recorded), forecast
revisions, claims, settlements, write-offs, new agreements.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any

import orjson
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ledger.audit.close import close_covering
from ledger.audit.facts import (
    AGREEMENTS_PER_QUERY,
    Facts,
    agreement_ids,
    load_facts_of,
)
from ledger.audit.output import Report, _cell, basis_figure, money_figure, money_text, plain
from ledger.core import Ledger
from ledger.liability import FOREVER_US, LiabilityRow, liability_rows
from ledger.money import EXACT, ZERO, format_decimal
from ledger.projections.core import (
    agreements,
    from_us,
    memberships,
    money,
    reversals,
    sales,
    terms_changes,
    to_us,
)
from ledger.text import csv_cell

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
    return list(iter_changes(ledger, as_of, k1, k2, agreement_id=agreement_id))


def iter_changes(ledger: Ledger, as_of: date, k1: datetime, k2: datetime | None = None, *,
                 agreement_id: str | None = None, after: str | None = None) -> Iterator[Change]:
    """`diff`, agreement by agreement, in agreement id order (after the id `after` when
    given, for a page of changes).

    Only the agreements that something recorded in (K1, K2] concerns are computed (their
    terms, money or group's memberships changed, or a buyer's sale or reversal was recorded):
    the position at D of any other agreement is the same as known at K1 and K2, with no cause,
    so it is no change (issue 9: the web page's diff at a million sales). Those are taken in
    batches of at most `AGREEMENTS_PER_BATCH` agreements and `SALES_HELD` sales recorded in
    between (an agreement with more is a batch of its own): each batch's figures at K1 and K2,
    terms, members and money rows and the sales and reversals of its buyers are read in a few
    queries, its changes yielded and dropped before the next batch's, so memory is bounded
    by a batch, not by the history (issue 11)."""
    k1_us = to_us(k1)
    k2_us = FOREVER_US if k2 is None else to_us(k2)
    close = close_covering(ledger, as_of, k2)
    with Session(ledger.engine) as session:
        touched = _touched_after(session, k1_us, k2_us, agreement_id, after)
        yield from _changes(session, as_of, k1, k2, touched, close)


def _touched_after(session: Session, k1_us: int, k2_us: int, agreement_id: str | None,
                   after: str | None) -> list[tuple[str, int]]:
    known = agreement_ids(session, k2_us, agreement_id=agreement_id)
    if after is not None:
        known = [a for a in known if a > after]
    return touched_agreements(session, known, k1_us, k2_us)


def _changes(session: Session, as_of: date, k1: datetime, k2: datetime | None,
             touched: list[tuple[str, int]], close: Any,
             batch_agreements: int | None = None) -> Iterator[Change]:
    """The changes of the `touched` agreements, batch by batch (see `iter_changes`)."""
    k1_us = to_us(k1)
    k2_us = FOREVER_US if k2 is None else to_us(k2)
    held = _reversals_between(session, k1_us, k2_us)
    for batch in _batches(touched, batch_agreements or AGREEMENTS_PER_BATCH):
        among = set(batch)
        before = {r.agreement_id: r for r in liability_rows(session, as_of, k1, among=among)}
        after = {r.agreement_id: r for r in liability_rows(session, as_of, k2, among=among)}
        facts = load_facts_of(session, batch, as_of, k2_us)
        buyers = {a: _buyers_ever(f) for a, f in facts.items()}
        between = _recorded_between(session, k1_us, k2_us,
                                    (c for found in buyers.values() for c in found),
                                    None, held)
        for agreement in batch:
            row = after.get(agreement) or before.get(agreement)
            assert row is not None
            change = Change(agreement, row.customer_id, row.currency,
                            _figures(before.get(agreement)), _figures(after.get(agreement)),
                            basis_kind=row.terms.basis if row.terms is not None
                            else "amount")
            change.causes = _causes_of(facts[agreement], as_of, k1_us, between)
            if close is not None:
                change.causes = [replace(x, post_close=x.recorded_at > close.closed_at)
                                 for x in change.causes]
            if change.changed:
                yield change


def diff_page(ledger: Ledger, as_of: date, k1: datetime, k2: datetime | None = None, *,
              after: str | None = None, limit: int = 100) -> dict[str, Any]:
    """One page of the diff, for people (the web page): the first `limit` changes after the
    agreement id `after`, in agreement id order, as the report's rows and `changes` entries;
    `next`: the id to continue after, None when no agreement after the page has anything
    recorded in between. Only the batches of touched agreements the page needs are computed
    (of `limit` agreements each), so a page costs about the same whatever the book's size.
    `whole` says the page holds the whole diff (first page, no next): then its totals are
    the diff's (`total_change`); otherwise they are the page's (`page_change`)."""
    assert limit >= 1, limit
    k1_us = to_us(k1)
    k2_us = FOREVER_US if k2 is None else to_us(k2)
    close = close_covering(ledger, as_of, k2)
    summary = Summary()
    rows: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    with Session(ledger.engine) as session:
        touched = _touched_after(session, k1_us, k2_us, None, after)
        for change in _changes(session, as_of, k1, k2, touched, close,
                               batch_agreements=limit):
            summary.add(change)
            rows += _rows(change, False)
            entries.append(_change_entry(change))
            if summary.changes == limit:
                break
    last = rows[-1]["agreement_id"] if rows else None
    more = last is not None and summary.changes == limit and any(
        a > last for a, _ in touched)
    whole = after is None and not more
    totals = {k: str(v) for k, v in summary.total.items()}
    return plain({
        **_meta(as_of, k1, k2, None), "after": after, "rows": rows, "changes": entries,
        "by_cause": summary.by_cause(), "whole": whole, "next": last if more else None,
        "total_change" if whole else "page_change": totals, "close": _close_extra(close)})


#: agreements computed together by `iter_changes` at most
AGREEMENTS_PER_BATCH = 200
#: sales and reversals recorded in (K1, K2] read together by `iter_changes` at most (an
#: agreement whose buyers have more is read alone)
SALES_HELD = 50_000


def _batches(touched: list[tuple[str, int]], agreements_max: int) -> Iterator[list[str]]:
    """The touched agreements (id, sales and reversals of its buyers recorded in between), in
    order, cut into batches of at most `agreements_max` and `SALES_HELD`."""
    batch: list[str] = []
    weight = 0
    for agreement, sales_count in touched:
        if batch and (len(batch) >= agreements_max or weight + sales_count > SALES_HELD):
            yield batch
            batch, weight = [], 0
        batch.append(agreement)
        weight += sales_count
    if batch:
        yield batch


def _buyers_ever(facts: Facts) -> set[str]:
    """Every customer whose sales may count for the agreement as known at K2: its customer,
    or every customer that any join or leave of its group names."""
    if facts.group_id is None:
        return {facts.customer_id} if facts.customer_id is not None else set()
    return {m.customer_id for m in facts.membership_rows}


def touched_agreements(session: Session, known: list[str], k1_us: int,
                       k2_us: int) -> list[tuple[str, int]]:
    """The agreements of `known` (in its order) that some row recorded in (K1, K2] concerns,
    each with how many sales and reversals of its buyers were recorded then: an amendment,
    forecast revision or the creation of the agreement, a claim, approval, settlement,
    write-off or its reversal, a join or leave of its group, a sale or a reversal of a sale
    of its customer or of any customer its group's joins and leaves name (as known at K2).
    Any other agreement's position at D is the same as known at K1 and at K2 (every figure
    of contract 2 is computed from those rows alone). Read in a few queries over the rows
    recorded in between and the indexes of the sales by customer."""
    if not known:
        return []
    wanted = set(known)
    owners: dict[str, tuple[str | None, str | None]] = {}
    direct: set[str] = set()
    chunks = [known[i:i + AGREEMENTS_PER_QUERY] for i in range(0, len(known),
                                                                   AGREEMENTS_PER_QUERY)]
    for chunk in chunks:
        for a, customer_id, group_id in session.execute(
            select(agreements.c.agreement_id, agreements.c.customer_id, agreements.c.group_id)
            .where(agreements.c.agreement_id.in_(chunk))
        ):
            owners[a] = (customer_id, group_id)
    for table in (terms_changes, money):
        direct.update(a for (a,) in session.execute(
            select(table.c.agreement_id).distinct()
            .where(table.c.recorded_us > k1_us).where(table.c.recorded_us <= k2_us)
        ) if a in wanted)
    groups = sorted({g for _, g in owners.values() if g is not None})
    members: dict[str, set[str]] = {}
    moved: set[str] = set()  # groups with a join or leave recorded in between
    for start in range(0, len(groups), AGREEMENTS_PER_QUERY):
        for g, customer, recorded_us in session.execute(
            select(memberships.c.group_id, memberships.c.customer_id,
                   memberships.c.recorded_us)
            .where(memberships.c.group_id.in_(groups[start:start + AGREEMENTS_PER_QUERY]))
            .where(memberships.c.recorded_us <= k2_us)
        ):
            members.setdefault(g, set()).add(customer)
            if recorded_us > k1_us:
                moved.add(g)
    customers = sorted({c for c, _ in owners.values() if c is not None}
                       | {c for found in members.values() for c in found})
    recorded: dict[str, int] = {}
    for start in range(0, len(customers), CUSTOMERS_PER_QUERY):
        for customer, count in session.execute(
            select(sales.c.customer_id, func.count())
            .where(sales.c.customer_id.in_(customers[start:start + CUSTOMERS_PER_QUERY]))
            .where(sales.c.recorded_us > k1_us).where(sales.c.recorded_us <= k2_us)
            .group_by(sales.c.customer_id)
        ):
            recorded[customer] = int(count)
    for customer, count in session.execute(
        select(sales.c.customer_id, func.count())
        .join(reversals, sales.c.sale_id == reversals.c.sale_id)
        .where(reversals.c.recorded_us > k1_us).where(reversals.c.recorded_us <= k2_us)
        .group_by(sales.c.customer_id)
    ):
        recorded[customer] = recorded.get(customer, 0) + int(count)
    found: list[tuple[str, int]] = []
    for a in known:
        if a not in owners:
            continue
        customer_id, group_id = owners[a]
        buyers = members.get(group_id, set()) if group_id is not None else {customer_id}
        count = sum(recorded.get(c, 0) for c in buyers if c is not None)
        if count or a in direct or (group_id is not None and group_id in moved):
            found.append((a, count))
    return found


@dataclass
class Recorded:
    """The sales and reversals of some customers recorded in (K1, K2], by customer, in
    recorded order (then sale id)."""

    sales: dict[str, list[Any]] = field(default_factory=dict)
    reversals: dict[str, list[Any]] = field(default_factory=dict)


#: customers per query of `_recorded_between` (bound parameters stay few)
CUSTOMERS_PER_QUERY = 500
#: Reversals recorded in (K1, K2] read once for the whole diff when there are at most this
#: many (reversals are rare: usually none); beyond it they are read agreement by agreement.
REVERSALS_HELD = 10_000


def _reversals_between(session: Session, k1_us: int,
                       k2_us: int) -> dict[str, list[Any]] | None:
    """The reversals recorded in (K1, K2], by customer, in recorded order, when there are at
    most `REVERSALS_HELD` of them; None when there are more. Reading them by customer joins
    each of the customer's sales (14 ms an agreement on a book of a million sales), so a few
    are better read once."""
    count = session.execute(
        select(func.count()).select_from(reversals)
        .where(reversals.c.recorded_us > k1_us).where(reversals.c.recorded_us <= k2_us)
    ).scalar_one()
    if count > REVERSALS_HELD:
        return None
    found: dict[str, list[Any]] = {}
    for row in session.execute(_reversals_query(k1_us, k2_us)):
        found.setdefault(row[0], []).append(tuple(row[1:]))
    return found


def _reversals_query(k1_us: int, k2_us: int) -> Select[Any]:
    return (select(sales.c.customer_id, reversals.c.sale_id, sales.c.currency,
                   sales.c.invoice_day, sales.c.product_id, reversals.c.reversed_day,
                   reversals.c.recorded_us)
            .join(sales, sales.c.sale_id == reversals.c.sale_id)
            .where(reversals.c.recorded_us > k1_us).where(reversals.c.recorded_us <= k2_us)
            .order_by(reversals.c.recorded_us, reversals.c.sale_id))


def _recorded_between(session: Session, k1_us: int, k2_us: int, customers: Iterable[str],
                      currency: str | None, held: dict[str, list[Any]] | None = None
                      ) -> Recorded:
    """The sales and reversals in `currency` (None: any) of `customers` recorded in
    (K1, K2]: read by customer (the `core_sales_by_customer` index), so one batch's causes
    never read the rest of the book; the reversals from `held` when they were read once for
    all."""
    found = Recorded()
    wanted = sorted(set(customers))
    if held is not None:
        found.reversals = {c: [r for r in held[c] if currency is None or r[1] == currency]
                           for c in wanted if c in held}
    for start in range(0, len(wanted), CUSTOMERS_PER_QUERY):
        chunk = wanted[start:start + CUSTOMERS_PER_QUERY]
        query = (
            select(sales.c.customer_id, sales.c.sale_id, sales.c.currency,
                   sales.c.invoice_day, sales.c.product_id, sales.c.quantity, sales.c.q_micro,
                   sales.c.recorded_us)
            .where(sales.c.customer_id.in_(chunk))
            .where(sales.c.recorded_us > k1_us).where(sales.c.recorded_us <= k2_us)
            .order_by(sales.c.recorded_us, sales.c.sale_id))
        if currency is not None:
            query = query.where(sales.c.currency == currency)
        for row in session.execute(query):
            found.sales.setdefault(row[0], []).append(tuple(row[1:]))
        if held is not None:
            continue
        reversed_ = _reversals_query(k1_us, k2_us).where(sales.c.customer_id.in_(chunk))
        if currency is not None:
            reversed_ = reversed_.where(sales.c.currency == currency)
        for row in session.execute(reversed_):
            found.reversals.setdefault(row[0], []).append(tuple(row[1:]))
    return found


def _causes_of(facts: Facts, as_of: date, k1_us: int, between: Recorded) -> list[Cause]:
    """Every event recorded in (K1, K2] that is part of the agreement's position at D, from
    its facts as known at K2 and the sales and reversals of its buyers recorded in between
    (`between` may hold other customers' and other currencies' too: they are skipped)."""
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
    if any(t.kind == "created" for t in facts.terms_rows):  # known at K2
        terms = facts.history().terms_at(as_of)
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


class Summary:
    """What the report says about all its changes, gathered one change at a time: per kind of
    cause how many events, agreements (their ids: one per agreement at most) and post-close
    ones, and the liability change per currency."""

    def __init__(self) -> None:
        self.found: dict[str, dict[str, Any]] = {}
        self.total: dict[str, Decimal] = {}
        self.changes = 0

    def add(self, change: Change) -> None:
        self.changes += 1
        self.add_causes(change.agreement_id, change.causes)
        self.total[change.currency] = EXACT.add(self.total.get(change.currency, ZERO),
                                                change.delta["liability"])

    def add_causes(self, agreement_id: str, causes: Iterable[Cause]) -> None:
        for cause in causes:
            entry = self.found.setdefault(cause.kind, {"cause": cause.kind, "events": 0,
                                                       "agreements": set(), "post_close": 0})
            entry["events"] += 1
            entry["agreements"].add(agreement_id)
            entry["post_close"] += cause.post_close

    def by_cause(self) -> list[dict[str, Any]]:
        order = {kind: n for n, kind in enumerate(CAUSE_ORDER)}
        return [{**e, "agreements": len(e["agreements"])}
                for e in sorted(self.found.values(), key=lambda e: (order.get(e["cause"], 99),
                                                                    e["cause"]))]


def by_cause(changes: Iterable[Change]) -> list[dict[str, Any]]:
    """Per kind of cause: how many events, how many agreements, how many after the close."""
    summary = Summary()
    for change in changes:
        summary.add_causes(change.agreement_id, change.causes)
    return summary.by_cause()


def _counts(causes: list[Cause]) -> str:
    """`2 late sale (2 post-close), 1 retroactive amendment`: the causes of one agreement."""
    return "; ".join(
        f"{e['events']} {e['cause']}" + (f" ({e['post_close']} post-close)"
                                         if e["post_close"] else "")
        for e in by_cause([Change("", None, "", {}, {}, causes)]))


def _rows(c: Change, detail: bool) -> list[dict[str, Any]]:
    """The report's rows for one change: one, or with `detail` one per cause."""
    if detail:
        return [{"agreement_id": c.agreement_id, "customer_id": c.customer_id,
                 "currency": c.currency, "cause": x.kind,
                 "post_close": x.post_close, "recorded_at": x.recorded_at,
                 "event": x.event, "detail": x.detail} for x in c.causes]
    delta = c.delta
    return [{
        "agreement_id": c.agreement_id, "customer_id": c.customer_id,
        "currency": c.currency, "basis_kind": c.basis_kind,
        "basis_before": format_decimal(c.before["basis"]),
        "basis_after": format_decimal(c.after["basis"]),
        **{f"{f}_before": c.before[f] for f in ("accrued", "liability")},
        **{f"{f}_after": c.after[f] for f in ("accrued", "liability")},
        "liability_change": delta["liability"],
        "causes": _counts(c.causes),
    }]


def _change_entry(c: Change) -> dict[str, Any]:
    """One change as `extra.changes` lists it."""
    return {"agreement_id": c.agreement_id, "before": _texts(c.before),
            "after": _texts(c.after), "causes": [x.to_dict() for x in c.causes]}


#: the table shows the bases in units or money and the money with its currency
DIFF_FIGURES = {**dict.fromkeys(("basis_before", "basis_after"), basis_figure()),
                **dict.fromkeys(("accrued_before", "accrued_after", "liability_before",
                                 "liability_after", "liability_change"), money_figure())}


def _columns(detail: bool) -> tuple[str, ...]:
    return (("agreement_id", "customer_id", "currency", "cause", "post_close",
             "recorded_at", "event", "detail") if detail else
            ("agreement_id", "customer_id", "currency", "basis_kind", "basis_before",
             "basis_after",
             "accrued_before", "accrued_after", "liability_before", "liability_after",
             "liability_change", "causes"))


def _title(as_of: date, k1: datetime, k2: datetime | None, detail: bool) -> str:
    k2_text = "now" if k2 is None else k2.isoformat()
    return (f"Position at {as_of}: as known at {k1.isoformat()} vs {k2_text}"
            + (", every cause" if detail else ""))


def _meta(as_of: date, k1: datetime, k2: datetime | None,
          agreement_id: str | None) -> dict[str, Any]:
    return {"as_of": as_of, "known_at": k1, "vs": k2, "agreement_id": agreement_id}


def _close_extra(close: Any) -> dict[str, Any] | None:
    return None if close is None else {"period": close.period, "closed_at": close.closed_at,
                                       "event": close.event_id}


def _notes(summary: Summary, close: Any) -> list[str]:
    close_note = [] if close is None else [
        f"{close.period} ({close.start} to {close.end}) was closed at "
        f"{close.closed_at.isoformat()}: changes recorded after it are post-close adjustments"]
    return [f"{summary.changes} agreements changed; liability change "
            + (", ".join(("+" if v >= 0 else "") + money_text(v, k)
                         for k, v in sorted(summary.total.items()))
               or "none"), *close_note]


def diff_report(ledger: Ledger, as_of: date, k1: datetime,
                k2: datetime | None = None, *, agreement_id: str | None = None,
                detail: bool = False, with_changes: bool = True) -> Report:
    """Per agreement, or with `detail` one row per cause (every event recorded in between
    that moved the position); `extra` holds the summary by cause and every change (not with
    `with_changes=False`: a table shows only the rows). Every row in memory: `write_diff`
    prints the JSON and CSV of a whole book in bounded memory."""
    rows: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    summary = Summary()
    for c in iter_changes(ledger, as_of, k1, k2, agreement_id=agreement_id):
        summary.add(c)
        rows += _rows(c, detail)
        if with_changes:
            changes.append(_change_entry(c))
    close = close_covering(ledger, as_of, k2)
    return Report(
        title=_title(as_of, k1, k2, detail),
        columns=_columns(detail),
        rows=rows,
        meta=_meta(as_of, k1, k2, agreement_id),
        extra={"by_cause": summary.by_cause(),
               **({"changes": changes} if with_changes else {}),
               "total_change": {k: str(v) for k, v in summary.total.items()},
               "close": _close_extra(close)},
        notes=_notes(summary, close),
        figures=DIFF_FIGURES,
    )


def write_diff(ledger: Ledger, as_of: date, k1: datetime, k2: datetime | None,
               output: str, out: IO[str], *, agreement_id: str | None = None,
               detail: bool = False) -> None:
    """Print the diff as JSON or CSV (`output`) as it is computed, in bounded memory: the same
    bytes as `emit(diff_report(...), output)`. The rows go out agreement by agreement; the
    JSON's `changes`, which follow the summary by cause, wait in a temporary file meanwhile."""
    assert output in ("json", "csv"), output
    changes = iter_changes(ledger, as_of, k1, k2, agreement_id=agreement_id)
    if output == "csv":
        writer = csv.DictWriter(out, fieldnames=list(_columns(detail)), lineterminator="\n",
                                extrasaction="ignore")
        writer.writeheader()
        for c in changes:
            for row in _rows(c, detail):
                writer.writerow({k: csv_cell(_cell(v)) for k, v in plain(row).items()})
        return
    summary = Summary()
    head = orjson.dumps(plain(_meta(as_of, k1, k2, agreement_id)))
    out.write(head[:-1].decode() + ',"rows":[')
    first_row = True
    with tempfile.TemporaryFile() as spool:
        for c in changes:
            summary.add(c)
            for row in _rows(c, detail):
                out.write(("" if first_row else ",") + orjson.dumps(plain(row)).decode())
                first_row = False
            spool.write((b"," if summary.changes > 1 else b"")
                        + orjson.dumps(plain(_change_entry(c))))
        out.write('],"by_cause":' + orjson.dumps(plain(summary.by_cause())).decode()
                  + ',"changes":[')
        spool.seek(0)
        while block := spool.read(1 << 20):
            out.write(block.decode())
    close = close_covering(ledger, as_of, k2)
    tail = orjson.dumps(plain({"total_change": {k: str(v) for k, v in summary.total.items()},
                               "close": _close_extra(close)}))
    out.write("]," + tail[1:].decode() + "\n")


def _texts(figures: dict[str, Decimal]) -> dict[str, str]:
    return {f: format_decimal(v) if f == "basis" else f"{v:.2f}" for f, v in figures.items()}
