"""Small builders of contract commands (section 1) and of liability rows (section 2) for the
contract tests. Decimals are always given as strings, so nothing passes through a float; the
defaults describe one customer C1 buying in EUR during 2025 under agreement A1."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ledger import Ledger

Command = dict[str, Any]
Tiers = Sequence[tuple[str, str]]


def _extra(command: Command, extra: dict[str, Any]) -> Command:
    command.update(extra)
    return command


def agreement(
    agreement_id: str = "A1",
    *,
    customer_id: str = "C1",
    currency: str = "EUR",
    period_start: str = "2025-01-01",
    period_end: str = "2025-12-31",
    basis: str = "quantity",
    tier_method: str = "retroactive",
    rate_kind: str = "per_unit",
    tiers: Tiers = (("0", "1"),),
    **extra: Any,
) -> Command:
    """A `create_agreement`; `extra` adds optional fields (products, cap, accrual_method,
    forecast_basis, recorded_at) or overrides any field."""
    return _extra(
        {
            "type": "create_agreement",
            "agreement_id": agreement_id,
            "customer_id": customer_id,
            "currency": currency,
            "period_start": period_start,
            "period_end": period_end,
            "basis": basis,
            "tier_method": tier_method,
            "rate_kind": rate_kind,
            "tiers": tier_list(tiers),
        },
        extra,
    )


def tier_list(tiers: Tiers) -> list[dict[str, str]]:
    return [{"from": start, "rate": rate} for start, rate in tiers]


def amend(agreement_id: str, effective_from: str, **changes: Any) -> Command:
    """An `amend_agreement`; pass `tiers=tier_list(...)`, `cap=None` to remove the cap, …"""
    return _extra(
        {"type": "amend_agreement", "agreement_id": agreement_id,
         "effective_from": effective_from},
        changes,
    )


def forecast(agreement_id: str, forecast_basis: str, effective_from: str, **extra: Any) -> Command:
    return _extra(
        {"type": "revise_forecast", "agreement_id": agreement_id,
         "forecast_basis": forecast_basis, "effective_from": effective_from},
        extra,
    )


def sale(
    sale_id: str,
    quantity: str,
    amount: str,
    invoice_date: str = "2025-03-01",
    *,
    customer_id: str = "C1",
    product_id: str = "P1",
    currency: str = "EUR",
    **extra: Any,
) -> Command:
    return _extra(
        {
            "type": "record_sale",
            "sale_id": sale_id,
            "customer_id": customer_id,
            "product_id": product_id,
            "quantity": quantity,
            "amount": amount,
            "currency": currency,
            "invoice_date": invoice_date,
        },
        extra,
    )


def reversal(sale_id: str, reversed_on: str, **extra: Any) -> Command:
    return _extra({"type": "reverse_sale", "sale_id": sale_id, "reversed_on": reversed_on}, extra)


def submit(
    claim_id: str, amount: str, submitted_on: str = "2025-06-01", *,
    agreement_id: str = "A1", **extra: Any,
) -> Command:
    return _extra(
        {"type": "submit_claim", "claim_id": claim_id, "agreement_id": agreement_id,
         "amount": amount, "submitted_on": submitted_on},
        extra,
    )


def approve(
    claim_id: str, approved_on: str = "2025-06-02", approved_amount: str | None = None,
    **extra: Any,
) -> Command:
    command: Command = {"type": "approve_claim", "claim_id": claim_id, "approved_on": approved_on}
    if approved_amount is not None:
        command["approved_amount"] = approved_amount
    return _extra(command, extra)


def reject(claim_id: str, rejected_on: str = "2025-06-02", reason: str = "not due",
           **extra: Any) -> Command:
    return _extra(
        {"type": "reject_claim", "claim_id": claim_id, "rejected_on": rejected_on,
         "reason": reason},
        extra,
    )


def settle(
    claim_id: str, paid_on: str = "2025-06-03", paid_amount: str | None = None, *,
    payment_ref: str = "PAY-1", **extra: Any,
) -> Command:
    command: Command = {"type": "settle_claim", "claim_id": claim_id, "paid_on": paid_on,
                        "payment_ref": payment_ref}
    if paid_amount is not None:
        command["paid_amount"] = paid_amount
    return _extra(command, extra)


def write_off(
    amount: str, effective_date: str = "2025-12-31", *, agreement_id: str = "A1",
    reason: str = "customer closed", **extra: Any,
) -> Command:
    return _extra(
        {"type": "write_off", "agreement_id": agreement_id, "amount": amount,
         "effective_date": effective_date, "reason": reason},
        extra,
    )


def at(moment: str, command: Command) -> Command:
    """The command loaded as history: with an explicit `recorded_at`."""
    return {**command, "recorded_at": moment}


def moment(text: str) -> datetime:
    """An ISO 8601 timestamp (with offset) as an aware datetime, for `known_at` and clocks."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert value.tzinfo is not None
    return value


