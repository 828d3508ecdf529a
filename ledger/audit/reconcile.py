"""`rebate-ledger reconcile --as-of D`: accrued, claimed, approved, paid and written off per
customer and agreement at D (as known at K), with the flags finance acts on:

- `claims above earned`: more approved than accrued, or approved plus pending claims (submitted,
  neither approved nor rejected by D) above accrued; a claim approved for less than was
  claimed counts at its approved amount. `claimed` counts every claim submitted on or before
  D except those rejected by D;
- `unclaimed accrual`: something accrued, the period ended more than `grace_days` before D,
  and no claim submitted;
- `negative liability`: more paid and written off than accrued (the customer owes money back);
- `approved unpaid`: a claim approved more than `unpaid_days` before D and not paid in full;
- `post-close adjustment`: for every closed period ending on or before D (closes known at K),
  the liability at the period's end now differs from what was reported at its close
  (`close-period`); one flag per period.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from ledger.aggregates.claim import claim_uuid
from ledger.audit.close import period_closes
from ledger.audit.facts import AGREEMENTS_PER_QUERY, MoneyRecord, load_money_of
from ledger.audit.output import Report, money, money_figure, money_text
from ledger.core import Ledger
from ledger.events import ClaimRejected
from ledger.liability import FOREVER_US
from ledger.money import EXACT, ZERO
from ledger.projections.core import to_us

#: the flags reconcile raises, as codes (csv has a `flag_<code>` column for each)
FLAG_CODES = ("claims_above_earned", "unclaimed_accrual", "negative_liability",
              "approved_unpaid", "post_close_adjustment")

GRACE_DAYS = 60
UNPAID_DAYS = 30


@dataclass
class Line:
    agreement_id: str
    customer_id: str | None  # None: a buying group's agreement
    currency: str
    period_end: date
    accrued: Decimal
    claimed: Decimal
    approved: Decimal
    paid: Decimal
    written_off: Decimal
    liability: Decimal
    flags: list[str] = field(default_factory=list)  # the texts, in the ledger's words
    codes: list[str] = field(default_factory=list)  # the code of each flag (FLAG_CODES)

    def add(self, code: str, text: str) -> None:
        assert code in FLAG_CODES, code
        self.flags.append(text)
        self.codes.append(code)

    def to_row(self) -> dict[str, object]:
        return {
            "customer_id": self.customer_id, "agreement_id": self.agreement_id,
            "currency": self.currency, "accrued": money(self.accrued),
            "claimed": money(self.claimed), "approved": money(self.approved),
            "paid": money(self.paid), "written_off": money(self.written_off),
            "liability": money(self.liability), "flags": self.flags,
            "flag_codes": self.codes,
        }

    def csv_flags(self) -> dict[str, str]:
        """One column per flag code, holding that flag's text ("; " between two of a kind,
        such as two unpaid claims), empty when the flag is not raised."""
        return {f"flag_{code}": "; ".join(t for c, t in zip(self.codes, self.flags,
                                                            strict=True) if c == code)
                for code in FLAG_CODES}


def reconcile(
    ledger: Ledger, as_of: date, known_at: datetime | None = None, *,
    grace_days: int = GRACE_DAYS, unpaid_days: int = UNPAID_DAYS,
    customer_id: str | None = None, agreement_id: str | None = None,
) -> list[Line]:
    known_us = FOREVER_US if known_at is None else to_us(known_at)
    closed = sorted((c for c in period_closes(ledger, known_at) if c.end <= as_of),
                    key=lambda c: (c.end, c.start, c.closed_at))
    at_close_end = {
        c.event_id: {r.agreement_id: r.liability
                     for r in ledger.liability(c.end, known_at, customer_id=customer_id,
                                               agreement_id=agreement_id)}
        for c in closed
    }
    lines = []
    rows = ledger.liability(as_of, known_at, customer_id=customer_id,
                            agreement_id=agreement_id)
    with Session(ledger.engine) as session:
        money_of: dict[str, list[MoneyRecord]] = {}
        for n, row in enumerate(rows):
            assert row.terms is not None
            # only the money rows: the accrued figure comes from `ledger.liability`, so the
            # agreement's basis rows are never read here (issue 11); read for a chunk of
            # agreements at a time (one query instead of one per agreement)
            if n % AGREEMENTS_PER_QUERY == 0:
                money_of = load_money_of(
                    session, [r.agreement_id for r in rows[n:n + AGREEMENTS_PER_QUERY]],
                    as_of, known_us)
            money_rows = money_of[row.agreement_id]
            rejected = _rejected(ledger, money_rows, as_of, known_us)
            claimed = sum((m.amount for m in money_rows
                           if m.kind == "claimed" and m.claim_id not in rejected), ZERO)
            line = Line(row.agreement_id, row.customer_id, row.currency, row.terms.period_end,
                        row.accrued, claimed, row.approved, row.paid,
                        row.written_off, row.liability)
            if line.approved > line.accrued:
                line.add("claims_above_earned",
                         f"claims above earned: approved {line.approved:.2f} > "
                         f"accrued {line.accrued:.2f}")
            else:
                # a claim approved for less than was claimed counts at its approved amount;
                # a claim neither approved nor rejected by D counts at its claimed amount
                decided = {m.claim_id for m in money_rows if m.kind == "approved"}
                pending = sum((m.amount for m in money_rows
                               if m.kind == "claimed" and m.claim_id not in rejected
                               and m.claim_id not in decided), ZERO)
                if pending and EXACT.add(line.approved, pending) > line.accrued:
                    line.add(
                        "claims_above_earned",
                        (f"claims above earned: claimed {pending:.2f} > "
                         if not line.approved else
                         f"claims above earned: approved {line.approved:.2f} + pending "
                         f"{pending:.2f} > ") + f"accrued {line.accrued:.2f}")
            deadline = row.terms.period_end + timedelta(days=grace_days)
            if line.accrued > 0 and line.claimed == 0 and as_of > deadline:
                line.add("unclaimed_accrual",
                         f"unclaimed accrual: period ended {row.terms.period_end}, "
                         f"no claim by {deadline} (+{grace_days} days)")
            if line.liability < 0:
                line.add("negative_liability", f"negative liability: {line.liability:.2f}")
            approved: dict[str, tuple[Decimal, date]] = {}
            paid: dict[str, Decimal] = defaultdict(lambda: ZERO)
            for m in money_rows:
                if m.claim_id is None:
                    continue
                if m.kind == "approved":
                    approved[m.claim_id] = (m.amount, m.valid_date)
                elif m.kind == "paid":
                    paid[m.claim_id] = EXACT.add(paid[m.claim_id], m.amount)
            for claim_id, (amount, on) in sorted(approved.items()):
                if paid[claim_id] < amount and (as_of - on).days > unpaid_days:
                    line.add(
                        "approved_unpaid",
                        f"approved unpaid: claim {claim_id} approved {amount:.2f} on {on}, "
                        f"paid {paid[claim_id]:.2f}, {(as_of - on).days} days > {unpaid_days}")
            for close in closed:
                if row.agreement_id not in at_close_end[close.event_id]:
                    continue
                now = at_close_end[close.event_id][row.agreement_id]
                reported = close.reported_liability(row.agreement_id)
                if reported is None and now != 0:
                    line.add(
                        "post_close_adjustment",
                        f"post-close adjustment to {close.period}: not reported at the close "
                        f"{close.closed_at.isoformat()}, liability at {close.end} now "
                        f"{now:.2f}")
                elif reported is not None and now != reported:
                    line.add(
                        "post_close_adjustment",
                        f"post-close adjustment to {close.period}: liability at {close.end} "
                        f"reported {reported:.2f} at the close {close.closed_at.isoformat()}, "
                        f"now {now:.2f} ({now - reported:+.2f})")
            lines.append(line)
    lines.sort(key=lambda x: (x.customer_id or "", x.agreement_id))
    return lines


def _rejected(ledger: Ledger, money_rows: list[MoneyRecord], as_of: date,
              known_us: int) -> set[str]:
    """The agreement's claims rejected on or before D, as known at K (a rejection moves no
    money, so the core tables do not hold it: read from the claim's stored events; only
    claims submitted and never approved can be rejected)."""
    approved = {m.claim_id for m in money_rows if m.kind == "approved"}
    open_claims = {m.claim_id for m in money_rows
                   if m.kind == "claimed" and m.claim_id is not None} - approved
    found = set()
    for claim_id in sorted(c for c in open_claims if c is not None):
        for stored in ledger.app.recorder.select_events(claim_uuid(claim_id)):
            event = ledger.app.mapper.to_domain_event(stored)
            if (isinstance(event, ClaimRejected) and event.rejected_on <= as_of
                    and to_us(event.recorded_at) <= known_us):
                found.add(claim_id)
    return found


def reconcile_report(
    ledger: Ledger, as_of: date, known_at: datetime | None = None, *,
    grace_days: int = GRACE_DAYS, unpaid_days: int = UNPAID_DAYS,
    customer_id: str | None = None, flagged_only: bool = False,
    agreement_id: str | None = None,
) -> Report:
    lines = reconcile(ledger, as_of, known_at, grace_days=grace_days, unpaid_days=unpaid_days,
                      customer_id=customer_id, agreement_id=agreement_id)
    flagged = [x for x in lines if x.flags]
    shown = flagged if flagged_only else lines
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for x in lines:
        for name in ("accrued", "claimed", "approved", "paid", "written_off", "liability"):
            totals[x.currency][name] = EXACT.add(totals[x.currency][name], getattr(x, name))
    known = "everything recorded" if known_at is None else known_at.isoformat()
    return Report(
        title=f"Reconciliation at {as_of}, as known at {known} (grace {grace_days} days, "
              f"unpaid limit {unpaid_days} days)",
        columns=("customer_id", "agreement_id", "currency", "accrued", "claimed", "approved",
                 "paid", "written_off", "liability", "flags"),
        rows=[{**x.to_row(), **x.csv_flags()} for x in shown],
        csv_columns=("customer_id", "agreement_id", "currency", "accrued", "claimed",
                     "approved", "paid", "written_off", "liability", "flags",
                     *(f"flag_{code}" for code in FLAG_CODES)),
        meta={"as_of": as_of, "known_at": known_at, "grace_days": grace_days,
              "unpaid_days": unpaid_days},
        figures=dict.fromkeys(("accrued", "claimed", "approved", "paid", "written_off",
                               "liability"), money_figure()),
        extra={"totals": {c: {k: f"{v:.2f}" for k, v in t.items()}
                          for c, t in sorted(totals.items())},
               "agreements": len(lines), "flagged": len(flagged)},
        notes=[f"{len(lines)} agreements, {len(flagged)} flagged"] + [
            f"{c}: accrued {money_text(t['accrued'], c)}, approved "
            f"{money_text(t['approved'], c)}, paid {money_text(t['paid'], c)}, written off "
            f"{money_text(t['written_off'], c)}, liability {money_text(t['liability'], c)}"
            for c, t in sorted(totals.items())],
    )
