"""The plain sale path (`ledger.commands.plain_sale`) against pydantic's (`validated_line`).

`parse_line` takes an ordinary `record_sale` line by `plain_sale` and every other line by
`validated_line`. The property: whatever the line (duplicate keys, a BOM, control,
bidirectional or invisible characters in ids, naive or aware `recorded_at`, float-looking
amounts, extra or missing keys, wrong types, odd blanks), `plain_sale` either leaves it to
pydantic or gives the very command pydantic gives (same values, same types, same decimal
digits, same fields set); and `parse_line` accepts and rejects exactly as `validated_line`
does, with the same rejection.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger.commands import (
    DAY_MAX,
    ID_LENGTH_MAX,
    Command,
    RecordSale,
    parse_line,
    plain_sale,
    validated_line,
)
from ledger.errors import InvalidCommand

PROPERTY = settings(max_examples=400, deadline=None)

SALE = {
    "type": "record_sale", "sale_id": "S000000001", "customer_id": "C00583",
    "product_id": "P01743", "quantity": "44.00", "amount": "6286.72", "currency": "EUR",
    "invoice_date": "2025-01-01",
}

#: Characters an id may or may not hold: plain ones, JSON's own, and what the screens refuse.
TRICKY = ["\x00", "\x1f", "\t", "\n", "\x7f", "\x85", "\u00ad", "\u061c", "\u200b", "\u200e",
          "\u2028", "\u202e", "\u2066", "\ufeff", "\ud800", "é", "\u0663", '"', "\\", ":", "_",
          " ", "/"]
ids = st.one_of(
    st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True),
    st.text(st.sampled_from([*"AZaz09-.", *TRICKY]), min_size=0, max_size=8),
    st.sampled_from(["", "A" * ID_LENGTH_MAX, "A" * (ID_LENGTH_MAX + 1)]),
)
decimal_texts = st.one_of(
    st.from_regex(r"-?[0-9]{1,33}(\.[0-9]{0,21})?", fullmatch=True),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["-0", "0.000", "+1", "1.", ".5", "1e3", "1E-2", " 1", "1 ", "1_000",
                     "NaN", "Infinity", "-", "", "\u0661\u0662", "12,50", "0x10",
                     "9" * 30 + "." + "9" * 18, "9" * 31, "0." + "0" * 18 + "1"]),
)
days = st.one_of(
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["2025-02-30", "2025-1-01", "20250101", "2025-01-01T00:00:00",
                     "1899-12-31", "1900-01-01", DAY_MAX.isoformat(), "2200-01-01",
                     "\u0662025-01-01", "2025-01-01 ", ""]),
)
currencies = st.one_of(
    st.sampled_from(["EUR", "USD", "eur", "EU", "EURO", "\u00c9UR", "E1R", "E R", ""]),
    st.text(max_size=4),
)
#: A JSON value that is not a string where a string is expected.
wrong_types = st.one_of(
    st.integers(), st.none(), st.booleans(), st.lists(st.integers(), max_size=2),
    st.just({"a": 1}),
)
FIELD_VALUES: dict[str, Any] = {
    "type": st.sampled_from(["record_sale", "record_sale", "reverse_sale", "Record_sale", ""]),
    "sale_id": ids, "customer_id": ids, "product_id": ids,
    "quantity": decimal_texts, "amount": decimal_texts, "currency": currencies,
    "invoice_date": days,
}
recorded_ats = st.sampled_from([
    "2025-04-02T09:00:00Z", "2025-04-02T09:00:00", "2025-04-02T09:00:00+02:00", "1735689600",
    "2025-04-02", None,
])


class Raw:
    """A JSON text written verbatim (a float-looking number, an odd literal)."""

    def __init__(self, text: str) -> None:
        self.text = text


def encode(value: Any, ascii_only: bool) -> str:
    if isinstance(value, Raw):
        return value.text
    return json.dumps(value, ensure_ascii=ascii_only)


@st.composite
def sale_lines(draw: st.DrawFn) -> bytes:
    """A sale line, mostly ordinary, with any of the ways a line goes wrong or looks odd."""
    members: list[tuple[str, Any]] = []
    for key, ordinary in SALE.items():
        kind = draw(st.sampled_from(["ordinary"] * 6 + ["drawn", "drawn", "wrong", "missing"]))
        if kind == "ordinary":
            members.append((key, ordinary))
        elif kind == "drawn":
            members.append((key, draw(FIELD_VALUES[key])))
        elif kind == "wrong":
            members.append((key, draw(wrong_types)))
        if kind != "missing" and key in ("quantity", "amount") and draw(st.booleans()):
            # a float-looking or integer JSON number instead of the string
            number = draw(st.sampled_from(["12.50", "12", "1e2", "-0.0", "1" * 25]))
            members[-1] = (key, Raw(number))
    if draw(st.booleans()):
        members = draw(st.permutations(members))
    extra = draw(st.sampled_from(["none"] * 4 + ["recorded_at", "unknown", "twice", "twice"]))
    if extra == "recorded_at":
        members.append(("recorded_at", draw(recorded_ats)))
    elif extra == "unknown":
        members.append((draw(st.sampled_from(["note", "Sale_id", "sale_id\u200b", ""])), "x"))
    elif extra == "twice" and members:
        key, value = draw(st.sampled_from(members))
        again = value if draw(st.booleans()) else draw(FIELD_VALUES.get(key, ids))
        members.insert(draw(st.integers(0, len(members))), (key, again))
    ascii_only = draw(st.booleans())
    colon = draw(st.sampled_from([":", ": ", " : ", ":\t"]))
    comma = draw(st.sampled_from([",", ", ", " ,\r\n "]))
    body = comma.join(f"{encode(k, ascii_only)}{colon}{encode(v, ascii_only)}"
                      for k, v in members)
    text = draw(st.sampled_from(["{", " {", "{ "])) + body + draw(
        st.sampled_from(["}", "}\n", "}\r\n", " } ", "}\x0c", "}}", "}]"]))
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        raw = b"\xef\xbb\xbf" + raw  # a byte-order mark inside the stream: not stripped here
    return raw


def outcome(line: bytes | str) -> tuple[str, Any]:
    try:
        return "accepted", validated_line_of(line)
    except InvalidCommand as error:
        return "rejected", (error.field, str(error))


def validated_line_of(line: bytes | str) -> Command:
    raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
    return validated_line(raw)


def assert_same_command(plain: RecordSale, validated: Command) -> None:
    assert type(validated) is RecordSale
    assert plain == validated
    assert plain.model_fields_set == validated.model_fields_set
    assert list(plain.__dict__) == list(validated.__dict__)
    for name, value in validated.__dict__.items():
        mine = plain.__dict__[name]
        assert type(mine) is type(value), name
        assert str(mine) == str(value), name  # decimal digits as sent, "44.00" not "44"
    assert plain.model_dump() == validated.model_dump()


@PROPERTY
@given(sale_lines())
@example(json.dumps(SALE, separators=(",", ":")).encode())
@example(b'{"type":"record_sale","sale_id":"S1","sale_id":"S2","customer_id":"C","product_id'
         b'":"P","quantity":"1","amount":"1","currency":"EUR","invoice_date":"2025-01-01"}')
@example(b'{"type":"record_sale","sale_id":"S\\u202e1","customer_id":"C","product_id":"P",'
         b'"quantity":"1","amount":"1","currency":"EUR","invoice_date":"2025-01-01"}')
@example(b'{"type":"record_sale","sale_id":"S\x7f1","customer_id":"C","product_id":"P",'
         b'"quantity":"1","amount":"1","currency":"EUR","invoice_date":"2025-01-01"}')
@example(b'{"type":"record_sale","sale_id":"S1","customer_id":"C","product_id":"P",'
         b'"quantity":"1_0","amount":"1","currency":"EUR","invoice_date":"2025-01-01"}')
@example(b'{"type":"record_sale","sale_id":"S1","customer_id":"C","product_id":"P",'
         b'"quantity":"1","amount":12.50,"currency":"EUR","invoice_date":"2025-01-01"}')
def test_plain_sale_gives_what_pydantic_gives_or_leaves_the_line_to_it(line: bytes) -> None:
    check_line(line)


def check_line(line: bytes) -> None:
    """`plain_sale` gives pydantic's command or None; `parse_line` is `validated_line`."""
    plain = plain_sale(line)
    validated = outcome(line)
    if plain is not None:
        assert validated[0] == "accepted", (line, validated)
        assert_same_command(plain, validated[1])
    # parse_line: the same acceptance, the same command, the same rejection, word for word
    for given_line in (line, line.decode("utf-8", "surrogatepass")):
        try:
            parsed: tuple[str, Any] = "accepted", parse_line(given_line)
        except InvalidCommand as error:
            parsed = "rejected", (error.field, str(error))
        assert parsed == validated


