"""The ledger against an independent model of the contract (tests/model/contract_model.py).

A hypothesis state machine sends random command sequences to both: agreements of every shape,
sales and returns (also before their agreement exists), reversals, amendments (retroactive and
invalid ones), forecast revisions, claims with valid and invalid moves, write-offs, and
`recorded_at` times that mostly move forward but sometimes go back or into the future; and
contract v2: buying groups with joins and leaves (late, corrected, unknown), group agreements and
programs, write-offs with ids sent twice and reversed, settlements sent twice, percent rates
above 100 %. Every
command must be accepted, a duplicate, or rejected alike; the liability rows at random (as_of,
known_at) must be equal.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from conftest import fresh_postgres_database
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from model.contract_model import ACCEPTED, DUPLICATE, REJECTED, ContractModel

from ledger import Ledger

BASE = date(2025, 1, 1)
T0 = datetime(2025, 1, 1, tzinfo=UTC)
#: The ledger's fixed clock: later than every generated recorded_at except the "future" ones.
CLOCK = datetime(2025, 7, 1, tzinfo=UTC)
YEAR_END = date(2025, 12, 31)

AGREEMENTS = ["a1", "a2", "a3"]
PRODUCTS = ["P1", "P2", "P3"]
SALES = [f"s{n}" for n in range(1, 31)]
#: Mostly one customer, currency and covered product, so that most sales count somewhere;
#: the others test eligibility.
CUSTOMER = st.sampled_from(["C1"] * 9 + ["C2"])
CURRENCY = st.sampled_from(["EUR"] * 9 + ["USD"])
PRODUCT = st.sampled_from([*PRODUCTS * 3, "P9"])
CLAIMS = ["k1", "k2", "k3", "k4"]
GROUPS = ["G1", "G2"]
MEMBERS = st.sampled_from(["C1", "C1", "C2", "C3"])
WRITE_OFFS = ["w1", "w2", "w3"]

Draw = Callable[[st.SearchStrategy[Any]], Any]
Command = dict[str, Any]


def to_json(value: Any) -> str:
    """JSON text in which a `Decimal` is written as a JSON number (exactly its digits) and
    everything else as usual: the ledger must read both forms as exact decimals."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


def days(low: int, high: int) -> st.SearchStrategy[date]:
    return st.integers(low, high).map(lambda n: BASE + timedelta(days=n))


def mostly_2025(low: int, high: int) -> st.SearchStrategy[date]:
    """Half the time a day of 2025 (where the agreements' periods mostly are), else any day
    from `low` to `high` days after 2025-01-01."""
    return st.one_of(days(0, 364), days(low, high))


@st.composite
def decimals(draw: Draw, low: int, high: int, places: tuple[int, int] = (2, 4)) -> str | Decimal:
    """A decimal in [low, high] with `places` decimal places (2 to 4 unless told); a JSON
    string, or one time in four a JSON number."""
    scale = draw(st.integers(*places))
    value = Decimal(draw(st.integers(low * 10**scale, high * 10**scale))).scaleb(-scale)
    return value if draw(st.integers(0, 3)) == 0 else str(value)


@st.composite
def percent_rates(draw: Draw) -> str | Decimal:
    """A fraction of the sales amount from 0 to 10 %, to 4 places ("0.0125" is 1.25 %); one
    time in forty a rate typed as a percentage ("2" for 2 %): over 100 %, rejected (v2)."""
    value = Decimal(draw(st.integers(0, 1000))).scaleb(-4)
    if draw(st.integers(0, 39)) == 0:
        value = Decimal(draw(st.integers(101, 500))).scaleb(-2)
    return value if draw(st.integers(0, 3)) == 0 else str(value)


def money(low: int, high: int) -> st.SearchStrategy[str | Decimal]:
    """Money moved by claims and write-offs: cents."""
    return decimals(low, high, places=(2, 2))


def cents(value: Fraction) -> str:
    """A whole number of cents as "12.34"."""
    assert (value * 100).denominator == 1, value
    return str(Decimal(int(value * 100)).scaleb(-2))


def negated(value: str | Decimal) -> str | Decimal:
    return -value if isinstance(value, Decimal) else str(-Decimal(value))


