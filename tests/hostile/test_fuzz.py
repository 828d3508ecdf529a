"""Issue 15, point 7: hostile lines, as an attacker or an unlucky export would write them, mixed
with good lines and applied as one file, on SQLite and on PostgreSQL. Whatever the mix:

- `apply` never raises (no crash, no `ApplyStopped`);
- every good line is applied: the agreement's basis counts every good sale;
- every rejection is one line of text naming a field, or, for a line that is not a command at
  all (not JSON, not UTF-8, a NUL byte, too long), saying so; none comes from the safety net
  that turns a validator's unexpected failure into a rejection (that would be a gap);
- every rejection is kept in the store.

Each example uses its own agreement and customer on one ledger, so the examples need no fresh
database each (the ledger fixture is shared on purpose: HealthCheck.function_scoped_fixture).
"""

from __future__ import annotations

import io
import itertools
import json
from datetime import date
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Ledger
from ledger.commands import bounded_lines

FUZZ_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large],
)

#: What a rejection of a line that is no command at all starts with (no field to name).
LINE_LEVEL = ("not valid JSON", "not valid UTF-8", "the line holds a NUL byte",
              "line is longer than", "a command is a JSON object")
#: The safety net's words (`commands._unreadable`): a validator failed in a way nobody wrote.
SAFETY_NET = "cannot be read as a command"

_EXAMPLES = itertools.count(1)
GOOD = b"GOOD"  # the marker a drawn line list uses for "a good sale here"


def hostile_sale(**fields: Any) -> dict[str, Any]:
    """A record_sale of the hostile customer H: accepted or not, it never counts toward the
    example's own agreement."""
    return {"type": "record_sale", "sale_id": "H-1", "customer_id": "H", "product_id": "P1",
            "quantity": "1", "amount": "10.00", "currency": "EUR",
            "invoice_date": "2025-03-01", **fields}


def dumps(command: dict[str, Any]) -> bytes:
    return orjson.dumps(command)


def with_raw(command: dict[str, Any], name: str, raw_value: bytes) -> bytes:
    """`command` as JSON with member `name` written as `raw_value` (bytes no encoder writes)."""
    marker = "\x01MARK\x01"
    return dumps({**command, name: marker}).replace(orjson.dumps(marker), raw_value)


fields = st.sampled_from(["sale_id", "customer_id", "product_id", "type", "currency",
                          "invoice_date", "quantity", "amount", "note"])
years = st.sampled_from([1, 2, 999, 1899, 1900, 2025, 2199, 2200, 9998, 9999])
offsets = st.sampled_from(["Z", "+00:00", "+23:59", "-23:59", "+01:00", "-01:00", "+14:00",
                           "-12:00", "+24:00", "+0100", ""])


@st.composite
def moments(draw: st.DrawFn) -> bytes:
    text = (f"{draw(years):04d}-{draw(st.integers(1, 12)):02d}-{draw(st.integers(1, 28)):02d}"
            f"T{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}:00"
            f"{draw(offsets)}")
    return dumps(hostile_sale(recorded_at=text))


@st.composite
def bad_dates(draw: st.DrawFn) -> bytes:
    value = draw(st.one_of(
        st.integers(0, 2**34).map(str),  # unix times
        st.builds(lambda y: f"{y:04d}-12-31", years),
        st.text(alphabet="0123456789١٢٣٤٥٦٧٨٩٠０１２-", min_size=8, max_size=10),
        st.sampled_from(["2025-02-30", "2025-13-01", "20250101", "2025-1-1", ""]),
    ))
    name = draw(st.sampled_from(["invoice_date", "recorded_at"]))
    return dumps(hostile_sale(**{name: value}))


escapes = st.one_of(
    st.integers(0xD800, 0xDFFF).map(lambda c: f"\\u{c:04x}".encode()),  # lone surrogates
    st.just(b"\\u0000"),
    st.sampled_from([b"\\ud83d\\ude00", b"\\u001b[2J", b"\\u202e", b"\\u0661"]),
)
raw_bytes = st.sampled_from([b"\x00", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xff", b"\xc0\xaf",
                             b"\x1b[31m", b"\xe2\x80\xae", b"\r", b"\t"])


@st.composite
def unstorable_text(draw: st.DrawFn) -> bytes:
    """A surrogate or NUL (escaped or raw), or raw bytes that are not UTF-8, in a value or a
    key, sometimes on a line that also holds a fractional number (the exact-decimal path)."""
    inside = draw(st.one_of(escapes, raw_bytes))
    command = hostile_sale()
    if draw(st.booleans()):
        command["quantity"] = "\x02FRACTION\x02"
    name = draw(fields)
    if draw(st.booleans()):  # in the value
        line = with_raw(command, name, b'"x' + inside + b'y"')
    else:  # in a key
        line = dumps(command)[:-1] + b',"k' + inside + b'":"v"}'
    return line.replace(orjson.dumps("\x02FRACTION\x02"), b"1.5")


@st.composite
def repeated_keys(draw: st.DrawFn) -> bytes:
    name = draw(fields)
    spacing = draw(st.sampled_from([b"", b" ", b"\t"]))
    return dumps(hostile_sale())[:-1] + b"," + orjson.dumps(name) + spacing + b":" + spacing + \
        orjson.dumps(draw(st.sampled_from(["2", "H-2", "2025-03-02"]))) + b"}"


