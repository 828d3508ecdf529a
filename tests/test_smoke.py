from datetime import date

from ledger import Ledger


def test_a_sale_under_a_one_tier_agreement_accrues_rate_times_quantity(ledger: Ledger) -> None:
    report = ledger.apply([
        {"type": "create_agreement", "agreement_id": "A1", "customer_id": "C1",
         "currency": "EUR", "period_start": "2025-01-01", "period_end": "2025-12-31",
         "basis": "quantity", "tier_method": "retroactive", "rate_kind": "per_unit",
         "tiers": [{"from": 0, "rate": "1.25"}]},
        {"type": "record_sale", "sale_id": "S1", "customer_id": "C1", "product_id": "P1",
         "quantity": "10", "amount": "100", "currency": "EUR", "invoice_date": "2025-02-01"},
    ])
    assert report.accepted == 2 and not report.rejected
    (row,) = ledger.liability(date(2025, 12, 31))
    assert row.to_dict()["accrued"] == "12.50"
    assert row.to_dict()["liability"] == "12.50"
