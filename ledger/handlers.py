"""Command handling: one function per command type, run inside a `Batch` (one transaction).

The batch holds what its commands need to see of each other before they are stored: the sales
and reversals accepted so far (written as one `SalesRecorded` event when the batch flushes), and
the recorded-time watermark. Sale ids are looked up for the whole chunk in one query, so the
sale path makes no database round trip per sale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from ledger import commands as c
from ledger.aggregates.sales import BATCH_LINES_MAX
from ledger.application import LedgerApplication, Recorded
from ledger.audit import chain
from ledger.errors import Rejection, RuleViolation, UnknownAgreement
from ledger.events import SaleLine, SaleReversal
from ledger.liability import FOREVER_US, accrual_at, exact_value, load_histories, money_totals
from ledger.limits import check_approval, check_write_off
from ledger.money import EXACT, ZERO, round_money
from ledger.projections.core import (
    CoreProjection,
    from_us,
    ledger_state,
    money,
    rejections,
    to_us,
    write_offs,
)
from ledger.text import storable

MISSING = object()
_new_tuple = tuple.__new__
ACCEPTED = "accepted"
DUPLICATE = "duplicate"

#: Sale ids looked up per query (well under SQLite's and PostgreSQL's parameter limits).
PREFETCH_IDS_MAX = 500

#: Most characters of a rejected command's text kept with its rejection.
REJECTED_TEXT_MAX = 4000


@dataclass
class RejectionRecord:
    line: int
    command_type: str
    field: str
    reason: str
    command: str
    source: str = ""
    rejected_at: datetime | None = None


def same_sale(known: SaleLine, cmd: c.RecordSale) -> bool:
    """Contract 1: the same sale_id with identical fields is a duplicate (values compared as
    numbers, so "12.5" and "12.50" are the same)."""
    return (
        known.customer_id == cmd.customer_id
        and known.product_id == cmd.product_id
        and known.currency == cmd.currency
        and known.quantity == cmd.quantity
        and known.amount == cmd.amount
        and known.invoice_date == cmd.invoice_date
    )


@dataclass
class Batch:
    """One chunk of commands applied in one transaction."""

    session: Session
    app: LedgerApplication
    projection: CoreProjection
    now: datetime
    source: str
    watermark_us: int = 0
    now_us: int = 0
    accepted: int = 0
    rejected_count: int = 0
    rejected: list[RejectionRecord] = field(default_factory=list)
    known_sales: dict[str, SaleLine | None] = field(default_factory=dict)
    reversed_ids: set[str] = field(default_factory=set)
    pending_sales: list[SaleLine] = field(default_factory=list)
    pending_reversals: list[SaleReversal] = field(default_factory=list)
    #: store positions of the events saved in this transaction, chained in `finish`
    stored_positions: list[int] = field(default_factory=list)

    # Set-up and tear-down ------------------------------------------------------------------

    def load_state(self) -> None:
        row = self.session.execute(
            select(ledger_state.c.watermark_us).where(ledger_state.c.id == 1)
        ).one()
        # the stored events' own recorded times too: a watermark set back behind the ledger
        # must not let a back-dated command in (issue 12 point 7)
        self.watermark_us = max(row[0], chain.last_recorded_us(self.session, self.app.recorder))
        self.now_us = to_us(self.now)

    def prefetch_sales(self, sale_ids: Iterable[str]) -> None:
        """Look up, in one query per 500 ids, every sale the chunk's commands name."""
        wanted = sorted(set(sale_ids) - set(self.known_sales))
        connection = self.session.connection()
        marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
        for start in range(0, len(wanted), PREFETCH_IDS_MAX):
            ids = wanted[start : start + PREFETCH_IDS_MAX]
            markers = ", ".join([marker] * len(ids))
            for sale_id in ids:
                self.known_sales[sale_id] = None
            found = []
            for row in _unprepared(
                connection,
                "SELECT sale_id, customer_id, product_id, currency, q_micro, a_micro, quantity,"
                f" amount, invoice_day, recorded_us FROM core_sales WHERE sale_id IN ({markers})",
                tuple(ids),
            ):
                found.append(row[0])
                self.known_sales[row[0]] = SaleLine(
                    row[0], row[1], row[2], exact_value(row[4], row[6]),
                    exact_value(row[5], row[7]), row[3], date.fromordinal(row[8]),
                    from_us(row[9]),
                )
            if found:  # only a recorded sale can have been reversed
                markers = ", ".join([marker] * len(found))
                for row in _unprepared(
                    connection,
                    f"SELECT sale_id FROM core_reversals WHERE sale_id IN ({markers})",
                    tuple(found),
                ):
                    self.reversed_ids.add(row[0])

    def finish(self) -> None:
        self.flush_sales()
        # tamper evidence: the hash chain, in the transaction that stores the events
        chain.append(self.session, self.app.recorder, self.stored_positions)
        self.stored_positions.clear()
        if self.rejected:
            self.session.execute(
                insert(rejections),
                [
                    {
                        "rejected_us": to_us(self.now),
                        "source": r.source,
                        "line": r.line,
                        "command_type": r.command_type,
                        "field": r.field,
                        "reason": r.reason,
                        "command": r.command,
                    }
                    for r in self.rejected
                ],
            )
        self.session.execute(
            ledger_state.update()
            .where(ledger_state.c.id == 1)
            .values(
                watermark_us=self.watermark_us,
                accepted=ledger_state.c.accepted + self.accepted,
                rejected=ledger_state.c.rejected + self.rejected_count,
            )
        )

    # Applying ------------------------------------------------------------------------------

    def project(self, recorded: Recorded) -> None:
        self.projection.apply(self.session, recorded)
        self.stored_positions.extend(position for _, position in recorded)

    def flush_sales(self) -> None:
        """Store the pending sales and reversals as batch events, in the order received."""
        while self.pending_sales or self.pending_reversals:
            take_sales = self.pending_sales[:BATCH_LINES_MAX]
            room = BATCH_LINES_MAX - len(take_sales)
            take_reversals = self.pending_reversals[:room]
            del self.pending_sales[: len(take_sales)]
            del self.pending_reversals[: len(take_reversals)]
            latest = max(
                [s.recorded_at for s in take_sales] + [r.recorded_at for r in take_reversals]
            )
            self.project(self.app.record_sales(take_sales, take_reversals, latest))

    def reject(
        self, line: int, raw: bytes | str, command_type: str, error: Rejection,
        source: str | None = None,
    ) -> None:
        """Keep a rejection; `source` None: the batch's source. Every text is made storable
        (NUL and lone surrogates escaped): a rejected line is text that failed its checks."""
        text = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw).rstrip("\r\n")
        self.rejected_count += 1
        self.rejected.append(
            RejectionRecord(
                line=line,
                command_type=storable(command_type),
                field=storable(error.field),
                reason=storable(str(error)),
                command=storable(text[:REJECTED_TEXT_MAX]),
                source=storable(self.source if source is None else source),
                rejected_at=self.now,
            )
        )

    def recorded_time(self, cmd: c.Command) -> datetime:
        """Contract 1: `recorded_at` may not go back before any accepted command's, nor be in
        the future; without it, the ledger's clock stamps the command."""
        if cmd.recorded_at is None:
            return self.now if self.now_us >= self.watermark_us else from_us(self.watermark_us)
        given = cmd.recorded_at
        if given > self.now:
            raise RuleViolation(
                "recorded_at",
                f"{given.isoformat()} is in the future (the ledger's clock says "
                f"{self.now.isoformat()}); history can only be loaded up to now",
            )
        if to_us(given) < self.watermark_us:
            raise RuleViolation(
                "recorded_at",
                f"{given.isoformat()} is earlier than {from_us(self.watermark_us).isoformat()}, "
                "the recorded_at of a command accepted before it; load history in recorded order",
            )
        return given

    def handle(self, cmd: c.Command) -> str:
        if cmd.recorded_at is None and self.now_us >= self.watermark_us:
            recorded_at = self.now  # most commands: what `recorded_time` says, without a call
        else:
            recorded_at = self.recorded_time(cmd)
        outcome = HANDLERS[type(cmd)](self, cmd, recorded_at)
        if recorded_at is not self.now:
            self.watermark_us = max(self.watermark_us, to_us(recorded_at))
        elif self.now_us > self.watermark_us:
            self.watermark_us = self.now_us
        self.accepted += 1
        return outcome

    # What other commands need to know -----------------------------------------------------

    def sale(self, sale_id: str) -> SaleLine | None:
        if sale_id not in self.known_sales:
            self.prefetch_sales([sale_id])
        return self.known_sales[sale_id]

    def approval_figures(self, agreement_id: str, claim_id: str, approved_on: date
    ) -> tuple[Decimal, Decimal]:
        """What contract 1's approve_claim limit needs (ledger.limits decides): the rebate
        earned as of `approved_on` over everything the ledger holds, and the approved amounts
        of the agreement's other approved claims."""
        self.flush_sales()
        history = load_histories(self.session, [agreement_id], FOREVER_US)[agreement_id]
        _, accrual, *_ = accrual_at(
            self.session, history, approved_on, FOREVER_US, method="earned"
        )
        others = ZERO
        for (amount,) in self.session.execute(
            select(money.c.amount)
            .where(money.c.agreement_id == agreement_id)
            .where(money.c.kind == "approved")
            .where(money.c.claim_id != claim_id)
        ):
            others = EXACT.add(others, Decimal(amount))
        return accrual.accrued, others

    def write_off_agreement(self, write_off_id: str) -> str | None:
        """The agreement holding the write-off recorded with `write_off_id`, or None."""
        return self.session.execute(
            select(write_offs.c.agreement_id).where(write_offs.c.write_off_id == write_off_id)
        ).scalar()

    def liability_now(self, agreement_id: str, as_of: date) -> Decimal:
        self.flush_sales()
        history = load_histories(self.session, [agreement_id], FOREVER_US)[agreement_id]
        _, accrual, *_ = accrual_at(self.session, history, as_of, FOREVER_US)
        bucket = money_totals(self.session, [agreement_id], as_of, FOREVER_US).get(
            agreement_id, {}
        )
        return round_money(
            accrual.accrued - bucket.get("paid", ZERO) - bucket.get("written_off", ZERO)
        )