@st.composite
def tiers(draw: Draw, basis: str, rate_kind: str) -> list[dict[str, Any]]:
    """1 to 3 tiers with thresholds a book of a dozen sales reaches; rarely out of order."""
    step = 25 if basis == "quantity" else 1000
    count = draw(st.integers(1, 3))
    # Often whole numbers, which sums of whole quantities reach exactly.
    starts = [
        Decimal(0) if draw(st.integers(0, 3)) < 3 else Decimal(draw(decimals(0, step, (0, 2))))
    ]
    for _ in range(count - 1):
        starts.append(starts[-1] + Decimal(draw(decimals(1, step, (0, 2)))))
    if count > 1 and draw(st.integers(0, 19)) == 19:
        starts.reverse()  # not strictly increasing: the command must be rejected
    result = []
    for start in starts:
        rate = draw(decimals(0, 3) if rate_kind == "per_unit" else percent_rates())
        result.append({"from": start if draw(st.booleans()) else str(start), "rate": rate})
    return result


@st.composite
def terms_shape(draw: Draw) -> tuple[str, str, str]:
    """(tier_method, basis, rate_kind): incremental mostly with a consistent pair."""
    method = draw(st.sampled_from(["retroactive", "incremental"]))
    if method == "incremental" and draw(st.integers(0, 9)) < 9:
        basis, rate_kind = draw(st.sampled_from([("quantity", "per_unit"), ("amount", "percent")]))
    else:
        basis = draw(st.sampled_from(["quantity", "amount"]))
        rate_kind = draw(st.sampled_from(["per_unit", "percent"]))
    return method, basis, rate_kind


def forecasts(basis: str) -> st.SearchStrategy[str | Decimal]:
    """Expected bases for the year: from well below to well above what the sales reach."""
    return decimals(1, 200) if basis == "quantity" else decimals(100, 10_000)


class LedgerAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="ledger-stateful-"))
        self.ledger = Ledger(self.database_url(), clock=lambda: CLOCK)
        self.model = ContractModel(CLOCK)
        self.last = T0  # the latest recorded_at generated going forward
        self.sent_sales: dict[str, Command] = {}  # first accepted form of each sale
        self.sent_write_offs: dict[str, Command] = {}  # accepted write-offs with an id
        self.sent_settlements: list[Command] = []  # accepted settlements
        self.dates: set[date] = {BASE, YEAR_END}  # valid dates the commands mention
        self.pending: list[tuple[str, str, str]] = []  # (line, model's outcome, why)
        self.batches: list[list[str]] = []  # what the ledger was sent, for failure messages

    def database_url(self) -> str:
        return f"sqlite:///{self.folder / 'ledger.db'}"

    def teardown(self) -> None:
        self.ledger.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # Sending -----------------------------------------------------------------------------

    def recorded_at(self, draw: Draw) -> str:
        """Mostly forward (sometimes the same instant), sometimes back, rarely in the future or
        without an offset; written in UTC or with another offset."""
        roll = draw(st.integers(0, 99))
        seconds = draw(st.integers(1, 6 * 3600))
        if roll < 90:
            if roll < 75:  # else the same instant as the one before
                self.last += timedelta(seconds=seconds, microseconds=draw(st.integers(0, 9)))
            moment = self.last
        elif roll < 98:
            moment = self.last - timedelta(seconds=seconds)
        elif roll < 99:
            moment = CLOCK + timedelta(seconds=seconds)
        else:  # no offset: rejected
            return self.last.replace(tzinfo=None).isoformat()
        if draw(st.booleans()):
            return moment.isoformat().replace("+00:00", "Z")
        return moment.astimezone(timezone(timedelta(hours=2))).isoformat()

    def send(self, draw: Draw, command: Command) -> str:
        """Give the command to the model now and to the ledger with the pending batch: mostly
        one command per `apply`, sometimes several in one batch (one transaction)."""
        command["recorded_at"] = self.recorded_at(draw)
        self.dates.update(date.fromisoformat(v) for v in command.values()
                          if isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\d", v))
        expected, why = self.model.apply(command)
        self.pending.append((to_json(command), expected, why))
        if draw(st.integers(0, 2)) < 2:
            self.flush()
        return expected

    def flush(self) -> None:
        """Apply the pending batch; every line's outcome must be the model's."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        self.batches.append([line for line, _, _ in batch])
        report = self.ledger.apply([line for line, _, _ in batch])
        rejected = {r.line: r.reason for r in report.rejected}
        duplicates = {number for number, _, _ in report.duplicates}
        for number, (line, expected, why) in enumerate(batch, start=1):
            got = ACCEPTED
            if number in rejected or number in duplicates:
                got = REJECTED if number in rejected else DUPLICATE
            assert got == expected, (
                f"line {number} of the last batch: {line}\n"
                f" ledger: {got} {rejected.get(number, '')}\n model: {expected} {why}\n"
                + self.history()
            )
        assert report.accepted == sum(expected == ACCEPTED for _, expected, _ in batch)

    def history(self) -> str:
        """Every batch sent so far, for failure messages (a blank line between batches)."""
        return "sent:\n" + "\n\n".join("\n".join(batch) for batch in self.batches)

    # Choosing ids ------------------------------------------------------------------------
    # Mostly ones that exist (so that commands get past "no such ..."), sometimes any id of
    # the pool (so that unknown and reused ids are tried too).

    def existing(self, draw: Draw, known: list[str], pool: list[str]) -> str:
        if known and draw(st.integers(0, 9)) < 9:
            return str(draw(st.sampled_from(known)))
        return str(draw(st.sampled_from(pool)))

    def unused(self, draw: Draw, used: list[str], pool: list[str]) -> str:
        free = [i for i in pool if i not in used]
        if free and draw(st.integers(0, 5)) < 5:
            return str(draw(st.sampled_from(free)))
        return str(draw(st.sampled_from(pool)))

    def agreement_ids(self) -> list[str]:
        return [i for i in AGREEMENTS if self.model.agreement(i) is not None]

    def claim_ids(self, *statuses: str) -> list[str]:
        """Claims that exist (in one of `statuses`, when given)."""
        return [i for i in CLAIMS if self.model.claim_status(i) in (statuses or
                ("submitted", "approved", "settled", "rejected"))]

    def sale_ids(self) -> list[str]:
        return [i for i in SALES if self.model.sale(i) is not None]

    # Agreements --------------------------------------------------------------------------

    @initialize(data=st.data())
    def start_the_book(self, data: st.DataObject) -> None:
        """Some sales, then some agreements (one id is left for one created later). The
        first covers every sale of C1 in EUR in 2025 and pays from the first unit or euro,
        so that every book has rebates to claim, approve and pay."""
        draw = data.draw
        for _ in range(draw(st.integers(2, 6))):
            self.record_sale(draw)
        if draw(st.booleans()):  # v2: a group with C1 in it, mostly from the start of 2025
            self.send(draw, {"type": "create_group", "group_id": "G1"})
            self.send(draw, {"type": "join_group", "group_id": "G1", "customer_id": "C1",
                             "effective_from": draw(mostly_2025(-30, 200)).isoformat()})
        ids = draw(st.lists(st.sampled_from(AGREEMENTS), min_size=1,
                            max_size=len(AGREEMENTS) - 1, unique=True))
        for number, agreement_id in enumerate(ids):
            command = self.agreement_command(draw, agreement_id)
            if number == 0:
                command.pop("group_id", None)
                command.update(customer_id="C1", currency="EUR", period_start=BASE.isoformat(),
                               period_end=YEAR_END.isoformat())
                command.pop("products", None)
                command["tiers"][0] = {"from": "0", "rate": draw(
                    decimals(1, 3) if command["rate_kind"] == "per_unit" else st.just("0.05"))}
                if command["tier_method"] == "incremental":  # a consistent pair
                    command["rate_kind"] = {"quantity": "per_unit", "amount": "percent"}[
                        command["basis"]]
            self.send(draw, command)

    @rule(data=st.data())
    def create_agreement(self, data: st.DataObject) -> None:
        draw = data.draw
        agreement_id = self.unused(draw, self.agreement_ids(), AGREEMENTS)
        self.send(draw, self.agreement_command(draw, agreement_id))

    def agreement_command(self, draw: Draw, agreement_id: str) -> Command:
        method, basis, rate_kind = draw(terms_shape())
        # Mostly the calendar year 2025, else a shorter or shifted period.
        start, end = BASE, YEAR_END
        if draw(st.integers(0, 2)) == 2:
            start = draw(days(-20, 200))
            end = start + timedelta(days=draw(st.integers(0, 364)))
        if draw(st.integers(0, 19)) == 19:
            end = start - timedelta(days=1)  # period_end before period_start: rejected
        command: Command = {
            "type": "create_agreement",
            "agreement_id": agreement_id,
            "customer_id": draw(CUSTOMER),
            "currency": draw(CURRENCY),
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "basis": basis,
            "tier_method": method,
            "rate_kind": rate_kind,
            "tiers": draw(tiers(basis, rate_kind)),
        }
        if draw(st.integers(0, 2)) == 2:
            command["products"] = draw(st.lists(st.sampled_from(PRODUCTS), min_size=1,
                                                max_size=2, unique=True))
        if draw(st.booleans()):
            command["cap"] = draw(decimals(5, 300))  # sub-cent caps too: rounded once, after
        accrual_method = draw(st.sampled_from([None, "earned", "forecast", "forecast"]))
        if accrual_method is not None:
            command["accrual_method"] = accrual_method
        if draw(st.booleans()):
            command["forecast_basis"] = draw(forecasts(basis))
        owner = draw(st.integers(0, 9))
        if owner < 3:  # a buying group's agreement (v2): rarely naming a customer too
            command["group_id"] = str(draw(st.sampled_from(GROUPS)))
            if owner > 0:
                del command["customer_id"]
        elif owner == 9:
            del command["customer_id"]  # neither: rejected
        if draw(st.integers(0, 3)) == 0:
            command["program_id"] = "PRG-1"
        return command

    @rule(data=st.data())
    def amend_agreement(self, data: st.DataObject) -> None:
        draw = data.draw
        method, basis, rate_kind = draw(terms_shape())
        choices: dict[str, st.SearchStrategy[Any]] = {
            "tiers": tiers(basis, rate_kind),
            "cap": st.one_of(st.none(), decimals(5, 300)),
            "products": st.lists(st.sampled_from(PRODUCTS), min_size=1, max_size=3, unique=True),
            "period_end": st.one_of(st.just(YEAR_END), days(-30, 400)).map(date.isoformat),
            "basis": st.just(basis),
            "tier_method": st.just(method),
            "rate_kind": st.just(rate_kind),
            "accrual_method": st.sampled_from(["earned", "forecast"]),
            "forecast_basis": forecasts(basis),
        }
        names = draw(st.lists(st.sampled_from(sorted(choices)), min_size=1, max_size=3,
                              unique=True))
        command: Command = {
            "type": "amend_agreement",
            "agreement_id": self.existing(draw, self.agreement_ids(), AGREEMENTS),
            # Often before sales already recorded: a retroactive amendment.
            "effective_from": draw(mostly_2025(-30, 400)).isoformat(),
        }
        command.update({name: draw(choices[name]) for name in names})
        self.send(draw, command)

    @precondition(lambda self: bool(self.agreement_ids()))
    @rule(data=st.data())
    def amend_tiers_to_start_at_the_basis(self, data: st.DataObject) -> None:
        """A tier from exactly an agreement's basis at a date, so that "a tier is reached
        when the basis is >= its from" is checked at equality."""
        draw = data.draw
        agreement_id = draw(st.sampled_from(self.agreement_ids()))
        as_of = draw(st.sampled_from(sorted(self.dates)))
        reached = self.model.row(agreement_id, as_of)["basis"]
        tiers = [{"from": "0", "rate": draw(decimals(0, 1))}] if reached > 0 else []
        tiers.append({"from": str(Decimal(reached.numerator) / reached.denominator),
                      "rate": draw(decimals(1, 3))})
        self.send(draw, {
            "type": "amend_agreement", "agreement_id": agreement_id,
            "effective_from": draw(st.sampled_from([BASE, as_of])).isoformat(),
            "tiers": tiers,
        })
        self.compare(as_of, None)

    @rule(data=st.data())
    def revise_forecast(self, data: st.DataObject) -> None:
        draw = data.draw
        self.send(draw, {
            "type": "revise_forecast",
            "agreement_id": self.existing(draw, self.agreement_ids(), AGREEMENTS),
            "forecast_basis": draw(st.one_of(forecasts("quantity"), forecasts("amount"))),
            "effective_from": draw(mostly_2025(-30, 400)).isoformat(),
        })

    # Buying groups (v2) -----------------------------------------------------------------

    @rule(data=st.data())
    def create_group(self, data: st.DataObject) -> None:
        draw = data.draw
        self.send(draw, {"type": "create_group", "group_id": draw(st.sampled_from(GROUPS)),
                         "name": "a co-operative"})

    @rule(data=st.data())
    def join_or_leave(self, data: st.DataObject) -> None:
        """Joins and leaves at any date (often before sales already recorded: late), of a
        group that exists, rarely of one that does not; a leave without a join is rejected."""
        draw = data.draw
        self.send(draw, {
            "type": draw(st.sampled_from(["join_group", "join_group", "leave_group"])),
            "group_id": draw(st.sampled_from(GROUPS)),
            "customer_id": draw(MEMBERS),
            "effective_from": draw(mostly_2025(-30, 400)).isoformat(),
        })

    # Sales -------------------------------------------------------------------------------

    @rule(data=st.data())
    def record_sales(self, data: st.DataObject) -> None:
        for _ in range(data.draw(st.integers(1, 4))):
            self.record_sale(data.draw)

    def record_sale(self, draw: Draw) -> None:
        quantity = draw(decimals(1, 20, (0, 3)))
        amount = draw(decimals(1, 500))
        sign = draw(st.integers(0, 19))
        if 17 <= sign < 19:  # a return or credit note
            quantity, amount = negated(quantity), negated(amount)
        elif sign == 19:  # signs that disagree: rejected
            amount = negated(amount)
        command: Command = {
            "type": "record_sale",
            "sale_id": self.unused(draw, self.sale_ids(), SALES),
            "customer_id": draw(CUSTOMER),
            "product_id": draw(PRODUCT),
            "quantity": quantity,
            "amount": amount,
            "currency": draw(CURRENCY),
            "invoice_date": draw(mostly_2025(-30, 400)).isoformat(),
        }
        if self.send(draw, command) == ACCEPTED:
            self.sent_sales[command["sale_id"]] = command

    @precondition(lambda self: bool(self.sent_sales))
    @rule(data=st.data())
    def resend_sale(self, data: st.DataObject) -> None:
        """The same sale again (its decimals maybe sent as JSON numbers instead of strings or
        the other way round): a duplicate; or with other figures: rejected."""
        draw = data.draw
        command = dict(self.sent_sales[draw(st.sampled_from(sorted(self.sent_sales)))])
        if draw(st.booleans()):
            for name in ("quantity", "amount"):
                value = command[name]
                command[name] = Decimal(value) if isinstance(value, str) else str(value)
        else:
            command["quantity"] = str(Decimal(command["quantity"]) * 2)
            command["amount"] = str(Decimal(command["amount"]) * 2)
        self.send(draw, command)

    @rule(data=st.data())
    def malformed_sale(self, data: st.DataObject) -> None:
        """A sale without one of its required fields, or with a field the contract does not
        have: rejected, and nothing changes."""
        draw = data.draw
        command: Command = {
            "type": "record_sale", "sale_id": self.unused(draw, self.sale_ids(), SALES),
            "customer_id": "C1", "product_id": "P1", "quantity": "1", "amount": "10.00",
            "currency": "EUR", "invoice_date": "2025-06-01",
        }
        if draw(st.booleans()):
            del command[draw(st.sampled_from(sorted(set(command) - {"type"})))]
        else:
            command["discount"] = "0.10"
        self.send(draw, command)

    @rule(data=st.data())
    def reverse_sale(self, data: st.DataObject) -> None:
        draw = data.draw
        unreversed = [i for i in self.sale_ids() if not self.model.is_reversed(i)]
        sale_id = self.existing(draw, unreversed or self.sale_ids(), SALES)
        sale = self.sent_sales.get(sale_id)
        if sale is not None:
            # Often on the invoice date or the day before (rejected), else up to 60 days on.
            reversed_on = date.fromisoformat(sale["invoice_date"]) + timedelta(
                days=draw(st.one_of(st.sampled_from([0, -1]), st.integers(-3, 60))))
        else:
            reversed_on = draw(days(-30, 360))
        self.send(draw, {"type": "reverse_sale", "sale_id": sale_id,
                         "reversed_on": reversed_on.isoformat()})

    # Claims and write-offs ---------------------------------------------------------------

    #: The move a claim usually makes next in each status, and the moves tried rarely (all
    #: invalid except the first move on a new claim and rejecting a submitted one).
    NEXT_MOVE = {
        None: ["submit", "submit", "submit", "approve", "settle"],
        "submitted": ["approve"] * 5 + ["reject", "settle", "submit"],
        "approved": ["settle", "settle", "settle", "approve", "reject"],
        "settled": ["settle", "approve", "reject"],
        "rejected": ["approve", "settle", "reject"],
    }

    @rule(data=st.data())
    def move_claims(self, data: st.DataObject) -> None:
        """One to three moves, each mostly the next move of a claim's life, sometimes a move
        the contract forbids."""
        draw = data.draw
        for _ in range(draw(st.integers(1, 3))):
            claim_id = str(draw(st.sampled_from(CLAIMS if draw(st.booleans()) else
                                                self.claim_ids() or CLAIMS)))
            move = draw(st.sampled_from(self.NEXT_MOVE[self.model.claim_status(claim_id)]))
            getattr(self, move + "_claim")(draw, claim_id)

    def submit_claim(self, draw: Draw, claim_id: str) -> None:
        # Mostly against an agreement that has earned something, so that approvals can pass,
        # often one with claims already, so that the others' approved amounts count.
        earning = [i for i in self.agreement_ids()
                   if self.model.row(i, YEAR_END)["accrued"] > 0]
        claimed = sorted({self.model.claim(i)["agreement_id"]  # type: ignore[index]
                          for i in self.claim_ids()})
        targets = claimed if claimed and draw(st.booleans()) else earning
        self.send(draw, {
            "type": "submit_claim",
            "claim_id": claim_id,
            "agreement_id": self.existing(draw, targets or self.agreement_ids(), AGREEMENTS),
            "amount": draw(money(1, 60)),
            "submitted_on": draw(days(0, 364)).isoformat(),
        })

    def approve_claim(self, draw: Draw, claim_id: str) -> None:
        approved_on = draw(st.one_of(st.just(YEAR_END), days(0, 364)))
        command: Command = {"type": "approve_claim", "claim_id": claim_id,
                            "approved_on": approved_on.isoformat()}
        choice = draw(st.integers(0, 4))
        if choice < 3 and self.model.claim_status(claim_id) == "submitted":
            # As much as may be approved, half of that (leaving some for other claims), or a
            # cent more than is available.
            available = self.model.available(claim_id, approved_on)
            claimed = self.model.claim(claim_id)["amount"]  # type: ignore[index]
            amount = [
                min(available, claimed),
                Fraction(math.floor(min(available, claimed) * 50), 100),
                available + Fraction(1, 100),
            ][choice]
            if amount > 0:
                command["approved_amount"] = cents(amount)
        elif choice == 3:
            command["approved_amount"] = draw(money(1, 100))
        self.send(draw, command)

    def reject_claim(self, draw: Draw, claim_id: str) -> None:
        self.send(draw, {"type": "reject_claim", "claim_id": claim_id,
                         "rejected_on": draw(days(0, 364)).isoformat(),
                         "reason": "not in the agreement"})

    def settle_claim(self, draw: Draw, claim_id: str) -> None:
        command: Command = {"type": "settle_claim", "claim_id": claim_id,
                            "paid_on": draw(days(0, 400)).isoformat(), "payment_ref": "PAY-1"}
        choice = draw(st.integers(0, 2))
        if choice == 1 and self.model.claim_status(claim_id) == "approved":
            # Part of what is left to pay, or a cent more than all of it.
            unpaid = self.model.unpaid(claim_id)
            part = unpaid / 2 if draw(st.booleans()) else unpaid + Fraction(1, 100)
            if round(part * 100) > 0:
                command["paid_amount"] = cents(Fraction(round(part * 100), 100))
        elif choice == 2:
            command["paid_amount"] = draw(money(1, 60))
        # v2: payment references, so that a settlement sent again is told apart
        command["payment_ref"] = draw(st.sampled_from(["PAY-1", "PAY-2", "PAY-3"]))
        if self.send(draw, command) == ACCEPTED:
            self.sent_settlements.append(command)

    @precondition(lambda self: bool(self.sent_settlements))
    @rule(data=st.data())
    def resend_settlement(self, data: st.DataObject) -> None:
        """The bank file loaded twice: a settlement again (a duplicate), or its reference with
        another date (rejected)."""
        draw = data.draw
        command = dict(draw(st.sampled_from(self.sent_settlements)))
        if draw(st.booleans()):
            command["paid_on"] = (date.fromisoformat(command["paid_on"])
                                  + timedelta(days=1)).isoformat()
        self.send(draw, command)

    @rule(data=st.data())
    def write_off(self, data: st.DataObject) -> None:
        draw = data.draw
        agreement_id = self.existing(draw, self.agreement_ids(), AGREEMENTS)
        effective = draw(days(0, 400))
        amount: str | Decimal = draw(money(1, 50))
        if draw(st.integers(0, 3)) < 3 and self.model.agreement(agreement_id) is not None:
            # Right at the liability, or a cent above it.
            owed = self.model.row(agreement_id, effective)["liability"]
            owed += Fraction(draw(st.integers(0, 1)), 100)
            if owed > 0:
                amount = cents(owed)
        command: Command = {"type": "write_off", "agreement_id": agreement_id, "amount": amount,
                            "effective_date": effective.isoformat(), "reason": "uncollectable"}
        if draw(st.booleans()):  # v2: with an id (maybe one already used: duplicate or not)
            command["write_off_id"] = draw(st.sampled_from(WRITE_OFFS))
        if self.send(draw, command) == ACCEPTED and "write_off_id" in command:
            self.sent_write_offs[command["write_off_id"]] = command

    @precondition(lambda self: bool(self.sent_write_offs))
    @rule(data=st.data())
    def resend_or_reverse_write_off(self, data: st.DataObject) -> None:
        """A write-off with an id sent again (a duplicate, or with another amount: rejected),
        or reversed (on its date, later, or the day before: rejected; twice: rejected)."""
        draw = data.draw
        write_off_id = draw(st.sampled_from(sorted(self.sent_write_offs)))
        sent = self.sent_write_offs[write_off_id]
        roll = draw(st.integers(0, 3))
        if roll == 0:
            self.send(draw, dict(sent))
        elif roll == 1:
            self.send(draw, {**sent, "amount": str(Decimal(str(sent["amount"])) + 1)})
        else:
            effective = date.fromisoformat(sent["effective_date"])
            reversed_on = effective + timedelta(days=draw(st.sampled_from([0, -1, 5, 40])))
            self.send(draw, {"type": "reverse_write_off", "write_off_id": write_off_id,
                             "reversed_on": reversed_on.isoformat(), "reason": "in error"})

    # Liability ---------------------------------------------------------------------------

    def compare(
        self, as_of: date, known_at: datetime | None, customer_id: str | None = None
    ) -> None:
        self.flush()
        rows: list[dict[str, Any]] = []
        for row in self.ledger.liability(as_of, known_at, customer_id=customer_id):
            fields: dict[str, Any] = row.to_dict()
            assert re.fullmatch(r"-?\d+(\.\d+)?", fields["basis"]), fields
            fields["basis"] = Fraction(Decimal(fields["basis"]))  # compared as a number
            rows.append(fields)
        expected = self.model.liability(as_of, known_at, customer_id)
        assert rows == expected, (
            f"liability(as_of={as_of}, known_at={known_at}, customer_id={customer_id})\n"
            f" ledger: {rows}\n"
            f" model:  {expected}\n" + self.history()
        )

    @rule(data=st.data())
    def liability_agrees(self, data: st.DataObject) -> None:
        """At a random or a mentioned valid date (and the day before), as known now or at a
        recorded time (or a microsecond before, or a while after it); for every customer or
        one."""
        draw = data.draw
        if draw(st.booleans()):
            as_of = draw(days(-40, 420))
        else:
            as_of = draw(st.sampled_from(sorted(self.dates))) - timedelta(
                days=draw(st.integers(0, 1)))
        known_at: datetime | None = None
        times = sorted({entry.recorded_at for entry in self.model.entries})
        if times and draw(st.integers(0, 3)) > 0:
            known_at = draw(st.sampled_from(times)) + draw(st.sampled_from(
                [timedelta(0), -timedelta(microseconds=1), timedelta(minutes=30)]))
        self.compare(as_of, known_at, draw(st.sampled_from([None, None, "C1", "C2"])))

    @invariant()
    def liability_at_year_end_agrees(self) -> None:
        if not self.pending:  # else wait: the batch is still being put together
            self.compare(YEAR_END, None)


LedgerAgainstModel.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerAgainstModelOnSQLite = LedgerAgainstModel.TestCase


@pytest.mark.postgres
def test_ledger_agrees_with_model_on_postgresql(pg_server: str) -> None:
    class OnPostgres(LedgerAgainstModel):
        def database_url(self) -> str:
            return fresh_postgres_database(pg_server)

    run_state_machine_as_test(
        OnPostgres,
        settings=settings(
            max_examples=8,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
