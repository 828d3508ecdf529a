"""IFRS 15 Illustrative Example 24 (volume discount incentive), reproduced in the ledger.

An entity sells product A to a customer for 100 per unit. If the customer buys more than 1,000
units in a calendar year, the price drops retroactively to 90 per unit.

- Q1: 75 units sold. The entity expects the customer not to exceed 1,000 units this year:
  revenue 75 x 100 = 7,500.
- Q2: 500 units sold. The entity now expects the customer to exceed the threshold, so the price
  of every unit of the year falls to 90: revenue 500 x 100 = 50,000 less the price change on
  all 575 units, 575 x 10 = 5,750, that is 44,250.

In the ledger the price reduction is a rebate liability (IFRS 15's refund liability):

- basis `quantity`, `retroactive` tiers, rate `per_unit` of 10 (100 - 90);
- tiers `[{from: 0, rate: 0}, {from: 1001, rate: 10}]`. A tier is reached when the basis is
  >= its `from`, and "more than 1,000 units" of whole units is ">= 1,001"; `from: 1000` would
  wrongly reduce the price at exactly 1,000 units, and `1000.000001` would say the same as
  1001 for whole units but read as if fractions of a unit were sold;
- accrual method `forecast`: the entity's expectation of the year's units is the
  `forecast_basis`, 800 (below the threshold) held through Q1, revised to 1,200 in Q2.

Revenue of a quarter = sales amounts of the quarter - change in the accrued rebate over the
quarter, both read from the ledger.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from ledger import Ledger
from ledger.liability import LiabilityRow

YEAR_START = date(2025, 1, 1)
Q1_END = date(2025, 3, 31)
Q2_END = date(2025, 6, 30)
Q1_CLOSE = datetime(2025, 3, 31, 23, 59, 59, tzinfo=UTC)

AGREEMENT = {
    "type": "create_agreement", "agreement_id": "IE24", "customer_id": "CUSTOMER",
    "currency": "EUR", "period_start": "2025-01-01", "period_end": "2025-12-31",
    "basis": "quantity", "tier_method": "retroactive", "rate_kind": "per_unit",
    "tiers": [{"from": "0", "rate": "0"}, {"from": "1001", "rate": "10"}],
}


def sale(sale_id: str, units: int, invoice_date: str, recorded_at: str) -> dict[str, str]:
    return {
        "type": "record_sale", "sale_id": sale_id, "customer_id": "CUSTOMER",
        "product_id": "A", "quantity": str(units), "amount": f"{units * 100}.00",
        "currency": "EUR", "invoice_date": invoice_date, "recorded_at": recorded_at,
    }


def the_row(ledger: Ledger, as_of: date, known_at: datetime | None = None) -> LiabilityRow:
    (row,) = ledger.liability(as_of, known_at, agreement_id="IE24")
    return row


def revenue(start: LiabilityRow, end: LiabilityRow) -> Decimal:
    """Revenue between two reporting dates: the sales amounts invoiced in between, less the
    increase in the accrued rebate (the price reduction owed back to the customer)."""
    return (end.amount - start.amount) - (end.accrued - start.accrued)


def test_ifrs15_ie24_volume_discount_revenue_by_quarter(ledger: Ledger) -> None:
    report = ledger.apply([
        {**AGREEMENT, "accrual_method": "forecast", "recorded_at": "2025-01-02T09:00:00Z"},
        # Q1: 75 units; at the close the entity expects 800 units for the year.
        sale("Q1-1", 30, "2025-02-10", "2025-02-10T12:00:00Z"),
        sale("Q1-2", 45, "2025-03-20", "2025-03-20T12:00:00Z"),
        {"type": "revise_forecast", "agreement_id": "IE24", "forecast_basis": "800",
         "effective_from": "2025-01-01", "recorded_at": "2025-03-31T17:00:00Z"},
        # Q2: 500 more units; in May the entity comes to expect 1,200 units for the year.
        sale("Q2-1", 200, "2025-04-15", "2025-04-15T12:00:00Z"),
        {"type": "revise_forecast", "agreement_id": "IE24", "forecast_basis": "1200",
         "effective_from": "2025-05-20", "recorded_at": "2025-05-20T10:00:00Z"},
        sale("Q2-2", 300, "2025-06-10", "2025-06-10T12:00:00Z"),
    ])
    assert report.accepted == 7 and not report.rejected and not report.duplicates

    opening = the_row(ledger, date(2024, 12, 31))
    q1 = the_row(ledger, Q1_END)
    q2 = the_row(ledger, Q2_END)

    # Q1 end: 75 units, forecast 800 < 1,001, so rate(800) = 0 and nothing is accrued.
    assert q1.to_dict()["basis"] == "75"
    assert q1.to_dict()["accrued"] == "0.00"
    assert q1.to_dict()["liability"] == "0.00"
    # Revenue Q1 = 7,500 of sales - (0 - 0) accrual change = 75 x 100.
    assert revenue(opening, q1) == Decimal("7500.00")
    # As the books stood at the Q1 close, the figures were the same.
    assert the_row(ledger, Q1_END, Q1_CLOSE).to_dict() == q1.to_dict()

    # Q2 end: 575 units, forecast 1,200 >= 1,001, so every unit of the year gets 10 back:
    # accrued = rate(max(575, 1200)) x 575 = 10 x 575 = 5,750.
    assert q2.to_dict()["basis"] == "575"
    assert q2.to_dict()["accrued"] == "5750.00"
    assert q2.to_dict()["liability"] == "5750.00"
    # Revenue Q2 = 50,000 of sales - (5,750 - 0) accrual change = 44,250 (IE24's figure).
    assert revenue(q1, q2) == Decimal("44250.00")
    # Half-year revenue is every unit at the discounted price: 575 x 90 = 51,750.
    assert revenue(opening, q2) == 575 * Decimal(90)


def test_ifrs15_ie24_more_than_1000_units_starts_the_discount_at_1001(ledger: Ledger) -> None:
    """Tier `from: 1001` says "more than 1,000 units": none at 1,000, all units at 1,001."""
    report = ledger.apply([
        {**AGREEMENT, "recorded_at": "2025-01-02T09:00:00Z"},
        sale("S-1", 1000, "2025-08-01", "2025-08-01T12:00:00Z"),
        sale("S-2", 1, "2025-09-01", "2025-09-01T12:00:00Z"),
    ])
    assert report.accepted == 3 and not report.rejected

    # Earned method: exactly 1,000 units on 2025-08-31 earn nothing.
    assert the_row(ledger, date(2025, 8, 31)).to_dict()["accrued"] == "0.00"
    # The 1,001st unit reduces the price of all 1,001 units by 10: 1,001 x 10 = 10,010.
    assert the_row(ledger, date(2025, 9, 1)).to_dict()["accrued"] == "10010.00"