# One handler per command -------------------------------------------------------------------


def create_agreement(batch: Batch, cmd: c.CreateAgreement, recorded_at: datetime) -> str:
    batch.flush_sales()
    terms = cmd.model_dump(exclude={"type", "recorded_at"})
    terms["tiers"] = [t.to_tier() for t in cmd.tiers]
    batch.project(batch.app.create_agreement(recorded_at, **terms))
    return ACCEPTED


def amend_agreement(batch: Batch, cmd: c.AmendAgreement, recorded_at: datetime) -> str:
    batch.flush_sales()
    changes = cmd.changes()
    if "tiers" in changes and changes["tiers"] is not None:
        changes["tiers"] = tuple(t.to_tier() for t in changes["tiers"])
    if changes.get("products") is not None:
        changes["products"] = frozenset(changes["products"])
    batch.project(
        batch.app.amend_agreement(cmd.agreement_id, cmd.effective_from, changes, recorded_at)
    )
    return ACCEPTED


def revise_forecast(batch: Batch, cmd: c.ReviseForecast, recorded_at: datetime) -> str:
    batch.flush_sales()
    batch.project(
        batch.app.revise_forecast(
            cmd.agreement_id, cmd.forecast_basis, cmd.effective_from, recorded_at
        )
    )
    return ACCEPTED


