"""The core projection: what command handling and point-in-time queries read.

It is derived from events only, written in the same transaction as the events it derives from
(so it is never behind the store), and can be rebuilt from the notification log. Money and
quantities are kept as exact text; the basis table also keeps them in millionths as integers,
so that the database adds them up (rows that do not fit are summed exactly in Python).

Dates are stored as proleptic ordinals (`date.toordinal()`), recorded times as microseconds
since the Unix epoch (UTC): both compare and index as integers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
)
from sqlalchemy.orm import Session

from ledger.events import (
    AgreementAmended,
    AgreementCreated,
    ClaimApproved,
    ClaimRejected,
    ClaimSettled,
    ClaimSubmitted,
    ForecastRevised,
    LedgerEvent,
    RebateWrittenOff,
    SalesRecorded,
)
from ledger.money import EXACT, to_micro

metadata = MetaData()

ID = String(200)

ledger_state = Table(
    "ledger_state",
    metadata,
    Column("id", Integer, primary_key=True),
    # Highest recorded_at of any accepted command, in µs (commands may not go back before it).
    Column("watermark_us", BigInteger, nullable=False),
    # Commands accepted (including duplicates) and rejected so far.
    Column("accepted", BigInteger, nullable=False),
    Column("rejected", BigInteger, nullable=False),
    # Position in the notification log of the last event applied to this projection.
    Column("position", BigInteger, nullable=False),
    Column("writes", BigInteger, nullable=False),
)

agreements = Table(
    "core_agreements",
    metadata,
    Column("agreement_id", ID, primary_key=True),
    Column("customer_id", ID, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
)

terms_changes = Table(
    "core_terms_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agreement_id", ID, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    # created | amended | forecast
    Column("kind", String(16), nullable=False),
    Column("effective_day", Integer, nullable=True),
    Column("event_id", String(64), nullable=False),
    Column("data", Text, nullable=False),
    Index("core_terms_changes_by_agreement", "agreement_id", "position"),
)

sales = Table(
    "core_sales",
    metadata,
    Column("sale_id", ID, primary_key=True),
    Column("customer_id", ID, nullable=False),
    Column("product_id", ID, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("quantity", Text, nullable=False),
    Column("amount", Text, nullable=False),
    Column("invoice_day", Integer, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
)

reversals = Table(
    "core_reversals",
    metadata,
    Column("sale_id", ID, primary_key=True),
    Column("reversed_day", Integer, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
)

# One row per (customer, currency, product, invoice day, effective day, recorded time) and
# batch: sales count on their invoice day, reversals from their reversal day on.
basis = Table(
    "core_basis",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", ID, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("product_id", ID, nullable=False),
    Column("invoice_day", Integer, nullable=False),
    Column("effective_day", Integer, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Column("q_micro", BigInteger, nullable=True),
    Column("a_micro", BigInteger, nullable=True),
    Column("quantity", Text, nullable=False),
    Column("amount", Text, nullable=False),
    Column("position", BigInteger, nullable=False),
    Index(
        "core_basis_by_customer",
        "customer_id",
        "currency",
        "invoice_day",
        "effective_day",
        "recorded_us",
        "product_id",
        "q_micro",
        "a_micro",
    ),
)

# Claimed, approved, paid and written-off amounts by agreement and valid day.
money = Table(
    "core_money",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agreement_id", ID, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("valid_day", Integer, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Column("amount", Text, nullable=False),
    Column("claim_id", ID, nullable=True),
    Column("position", BigInteger, nullable=False),
    Column("event_id", String(64), nullable=False),
    Index("core_money_by_agreement", "agreement_id", "valid_day"),
)

claims = Table(
    "core_claims",
    metadata,
    Column("claim_id", ID, primary_key=True),
    Column("agreement_id", ID, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Index("core_claims_by_agreement", "agreement_id"),
)

rejections = Table(
    "rejections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rejected_us", BigInteger, nullable=False),
    Column("source", Text, nullable=False),
    Column("line", Integer, nullable=False),
    Column("command_type", String(200), nullable=False),
    Column("field", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("command", Text, nullable=False),
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (no float)."""
    assert moment.tzinfo is not None, "recorded times are timezone-aware"
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(micros: int) -> datetime:
    from datetime import timedelta

    return EPOCH + timedelta(microseconds=micros)


def day(value: date) -> int:
    return value.toordinal()


def event_id(event: LedgerEvent) -> str:
    return f"{event.originator_id}/{event.originator_version}"


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _terms_data(event: AgreementCreated | AgreementAmended) -> dict[str, Any]:
    data = event.model_dump(
        mode="json",
        exclude={"originator_id", "originator_version", "timestamp", "recorded_at",
                 "originator_topic"},
    )
    return data


