"""The `demo` command: a realistic synthetic rebate book for 2025, loaded as history, and what the
ledger then says about it.

The book is generated from a seed, deterministically: a product catalogue, a few hundred
customers with one or two agreements each (every agreement shape of the contract), a year of
sales with returns, reversals and late-arriving invoices, retroactive and prospective
amendments, forecast revisions, quarterly claims that finance approves, partly approves, rejects
and pays, a write-off, and a handful of deliberately bad lines that the ledger must reject.

Every command carries an explicit `recorded_at` (2025 and early 2026, in increasing order): the
demo loads history, it does not simulate the present. Like finance, the generator decides some
commands by asking the ledger first (what has this agreement earned, what is still owed), so the
lines are applied in segments separated by those questions, and streamed: only a few days of
pending lines are ever held in memory.

Contract v2 is in it too: two buying groups whose members join (one of them late, recorded
after a quarter closed), leave, and have a leave corrected; one member in both groups; a group
agreement per group; a standard program offered to many customers; write-offs with ids (one sent
twice, one reversed) and a settlement sent twice, which change nothing the second time.

Then it prints the liability at each quarter end of 2025, the largest liabilities at year end,
how one late sale and one retroactive amendment changed a quarter that had already closed, and
how one member's late join changed that quarter's group figure.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ledger.config import Settings
from ledger.core import ApplyReport, Ledger
from ledger.liability import LiabilityRow
from ledger.money import format_decimal, format_money
from ledger.rules import accrue

if TYPE_CHECKING:
    from consumers.pipeline import PipelineResult

# The calendar of the book ------------------------------------------------------------------

YEAR_START = date(2025, 1, 1)
YEAR_END = date(2025, 12, 31)
#: The last day anything is recorded (the last settlements of the Q4 claims).
HISTORY_END = date(2026, 4, 30)
QUARTER_ENDS = (date(2025, 3, 31), date(2025, 6, 30), date(2025, 9, 30), date(2025, 12, 31))
#: A quarter's books close ten days after it ends; "as known at close" means at that moment.
CLOSE_LAG = timedelta(days=10)
#: Claims for a quarter are submitted, approved and paid this long after it ends.
SUBMIT_LAG, APPROVE_LAG, PAY_LAG = timedelta(days=15), timedelta(days=10), timedelta(days=15)
#: A claim paid in two instalments gets the second this long after the first (often in the
#: next quarter, so approved and paid differ at some quarter ends).
INSTALMENT_GAP = timedelta(days=55)
#: Forecasts are revised two days after a quarter closes, from the quarter's actual basis.
REVISE_LAG = timedelta(days=12)
#: The year-end write-off is decided once the Q4 claims are approved.
WRITE_OFF_ON = date(2026, 1, 30)

CUSTOMERS_DEFAULT = 300
SEED_DEFAULT = 2025
CLAIM_MINIMUM = Decimal("50.00")
CENT = Decimal("0.01")
ZERO = Decimal(0)

#: Seasonality of orders, in percent of a customer's usual daily rate, by month.
SEASON_PERCENT = {1: 85, 2: 90, 3: 105, 4: 95, 5: 100, 6: 110, 7: 90, 8: 75, 9: 105, 10: 110,
                  11: 120, 12: 115}
#: Shares, in per mille, of sale lines that are returns, later reversed, or arrive late.
RETURN_PER_MILLE, REVERSAL_PER_MILLE, LATE_PER_MILLE = 15, 4, 40
#: Exchange rates from the catalogue's EUR prices (a customer buys in one currency).
FX = {"EUR": Decimal("1"), "USD": Decimal("1.10"), "GBP": Decimal("0.85")}

#: The valid (tier_method, basis, rate_kind) combinations of the contract.
SHAPES = (
    ("retroactive", "quantity", "per_unit"),
    ("retroactive", "quantity", "percent"),
    ("retroactive", "amount", "per_unit"),
    ("retroactive", "amount", "percent"),
    ("incremental", "quantity", "per_unit"),
    ("incremental", "amount", "percent"),
)
#: Every shape with and without a products filter and a cap, earned and forecast.
VARIANTS = tuple(itertools.product(SHAPES, (False, True), (False, True), ("earned", "forecast")))

#: family: (product code, number of products, EUR price range in cents)
FAMILIES: dict[str, tuple[str, int, tuple[int, int]]] = {
    "coffee": ("COF", 6, (800, 2400)),
    "tea": ("TEA", 5, (400, 1200)),
    "snacks": ("SNK", 7, (150, 600)),
    "dairy": ("DRY", 5, (120, 450)),
    "cleaning": ("CLN", 6, (300, 1800)),
    "paper": ("PAP", 4, (900, 3500)),
}

#: Contract v2: two buying groups and one standard program (section 4).
GROUPS = (("GRP-NORTH", "Northern Grocers Co-operative"),
          ("GRP-SOUTH", "Southern Cafés Purchasing Group"))
GROUP_CREATED_AT = datetime(2025, 1, 3, 8, 0, tzinfo=UTC)
GROUP_MEMBERS_MAX = 8
#: The late join of the story: effective in Q2, recorded after Q2 closed.
LATE_JOIN_FROM = date(2025, 4, 1)
LATE_JOIN_RECORDED = datetime(2025, 7, 25, 9, 0, tzinfo=UTC)
PROGRAM_ID = "PRG-GROWTH-2025"
#: The program's standard terms: the same for every enrolled customer.
PROGRAM_TIERS = ((Decimal(0), Decimal("0.004")), (Decimal(20000), Decimal("0.008")),
                 (Decimal(50000), Decimal("0.012")))
#: One EUR customer in this many is enrolled in the program.
PROGRAM_EVERY = 4

REJECT_REASONS = (
    "no proof of sell-through supplied",
    "claimed against the wrong agreement",
    "duplicate of a claim already paid",
)


def utc(day: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime.combine(day, clock(hour, minute), tzinfo=UTC)


def stamp(moment: datetime) -> str:
    """An ISO 8601 UTC timestamp as the contract writes it: `2025-04-02T09:00:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def close_of(quarter_end: date) -> datetime:
    """The moment a quarter's books close (midnight UTC, ten days after it ends)."""
    return utc(quarter_end + CLOSE_LAG)


def text(value: Decimal) -> str:
    """A decimal as contract JSON text, never in exponent notation."""
    return format(value, "f")


def cents(value: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    return value.quantize(CENT, rounding=rounding)


def nice(value: Decimal) -> Decimal:
    """`value` rounded to two significant digits (12345 -> 12000): thresholds, caps and
    forecasts as people write them."""
    if value <= 0:
        return ZERO
    step = Decimal(1).scaleb(value.adjusted() - 1)
    rounded = (value / step).to_integral_value(ROUND_HALF_UP) * step
    return rounded.quantize(Decimal(1)) if step >= 1 else rounded


# The plan: catalogue, customers, agreements, amendments ------------------------------------


@dataclass(frozen=True)
class Product:
    product_id: str
    family: str
    price_eur: Decimal


@dataclass(frozen=True)
class Customer:
    customer_id: str
    currency: str
    #: product id -> unit price in the customer's currency (after its negotiated discount)
    prices: dict[str, Decimal]
    families: tuple[str, ...]
    #: expected order lines per 100 business days
    activity: int
    order_max: int
    claims_every: int  # quarters between claims: 1, 2 or 4
    churn_on: date | None = None  # stops buying (and claiming) from this day

    @property
    def assortment(self) -> tuple[str, ...]:
        return tuple(self.prices)


@dataclass(frozen=True)
class AgreementPlan:
    agreement_id: str
    customer_id: str | None  # None: a buying group's agreement (group_id)
    currency: str
    period_start: date
    period_end: date
    tier_method: str
    basis: str
    rate_kind: str
    tiers: tuple[tuple[Decimal, Decimal], ...]  # (from, rate)
    products: tuple[str, ...] | None
    cap: Decimal | None
    accrual_method: str
    forecast_basis: Decimal | None
    recorded_at: datetime
    group_id: str | None = None
    program_id: str | None = None

    @property
    def variant(self) -> tuple[tuple[str, str, str], bool, bool, str]:
        """Its place in `VARIANTS`: shape, products filter?, cap?, accrual method."""
        return ((self.tier_method, self.basis, self.rate_kind), self.products is not None,
                self.cap is not None, self.accrual_method)

    def command(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "create_agreement",
            "agreement_id": self.agreement_id,
            **({"customer_id": self.customer_id} if self.group_id is None
               else {"group_id": self.group_id}),
            **({"program_id": self.program_id} if self.program_id is not None else {}),
            "currency": self.currency,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "basis": self.basis,
            "tier_method": self.tier_method,
            "rate_kind": self.rate_kind,
            "tiers": tiers_json(self.tiers),
            "accrual_method": self.accrual_method,
        }
        if self.products is not None:
            body["products"] = list(self.products)
        if self.cap is not None:
            body["cap"] = text(self.cap)
        if self.forecast_basis is not None:
            body["forecast_basis"] = text(self.forecast_basis)
        return body


def tiers_json(tiers: tuple[tuple[Decimal, Decimal], ...]) -> list[dict[str, str]]:
    return [{"from": text(start), "rate": text(rate)} for start, rate in tiers]


def tiers_text(tiers: tuple[tuple[Decimal, Decimal], ...]) -> str:
    return ", ".join(f"from {text(start)}: {text(rate)}" for start, rate in tiers)


@dataclass(frozen=True)
class Amendment:
    agreement_id: str
    effective_from: date
    recorded_at: datetime
    changes: dict[str, Any]  # contract JSON values
    why: str

    def command(self) -> dict[str, Any]:
        return {
            "type": "amend_agreement",
            "agreement_id": self.agreement_id,
            "effective_from": self.effective_from.isoformat(),
            **self.changes,
        }


@dataclass(frozen=True)
class Story:
    """The closed quarter that changed: one agreement, one late sale, one amendment."""

    agreement_id: str
    customer_id: str
    quarter_end: date
    late_invoice_date: date
    late_recorded_at: datetime
    old_tiers: tuple[tuple[Decimal, Decimal], ...]
    new_tiers: tuple[tuple[Decimal, Decimal], ...]
    amendment: Amendment

    @property
    def close(self) -> datetime:
        return close_of(self.quarter_end)


@dataclass(frozen=True)
class MembershipChange:
    """One join_group or leave_group of the plan."""

    recorded_at: datetime
    body: dict[str, Any]
    why: str


@dataclass(frozen=True)
class GroupPlan:
    group_id: str
    name: str
    agreement_id: str
    members: tuple[str, ...]
    changes: tuple[MembershipChange, ...]
    #: the member whose join, effective in Q2, is recorded after Q2 closed (None: none)
    late_joiner: str | None

    def create(self) -> dict[str, Any]:
        return {"type": "create_group", "group_id": self.group_id, "name": self.name}


@dataclass(frozen=True)
class Plan:
    seed: int
    products: tuple[Product, ...]
    customers: tuple[Customer, ...]
    agreements: tuple[AgreementPlan, ...]
    amendments: tuple[Amendment, ...]
    story: Story
    groups: tuple[GroupPlan, ...] = ()

    def agreement(self, agreement_id: str) -> AgreementPlan:
        return next(a for a in self.agreements if a.agreement_id == agreement_id)


def make_catalogue(rng: random.Random) -> tuple[Product, ...]:
    products = []
    for family, (code, count, (low, high)) in FAMILIES.items():
        for number in range(1, count + 1):
            price = Decimal(rng.randint(low, high)) / 100
            products.append(Product(f"P-{code}-{number:02d}", family, price))
    return tuple(products)


def make_customer(
    rng: random.Random, number: int, catalogue: tuple[Product, ...], *, plain: bool, churns: bool
) -> Customer:
    """A customer buying from two to four families in one currency. `plain`: EUR, claims
    every quarter (the featured customer of the story)."""
    currency = "EUR" if plain else rng.choices(("EUR", "USD", "GBP"), weights=(7, 2, 1))[0]
    families = tuple(sorted(rng.sample(sorted(FAMILIES), k=rng.randint(2, 4))))
    discount = Decimal(100 - rng.randint(0, 12)) / 100
    prices: dict[str, Decimal] = {}
    for family in families:
        offered = [p for p in catalogue if p.family == family]
        for product in rng.sample(offered, k=rng.randint(2, len(offered))):
            prices[product.product_id] = cents(product.price_eur * FX[currency] * discount)
    churn_on = YEAR_START.replace(month=7, day=15) + timedelta(days=rng.randint(0, 60))
    return Customer(
        customer_id=f"C{number:04d}",
        currency=currency,
        prices=prices,
        families=families,
        activity=rng.randint(40, 150),
        order_max=rng.choice((5, 10, 20, 40, 60)),
        claims_every=1 if plain else rng.choices((1, 2, 4), weights=(7, 2, 1))[0],
        churn_on=churn_on if churns else None,
    )


def business_days(first: date, last: date) -> int:
    return sum(1 for n in range((last - first).days + 1) if (first + timedelta(n)).weekday() < 5)


def expected_volume(
    customer: Customer, products: tuple[str, ...] | None, first: date, last: date
) -> tuple[Decimal, Decimal]:
    """Rough expected (quantity, amount) of a customer's purchases of `products` over a
    period: what a deal designer would set the tiers from."""
    bought = [p for p in customer.assortment if products is None or p in products]
    if not bought:
        return ZERO, ZERO
    share = Decimal(len(bought)) / len(customer.assortment)
    lines = Decimal(customer.activity) * business_days(first, last) / 100 * share
    quantity = lines * Decimal(1 + customer.order_max) / 2
    mean_price = sum((customer.prices[p] for p in bought), ZERO) / len(bought)
    return quantity, quantity * mean_price


def rate_step(rate_kind: str) -> Decimal:
    return CENT if rate_kind == "per_unit" else Decimal("0.0001")


def make_tiers(
    rng: random.Random, shape: tuple[str, str, str], expected: Decimal, first_rate: Decimal,
    *, from_zero: bool,
) -> tuple[tuple[Decimal, Decimal], ...]:
    """Tiers set from the expected basis: reached in the course of the year by most customers.
    Retroactive tables sometimes pay nothing below a first threshold."""
    tier_method, _, rate_kind = shape
    shares: tuple[str, ...]
    factors: tuple[str, ...]
    if tier_method == "incremental":
        shares, factors = ("0", "0.5", "1"), ("1", "2", "3")
    elif from_zero or rng.random() < 0.6:
        shares, factors = ("0", "0.5", "0.9"), ("1", "1.5", "2")
    else:
        shares, factors = ("0.3", "0.8"), ("1", "1.6")
    tiers: list[tuple[Decimal, Decimal]] = []
    for share, factor in zip(shares, factors, strict=True):
        start = nice(expected * Decimal(share))
        if tiers and start <= tiers[-1][0]:
            start = tiers[-1][0] + 1
        rate = (first_rate * Decimal(factor)).quantize(rate_step(rate_kind), ROUND_HALF_UP)
        tiers.append((start, rate))
    return tuple(tiers)


def make_agreement(
    rng: random.Random, number: int, customer: Customer, variant: Any, *,
    half_year: bool, recorded_at: datetime, from_zero: bool,
) -> AgreementPlan:
    shape, filtered, capped, method = variant
    tier_method, basis, rate_kind = shape
    first = YEAR_START.replace(month=7) if half_year else YEAR_START
    products: tuple[str, ...] | None = None
    if filtered:
        family = rng.choice(customer.families)
        code, count, _ = FAMILIES[family]
        # A family deal covers the whole family, also what the customer does not buy yet.
        products = tuple(f"P-{code}-{n:02d}" for n in range(1, count + 1))
    quantity, amount = expected_volume(customer, products, first, YEAR_END)
    expected = quantity if basis == "quantity" else amount
    measure = quantity if rate_kind == "per_unit" else amount
    if rate_kind == "per_unit":
        mean_price = amount / quantity if quantity else Decimal(1)
        first_rate = max(CENT, cents(mean_price * Decimal("0.02")))
    else:
        first_rate = rng.choice((Decimal("0.010"), Decimal("0.015"), Decimal("0.020")))
    tiers = make_tiers(rng, shape, expected, first_rate, from_zero=from_zero)
    cap = None
    if capped:
        # Binding only for customers that outgrow their expected volume at the top rate.
        top = tiers[-1][1] * (Decimal("1.5") if tier_method == "incremental" else 1)
        cap = max(Decimal(100), nice(top * measure * Decimal("0.85")))
    forecast = None
    if method == "forecast":
        forecast = max(Decimal(1), nice(expected * Decimal(rng.randint(85, 125)) / 100))
    return AgreementPlan(
        agreement_id=f"RB-2025-{number:04d}",
        customer_id=customer.customer_id,
        currency=customer.currency,
        period_start=first,
        period_end=YEAR_END,
        tier_method=tier_method,
        basis=basis,
        rate_kind=rate_kind,
        tiers=tiers,
        products=products,
        cap=cap,
        accrual_method=method,
        forecast_basis=forecast,
        recorded_at=recorded_at,
    )


def agreement_recorded_at(rng: random.Random, number: int, half_year: bool) -> datetime:
    """Most deals are signed in the first days of January; some late (they still count the
    sales recorded before them); half-year deals in June."""
    if half_year:
        return utc(date(2025, 6, 10) + timedelta(days=rng.randint(0, 17)), 9, number % 60)
    if rng.random() < 0.1:
        return utc(date(2025, 2, 10) + timedelta(days=rng.randint(0, 38)), 9, number % 60)
    return utc(date(2025, 1, 2) + timedelta(days=rng.randint(0, 8)), 9, number % 60)


def plan_book(seed: int = SEED_DEFAULT, customers: int = CUSTOMERS_DEFAULT) -> Plan:
    """Everything about the book that does not depend on the ledger's answers."""
    assert customers >= 2, "the demo needs a featured customer and a churning one"
    rng = random.Random(seed)
    catalogue = make_catalogue(rng)
    variants = list(VARIANTS)
    rng.shuffle(variants)
    # The featured agreement of the story: retroactive quantity/per_unit, earned, plain.
    featured_variant = (SHAPES[0], False, False, "earned")
    cycle = itertools.cycle(variants)
    people: list[Customer] = []
    deals: list[AgreementPlan] = []
    for index in range(customers):
        churns = index == customers - 1 or (index > 0 and rng.random() < 0.03)
        customer = make_customer(rng, index + 1, catalogue, plain=index == 0, churns=churns)
        people.append(customer)
        count = 1 if index == 0 else rng.choice((1, 2))
        for slot in range(count):
            variant = featured_variant if index == 0 else next(cycle)
            half_year = slot == 1 and rng.random() < 0.4
            number = len(deals) + 1
            deals.append(
                make_agreement(
                    rng, number, customer, variant, half_year=half_year,
                    recorded_at=agreement_recorded_at(rng, number, half_year),
                    # The churning customer's first deal must owe something when written off.
                    from_zero=index == 0 or (churns and slot == 0),
                )
            )
    deals.sort(key=lambda a: a.recorded_at)
    story = make_story(next(a for a in deals if a.customer_id == people[0].customer_id))
    amendments = make_amendments(rng, tuple(people), tuple(deals), story)
    # contract v2: buying groups of EUR customers that keep trading, and a program
    steady = [c for c in people[1:] if c.currency == "EUR" and c.churn_on is None]
    groups, group_deals = make_groups(rng, steady)
    deals += group_deals + make_program_deals(steady)
    deals.sort(key=lambda a: a.recorded_at)
    return Plan(seed, catalogue, tuple(people), tuple(deals), amendments, story, groups)


def make_groups(
    rng: random.Random, steady: list[Customer]
) -> tuple[tuple[GroupPlan, ...], list[AgreementPlan]]:
    """Two buying groups of up to eight members each, one member in both, with one group
    agreement each (retroactive, percent of the members' purchases, tiers sized from their
    expected volume). NORTH: a member's join effective 1 April is recorded on 25 July, after
    Q2 closed; another member's leave is recorded in error and corrected by a later join.
    SOUTH: a member leaves from 1 September."""
    chosen = rng.sample(steady, k=min(len(steady), 2 * GROUP_MEMBERS_MAX))
    half = (len(chosen) + 1) // 2
    teams = [chosen[:half], chosen[half:]]
    if teams[1]:  # one customer in both groups
        teams[0] = [*teams[0], teams[1][0]]
    groups, deals = [], []
    for index, ((group_id, name), team) in enumerate(zip(GROUPS, teams, strict=True)):
        if not team:
            continue
        ids = [c.customer_id for c in team]
        changes: list[MembershipChange] = []
        late = ids[-1] if index == 0 and len(ids) >= 3 else None
        for number, customer_id in enumerate(ids):
            if customer_id == late:
                changes.append(MembershipChange(LATE_JOIN_RECORDED, {
                    "type": "join_group", "group_id": group_id, "customer_id": customer_id,
                    "effective_from": LATE_JOIN_FROM.isoformat(),
                }, "joined from 1 April; head office told us on 25 July"))
                continue
            changes.append(MembershipChange(GROUP_CREATED_AT + timedelta(minutes=number + 1), {
                "type": "join_group", "group_id": group_id, "customer_id": customer_id,
                "effective_from": YEAR_START.isoformat(),
            }, "founding member"))
        if index == 0 and len(ids) >= 2:
            corrected = ids[0]
            changes.append(MembershipChange(utc(date(2025, 6, 5), 10), {
                "type": "leave_group", "group_id": group_id, "customer_id": corrected,
                "effective_from": "2025-06-01",
            }, "leave recorded in error"))
            changes.append(MembershipChange(utc(date(2025, 6, 20), 10), {
                "type": "join_group", "group_id": group_id, "customer_id": corrected,
                "effective_from": "2025-06-01",
            }, "correction: it never left"))
        if index == 1 and len(ids) >= 2:
            changes.append(MembershipChange(utc(date(2025, 9, 10), 10), {
                "type": "leave_group", "group_id": group_id, "customer_id": ids[-1],
                "effective_from": "2025-09-01",
            }, "left the group from 1 September"))
        agreement_id = f"RB-2025-G{index + 1:03d}"
        groups.append(GroupPlan(group_id, name, agreement_id, tuple(ids), tuple(changes), late))
        expected = sum((expected_volume(c, None, YEAR_START, YEAR_END)[1] for c in team), ZERO)
        tiers = ((ZERO, Decimal("0.005")), (nice(expected * Decimal("0.5")), Decimal("0.010")),
                 (nice(expected * Decimal("0.9")), Decimal("0.015")))
        deals.append(AgreementPlan(
            agreement_id=agreement_id, customer_id=None, currency="EUR",
            period_start=YEAR_START, period_end=YEAR_END, tier_method="retroactive",
            basis="amount", rate_kind="percent", tiers=tiers, products=None, cap=None,
            accrual_method="earned", forecast_basis=None,
            recorded_at=GROUP_CREATED_AT + timedelta(minutes=30 + index), group_id=group_id,
        ))
    return tuple(groups), deals


def make_program_deals(steady: list[Customer]) -> list[AgreementPlan]:
    """The growth program: the same standard terms for one EUR customer in four."""
    deals = []
    for number, customer in enumerate(steady[::PROGRAM_EVERY], start=1):
        deals.append(AgreementPlan(
            agreement_id=f"RB-2025-P{number:03d}", customer_id=customer.customer_id,
            currency="EUR", period_start=YEAR_START, period_end=YEAR_END,
            tier_method="retroactive", basis="amount", rate_kind="percent",
            tiers=PROGRAM_TIERS, products=None, cap=None, accrual_method="earned",
            forecast_basis=None, recorded_at=utc(date(2025, 1, 6), 10, number % 60),
            program_id=PROGRAM_ID,
        ))
    return deals


def make_story(featured: AgreementPlan) -> Story:
    """Q2 closes on 10 July; an invoice of 30 June arrives on 16 July; on 14 August the deal
    is renegotiated: every tier pays 0.05 more per unit, retroactively from 1 January."""
    new_tiers = tuple((start, rate + Decimal("0.05")) for start, rate in featured.tiers)
    amendment = Amendment(
        agreement_id=featured.agreement_id,
        effective_from=YEAR_START,
        recorded_at=utc(date(2025, 8, 14), 11, 30),
        changes={"tiers": tiers_json(new_tiers)},
        why="renegotiated: every tier +0.05 per unit, retroactive to 1 January",
    )
    assert featured.customer_id is not None, "the featured deal is a customer's own"
    return Story(
        agreement_id=featured.agreement_id,
        customer_id=featured.customer_id,
        quarter_end=QUARTER_ENDS[1],
        late_invoice_date=date(2025, 6, 30),
        late_recorded_at=utc(date(2025, 7, 16), 8, 30),
        old_tiers=featured.tiers,
        new_tiers=new_tiers,
        amendment=amendment,
    )


def after(deal: AgreementPlan, moment: datetime) -> datetime:
    """An amendment is recorded after its agreement (half-year deals are signed in June)."""
    return max(moment, deal.recorded_at + timedelta(days=1))


def make_amendments(
    rng: random.Random, customers: tuple[Customer, ...], deals: tuple[AgreementPlan, ...],
    story: Story,
) -> tuple[Amendment, ...]:
    """Amendments that only ever raise what is earned (so approved claims stay covered):
    retroactive rate rises, raised or removed caps, wider product filters, and the end of the
    deals of customers that stopped trading."""
    by_customer = {c.customer_id: c for c in customers}
    found: list[Amendment] = [story.amendment]
    for deal in deals:
        if deal.agreement_id == story.agreement_id or deal.customer_id is None:
            continue
        customer = by_customer[deal.customer_id]
        roll = rng.random()
        if customer.churn_on is not None:
            last = (customer.churn_on.replace(day=1) + timedelta(days=32)).replace(day=1)
            last -= timedelta(days=1)
            found.append(Amendment(
                deal.agreement_id, last + timedelta(days=1),
                after(deal, utc(customer.churn_on + timedelta(days=20), 11, 40)),
                {"period_end": last.isoformat()}, "customer stopped trading: deal ends",
            ))
        elif roll < 0.06 and deal.period_start == YEAR_START:
            raised = tuple(
                (start, (rate * Decimal("1.25")).quantize(rate_step(deal.rate_kind)))
                for start, rate in deal.tiers
            )
            found.append(Amendment(
                deal.agreement_id, YEAR_START,
                after(deal, utc(date(2025, 8, 1) + timedelta(days=rng.randint(0, 50)), 11, 45)),
                {"tiers": tiers_json(raised)}, "rates raised 25 %, retroactive to 1 January",
            ))
        elif deal.cap is not None and roll < 0.25:
            found.append(Amendment(
                deal.agreement_id, date(2025, 7, 1),
                after(deal, utc(date(2025, 6, 16) + timedelta(days=rng.randint(0, 14)), 11, 50)),
                {"cap": text(nice(deal.cap * Decimal("1.5")))}, "cap raised by half from July",
            ))
        elif deal.cap is not None and roll < 0.31:
            found.append(Amendment(
                deal.agreement_id, date(2025, 10, 1),
                after(deal, utc(date(2025, 9, 15) + timedelta(days=rng.randint(0, 14)), 11, 50)),
                {"cap": None}, "cap removed from October",
            ))
        elif deal.products is not None and roll < 0.2:
            codes = {FAMILIES[f][0] for f in customer.families}
            extra = sorted(p for p in customer.assortment if p.split("-")[1] in codes)
            wider = sorted({*deal.products, *extra})
            if len(wider) > len(deal.products):
                found.append(Amendment(
                    deal.agreement_id, date(2025, 10, 1),
                    after(deal, utc(date(2025, 9, 1) + timedelta(days=rng.randint(0, 24)), 11, 55)),
                    {"products": wider}, "every family the customer buys, from October",
                ))
    found.sort(key=lambda a: a.recorded_at)
    return tuple(found)


# The history: the plan laid out in recorded order, with decisions that ask the ledger -------


@dataclass(frozen=True)
class Deliberate:
    """A line that must be rejected; `expect` is a word its rejection reason must contain."""

    line: bytes
    expect: str
    why: str


@dataclass(frozen=True)
class Tick:
    """A new recording day begins (for the progress bar)."""

    day: date


class Flush:
    """Apply everything so far: the next line is decided by asking the ledger."""


FLUSH = Flush()


@dataclass(frozen=True)
class Close:
    """Finance closes a quarter: `rebate-ledger close-period` at that moment."""

    period: str
    start: date
    end: date
    moment: datetime


Item = bytes | Deliberate | Tick | Flush | Close
Ask = Callable[[date], list[LiabilityRow]]


@dataclass(frozen=True)
class Decision:
    """At its moment, ask the ledger the liability as of `as_of`, then `decide`."""

    as_of: date
    decide: Callable[[list[LiabilityRow], datetime], None]


@dataclass
class PendingClaim:
    claim_id: str
    agreement_id: str
    amount: Decimal
    over_claim: bool = False


def earned(row: LiabilityRow) -> Decimal:
    """The earned rebate of a row (contract 2.6, earned method): what approvals may not exceed,
    whatever the agreement's accrual method. Same pure rules as the ledger's."""
    terms = row.terms
    if terms is None or terms.accrual_method == "earned":
        return row.accrued
    basis = row.quantity if terms.basis == "quantity" else row.amount
    measure = row.quantity if terms.rate_kind == "per_unit" else row.amount
    return accrue(
        tiers=terms.tiers, tier_method=terms.tier_method, accrual_method="earned",
        basis=basis, measure=measure, forecast_basis=None, cap=terms.cap,
    ).accrued


class History:
    """The book in recorded order, streamed day by day.

    Each recording day has an agenda of (moment, payload); a payload is a line, a deliberate
    bad line, or a `Decision`. Sales of an invoice day are put on the agenda of the day they are
    recorded (one to three days later, or after the quarter's close for late ones), so only a
    few days of lines are ever pending.
    """

    def __init__(self, plan: Plan, ask: Ask) -> None:
        self.plan = plan
        self.ask = ask
        self.rng = random.Random(plan.seed * 7919 + 1)
        self.customers = {c.customer_id: c for c in plan.customers}
        self.deals = {a.agreement_id: a for a in plan.agreements}
        self.agenda: dict[date, list[tuple[datetime, int, Any]]] = defaultdict(list)
        self.order = itertools.count()
        self.today: date = date.min  # the recording day being emitted
        self.today_heap: list[tuple[datetime, int, Any]] = []
        self.sale_numbers = itertools.count(1)
        self.claim_numbers = itertools.count(1)
        self.payment_numbers = itertools.count(1)
        self.slots: Counter[date] = Counter()  # sales recorded per day: one second apart
        self.approved: dict[str, Decimal] = defaultdict(Decimal)  # agreement -> approved
        self.pending: list[PendingClaim] = []
        self.stats: Counter[str] = Counter()
        self.late_sale: dict[str, Any] = {}  # the story's late sale, once generated
        #: The featured customer's Q2 quantity as the books stand at Q2's close.
        self.story_basis = 0
        self.resend_pool: list[dict[str, Any]] = []

    # Scheduling -------------------------------------------------------------------------

    def schedule(self, moment: datetime, payload: Any) -> None:
        day = moment.date()
        entry = (moment, next(self.order), payload)
        if day == self.today:
            heapq.heappush(self.today_heap, entry)
        else:
            assert day > self.today, f"cannot schedule {moment} on {self.today}"
            assert day <= HISTORY_END, f"{moment} is after the end of the history"
            self.agenda[day].append(entry)

    def command(self, moment: datetime, body: dict[str, Any]) -> None:
        self.schedule(moment, orjson.dumps({**body, "recorded_at": stamp(moment)}))
        self.stats[body["type"]] += 1

    def deliberate(self, moment: datetime, body: dict[str, Any], expect: str, why: str) -> None:
        line = orjson.dumps({**body, "recorded_at": body.get("recorded_at", stamp(moment))})
        self.schedule(moment, Deliberate(line, expect, why))

    # The stream ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Item]:
        self.schedule_plan()
        day = YEAR_START
        while day <= HISTORY_END:
            if day <= YEAR_END:
                self.invoice_day(day)
            yield Tick(day)
            yield from self.record_day(day)
            day += timedelta(days=1)
        assert not self.agenda, f"scheduled beyond the history: {sorted(self.agenda)[:3]}"

    def record_day(self, day: date) -> Iterator[Item]:
        self.today = day
        self.today_heap = self.agenda.pop(day, [])
        heapq.heapify(self.today_heap)
        while self.today_heap:
            moment, _, payload = heapq.heappop(self.today_heap)
            if isinstance(payload, Decision):
                yield FLUSH  # the ledger must hold everything before this moment
                payload.decide(self.ask(payload.as_of), moment)
            else:
                yield payload
        self.slots.pop(day, None)

    def schedule_plan(self) -> None:
        for group in self.plan.groups:
            self.command(GROUP_CREATED_AT, group.create())
            for change in group.changes:
                self.command(change.recorded_at, change.body)
        for deal in self.plan.agreements:
            self.command(deal.recorded_at, deal.command())
        for amendment in self.plan.amendments:
            self.command(amendment.recorded_at, amendment.command())
        for quarter, quarter_end in enumerate(QUARTER_ENDS, start=1):
            submit_day = quarter_end + SUBMIT_LAG
            self.schedule(utc(submit_day, 10),
                          Decision(quarter_end, partial(self.submit_claims, quarter)))
            approve_day = submit_day + APPROVE_LAG
            self.schedule(utc(approve_day, 11), Decision(approve_day, self.approve_claims))
            self.schedule(close_of(quarter_end), Close(
                f"{quarter_end.year}-Q{quarter}", date(quarter_end.year, 3 * quarter - 2, 1),
                quarter_end, close_of(quarter_end)))
            if quarter < 4:
                self.schedule(utc(quarter_end + REVISE_LAG, 11, 30),
                              Decision(quarter_end, partial(self.revise, quarter_end)))
        self.schedule(utc(WRITE_OFF_ON, 14), Decision(YEAR_END, self.write_off))
        self.schedule_bad_lines()

    # Sales ------------------------------------------------------------------------------

    def invoice_day(self, day: date) -> None:
        if day.weekday() >= 5:
            return
        for customer in self.plan.customers:
            if customer.churn_on is not None and day >= customer.churn_on:
                continue
            expected = customer.activity * SEASON_PERCENT[day.month]  # lines per 10,000 days
            lines = expected // 10_000 + (self.rng.randrange(10_000) < expected % 10_000)
            for _ in range(lines):
                self.sale(customer, day)
        if day == self.plan.story.late_invoice_date:
            self.story_late_sale(day)
        if day == date(2025, 5, 12):  # the ERP will send some of today's sales twice
            self.schedule_resends()

    def sale(self, customer: Customer, day: date) -> None:
        rng = self.rng
        product = rng.choice(customer.assortment)
        is_return = rng.randrange(1000) < RETURN_PER_MILLE
        quantity = -rng.randint(1, max(1, customer.order_max // 4)) if is_return else (
            rng.randint(1, customer.order_max))
        body = self.sale_body(customer, product, quantity, day)
        quarter_end = next(q for q in QUARTER_ENDS if q >= day)
        featured = customer.customer_id == self.plan.story.customer_id
        if (not is_return and not featured and (quarter_end - day).days < 7
                and rng.randrange(1000) < LATE_PER_MILLE):
            # Invoiced at the end of the quarter, recorded after its books closed.
            recorded = quarter_end + CLOSE_LAG + timedelta(days=rng.randint(1, 10))
            self.command(utc(recorded, 8) + self.slot(recorded), body)
            self.stats["late sales"] += 1
            return
        recorded = day + timedelta(days=rng.choice((1, 1, 1, 2, 3)))
        self.command(utc(recorded, 6) + self.slot(recorded), body)
        if featured and day <= self.plan.story.quarter_end:
            self.story_basis += quantity
        if is_return:
            self.stats["returns"] += 1
        elif rng.randrange(1000) < REVERSAL_PER_MILLE:
            reversed_on = recorded + timedelta(days=rng.randint(1, 10))
            if featured and reversed_on <= self.plan.story.quarter_end:
                self.story_basis -= quantity
            when = reversed_on + timedelta(days=rng.randint(0, 2))
            self.command(utc(when, 7) + self.slot(when), {
                "type": "reverse_sale", "sale_id": body["sale_id"],
                "reversed_on": reversed_on.isoformat(),
            })
        if day == date(2025, 5, 12) and len(self.resend_pool) < 4 and not is_return:
            self.resend_pool.append(body)

    def sale_body(
        self, customer: Customer, product: str, quantity: int, day: date
    ) -> dict[str, Any]:
        return {
            "type": "record_sale",
            "sale_id": f"INV-{next(self.sale_numbers):07d}",
            "customer_id": customer.customer_id,
            "product_id": product,
            "quantity": str(quantity),
            "amount": text(customer.prices[product] * quantity),
            "currency": customer.currency,
            "invoice_date": day.isoformat(),
        }

    def slot(self, day: date) -> timedelta:
        """Lines recorded the same day by the ERP arrive one second apart."""
        self.slots[day] += 1
        return timedelta(seconds=self.slots[day])

    def story_late_sale(self, day: date) -> None:
        """A big end-of-quarter order of the featured customer, invoiced on the quarter's last
        day, recorded after Q2 closed. Sized, when an order can be that big, to lift the Q2
        basis over the next tier: retroactively, every unit of the quarter then earns more."""
        customer = self.customers[self.plan.story.customer_id]
        product = customer.assortment[0]
        quantity = customer.order_max * 6
        above = [start for start, _ in self.plan.story.old_tiers if start > self.story_basis]
        if above and above[0] - self.story_basis <= customer.order_max * 12:
            quantity = int(above[0] - self.story_basis) + customer.order_max
        body = self.sale_body(customer, product, quantity, day)
        self.late_sale = body
        self.command(self.plan.story.late_recorded_at, body)
        self.stats["late sales"] += 1

    # Claims, forecasts, write-off: decided from the ledger's answers ---------------------------

    def claimable(self, row: LiabilityRow) -> Decimal:
        return earned(row) - self.approved[row.agreement_id]

    def submit_claims(self, quarter: int, rows: list[LiabilityRow], at: datetime) -> None:
        """Customers claim what they earned up to the quarter's end, less what was approved
        before; some over-claim (finance approves part), one wildly (the over-approval)."""
        quarter_end = QUARTER_ENDS[quarter - 1]
        for row in rows:
            customer = self.customers.get(row.customer_id or "")  # None: a group's head office
            if customer is not None and customer.churn_on is not None and (
                    customer.churn_on <= quarter_end):
                continue  # a customer that stopped trading claims no more
            if customer is not None and quarter % customer.claims_every:
                continue
            claimable = self.claimable(row)
            if claimable < CLAIM_MINIMUM:
                continue
            amount, over = claimable, False
            if quarter == 2 and not any(p.over_claim for p in self.pending) and (
                    row.agreement_id != self.plan.story.agreement_id):
                amount, over = cents(claimable * 2) + 1000, True
            elif self.rng.randrange(100) < 8:
                amount = cents(claimable * Decimal(self.rng.randint(102, 110)) / 100)
            claim = PendingClaim(f"CLM-2025Q{quarter}-{next(self.claim_numbers):05d}",
                                 row.agreement_id, amount, over)
            self.pending.append(claim)
            self.command(at, {
                "type": "submit_claim", "claim_id": claim.claim_id,
                "agreement_id": claim.agreement_id, "amount": text(amount),
                "submitted_on": at.date().isoformat(),
            })

    def approve_claims(self, rows: list[LiabilityRow], at: datetime) -> None:
        """Finance approves each claim up to what is available (earned as of today less what
        was approved before), rejects a few, and schedules the payments."""
        by_id = {row.agreement_id: row for row in rows}
        for claim in self.pending:
            if not claim.over_claim and self.rng.randrange(100) < 5:
                self.reject(claim, at, self.rng.choice(REJECT_REASONS))
                continue
            available = self.claimable(by_id[claim.agreement_id])
            if claim.over_claim and claim.amount > available:
                self.deliberate(at, approve_body(claim, at, None), "available",
                                "approves a claim for more than the agreement has earned")
            amount = min(claim.amount, available)
            if amount < CENT:
                self.reject(claim, at, "nothing left to approve: returns reduced the earnings")
                continue
            self.command(at, approve_body(claim, at, None if amount == claim.amount else amount))
            self.approved[claim.agreement_id] += amount
            if amount < claim.amount:
                self.stats["claims approved in part"] += 1
            self.schedule_payments(claim, amount, at.date())
        self.pending = []

    def reject(self, claim: PendingClaim, at: datetime, reason: str) -> None:
        self.command(at, {"type": "reject_claim", "claim_id": claim.claim_id,
                          "rejected_on": at.date().isoformat(), "reason": reason})

    def schedule_payments(self, claim: PendingClaim, amount: Decimal, approved_on: date) -> None:
        """Paid a fortnight later; one claim in four in two instalments."""
        first = approved_on + PAY_LAG
        instalments: list[tuple[date, Decimal | None]] = [(first, None)]
        if self.rng.randrange(4) == 0:
            part = cents(amount * Decimal("0.6"), ROUND_DOWN)
            instalments = [(first, part), (first + INSTALMENT_GAP, None)]
        for paid_on, paid_amount in instalments:
            body: dict[str, Any] = {
                "type": "settle_claim", "claim_id": claim.claim_id,
                "paid_on": paid_on.isoformat(),
                "payment_ref": f"PAY-{paid_on.year}-{next(self.payment_numbers):05d}",
            }
            if paid_amount is not None:
                body["paid_amount"] = text(paid_amount)
            self.command(utc(paid_on, 12), body)
            if not self.stats["resent settlements"]:
                # the bank file is loaded twice: the same payment_ref again changes nothing
                self.command(utc(paid_on, 12, 5), body)
                self.stats["resent settlements"] += 1

    def revise(self, quarter_end: date, rows: list[LiabilityRow], at: datetime) -> None:
        """Forecast agreements are re-forecast to the run rate of the basis so far."""
        for row in rows:
            deal = self.deals[row.agreement_id]
            if deal.accrual_method != "forecast" or deal.customer_id is None:
                continue
            if self.customers[deal.customer_id].churn_on is not None:
                continue
            elapsed = (quarter_end - deal.period_start).days + 1
            if elapsed <= 0 or row.basis <= 0 or self.rng.randrange(10) >= 6:
                continue
            length = (deal.period_end - deal.period_start).days + 1
            forecast = nice(row.basis * length / elapsed)
            if forecast > 0:
                self.command(at, {
                    "type": "revise_forecast", "agreement_id": row.agreement_id,
                    "forecast_basis": text(forecast),
                    "effective_from": (quarter_end + timedelta(days=1)).isoformat(),
                })

    def write_off(self, rows: list[LiabilityRow], at: datetime) -> None:
        """What the customers that stopped trading never claimed is written off at year end;
        failing those, the smallest positive balance."""
        owed = [r for r in rows if r.liability > 0]
        gone = [r for r in owed if r.customer_id in self.customers
                and self.customers[r.customer_id].churn_on is not None]
        chosen = gone or sorted(owed, key=lambda r: (r.liability, r.agreement_id))[:1]
        bodies = []
        for number, row in enumerate(chosen, start=1):
            bodies.append({
                "type": "write_off", "write_off_id": f"WO-2025-{number:03d}",
                "agreement_id": row.agreement_id,
                "amount": text(row.liability), "effective_date": YEAR_END.isoformat(),
                "reason": "customer stopped trading; unclaimed rebate forfeited (clause 9.2)"
                if gone else "residual balance below the claim minimum",
            })
            self.command(at, bodies[-1])
        if bodies:  # the write-off file is loaded again the next day: duplicates
            self.command(at + timedelta(days=1), bodies[0])
            self.stats["resent write-offs"] += 1
        # one written off by mistake (a customer still trading), reversed a week later
        mistaken = [r for r in owed if r not in chosen and r.customer_id in self.customers]
        if mistaken:
            row = min(mistaken, key=lambda r: (r.liability, r.agreement_id))
            self.command(at + timedelta(minutes=5), {
                "type": "write_off", "write_off_id": "WO-2025-900",
                "agreement_id": row.agreement_id, "amount": text(row.liability),
                "effective_date": YEAR_END.isoformat(), "reason": "residual balance (in error)",
            })
            self.command(at + timedelta(days=6), {
                "type": "reverse_write_off", "write_off_id": "WO-2025-900",
                "reversed_on": YEAR_END.isoformat(),
                "reason": "written off in error: the customer still trades and will claim",
            })

    # Bad lines ----------------------------------------------------------------------------

    def schedule_resends(self) -> None:
        """The ERP sends three of 12 May's sales again a week later (duplicates: accepted,
        nothing changes), and one of them with a changed amount (rejected)."""
        if len(self.resend_pool) < 4:  # a tiny book may not have enough sales that day
            return
        at = utc(date(2025, 5, 20), 13)
        for body in self.resend_pool[:3]:
            self.command(at, body)
            self.stats["resent duplicates"] += 1
        changed = self.resend_pool[3]
        self.deliberate(at, {**changed, "amount": text(Decimal(changed["amount"]) + 10)},
                        "sale_id", "re-sends a recorded sale with a different amount")

    def schedule_bad_lines(self) -> None:
        plan = self.plan
        customer = plan.customers[1 % len(plan.customers)]
        product = customer.assortment[0]
        self.deliberate(utc(date(2025, 2, 3), 9, 30), {
            **plan.agreements[-1].command(), "agreement_id": "RB-2025-9000", "currency": "eur",
        }, "currency", "creates an agreement with a lower-case currency")
        self.deliberate(utc(date(2025, 3, 12), 13), {
            "type": "record_sale", "sale_id": "INV-9000001", "customer_id": customer.customer_id,
            "product_id": product, "quantiy": "3", "amount": text(customer.prices[product] * 3),
            "currency": customer.currency, "invoice_date": "2025-03-11",
        }, "quantiy", "a sale with a misspelt field (quantiy)")
        self.deliberate(utc(date(2025, 6, 3), 11, 45), self.invalid_amendment(),
                        "incremental", "an amendment that leaves the terms invalid")
        self.deliberate(utc(date(2025, 9, 3), 13), {
            "type": "reverse_sale", "sale_id": "INV-O000123", "reversed_on": "2025-09-02",
        }, "INV-O000123", "reverses a sale that does not exist (letter O for zero)")
        self.deliberate(utc(date(2025, 10, 1), 13), {
            "type": "record_sale", "sale_id": "INV-9000002", "customer_id": customer.customer_id,
            "product_id": product, "quantity": "2", "amount": text(customer.prices[product] * 2),
            "currency": customer.currency, "invoice_date": "2025-01-14",
            "recorded_at": "2025-01-15T06:00:00Z",
        }, "recorded_at", "a line from an old file: recorded_at goes back in time")
        self.deliberate(utc(date(2025, 10, 15), 13), {
            "type": "submit_claim", "claim_id": "CLM-2025Q3-99999",
            "agreement_id": "RB-2025-9999", "amount": "120.00", "submitted_on": "2025-10-15",
        }, "RB-2025-9999", "a claim against an agreement that does not exist")
        self.deliberate(utc(date(2025, 2, 4), 9, 30), {
            "type": "create_agreement", "agreement_id": "RB-2025-9001",
            "customer_id": customer.customer_id, "currency": customer.currency,
            "period_start": "2025-01-01", "period_end": "2025-12-31", "basis": "amount",
            "tier_method": "retroactive", "rate_kind": "percent",
            "tiers": [{"from": "0", "rate": "2"}],
        }, "100 %", "a percent rate typed as 2 (200 %) instead of 0.02")

    def invalid_amendment(self) -> dict[str, Any]:
        """Make an incremental amount/percent deal use a quantity basis (not allowed), or,
        without one, end a deal before it starts."""
        for deal in self.plan.agreements:
            if deal.tier_method == "incremental" and deal.basis == "amount":
                return {"type": "amend_agreement", "agreement_id": deal.agreement_id,
                        "effective_from": "2025-06-01", "basis": "quantity"}
        deal = self.plan.agreements[-1]
        return {"type": "amend_agreement", "agreement_id": deal.agreement_id,
                "effective_from": "2025-06-01", "period_end": "2024-12-31"}


def approve_body(claim: PendingClaim, at: datetime, amount: Decimal | None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "approve_claim", "claim_id": claim.claim_id,
                            "approved_on": at.date().isoformat()}
    if amount is not None:
        body["approved_amount"] = text(amount)
    return body


# Loading: apply the history in segments between decisions ---------------------------------


@dataclass(frozen=True)
class DemoRejection:
    line: int  # in the whole book (and in demo.jsonl)
    command_type: str
    field: str
    reason: str
    deliberate: Deliberate | None


@dataclass
class Loaded:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: list[DemoRejection] = field(default_factory=list)
    by_type: Counter[str] = field(default_factory=Counter)
    deliberate: dict[int, Deliberate] = field(default_factory=dict)  # by line number
    closes: list[str] = field(default_factory=list)  # quarters closed (close-period)

    @property
    def unexpected(self) -> list[DemoRejection]:
        return [r for r in self.rejected if r.deliberate is None]

    @property
    def slipped_through(self) -> list[tuple[int, Deliberate]]:
        """Deliberately bad lines the ledger accepted (there should be none)."""
        rejected = {r.line for r in self.rejected}
        return [(n, d) for n, d in sorted(self.deliberate.items()) if n not in rejected]


class Segment:
    """The lines up to the next decision, counted, written to the book file, handed to
    `apply_lines`."""

    def __init__(
        self, head: Item, rest: Iterator[Item], loaded: Loaded,
        on_day: Callable[[date, int], None], book: IO[bytes] | None,
    ) -> None:
        self.head, self.rest, self.loaded = head, rest, loaded
        self.on_day, self.book = on_day, book
        self.offset = loaded.lines
        self.close: Close | None = None  # the close that ended the segment, if one did

    def lines(self) -> Iterator[bytes]:
        for item in itertools.chain((self.head,), self.rest):
            if isinstance(item, Flush):
                return
            if isinstance(item, Close):
                self.close = item
                return
            if isinstance(item, Tick):
                self.on_day(item.day, self.loaded.lines)
                continue
            line = item.line if isinstance(item, Deliberate) else item
            self.loaded.lines += 1
            if isinstance(item, Deliberate):
                self.loaded.deliberate[self.loaded.lines] = item
            if self.book is not None:
                self.book.write(line + b"\n")
            yield line

    def absorb(self, report: ApplyReport) -> None:
        self.loaded.accepted += report.accepted
        self.loaded.duplicates += len(report.duplicates)
        self.loaded.by_type.update(report.by_type)
        for r in report.rejected:
            number = r.line  # the book's line: the segment was applied from offset + 1 on
            self.loaded.rejected.append(DemoRejection(
                number, r.command_type, r.field, r.reason, self.loaded.deliberate.get(number)))


def load_history(
    ledger: Ledger, history: History, *, on_day: Callable[[date, int], None] | None = None,
    book: IO[bytes] | None = None,
) -> Loaded:
    """Apply the history: each segment in one `apply_lines` call; at a decision the ledger
    answers the question over everything applied so far."""
    loaded = Loaded()
    items = iter(history)
    # The next item is pulled outside `apply_lines`, so a decision asks the ledger while no
    # write is under way.
    head = next(items, None)
    while head is not None:
        segment = Segment(head, items, loaded, on_day or (lambda day, lines: None), book)
        segment.absorb(ledger.apply_lines(segment.lines(), source="demo",
                                          first_line=segment.offset + 1))
        if segment.close is not None:
            close = segment.close
            ledger.close_period(close.period, close.start, close.end, close.moment)
            loaded.closes.append(close.period)
        head = next(items, None)
    return loaded


# Reading the book back --------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    currency: str
    agreements: int
    accrued: Decimal
    approved: Decimal
    paid: Decimal
    written_off: Decimal
    liability: Decimal


def totals_by_currency(rows: list[LiabilityRow]) -> dict[str, Totals]:
    result = {}
    for currency in sorted({r.currency for r in rows}):
        mine = [r for r in rows if r.currency == currency]
        result[currency] = Totals(
            currency, len(mine),
            *(sum((getattr(r, name) for r in mine), ZERO)
              for name in ("accrued", "approved", "paid", "written_off", "liability")),
        )
    return result


@dataclass(frozen=True)
class QuarterView:
    as_of: date
    close: datetime
    rows: list[LiabilityRow]  # as known now
    rows_at_close: list[LiabilityRow]  # as known when the quarter closed

    @property
    def totals(self) -> dict[str, Totals]:
        return totals_by_currency(self.rows)

    @property
    def totals_at_close(self) -> dict[str, Totals]:
        return totals_by_currency(self.rows_at_close)


@dataclass(frozen=True)
class StoryView:
    story: Story
    late_sale: dict[str, Any]  # the record_sale command
    at_close: LiabilityRow
    before_amendment: LiabilityRow  # known just before the amendment was recorded
    now: LiabilityRow

    @property
    def before_amendment_known_at(self) -> datetime:
        return self.story.amendment.recorded_at - timedelta(microseconds=1)


@dataclass(frozen=True)
class GroupView:
    """The group agreement with the late join, at Q2's end: as known at Q2's close, just
    before and just after the join was recorded, and now."""

    group: GroupPlan
    at_close: LiabilityRow
    before_join: LiabilityRow
    after_join: LiabilityRow
    now: LiabilityRow


def survey_group(ledger: Ledger, plan: Plan) -> GroupView | None:
    group = next((g for g in plan.groups if g.late_joiner is not None), None)
    if group is None:
        return None
    quarter_end = QUARTER_ENDS[1]

    def row(known_at: datetime | None) -> LiabilityRow:
        (found,) = ledger.liability(quarter_end, known_at, agreement_id=group.agreement_id)
        return found

    return GroupView(group, row(close_of(quarter_end)),
                     row(LATE_JOIN_RECORDED - timedelta(microseconds=1)),
                     row(LATE_JOIN_RECORDED), row(None))


def survey(
    ledger: Ledger, story: Story, late_sale: dict[str, Any]
) -> tuple[list[QuarterView], StoryView]:
    """The quarter ends as known now and at close, and the story's agreement at Q2 end as
    known at close, just before the amendment, and now."""
    quarters = [
        QuarterView(end, close_of(end), ledger.liability(end), ledger.liability(end, close_of(end)))
        for end in QUARTER_ENDS
    ]

    def row(known_at: datetime | None) -> LiabilityRow:
        (found,) = ledger.liability(story.quarter_end, known_at, agreement_id=story.agreement_id)
        return found

    view = StoryView(
        story, late_sale, row(story.close),
        row(story.amendment.recorded_at - timedelta(microseconds=1)), row(None),
    )
    return quarters, view


# Running and printing ----------------------------------------------------------------------


@dataclass
class DemoResult:
    database_url: str
    book_path: Path | None
    plan: Plan
    stats: Counter[str]
    loaded: Loaded
    quarters: list[QuarterView]
    story: StoryView
    seconds: float
    group: GroupView | None = None


def demo_store(database: str | None, book_path: Path | None) -> tuple[str, Path | None]:
    """The demo's database URL (a fresh `demo.db` under LEDGER_HOME unless given) and where
    the book is written (next to it by default)."""
    if database is not None:
        return database, book_path
    home = Settings().home
    home.mkdir(parents=True, exist_ok=True)
    path = (home / "demo.db").resolve()
    for stale in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        stale.unlink(missing_ok=True)
    for stale in path.parent.glob(f"{path.stem}.*.g*.db*"):  # projection generations
        stale.unlink()
    return f"sqlite:///{path}", book_path or home.resolve() / "demo.jsonl"


def run_demo(
    database: str | None = None,
    seed: int = SEED_DEFAULT,
    console: Console | None = None,
    *,
    customers: int = CUSTOMERS_DEFAULT,
    book_path: Path | None = None,
) -> DemoResult:
    """Generate the 2025 book from `seed`, apply it, and print what the ledger says.

    `database`: a SQLAlchemy URL of an empty store; default a fresh SQLite file `demo.db`
    under LEDGER_HOME (./.rebate-ledger), replaced on every run, with the book written beside
    it as `demo.jsonl`. `customers` sizes the book (300 by default; tests use a few dozen).
    """
    console = console or Console()
    started = time.perf_counter()
    url, book_path = demo_store(database, book_path)
    plan = plan_book(seed, customers)
    print_intro(console, plan)
    with Ledger(url) as ledger:
        history = History(plan, ask=ledger.liability)
        book = book_path.open("wb") if book_path is not None else None
        try:
            loaded = load_with_progress(console, ledger, history, book)
        finally:
            if book is not None:
                book.close()
        quarters, story = survey(ledger, plan.story, history.late_sale)
        group = survey_group(ledger, plan)
    result = DemoResult(url, book_path, plan, history.stats, loaded, quarters, story,
                        time.perf_counter() - started, group)
    print_loaded(console, result)
    print_quarters(console, quarters)
    print_top(console, plan, quarters[-1])
    print_story(console, story, plan)
    print_groups(console, result)
    print_next(console, result)
    return result


def load_with_progress(
    console: Console, ledger: Ledger, history: History, book: IO[bytes] | None
) -> Loaded:
    total = (HISTORY_END - YEAR_START).days + 1
    with Progress(
        TextColumn("loading the 2025 book"), BarColumn(), TextColumn("{task.fields[day]}"),
        TextColumn("{task.fields[lines]:>7} lines"), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("load", total=total, day="", lines=0)

        def on_day(day: date, lines: int) -> None:
            progress.update(task, completed=(day - YEAR_START).days + 1, day=day.isoformat(),
                            lines=lines)

        return load_history(ledger, history, on_day=on_day, book=book)


def print_intro(console: Console, plan: Plan) -> None:
    shapes = len({a.variant for a in plan.agreements})
    console.print(
        f"[bold]rebate-ledger demo[/bold] (seed {plan.seed}): {len(plan.customers)} customers, "
        f"{len(plan.agreements)} agreements ({shapes} of the {len(VARIANTS)} agreement shapes), "
        f"{len(plan.products)} products in {len(FAMILIES)} families; calendar 2025, loaded as "
        "history (every command carries its recorded_at).",
        highlight=False,
    )


def print_loaded(console: Console, result: DemoResult) -> None:
    loaded, stats = result.loaded, result.stats
    console.print(
        f"\n[bold]Applied {loaded.lines:,} lines[/bold] in {result.seconds:.1f} s: "
        f"accepted {loaded.accepted:,}, duplicates {loaded.duplicates}, "
        f"rejected {len(loaded.rejected)}", highlight=False,
    )
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(loaded.by_type.items()))
    console.print(f"  by command: {kinds}", highlight=False)
    console.print(
        f"  of which {stats['returns']:,} returns (negative lines), {stats['late sales']} late "
        f"sales (recorded after their quarter closed), {stats['resent duplicates']} sales the "
        f"ERP sent twice, {stats['claims approved in part']} claims approved in part",
        highlight=False,
    )
    if loaded.closes:
        console.print(
            f"  finance closed {', '.join(loaded.closes)} ten days after each quarter's end "
            "(close-period): later changes show as post-close adjustments in diff and "
            "reconcile", highlight=False,
        )
    console.print(
        f"  The book holds {len(loaded.deliberate)} deliberately bad lines; the ledger rejects "
        "each with a reason and applies everything around them:", highlight=False,
    )
    for r in loaded.rejected:
        note = f"[dim](deliberate: {r.deliberate.why})[/dim]" if r.deliberate else (
            "[red](UNEXPECTED: is the database fresh?)[/red]")
        console.print(f"  line {r.line:>6} {r.command_type}: {escape(r.reason)} {note}",
                      highlight=False)
    for number, bad in loaded.slipped_through:
        console.print(f"  [red]line {number} was accepted but should not be: {bad.why}[/red]")


def compact_table(title: str, caption: str | None = None) -> Table:
    """A table that fits 80 columns: no outer edge, one space between columns."""
    return Table(title=title, caption=caption, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0),
                 pad_edge=False, show_edge=False, title_justify="left", caption_justify="left")


def print_quarters(console: Console, quarters: list[QuarterView]) -> None:
    ends = ", ".join(f"Q{n} {view.as_of}" for n, view in enumerate(quarters, start=1))
    table = compact_table(
        f"Liability at the quarter ends of 2025 ({ends}), as known now",
        "at close: the liability as the books stood when the quarter closed, ten days after "
        "its end (--known-at)",
    )
    for name in ("", "cur", "agr.", "accrued", "approved", "paid", "w/off", "liability",
                 "at close"):
        table.add_column(name, justify="left" if name in ("", "cur") else "right", no_wrap=True)
    for number, view in enumerate(quarters, start=1):
        at_close = view.totals_at_close
        for index, (currency, t) in enumerate(view.totals.items()):
            close = at_close.get(currency)
            table.add_row(
                f"Q{number}" if index == 0 else "", currency,
                str(t.agreements),
                *(format_money(v) for v in (t.accrued, t.approved, t.paid, t.written_off,
                                            t.liability)),
                format_money(close.liability) if close else "-",
            )
        table.add_section()
    console.print()
    console.print(table)


def short_terms(deal: AgreementPlan) -> str:
    basis = {"quantity": "qty", "amount": "amt"}[deal.basis]
    rate = {"per_unit": "unit", "percent": "%"}[deal.rate_kind]
    method = {"retroactive": "retro", "incremental": "incr"}[deal.tier_method]
    words = [method, f"{basis}/{rate}", deal.accrual_method]
    words += [w for w, on in (("products", deal.products), ("cap", deal.cap)) if on is not None]
    return " ".join(words)


def print_top(console: Console, plan: Plan, year_end: QuarterView) -> None:
    table = compact_table(f"Top 5 agreements by liability at {year_end.as_of} (mixed currencies)")
    for name in ("agreement", "customer", "cur", "basis", "accrued", "paid", "liability"):
        numeric = name in ("basis", "accrued", "paid", "liability")
        table.add_column(name, justify="right" if numeric else "left", no_wrap=True)
    table.add_column("terms", max_width=40)
    for row in sorted(year_end.rows, key=lambda r: (-r.liability, r.agreement_id))[:5]:
        who = row.customer_id if row.group_id is None else f"group {row.group_id}"
        table.add_row(row.agreement_id, who, row.currency, format_decimal(row.basis),
                      format_money(row.accrued), format_money(row.paid),
                      format_money(row.liability), short_terms(plan.agreement(row.agreement_id)))
    console.print()
    console.print(table)


def print_story(console: Console, view: StoryView, plan: Plan) -> None:
    story = view.story
    table = compact_table(f"How closed Q2 changed: {story.agreement_id} ({story.customer_id}), "
                          f"as of {story.quarter_end}")
    for name in ("as known at", "basis", "accrued", "liability", "change"):
        table.add_column(name, justify="left" if name == "as known at" else "right")
    steps = (
        (f"{stamp(story.close)} (Q2 close)", view.at_close, None),
        (f"{stamp(view.before_amendment_known_at)} (+ late sale)", view.before_amendment,
         view.at_close),
        ("now (+ amendment)", view.now, view.before_amendment),
    )
    for label, row, before in steps:
        change = "" if before is None else f"{row.liability - before.liability:+.2f}"
        table.add_row(label, format_decimal(row.basis), format_money(row.accrued),
                      format_money(row.liability), change)
    console.print()
    console.print(table)
    sale = view.late_sale
    console.print(
        f"  late sale {sale['sale_id']} ({sale['quantity']} × {sale['product_id']}, "
        f"{sale['amount']} {sale['currency']}): invoice_date {story.late_invoice_date} (in Q2), "
        f"recorded_at {stamp(story.late_recorded_at)}, after the close at {stamp(story.close)}; "
        f"it adds {sale['quantity']} units to the Q2 basis.", highlight=False,
    )
    console.print(
        f"  amendment: recorded_at {stamp(story.amendment.recorded_at)}, effective_from "
        f"{story.amendment.effective_from} ({story.amendment.why});\n"
        f"    tiers {tiers_text(story.old_tiers)}  ->  {tiers_text(story.new_tiers)}",
        highlight=False,
    )
    console.print(
        f"  Total change of the closed quarter: "
        f"{view.now.liability - view.at_close.liability:+.2f} {view.now.currency}; the books "
        "as they stood at close are still answered exactly (--known-at).", highlight=False,
    )


def print_groups(console: Console, result: DemoResult) -> None:
    """Contract v2: the buying groups, the program, and the late join that changed a closed
    quarter's group figure."""
    plan, year_end = result.plan, result.quarters[-1]
    console.print()
    for group in plan.groups:
        (row,) = [r for r in year_end.rows if r.agreement_id == group.agreement_id]
        console.print(
            f"  Buying group {group.group_id} ({group.name}): {len(group.members)} members, "
            f"agreement {group.agreement_id}; year-end basis {format_money(row.basis)} EUR, "
            f"liability {format_money(row.liability)} EUR", highlight=False, markup=False)
    enrolled = [r for r in year_end.rows if r.program_id == PROGRAM_ID]
    if enrolled:
        owed = sum((r.liability for r in enrolled), ZERO)
        console.print(
            f"  Program {PROGRAM_ID}: the same terms for {len(enrolled)} customers; year-end "
            f"liability {format_money(owed)} EUR (liability --program {PROGRAM_ID})",
            highlight=False, markup=False)
    view = result.group
    if view is None:
        return
    table = compact_table(
        f"How a late join changed closed Q2: {view.group.agreement_id} (group "
        f"{view.group.group_id}), as of {QUARTER_ENDS[1]}")
    for name in ("as known at", "basis", "accrued", "liability", "change"):
        table.add_column(name, justify="left" if name == "as known at" else "right")
    steps = (
        (f"{stamp(close_of(QUARTER_ENDS[1]))} (Q2 close)", view.at_close, None),
        (f"{stamp(LATE_JOIN_RECORDED - timedelta(seconds=1))} (+ late sales)", view.before_join,
         view.at_close),
        (f"{stamp(LATE_JOIN_RECORDED)} (+ late join)", view.after_join, view.before_join),
        ("now", view.now, view.after_join),
    )
    for label, row, before in steps:
        change = "" if before is None else f"{row.liability - before.liability:+.2f}"
        table.add_row(label, format_money(row.basis), format_money(row.accrued),
                      format_money(row.liability), change)
    console.print()
    console.print(table)
    console.print(
        f"  {view.group.late_joiner} joined {view.group.group_id} effective "
        f"{LATE_JOIN_FROM} (in Q2), recorded {stamp(LATE_JOIN_RECORDED)}, after Q2 closed: "
        "its Q2 purchases count from then on, and the books as they stood at close are still "
        "answered exactly (--known-at).", highlight=False, markup=False)


def print_next(console: Console, result: DemoResult) -> None:
    db = result.database_url
    story = result.story.story
    console.print("\n[bold]Next, try:[/bold]")
    commands = [
        f"rebate-ledger liability --as-of {story.quarter_end} --known-at "
        f"{stamp(story.close)} --agreement {story.agreement_id} --database {db}",
        f"rebate-ledger liability --as-of {YEAR_END} --format csv --database {db}",
        f"rebate-ledger rejections --database {db}",
    ]
    if result.book_path is not None:
        commands.append(
            f"rebate-ledger apply {result.book_path} --database sqlite:///another.db"
            f"   # the same book again (exit 1: its {len(result.loaded.deliberate)} bad lines)"
        )
    for line in commands:
        console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)


def print_pipeline(console: Any, result: PipelineResult, as_of: date) -> None:
    """The demo's Kafka part on screen: what went through the pipeline, and the liability read
    from the projection before and after the feed."""
    console.print(
        f"\n[bold]Through Kafka:[/bold] the ERP sent {result.produced:,} late December invoices "
        f"(and {result.poison} malformed records) to the sales topic; intake applied them, the "
        f"relay published every stored event, the liability projection caught up to store "
        f"position {result.projection_position:,}: {result.seconds:.1f} s, "
        f"{result.produced / result.seconds:,.0f} sales/s end to end.", highlight=False,
    )
    table = compact_table(
        f"Liability at {as_of}, read from the {result.source} (before the feed: the core)")
    for name in ("", "agreements", "before the feed", "after", "change"):
        table.add_column(name, justify="left" if not name else "right", no_wrap=True)
    before, after = totals_by_currency(result.before), totals_by_currency(result.after)
    for currency, totals in after.items():
        old = before.get(currency)
        old_value = old.liability if old is not None else Decimal(0)
        table.add_row(currency, str(totals.agreements), format_money(old_value),
                      format_money(totals.liability),
                      f"{totals.liability - old_value:+,.2f}")
    console.print(table)
    same = [r.to_dict() for r in result.after] == [r.to_dict() for r in result.core_after]
    console.print(
        f"  the projection's {len(result.after)} rows are identical to the core's: "
        f"{'yes' if same else '[red]NO[/red]'}", highlight=False)
    for source, reason in result.rejected_topic:
        console.print(f"  rejected topic: {escape(source)}: {escape(reason)}", highlight=False)