def record_sale(batch: Batch, cmd: c.RecordSale, recorded_at: datetime) -> str:
    quantity, amount = cmd.quantity, cmd.amount
    # only a pair whose signs differ can break the rule (most sales: two checks of a bit);
    # compared with a Decimal zero: a third of the cost of comparing with the int 0
    if quantity.is_signed() is not amount.is_signed() and (
            (quantity > ZERO and amount < ZERO) or (quantity < ZERO and amount > ZERO)):
        raise RuleViolation(
            "amount",
            f"quantity ({cmd.quantity}) and amount ({cmd.amount}) must carry the same sign; "
            "a return or credit note has both negative",
        )
    sale_id, known_sales = cmd.sale_id, batch.known_sales
    known = known_sales.get(sale_id, MISSING)
    if known is MISSING:
        known = batch.sale(sale_id)
    if known is not None:
        assert isinstance(known, SaleLine)
        if same_sale(known, cmd):
            return DUPLICATE
        raise RuleViolation(
            "sale_id",
            f"sale {sale_id!r} was already recorded with different fields; a sale cannot "
            "be changed: reverse it with reverse_sale and record the correction under a new "
            "sale_id",
        )
    line = _new_tuple(SaleLine, (  # SaleLine(...) without its Python-level __new__
        sale_id, cmd.customer_id, cmd.product_id, quantity, amount, cmd.currency,
        cmd.invoice_date, recorded_at,
    ))
    known_sales[sale_id] = line
    pending = batch.pending_sales
    pending.append(line)
    if len(pending) + len(batch.pending_reversals) >= BATCH_LINES_MAX:
        batch.flush_sales()
    return ACCEPTED