@st.composite
def canonical_sale_lines(draw: st.DrawFn) -> bytes:
    """A line in the compact shape `plain_sale` reads with one regular expression (the keys
    in the contract's order, no blanks), its values drawn as above: what it must still refuse
    (an id with a quote, a backslash escape, a control or non-ASCII character, a wrong
    decimal or date) arrives inside that shape."""
    values = {key: draw(FIELD_VALUES[key]) if draw(st.integers(0, 3)) == 0 else ordinary
              for key, ordinary in SALE.items()}
    body = ",".join(f"{json.dumps(k)}:{encode(v, draw(st.booleans()))}"
                    for k, v in values.items())
    tail = draw(st.sampled_from(["", "\n", "\r\n", "", "\n", " \t", "\x0c", "}", " x"]))
    raw = ("{" + body + "}" + tail).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 2)) == 0:  # a raw control byte, DEL or non-ASCII byte in an id
        key = draw(st.sampled_from([b'"sale_id":"', b'"product_id":"']))
        at = raw.index(key) + len(key)
        raw = raw[:at] + draw(st.sampled_from([b"\x00", b"\x1f", b"\x7f", b"\xc3\xa9",
                                               b'"', b"\\"])) + raw[at:]
    return raw


@PROPERTY
@given(canonical_sale_lines())
@example(b'{"type":"record_sale","sale_id":"S:1","customer_id":"C","product_id":"P",'
         b'"quantity":"1","amount":"1","currency":"EUR","invoice_date":"2025-01-01"}\r\n')
