"""The double-entry journal of the rebate position at valid date D, as known at K.

Every movement of money is a balanced entry, per customer and agreement, derived from events:

- **accrual / true-up**: at each recorded moment at which something about an agreement became
  known (a sale or reversal in its basis, a terms change, a forecast revision), the accrued
  figure at D moves from what it was just before to what it is just after (both the contract's
  rounded figures, `ledger.audit.facts`). An increase debits *rebate expense (contra-revenue)*
  and credits *accrued rebate liability*; a decrease the reverse. The first is the accrual, the
  later ones true-ups; together they add up to the accrued figure at (D, K) exactly.
- **settlement**: a claim paid (valid date on or before D) debits the liability and credits
  *cash / credit notes*.
- **write-off**: debits the liability and credits rebate expense.

So the liability account's credit balance is accrued - paid - written off: the contract's
liability, to the cent. Approvals move no money (they are memo figures in `reconcile`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from ledger.audit.facts import Facts, agreement_ids, event_ids, load_facts
from ledger.audit.output import Report, money
from ledger.core import Ledger
from ledger.liability import FOREVER_US
from ledger.money import EXACT, ZERO, round_money
from ledger.projections.core import from_us, to_us

EXPENSE = "rebate expense (contra-revenue)"
LIABILITY = "accrued rebate liability"
CASH = "cash / credit notes"
ACCOUNTS = (EXPENSE, LIABILITY, CASH)


@dataclass(frozen=True)
class Posting:
    """One line of a balanced entry: `debit` or `credit` is zero."""

    entry: int
    recorded_at: datetime
    valid_date: date
    agreement_id: str
    customer_id: str | None  # None: a buying group's agreement
    currency: str
    kind: str  # accrual | true-up | settlement | write-off
    account: str
    debit: Decimal
    credit: Decimal
    events: tuple[str, ...]

    def to_row(self) -> dict[str, object]:
        return {
            "entry": self.entry, "recorded_at": self.recorded_at, "valid_date": self.valid_date,
            "agreement_id": self.agreement_id, "customer_id": self.customer_id,
            "currency": self.currency, "kind": self.kind, "account": self.account,
            "debit": money(self.debit), "credit": money(self.credit),
            "events": list(self.events),
        }


class _Entries:
    def __init__(self) -> None:
        self.postings: list[Posting] = []
        self.number = 0

    def add(self, facts: Facts, recorded_us: int, valid: date, kind: str, debit: str,
            credit: str, amount: Decimal, events: tuple[str, ...]) -> None:
        if amount == 0:
            return
        if amount < 0:  # a negative movement is the reverse entry
            debit, credit, amount = credit, debit, -amount
        self.number += 1
        moment = from_us(recorded_us)
        for account, dr, cr in ((debit, amount, ZERO), (credit, ZERO, amount)):
            self.postings.append(Posting(
                self.number, moment, valid, facts.agreement_id, facts.customer_id,
                facts.currency, kind, account, dr, cr, events,
            ))


def postings(
    ledger: Ledger,
    as_of: date,
    known_at: datetime | None = None,
    *,
    agreement_id: str | None = None,
    customer_id: str | None = None,
) -> list[Posting]:
    """Every posting behind the position at D as known at K, agreement by agreement, each
    agreement's entries in recorded order."""
    known_us = FOREVER_US if known_at is None else to_us(known_at)
    entries = _Entries()
    with Session(ledger.engine) as session:
        ids = agreement_ids(session, known_us, agreement_id=agreement_id,
                            customer_id=customer_id, as_of=as_of)
        loaded = [load_facts(session, a, as_of, known_us) for a in ids]
        positions = {b.position for facts in loaded for b in facts.basis_rows}
        positions |= {m.position for facts in loaded for m in facts.membership_rows}
        names = event_ids(session, ledger.app.recorder, positions)
        for facts in loaded:
            previous = ZERO
            accrued_once = False
            for moment in facts.timeline():
                delta = EXACT.subtract(moment.accrued, previous)
                if delta != 0:
                    events = tuple(dict.fromkeys(
                        [t.event_id for t in moment.terms]
                        + [m.event_id for m in moment.members]
                        + [names.get(s.position, str(s.position)) for s in moment.sales]
                    ))
                    entries.add(facts, moment.recorded_us, as_of,
                                "true-up" if accrued_once else "accrual",
                                EXPENSE, LIABILITY, delta, events)
                    accrued_once = True
                previous = moment.accrued
                for row in moment.money:
                    if row.kind == "paid":
                        entries.add(facts, row.recorded_us, row.valid_date, "settlement",
                                    LIABILITY, CASH, row.amount, (row.event_id,))
                    elif row.kind == "written_off":  # negative: a reversal posts back
                        entries.add(facts, row.recorded_us, row.valid_date,
                                    "write-off" if row.amount > 0 else "write-off reversal",
                                    LIABILITY, EXPENSE, row.amount, (row.event_id,))
    return entries.postings


