"""Issue 10, point 3: `apply` is strict where it matters, end to end as a user types it. A key
given twice, a control or bidirectional character in an id, a decimal with digit-group
underscores (`"1_000"`, which Python's `Decimal` would read as 1000) and a tier keyed
`threshold` (the contract says `from`) each reject their line naming the key or field and what
to do; every rejection names its command type, also for a line that is not JSON; the lines
around them apply and the rejections are kept."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from ledger.commands import parse_line
from ledger.errors import InvalidCommand

from .conftest import Runner, agreement, rows_by_id, sale

SALE_LINE = sale("S9", "C1", "7", "70.00", "2025-03-01")


def line_with(text: str) -> str:
    """A `record_sale` line of customer C1 with `text` appended inside the object."""
    return orjson.dumps(SALE_LINE).decode()[:-1] + "," + text + "}"


#: (line, the field the rejection names, words its reason must hold)
BAD: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "a key given twice": (line_with('"amount":"1.00"'), "amount",
                          ("given twice", "send each field once")),
    "the type given twice": (line_with('"type":"record_sale"'), "type", ("given twice",)),
    "a tab in an id (escaped)": (
        orjson.dumps(sale("S\t1", "C1", "1", "1", "2025-03-01")).decode(), "sale_id",
        ("control character (U+0009)", "remove it")),
    "a DEL in an id (raw)": (
        orjson.dumps(sale("S\x7f2", "C1", "1", "1", "2025-03-01")).decode(), "sale_id",
        ("control character (U+007F)",)),
    "a C1 control in a customer id": (
        orjson.dumps(sale("S3", "C1\x85", "1", "1", "2025-03-01")).decode(), "customer_id",
        ("control character (U+0085)",)),
    "a right-to-left override in an id (raw)": (
        orjson.dumps(sale("S4\u202e", "C1", "1", "1", "2025-03-01")).decode(), "sale_id",
        ("bidirectional control character (U+202E)", "remove it")),
    "an isolate in a product id (escaped)": (
        orjson.dumps(sale("S5", "C1", "1", "1", "2025-03-01")).decode().replace(
            '"P1"', '"P\\u20661"'), "product_id", ("bidirectional control character (U+2066)",)),
    "a bidi override in a products list": (
        orjson.dumps(agreement("A8", "C8", products=["P1", "P\u202d2"])).decode(),
        "products[1]", ("bidirectional",)),
    "a zero-width space in a customer id (two ids printed alike)": (
        orjson.dumps(sale("S9", "C\u200b1", "1", "1", "2025-03-01")).decode(), "customer_id",
        ("invisible character (U+200B)", "remove it")),
    "a zero-width joiner in a sale id (escaped)": (
        orjson.dumps(sale("S10", "C1", "1", "1", "2025-03-01")).decode().replace(
            '"S10"', '"S1\\u200d0"'), "sale_id", ("invisible character (U+200D)",)),
    "digit-group underscores in a decimal": (
        orjson.dumps(sale("S6", "C1", "1_000", "10.00", "2025-03-01")).decode(), "quantity",
        ('"1_000" is not a decimal number', "no group separators")),
    "digit-group underscores in a tier rate": (
        orjson.dumps(agreement("A7", "C7", tiers=[{"from": "0", "rate": "1_0"}])).decode(),
        "tiers[0].rate", ("is not a decimal number",)),
    "a tier keyed threshold": (
        orjson.dumps(agreement("A6", "C6", tiers=[{"threshold": "0", "rate": "1"}])).decode(),
        "tiers[0].threshold", ("not a field of a tier", 'write "from"')),
    "a line cut short": (line_with('"x":')[:-3], "", ("not valid JSON",)),
}


@pytest.fixture
def applied(run: Runner) -> tuple[Runner, Any, list[dict[str, Any]]]:
    """A1 of C1 (1.00 per unit), a good sale, every bad line, a good sale."""
    run.write("book.jsonl", [
        agreement("A1", "C1"),
        sale("S1", "C1", "10", "100.00", "2025-02-01"),
        *[line for line, _, _ in BAD.values()],
        sale("S2", "C1", "5", "50.00", "2025-02-02"),
    ])
    done = run("apply", "book.jsonl", "--format", "json")
    return run, done, done.json()["rejections"]


def test_every_bad_line_is_rejected_naming_its_field_and_command(
    applied: tuple[Runner, Any, list[dict[str, Any]]],
) -> None:
    _, done, rejections = applied
    assert done.code == 1, str(done)
    assert [r["line"] for r in rejections] == list(range(3, 3 + len(BAD)))
    for (name, (_, field, words)), rejection in zip(BAD.items(), rejections, strict=True):
        assert rejection["field"] == field, (name, rejection)
        for word in words:
            assert word in rejection["reason"], (name, rejection)
        expected = "create_agreement" if "tier" in name or "products" in name else "record_sale"
        assert rejection["command"] == expected, (name, rejection)
        # the reason itself never carries what it refuses: nothing reorders a terminal
        refused = "\t\x7f\x85\u202e\u2066\u202d\u200b\u200d"
        assert not any(ch in rejection["reason"] for ch in refused)


def test_the_lines_around_them_apply_and_the_rejections_are_kept(
    applied: tuple[Runner, Any, list[dict[str, Any]]],
) -> None:
    run, done, _ = applied
    assert done.json()["accepted"] == 3  # A1, S1, S2
    answer = run("liability", "--as-of", "2025-12-31", "--format", "json")
    row = rows_by_id(answer.json())["A1"]
    # 1.00 per unit from 0, retroactive: the two good sales' units times the rate
    assert Decimal(row["basis"]) == Decimal("10") + Decimal("5")
    assert row["accrued"] == f"{(Decimal('10') + Decimal('5')) * Decimal('1.00'):.2f}"
    assert set(rows_by_id(answer.json())) == {"A1"}
    kept = orjson.loads(run("rejections", "--format", "json").stdout)["rejections"]
    assert [(r["line"], r["command"], r["field"]) for r in kept] == [
        (3 + i, "create_agreement" if "tier" in name or "products" in name else "record_sale",
         field) for i, (name, (_, field, _)) in enumerate(BAD.items())]


def test_the_table_report_names_the_command_of_a_line_that_is_not_json(run: Runner) -> None:
    run.write("book.jsonl", [line_with('"x":')[:-3], '{"no": "type"', '{"type": 5}'])
    done = run("apply", "book.jsonl")
    assert done.code == 1, str(done)
    assert "rejected line 1: record_sale: not valid JSON" in done.stdout
    assert "rejected line 2: (no type): not valid JSON" in done.stdout
    assert "rejected line 3: (no type): type:" in done.stdout


@pytest.mark.parametrize("value", ["S_1", "S_1_000", "A_2025_01"])
def test_underscores_in_ids_are_still_accepted(value: str) -> None:
    command = parse_line(orjson.dumps(sale(value, f"C_{value}", "1000", "10", "2025-03-01")))
    assert command.sale_id == value  # type: ignore[attr-defined]


@pytest.mark.parametrize("field", ["quantity", "amount"])
def test_underscores_in_a_decimal_are_refused_whatever_the_ids_hold(field: str) -> None:
    line = sale("S_1", "C_1", "1", "1", "2025-03-01", recorded_at="2025-03-02T00:00:00Z")
    line[field] = "2_5"
    with pytest.raises(InvalidCommand) as refused:
        parse_line(orjson.dumps(line))
    assert refused.value.field == field


def test_underscores_in_an_amendments_cap_are_refused() -> None:
    line = {"type": "amend_agreement", "agreement_id": "A_1", "effective_from": "2025-03-01",
            "cap": "10_000"}
    with pytest.raises(InvalidCommand) as refused:
        parse_line(orjson.dumps(line))
    assert refused.value.field == "cap"