def day(text: str) -> date:
    return date.fromisoformat(text)


def row(
    *,
    basis: str,
    accrued: str,
    liability: str,
    approved: str = "0.00",
    paid: str = "0.00",
    written_off: str = "0.00",
    agreement_id: str = "A1",
    customer_id: str | None = "C1",
    currency: str = "EUR",
    group_id: str | None = None,
    program_id: str | None = None,
) -> dict[str, str | None]:
    """The contract's liability row, written out by hand."""
    return {
        "agreement_id": agreement_id,
        "customer_id": customer_id,
        "group_id": group_id,
        "program_id": program_id,
        "currency": currency,
        "basis": basis,
        "accrued": accrued,
        "approved": approved,
        "paid": paid,
        "written_off": written_off,
        "liability": liability,
    }


def rows(
    ledger: Ledger, as_of: str, known_at: str | None = None, **filters: str
) -> list[dict[str, str]]:
    """Every liability row at D (as known at K), as contract dicts."""
    known = moment(known_at) if known_at is not None else None
    return [r.to_dict() for r in ledger.liability(day(as_of), known, **filters)]


def one_row(
    ledger: Ledger, as_of: str, known_at: str | None = None, agreement_id: str = "A1"
) -> dict[str, str]:
    found = rows(ledger, as_of, known_at, agreement_id=agreement_id)
    assert len(found) == 1, found
    return found[0]


def accepted_all(ledger: Ledger, commands: Sequence[Command]) -> None:
    """Apply commands that must all be accepted (a setup step, not the rule under test)."""
    report = ledger.apply(list(commands))
    assert not report.rejected, [(r.line, r.command_type, r.reason) for r in report.rejected]


def rejected_one(ledger: Ledger, command: Command) -> str:
    """Apply one command that must be rejected; return the reason."""
    report = ledger.apply([command])
    assert report.accepted == 0 and not report.duplicates, report.to_dict()
    (rejection,) = report.rejected
    return rejection.reason


@dataclass
class Clock:
    """A ledger clock that tests set and move by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now = self.now + timedelta(**delta)


def fixed_clock(text: str) -> Clock:
    return Clock(moment(text).astimezone(UTC))



# Contract v2: buying groups and programs (section 4), safer money movements (section 5) -------


def group(group_id: str = "G1", **extra: Any) -> Command:
    return _extra({"type": "create_group", "group_id": group_id}, extra)


def join(customer_id: str, effective_from: str, group_id: str = "G1", **extra: Any) -> Command:
    return _extra({"type": "join_group", "group_id": group_id, "customer_id": customer_id,
                   "effective_from": effective_from}, extra)


def leave(customer_id: str, effective_from: str, group_id: str = "G1", **extra: Any) -> Command:
    return _extra({"type": "leave_group", "group_id": group_id, "customer_id": customer_id,
                   "effective_from": effective_from}, extra)


def group_agreement(agreement_id: str = "GA", group_id: str = "G1", **extra: Any) -> Command:
    """A group's `create_agreement` (no customer_id): otherwise as `agreement`."""
    command = agreement(agreement_id, **extra)
    del command["customer_id"]
    command["group_id"] = group_id
    return command


def reverse_write_off(write_off_id: str, reversed_on: str, reason: str = "in error",
                      **extra: Any) -> Command:
    return _extra({"type": "reverse_write_off", "write_off_id": write_off_id,
                   "reversed_on": reversed_on, "reason": reason}, extra)
