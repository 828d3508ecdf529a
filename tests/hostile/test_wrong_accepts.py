"""Issue 15, point 4: what was wrongly accepted is rejected naming the field: a unix time as a
date or timestamp, a decimal written with digits other than 0-9, a key given twice in a line
(the last one won)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ledger import Ledger
from ledger.commands import parse_line
from ledger.errors import InvalidCommand

from .helpers import assert_good_lines_applied, good_sale, sale_with, sandwich

SALE: dict[str, Any] = orjson.loads(good_sale("S1"))


def rejection(line: bytes) -> InvalidCommand:
    with pytest.raises(InvalidCommand) as caught:
        parse_line(line)
    return caught.value


@pytest.mark.parametrize(("name", "value"), [
    ("invoice_date", "1735689600"), ("recorded_at", "1735689600"), ("invoice_date", 1735689600),
    ("recorded_at", 1735689600), ("recorded_at", "1735689600000"),
])
def test_a_unix_time_is_neither_a_date_nor_a_timestamp(name: str, value: Any) -> None:
    assert rejection(orjson.dumps({**SALE, name: value})).field == name


@pytest.mark.parametrize(
    "digits",
    ["١٢", "۱۲", "१२", "１２", "12\u00a0", "1٫5", "\\u0661\\u0662"],  # Arabic-Indic, Persian,
    ids=repr,                                          # Devanagari, fullwidth, NBSP, escapes
)
@pytest.mark.parametrize("name", ["quantity", "amount"])
def test_a_decimal_is_written_with_the_digits_0_to_9(name: str, digits: str) -> None:
    line = orjson.dumps({**SALE, name: digits}).replace(b"\\\\u", b"\\u")

    error = rejection(line)

    assert error.field == name
    assert "digits 0-9" in str(error)


@pytest.mark.parametrize("name", ["from", "rate"])
def test_a_tier_decimal_is_written_with_the_digits_0_to_9(name: str) -> None:
    tier = {"from": "0", "rate": "1", name: "١"}
    line = orjson.dumps({"type": "create_agreement", "agreement_id": "A9", "customer_id": "C1",
                         "currency": "EUR", "period_start": "2025-01-01",
                         "period_end": "2025-12-31", "basis": "quantity",
                         "tier_method": "retroactive", "rate_kind": "per_unit",
                         "tiers": [{"from": "0", "rate": "1"}, tier]})
    assert rejection(line).field == f"tiers[1].{name}"


def test_text_outside_ascii_in_ids_and_reasons_is_still_accepted() -> None:
    command = parse_line(orjson.dumps({**SALE, "customer_id": "Müller-Łódź-東京"}))
    assert command.customer_id == "Müller-Łódź-東京"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (sale_with("S1", b'"sale_id":"S2"'), "sale_id"),
        (sale_with("S1", b'"quantity":"100"'), "quantity"),
        (sale_with("S1", b'"quantity" : 100.5'), "quantity"),  # the exact-decimal path
        (sale_with("S1", b'"recorded_at":"2025-04-02T09:00:00Z",'
                         b'"recorded_at":"2025-04-03T09:00:00Z"'), "recorded_at"),
        (sale_with("S1", b'"note":"\xc3\xa9","note":1'), "note"),  # the screened path
        (b'{"type":"create_agreement","agreement_id":"A9","customer_id":"C1","currency":"EUR",'
         b'"period_start":"2025-01-01","period_end":"2025-12-31","basis":"quantity",'
         b'"tier_method":"retroactive","rate_kind":"per_unit",'
         b'"tiers":[{"from":"0","rate":"1","rate":"9"}]}', "tiers[0].rate"),
        (b'{"type" : "record_sale", "type" : "record_sale", "sale_id": "S1", '
         b'"customer_id": "C1", "product_id": "P1", "quantity": "1", "amount": "1", '
         b'"currency": "EUR", "invoice_date": "2025-03-01"}', "type"),
    ],
    ids=["sale_id", "quantity", "spaced fraction", "recorded_at", "non-ascii", "tier", "type"],
)
def test_a_key_given_twice_is_rejected_naming_it(line: bytes, field: str) -> None:
    error = rejection(line)

    assert error.field == field
    assert "given twice" in str(error)


def test_colons_and_quotes_inside_strings_are_not_taken_for_a_repeated_key() -> None:
    command = parse_line(orjson.dumps({**SALE, "sale_id": 'S":1 " :2',
                                       "recorded_at": "2025-04-02T09:00:00+02:00"}))
    assert command.sale_id == 'S":1 " :2'  # type: ignore[attr-defined]


def test_apply_rejects_each_wrong_accept_alone(ledger: Ledger) -> None:
    bad = [
        orjson.dumps({**SALE, "sale_id": "B1", "invoice_date": "1735689600"}),
        orjson.dumps({**SALE, "sale_id": "B2", "quantity": "١٢"}),
        sale_with("B3", b'"sale_id":"B4"'),
    ]

    report = ledger.apply_lines(sandwich(bad))

    assert [(r.line, r.field) for r in report.rejected] == [
        (3, "invoice_date"), (5, "quantity"), (7, "sale_id")]
    assert_good_lines_applied(ledger, report, good_sales=4)