def reverse_sale(batch: Batch, cmd: c.ReverseSale, recorded_at: datetime) -> str:
    known = batch.sale(cmd.sale_id)
    if known is None:
        raise RuleViolation(
            "sale_id", f"no sale {cmd.sale_id!r} has been recorded; nothing to reverse"
        )
    if cmd.sale_id in batch.reversed_ids:
        raise RuleViolation("sale_id", f"sale {cmd.sale_id!r} is already reversed")
    if cmd.reversed_on < known.invoice_date:
        raise RuleViolation(
            "reversed_on",
            f"reversed_on {cmd.reversed_on} is before the sale's invoice_date "
            f"{known.invoice_date}",
        )
    batch.reversed_ids.add(cmd.sale_id)
    batch.pending_reversals.append(
        SaleReversal(
            cmd.sale_id, cmd.reversed_on, recorded_at, known.customer_id, known.product_id,
            known.quantity, known.amount, known.currency, known.invoice_date,
        )
    )
    if len(batch.pending_sales) + len(batch.pending_reversals) >= BATCH_LINES_MAX:
        batch.flush_sales()
    return ACCEPTED


def submit_claim(batch: Batch, cmd: c.SubmitClaim, recorded_at: datetime) -> str:
    batch.flush_sales()
    batch.project(
        batch.app.submit_claim(
            cmd.claim_id, cmd.agreement_id, cmd.amount, cmd.submitted_on, recorded_at
        )
    )
    return ACCEPTED


def approve_claim(batch: Batch, cmd: c.ApproveClaim, recorded_at: datetime) -> str:
    batch.flush_sales()
    claim = batch.app.get_claim(cmd.claim_id)
    claim.check_status("submitted", "approved")
    amount = cmd.approved_amount if cmd.approved_amount is not None else claim.amount
    earned, others = batch.approval_figures(
        claim.agreement_id, claim.claim_id, cmd.approved_on
    )
    check_approval(amount, claimed=claim.amount, earned=earned, approved_elsewhere=others,
                   agreement_id=claim.agreement_id, approved_on=cmd.approved_on,
                   amount_given=cmd.approved_amount is not None)
    claim.approve(amount, cmd.approved_on, recorded_at)
    batch.project(batch.app.save_claim(claim))
    return ACCEPTED


def reject_claim(batch: Batch, cmd: c.RejectClaim, recorded_at: datetime) -> str:
    batch.flush_sales()
    claim = batch.app.get_claim(cmd.claim_id)
    claim.reject(cmd.rejected_on, cmd.reason, recorded_at)
    batch.project(batch.app.save_claim(claim))
    return ACCEPTED


def settle_claim(batch: Batch, cmd: c.SettleClaim, recorded_at: datetime) -> str:
    batch.flush_sales()
    claim = batch.app.get_claim(cmd.claim_id)
    if claim.is_settlement_resent(cmd.paid_amount, cmd.paid_on, cmd.payment_ref):
        return DUPLICATE
    claim.settle(cmd.paid_amount, cmd.paid_on, cmd.payment_ref, recorded_at)
    batch.project(batch.app.save_claim(claim))
    return ACCEPTED


def write_off(batch: Batch, cmd: c.WriteOff, recorded_at: datetime) -> str:
    batch.flush_sales()
    if cmd.write_off_id is not None:
        holder = batch.write_off_agreement(cmd.write_off_id)
        if holder is not None:
            return _resent_write_off(batch, cmd, holder)
    if not batch.app.agreement_exists(cmd.agreement_id):
        raise UnknownAgreement(cmd.agreement_id)
    owed = batch.liability_now(cmd.agreement_id, cmd.effective_date)
    check_write_off(cmd.amount, liability=owed, agreement_id=cmd.agreement_id,
                    effective_date=cmd.effective_date)
    batch.project(
        batch.app.write_off(
            cmd.agreement_id, cmd.amount, cmd.effective_date, cmd.reason, recorded_at,
            write_off_id=cmd.write_off_id,
        )
    )
    return ACCEPTED