@example(b'{"type":"record_sale","sale_id":" ","customer_id":"~","product_id":"[]{}",'
         b'"quantity":"-0","amount":"0.000","currency":"EUR","invoice_date":"1900-01-01"}')
def test_canonical_sale_lines_give_what_pydantic_gives(line: bytes) -> None:
    check_line(line)


def test_ordinary_sale_lines_take_the_plain_path() -> None:
    """The property above would hold with a `plain_sale` that never accepts: these lines,
    as ERP exports and the benchmark write them, must be taken by it."""
    lines = [
        json.dumps(SALE, separators=(",", ":")),
        json.dumps(SALE),
        json.dumps(dict(reversed(list(SALE.items())))),
        json.dumps({**SALE, "quantity": "-3", "amount": "-12.5", "sale_id": "S_1-/ x"}),
        json.dumps({**SALE, "quantity": "9" * 30 + "." + "9" * 18, "currency": "USD",
                    "invoice_date": DAY_MAX.isoformat()}) + "\r\n",
    ]
    for text in lines:
        plain = plain_sale(text.encode())
        assert plain is not None, text
        assert_same_command(plain, validated_line(text.encode()))


@pytest.mark.parametrize("line", [
    {**SALE, "recorded_at": "2025-04-02T09:00:00Z"},  # recorded_at: pydantic reads it
    {**SALE, "sale_id": "S:1"},  # a ninth colon: a key might be given twice
    {**SALE, "sale_id": "S\u00e91"},  # not ASCII: the screens look at it
    {**SALE, "quantity": "1e3"},
    {**SALE, "invoice_date": "2200-01-01"},  # outside the range: pydantic words why
    {**SALE, "currency": "eur"},
])
def test_lines_plain_sale_leaves_to_pydantic(line: dict[str, str]) -> None:
    assert plain_sale(json.dumps(line, ensure_ascii=False).encode()) is None


def test_the_dates_remembered_stay_bounded() -> None:
    from ledger import commands

    first = date(2000, 1, 1).toordinal()
    for ordinal in range(first, first + commands._PLAIN_DAYS_MAX + 10):
        iso = date.fromordinal(ordinal).isoformat()
        assert plain_sale(json.dumps({**SALE, "invoice_date": iso}).encode()) is not None
        assert 0 < len(commands._PLAIN_DAYS) <= commands._PLAIN_DAYS_MAX


def test_plain_sales_share_a_fields_set_no_copy_can_change() -> None:
    """`plain_sale` gives every sale one shared fields set (memory per sale); pydantic's copies
    of a sale get a set of their own, and the shared one stays as it is."""
    line = json.dumps(SALE, separators=(",", ":")).encode()
    first, second = plain_sale(line), plain_sale(line)
    assert first is not None and second is not None
    assert first.model_fields_set is second.model_fields_set
    assert first.model_fields_set == set(SALE)
    changed = first.model_copy(update={"recorded_at": None, "quantity": first.amount})
    assert changed.model_fields_set == set(SALE) | {"recorded_at"}
    deep = first.model_copy(update={"recorded_at": None}, deep=True)
    assert deep.model_fields_set == set(SALE) | {"recorded_at"}
    assert first.model_fields_set == second.model_fields_set == set(SALE)
    with pytest.raises(TypeError, match="cannot change"):
        first.model_fields_set.add("recorded_at")
    with pytest.raises(TypeError, match="cannot change"):
        first.model_fields_set |= {"recorded_at"}
    assert first.model_dump(exclude_unset=True) == validated_line(line).model_dump(
        exclude_unset=True)
