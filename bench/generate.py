"""A deterministic synthetic book for the benchmark: agreements, then a year of sales.

Everything comes from one seeded `random.Random`, so the same arguments write the same bytes.
Figures are computed in integer cents and hundredths (never floats) and written as decimal
strings with two places, the way an ERP exports invoice lines.

- customers `C00001` …, one agreement each (`A00001` …), all for calendar 2025, in EUR except
  every tenth customer (USD); the agreements cycle through the contract's shapes (retroactive
  and incremental tiers, quantity and amount bases, a cap, a product list, the forecast method);
- a catalogue of products `P00001` … with fixed unit prices; each customer buys from its own
  assortment of a few dozen products;
- sales `S000000001` … spread evenly over 2025 in file order, one in twenty arriving late (its
  invoice dated up to 30 days earlier), one in a hundred a return (negative quantity and amount).
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import orjson

SEED = 20250101
YEAR_START = date(2025, 1, 1)
DAYS = 365
PRODUCTS = 2000
ASSORTMENT = 40
LATE_SHARE, LATE_DAYS_MAX = 0.05, 30
RETURN_SHARE = 0.01


@dataclass(frozen=True)
class Book:
    """Where the generated files are and what they hold."""

    agreements_path: Path
    sales_path: Path
    agreements: int
    sales: int


def customer_id(index: int) -> str:
    return f"C{index + 1:05d}"


def agreement_id(index: int) -> str:
    return f"A{index + 1:05d}"


def currency_of(index: int) -> str:
    return "USD" if index % 10 == 9 else "EUR"


def agreement_line(index: int, rng: random.Random) -> dict[str, object]:
    """One `create_agreement`; `index % 5` picks the shape, so every shape is well represented."""
    base: dict[str, object] = {
        "type": "create_agreement",
        "agreement_id": agreement_id(index),
        "customer_id": customer_id(index),
        "currency": currency_of(index),
        "period_start": "2025-01-01",
        "period_end": "2025-12-31",
    }
    shape = index % 5
    if shape == 0:
        base.update(basis="quantity", tier_method="retroactive", rate_kind="per_unit",
                    tiers=[{"from": "0", "rate": "0.50"}, {"from": "5000", "rate": "0.75"},
                           {"from": "20000", "rate": "1.00"}])
    elif shape == 1:
        base.update(basis="amount", tier_method="incremental", rate_kind="percent",
                    tiers=[{"from": "0", "rate": "0.01"}, {"from": "250000", "rate": "0.02"},
                           {"from": "1000000", "rate": "0.03"}])
    elif shape == 2:
        base.update(basis="amount", tier_method="retroactive", rate_kind="percent",
                    tiers=[{"from": "100000", "rate": "0.02"}, {"from": "500000", "rate": "0.04"}],
                    cap=f"{rng.randrange(5, 50) * 1000}.00")
    elif shape == 3:
        products = sorted(product_id(p) for p in rng.sample(assortment(index), 10))
        base.update(basis="quantity", tier_method="incremental", rate_kind="per_unit",
                    tiers=[{"from": "0", "rate": "0.25"}, {"from": "2000", "rate": "0.40"}],
                    products=products)
    else:
        base.update(basis="amount", tier_method="retroactive", rate_kind="percent",
                    tiers=[{"from": "0", "rate": "0.015"}, {"from": "400000", "rate": "0.03"}],
                    accrual_method="forecast",
                    forecast_basis=f"{rng.randrange(200, 900) * 1000}.00")
    return base


def product_id(index: int) -> str:
    return f"P{index + 1:05d}"


def assortment(customer: int) -> list[int]:
    """The products a customer buys: its own stable slice of the catalogue."""
    rng = random.Random(SEED * 7 + customer)
    return rng.sample(range(PRODUCTS), ASSORTMENT)


def cents(value: int) -> str:
    """Hundredths as a decimal string with two places ("-1234.50")."""
    sign = "-" if value < 0 else ""
    whole, part = divmod(abs(value), 100)
    return f"{sign}{whole}.{part:02d}"


def write_book(
    folder: Path, *, sales: int, agreements: int, seed: int = SEED, name: str = "book"
) -> Book:
    """Write `<name>-agreements.jsonl` and `<name>-sales.jsonl` into `folder`, streaming."""
    assert sales >= 1 and agreements >= 1
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    agreements_path = folder / f"{name}-agreements.jsonl"
    with agreements_path.open("wb") as out:
        for index in range(agreements):
            out.write(orjson.dumps(agreement_line(index, rng)) + b"\n")

    # Unit prices in cents, 1.50 to 250.00; some products sell by weight (fractional quantity).
    price_cents = [rng.randrange(150, 25_000) for _ in range(PRODUCTS)]
    by_weight = [rng.random() < 0.2 for _ in range(PRODUCTS)]
    assortments = [assortment(c) for c in range(agreements)]
    invoice_days = [(YEAR_START + timedelta(days=d)).isoformat() for d in range(DAYS)]

    sales_path = folder / f"{name}-sales.jsonl"
    with sales_path.open("wb") as out:
        for number in range(sales):
            customer = rng.randrange(agreements)
            product = rng.choice(assortments[customer])
            # Hundredths of a unit: whole units for most products, any weight for the others.
            if by_weight[product]:
                quantity = rng.randrange(50, 50_000)
            else:
                quantity = rng.randrange(1, 200) * 100
            amount = (quantity * price_cents[product] + 50) // 100  # half up, in cents
            if rng.random() < RETURN_SHARE:
                quantity, amount = -quantity, -amount
            day = number * DAYS // sales
            if rng.random() < LATE_SHARE:
                day = max(0, day - rng.randrange(1, LATE_DAYS_MAX + 1))
            line = {
                "type": "record_sale",
                "sale_id": f"S{number + 1:09d}",
                "customer_id": customer_id(customer),
                "product_id": product_id(product),
                "quantity": cents(quantity),
                "amount": cents(amount),
                "currency": currency_of(customer),
                "invoice_date": invoice_days[day],
            }
            out.write(orjson.dumps(line) + b"\n")
    return Book(agreements_path, sales_path, agreements, sales)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=1_000_000)
    parser.add_argument("--agreements", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args()
    book = write_book(args.out, sales=args.sales, agreements=args.agreements, seed=args.seed)
    print(f"wrote {book.agreements_path} and {book.sales_path}")


if __name__ == "__main__":
    main()