def _resent_write_off(batch: Batch, cmd: c.WriteOff, holder: str) -> str:
    """Contract 5: a write_off_id seen before is a duplicate with identical fields, else
    rejected."""
    assert cmd.write_off_id is not None
    if holder == cmd.agreement_id:
        known = batch.app.get_agreement(holder).write_offs[cmd.write_off_id]
        if (known.amount, known.effective_date, known.reason) == (
            cmd.amount, cmd.effective_date, cmd.reason
        ):
            return DUPLICATE
        said = (f"amount {known.amount}, effective_date {known.effective_date}, reason "
                f"{known.reason!r}")
    else:
        said = f"agreement_id {holder!r}"
    raise RuleViolation(
        "write_off_id",
        f"write-off {cmd.write_off_id!r} was already recorded with different fields ({said}); "
        "a write-off cannot be changed: reverse it with reverse_write_off and write off again "
        "under a new write_off_id",
    )


def reverse_write_off(batch: Batch, cmd: c.ReverseWriteOff, recorded_at: datetime) -> str:
    batch.flush_sales()
    holder = batch.write_off_agreement(cmd.write_off_id)
    if holder is None:
        raise RuleViolation(
            "write_off_id",
            f"no write-off {cmd.write_off_id!r} has been recorded (only a write_off sent with "
            "a write_off_id can be reversed); nothing to reverse",
        )
    batch.project(
        batch.app.reverse_write_off(
            holder, cmd.write_off_id, cmd.reversed_on, cmd.reason, recorded_at
        )
    )
    return ACCEPTED


def create_group(batch: Batch, cmd: c.CreateGroup, recorded_at: datetime) -> str:
    batch.flush_sales()
    batch.project(batch.app.create_group(cmd.group_id, cmd.name, recorded_at))
    return ACCEPTED


def join_group(batch: Batch, cmd: c.JoinGroup, recorded_at: datetime) -> str:
    batch.flush_sales()
    batch.project(
        batch.app.join_group(cmd.group_id, cmd.customer_id, cmd.effective_from, recorded_at)
    )
    return ACCEPTED


def leave_group(batch: Batch, cmd: c.LeaveGroup, recorded_at: datetime) -> str:
    batch.flush_sales()
    batch.project(
        batch.app.leave_group(cmd.group_id, cmd.customer_id, cmd.effective_from, recorded_at)
    )
    return ACCEPTED


HANDLERS: dict[type[c.Command], Callable[[Batch, Any, datetime], str]] = {
    c.CreateAgreement: create_agreement,
    c.AmendAgreement: amend_agreement,
    c.ReviseForecast: revise_forecast,
    c.RecordSale: record_sale,
    c.ReverseSale: reverse_sale,
    c.SubmitClaim: submit_claim,
    c.ApproveClaim: approve_claim,
    c.RejectClaim: reject_claim,
    c.SettleClaim: settle_claim,
    c.WriteOff: write_off,
    c.ReverseWriteOff: reverse_write_off,
    c.CreateGroup: create_group,
    c.JoinGroup: join_group,
    c.LeaveGroup: leave_group,
}


def _unprepared(connection: Connection, statement: str, parameters: tuple[Any, ...]) -> Any:
    """The rows of `statement`, planned for the tables as they are now. psycopg prepares a
    statement run five times on a connection, and PostgreSQL then keeps a generic plan for it:
    the prefetch's `IN` of 500 ids, first planned while `core_sales` was nearly empty, kept a
    full scan as the table grew (about 0.5 s a prefetch at 40k sales; `apply` at 1,470 sales/s
    on 100k against 9,100 unprepared, issue 11 point 2). Forcing custom plans for every
    statement of the session (`plan_cache_mode`) gave 4,000: the other statements gain from
    their prepared plans. SQLite plans each statement as it comes."""
    if connection.dialect.name == "postgresql":
        driver: Any = connection.connection.driver_connection
        return driver.execute(statement, parameters, prepare=False)
    return connection.exec_driver_sql(statement, parameters)
