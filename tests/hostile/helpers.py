"""Good lines to put around hostile ones, and what `apply` must then show: every good line
applied, every bad one rejected alone, naming its field (issue 15)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import orjson

from ledger import Ledger
from ledger.core import ApplyReport

AS_OF = "2025-12-31"


def good_agreement() -> bytes:
    return orjson.dumps({
        "type": "create_agreement", "agreement_id": "A1", "customer_id": "C1",
        "currency": "EUR", "period_start": "2025-01-01", "period_end": "2025-12-31",
        "basis": "quantity", "tier_method": "retroactive", "rate_kind": "per_unit",
        "tiers": [{"from": "0", "rate": "1.00"}],
    })


def good_sale(sale_id: str, quantity: str = "1", **fields: Any) -> bytes:
    return orjson.dumps({
        "type": "record_sale", "sale_id": sale_id, "customer_id": "C1", "product_id": "P1",
        "quantity": quantity, "amount": "10.00", "currency": "EUR",
        "invoice_date": "2025-03-01", **fields,
    })


def sale_with(sale_id: str, raw_field: bytes) -> bytes:
    """A sale whose last member is written as raw bytes (for text no encoder would write):
    `raw_field` such as b'"recorded_at":"9999-12-31T23:59:59-01:00"'."""
    return good_sale(sale_id)[:-1] + b"," + raw_field + b"}"


def sandwich(bad: list[bytes]) -> list[bytes]:
    """The agreement, then each bad line between two good sales (G0, bad, G1, bad, G2 ...)."""
    lines = [good_agreement(), good_sale("G0")]
    for index, line in enumerate(bad, start=1):
        lines += [line, good_sale(f"G{index}")]
    return lines


def assert_good_lines_applied(ledger: Ledger, report: ApplyReport, good_sales: int) -> None:
    """The agreement and `good_sales` sales of 1 unit at 1.00 per unit were all applied."""
    assert report.accepted == 1 + good_sales, report.to_dict()
    (row,) = ledger.liability(date.fromisoformat(AS_OF))
    assert row.basis == Decimal(good_sales)
