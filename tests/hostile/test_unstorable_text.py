"""Issue 15, point 2: text the databases cannot hold (NUL, lone surrogates) is rejected at
validation with a reason naming where it is, the same on SQLite and PostgreSQL, and what is
kept of a rejected line (its text, its type) is escaped so that PostgreSQL can store it."""

from __future__ import annotations

import pytest

from ledger import Ledger
from ledger.commands import parse_command, parse_line
from ledger.errors import InvalidCommand

from .helpers import assert_good_lines_applied, good_sale, sale_with, sandwich

#: (line, the field the rejection names, the text kept with it contains, its command type)
HOSTILE = {
    "NUL escape in an id": (
        good_sale("S\\u0000X").replace(b"\\\\u", b"\\u"), "sale_id", "S\\u0000X",
        "record_sale"),
    "NUL escape in an unknown key": (
        sale_with("B", b'"note\\u0000":"x"'), "note\\x00", "note\\u0000", "record_sale"),
    "NUL escape in the type": (
        b'{"type":"record_sale\\u0000"}', "type", "record_sale\\u0000", "record_sale\\u0000"),
    "raw NUL byte in a string": (
        good_sale("SX").replace(b"SX", b"S\x00X"), "", "S\\u0000X", "record_sale"),
    "raw NUL byte in a line that is not JSON": (b'{"type": \x00', "", "\\u0000", ""),
    "lone high surrogate escape in an id": (
        good_sale("S\\ud800").replace(b"\\\\u", b"\\u"), "sale_id", "S\\ud800", "record_sale"),
    "lone low surrogate escape in a key": (
        sale_with("B", b'"\\udc00":"x"'), "\\udc00", "\\udc00", "record_sale"),
    "lone surrogate escape in a product list": (
        b'{"type":"create_agreement","agreement_id":"A9","products":["P1","\\udbff"]}',
        "products[1]", "\\udbff", "create_agreement"),
    "raw CESU-8 surrogate bytes": (
        good_sale("SX").replace(b"SX", b"S\xed\xa0\x80"), "", "S\ufffd", "record_sale"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_text_no_store_can_hold_is_rejected_naming_where_it_is(ledger: Ledger, name: str) -> None:
    line, field, kept, command_type = HOSTILE[name]

    report = ledger.apply_lines(sandwich([line]))

    assert [(r.line, r.field) for r in report.rejected] == [(3, field)], report.to_dict()
    assert_good_lines_applied(ledger, report, good_sales=2)
    (stored,) = ledger.rejections()
    assert (stored.line, stored.field, stored.command_type) == (3, field, command_type)
    assert kept in stored.command
    for text in (stored.command, stored.reason, stored.command_type, stored.field):
        assert "\x00" not in text
        assert not any("\ud800" <= char <= "\udfff" for char in text)


def test_a_valid_surrogate_pair_is_a_character_and_is_accepted(ledger: Ledger) -> None:
    line = good_sale("S\\ud83d\\ude00").replace(b"\\\\u", b"\\u")

    report = ledger.apply_lines(sandwich([line]))

    assert report.rejected == []
    assert parse_line(line).sale_id == "S\U0001f600"  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", ["S\x00", "S\ud800"], ids=repr)
def test_a_command_given_as_a_dict_is_screened_too(text: str) -> None:
    command = {"type": "record_sale", "sale_id": text, "customer_id": "C1",
               "product_id": "P1", "quantity": "1", "amount": "1.5", "currency": "EUR",
               "invoice_date": "2025-03-01"}
    with pytest.raises(InvalidCommand):
        parse_command(command)


def test_the_source_kept_with_a_rejection_is_escaped_too(ledger: Ledger) -> None:
    """A file name that is not UTF-8 reaches Python as lone surrogates (surrogateescape)."""
    report = ledger.apply_lines([b'{"type":"nope"}'], source="batch-\udcff.jsonl")

    assert len(report.rejected) == 1
    assert ledger.rejections()[0].source == "batch-\\udcff.jsonl"