class CoreProjection:
    """Applies events, in store order, to the core tables."""

    def apply(self, session: Session, recorded: Iterable[tuple[LedgerEvent, int]]) -> None:
        position = None
        for event, position in recorded:
            self._apply_one(session, event, position)
        if position is not None:
            session.execute(
                ledger_state.update().where(ledger_state.c.id == 1).values(position=position)
            )

    def _apply_one(self, session: Session, event: LedgerEvent, position: int) -> None:
        recorded_us = to_us(event.recorded_at)
        if isinstance(event, SalesRecorded):
            self._apply_sales(session, event, position)
        elif isinstance(event, AgreementCreated):
            session.execute(
                insert(agreements),
                [{
                    "agreement_id": event.agreement_id,
                    "customer_id": event.customer_id,
                    "currency": event.currency,
                    "recorded_us": recorded_us,
                    "position": position,
                }],
            )
            self._terms_change(session, event, position, "created", None, _terms_data(event))
        elif isinstance(event, AgreementAmended):
            self._terms_change(
                session, event, position, "amended", event.effective_from, _terms_data(event)
            )
        elif isinstance(event, ForecastRevised):
            self._terms_change(
                session, event, position, "forecast", event.effective_from,
                {"forecast_basis": str(event.forecast_basis)},
            )
        elif isinstance(event, RebateWrittenOff):
            self._money(session, event, position, "written_off", event.effective_date,
                        event.amount, None)
        elif isinstance(event, ClaimSubmitted):
            session.execute(
                insert(claims),
                [{"claim_id": event.claim_id, "agreement_id": event.agreement_id,
                  "recorded_us": recorded_us}],
            )
            self._money(session, event, position, "claimed", event.submitted_on, event.amount,
                        event.claim_id)
        elif isinstance(event, ClaimApproved):
            self._money(session, event, position, "approved", event.approved_on,
                        event.approved_amount, event.claim_id)
        elif isinstance(event, ClaimSettled):
            self._money(session, event, position, "paid", event.paid_on, event.paid_amount,
                        event.claim_id)
        elif isinstance(event, ClaimRejected):
            pass  # a rejected claim moves no money
        else:  # pragma: no cover - every event type is handled above
            raise AssertionError(f"no projection for {type(event).__name__}")

    def _terms_change(
        self, session: Session, event: LedgerEvent, position: int, kind: str,
        effective: date | None, data: dict[str, Any],
    ) -> None:
        session.execute(
            insert(terms_changes),
            [{
                "agreement_id": getattr(event, "agreement_id"),
                "position": position,
                "recorded_us": to_us(event.recorded_at),
                "kind": kind,
                "effective_day": None if effective is None else day(effective),
                "event_id": event_id(event),
                "data": orjson.dumps(data).decode(),
            }],
        )

    def _money(
        self, session: Session, event: LedgerEvent, position: int, kind: str, valid: date,
        amount: Decimal, claim_id: str | None,
    ) -> None:
        session.execute(
            insert(money),
            [{
                "agreement_id": getattr(event, "agreement_id"),
                "kind": kind,
                "valid_day": day(valid),
                "recorded_us": to_us(event.recorded_at),
                "amount": str(amount),
                "claim_id": claim_id,
                "position": position,
                "event_id": event_id(event),
            }],
        )

    def _apply_sales(self, session: Session, event: SalesRecorded, position: int) -> None:
        sale_rows = []
        # Sum lines that can never be told apart by a query: same customer, currency, product,
        # invoice day, effective day and recorded time.
        groups: dict[tuple[str, str, str, int, int, int], list[Decimal]] = {}
        for sale in event.sales:
            invoice_day = day(sale.invoice_date)
            recorded_us = to_us(sale.recorded_at)
            sale_rows.append({
                "sale_id": sale.sale_id,
                "customer_id": sale.customer_id,
                "product_id": sale.product_id,
                "currency": sale.currency,
                "quantity": str(sale.quantity),
                "amount": str(sale.amount),
                "invoice_day": invoice_day,
                "recorded_us": recorded_us,
                "position": position,
            })
            key = (sale.customer_id, sale.currency, sale.product_id, invoice_day, invoice_day,
                   recorded_us)
            sums = groups.get(key)
            if sums is None:
                groups[key] = [sale.quantity, sale.amount]
            else:
                sums[0] = EXACT.add(sums[0], sale.quantity)
                sums[1] = EXACT.add(sums[1], sale.amount)
        reversal_rows = []
        for reversal in event.reversals:
            recorded_us = to_us(reversal.recorded_at)
            reversed_day = day(reversal.reversed_on)
            reversal_rows.append({
                "sale_id": reversal.sale_id,
                "reversed_day": reversed_day,
                "recorded_us": recorded_us,
                "position": position,
            })
            key = (reversal.customer_id, reversal.currency, reversal.product_id,
                   day(reversal.invoice_date), reversed_day, recorded_us)
            sums = groups.get(key)
            if sums is None:
                groups[key] = [-reversal.quantity, -reversal.amount]
            else:
                sums[0] = EXACT.subtract(sums[0], reversal.quantity)
                sums[1] = EXACT.subtract(sums[1], reversal.amount)
        if sale_rows:
            session.execute(insert(sales), sale_rows)
        if reversal_rows:
            session.execute(insert(reversals), reversal_rows)
        session.execute(insert(basis), basis_rows(groups, position))


def basis_rows(
    groups: dict[tuple[str, str, str, int, int, int], list[Decimal]], position: int
) -> Sequence[dict[str, Any]]:
    rows = []
    for (customer_id, currency, product_id, invoice_day, effective_day, recorded_us), (
        quantity, amount
    ) in groups.items():
        rows.append({
            "customer_id": customer_id,
            "currency": currency,
            "product_id": product_id,
            "invoice_day": invoice_day,
            "effective_day": effective_day,
            "recorded_us": recorded_us,
            "q_micro": to_micro(quantity),
            "a_micro": to_micro(amount),
            "quantity": str(quantity),
            "amount": str(amount),
            "position": position,
        })
    return rows