@dataclass(frozen=True)
class Balance:
    currency: str
    account: str
    debit: Decimal
    credit: Decimal

    @property
    def balance(self) -> Decimal:
        """Debit minus credit (a liability's balance is negative: a credit balance)."""
        return EXACT.subtract(self.debit, self.credit)


def trial_balance(lines: list[Posting]) -> list[Balance]:
    totals: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for line in lines:
        pair = totals[(line.currency, line.account)]
        pair[0] = EXACT.add(pair[0], line.debit)
        pair[1] = EXACT.add(pair[1], line.credit)
    return [
        Balance(currency, account, *totals[(currency, account)])
        for currency in sorted({c for c, _ in totals})
        for account in ACCOUNTS
        if (currency, account) in totals
    ]


def journal_report(
    ledger: Ledger, as_of: date, known_at: datetime | None = None, *,
    agreement_id: str | None = None, customer_id: str | None = None,
) -> Report:
    lines = postings(ledger, as_of, known_at, agreement_id=agreement_id,
                     customer_id=customer_id)
    columns = ("entry", "recorded_at", "valid_date", "agreement_id", "customer_id", "currency",
               "kind", "account", "debit", "credit", "events")
    entries = len({line.entry for line in lines})
    return Report(
        title=f"Journal of the rebate position at {as_of}, as known at "
              f"{_known_text(known_at)}",
        columns=columns,
        rows=[line.to_row() for line in lines],
        meta={"as_of": as_of, "known_at": known_at},
        extra={"entries": entries},
        notes=[f"{entries} entries, {len(lines)} postings"],
    )


def trial_balance_report(
    ledger: Ledger, as_of: date, known_at: datetime | None = None, *,
    agreement_id: str | None = None, customer_id: str | None = None,
) -> Report:
    """Per currency and account: debits, credits, balance; whether each currency balances, and
    the liability account against the contract's liability (`Ledger.liability`)."""
    lines = postings(ledger, as_of, known_at, agreement_id=agreement_id,
                     customer_id=customer_id)
    balances = trial_balance(lines)
    contract: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for row in ledger.liability(as_of, known_at, agreement_id=agreement_id,
                                customer_id=customer_id):
        contract[row.currency] = EXACT.add(contract[row.currency], row.liability)
    checks = []
    notes = []
    for currency in sorted({b.currency for b in balances} | set(contract)):
        mine = [b for b in balances if b.currency == currency]
        debit = sum((b.debit for b in mine), ZERO)
        credit = sum((b.credit for b in mine), ZERO)
        account = next((b for b in mine if b.account == LIABILITY), None)
        ledger_liability = round_money(-account.balance) if account is not None else ZERO
        checks.append({
            "currency": currency, "debits": money(debit), "credits": money(credit),
            "balanced": debit == credit,
            "liability_account": ledger_liability,
            "contract_liability": round_money(contract[currency]),
            "liability_matches": ledger_liability == round_money(contract[currency]),
        })
        notes.append(
            f"{currency}: debits {debit:.2f} = credits {credit:.2f}: "
            f"{'balanced' if debit == credit else 'NOT BALANCED'}; liability account "
            f"{ledger_liability:.2f} vs the contract's liability "
            f"{round_money(contract[currency]):.2f}: "
            f"{'equal' if ledger_liability == round_money(contract[currency]) else 'DIFFERENT'}"
        )
    return Report(
        title=f"Trial balance at {as_of}, as known at {_known_text(known_at)}",
        columns=("currency", "account", "debit", "credit", "balance"),
        rows=[{"currency": b.currency, "account": b.account, "debit": money(b.debit),
               "credit": money(b.credit), "balance": money(b.balance)}
              for b in balances],
        meta={"as_of": as_of, "known_at": known_at},
        extra={"checks": checks,
               "balanced": all(c["balanced"] for c in checks),
               "liability_matches": all(c["liability_matches"] for c in checks)},
        notes=notes,
    )


def dr_cr(balance: Decimal) -> str:
    """A balance as a bookkeeper reads it: `1,234.56 Dr` (debit) or `1,234.56 Cr` (credit),
    with thousands separators; the table's form only (json and csv keep the signed figure)."""
    side = "Cr" if balance < 0 else "Dr"
    return f"{abs(money(balance)):,} {side}"


def trial_balance_table(report: Report) -> Report:
    """The trial balance for people: debits and credits with thousands separators, the
    balance with Dr or Cr instead of a sign."""
    return replace(report, rows=[
        {**row, "debit": f"{row['debit']:,}", "credit": f"{row['credit']:,}",
         "balance": dr_cr(row["balance"])} for row in report.rows])


def _known_text(known_at: datetime | None) -> str:
    return "everything recorded" if known_at is None else known_at.isoformat()