numbers = st.sampled_from([
    b"1e999999999", b"-1e999999999", b"1E+47", b"1e400", b"-0", b"NaN", b"Infinity",
    b"1e-999999", b"0.0000000000000000001", b"9" * 60, b"1" + b"0" * 30 + b".5",
    b'"1e999999999"', b'"NaN"', b'"-Infinity"', b'"1_000"', b'" 12 "', b'"\xd9\xa1\xd9\xa2"',
    b'"\xef\xbc\x91"', b"true", b"null", b"[]", b"{}", b'"0x10"',
])


@st.composite
def bad_numbers(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(["quantity", "amount"]))
    return with_raw(hostile_sale(), name, draw(numbers))


@st.composite
def deep_nesting(draw: st.DrawFn) -> bytes:
    depth = draw(st.sampled_from([64, 3000, 60_000]))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    fraction = b',"quantity":1.5' if draw(st.booleans()) else b""
    return b'{"type":"record_sale","sale_id":' + opener * depth + b"1" + closer * depth + \
        fraction + b"}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def random_json(draw: st.DrawFn) -> bytes:
    value = draw(st.one_of(json_values, st.dictionaries(fields, json_values, max_size=9)))
    try:
        return orjson.dumps(value)
    except TypeError:  # a lone surrogate drawn by st.text(): json writes it escaped
        return json.dumps(value).encode()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A hostile sale with one byte changed, removed, or inserted, or cut short."""
    line = bytearray(dumps(hostile_sale(recorded_at="2025-01-02T00:00:00Z")))
    at = draw(st.integers(0, len(line) - 1))
    how = draw(st.sampled_from(["change", "remove", "insert", "cut"]))
    if how == "change":
        line[at] = draw(st.integers(0, 255))
    elif how == "remove":
        del line[at]
    elif how == "insert":
        line[at:at] = draw(st.binary(min_size=1, max_size=3))
    else:
        del line[at:]
    return bytes(line)


@st.composite
def controls(draw: st.DrawFn) -> bytes:
    """Terminal escapes, bidi overrides and formula starts in ids and the type."""
    text = draw(st.text(alphabet=st.sampled_from(
        ["\x1b", "[", "2", "J", "\x07", "\x9b", "\u202e", "\u2066", "=", "+", "-", "@", "\t",
         "\r", "A", "é"]), min_size=1, max_size=12))
    name = draw(st.sampled_from(["sale_id", "customer_id", "type", "product_id"]))
    return dumps(hostile_sale(**{name: text}))


hostile_lines = st.one_of(
    moments(), bad_dates(), unstorable_text(), repeated_keys(), bad_numbers(), deep_nesting(),
    random_json(), mutated(), controls(), st.binary(max_size=120),
).map(lambda line: line.replace(b"\n", b" "))


def good_sale(sale_id: str, customer_id: str, form: int) -> bytes:
    """A sale of 1 unit, its decimals written in one of four ways (strings or JSON numbers,
    with a fraction or without)."""
    quantity, amount = [(b'"1"', b'"10.00"'), (b"1", b"10"), (b"1.0", b"10.00"),
                        (b'"1.000"', b"1E+1")][form]
    return (b'{"type":"record_sale","sale_id":' + orjson.dumps(sale_id) +
            b',"customer_id":' + orjson.dumps(customer_id) + b',"product_id":"P1",'
            b'"quantity":' + quantity + b',"amount":' + amount +
            b',"currency":"EUR","invoice_date":"2025-03-01"}')


@FUZZ_SETTINGS
@given(mix=st.lists(st.one_of(st.just(GOOD), hostile_lines), min_size=1, max_size=14),
       forms=st.lists(st.integers(0, 3), min_size=14, max_size=14))
def test_hostile_lines_never_crash_apply_nor_cost_a_good_line(
    ledger: Ledger, mix: list[bytes], forms: list[int]
) -> None:
    example = next(_EXAMPLES)
    agreement_id, customer_id = f"FUZZ-A{example}", f"FUZZ-C{example}"
    lines = [dumps({
        "type": "create_agreement", "agreement_id": agreement_id, "customer_id": customer_id,
        "currency": "EUR", "period_start": "2025-01-01", "period_end": "2025-12-31",
        "basis": "quantity", "tier_method": "retroactive", "rate_kind": "per_unit",
        "tiers": [{"from": "0", "rate": "1.00"}],
    })]
    good_lines = {1}
    for index, line in enumerate(mix):
        if line is GOOD:
            lines.append(good_sale(f"FUZZ-S{example}-{index}", customer_id, forms[index]))
            good_lines.add(len(lines))
        else:
            lines.append(line)
    kept_before = len(ledger.rejections())

    report = ledger.apply_lines(bounded_lines(io.BytesIO(b"\n".join(lines) + b"\n")))

    assert not good_lines & {r.line for r in report.rejected}, report.to_dict()
    (row,) = ledger.liability(date(2025, 12, 31), agreement_id=agreement_id)
    assert row.basis == len(good_lines) - 1
    for rejection in report.rejected:
        assert rejection.reason and "\n" not in rejection.reason, rejection
        assert "\r" not in rejection.reason, rejection
        assert rejection.field or rejection.reason.startswith(LINE_LEVEL), rejection
        assert SAFETY_NET not in rejection.reason, rejection
    assert len(ledger.rejections()) - kept_before == len(report.rejected)
