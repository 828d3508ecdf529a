"""Issue 15, point 1: `apply` never crashes on a line. A line no validator can handle is
rejected alone (never with its chunk), and a failure that is not a rejection (a bug) stops the
batch with exit 3, saying how many lines were applied and the line where it stopped."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger import Ledger, handlers
from ledger import commands as c
from ledger.cli import app
from ledger.core import ApplyStopped
from ledger.errors import InvalidCommand

from .helpers import assert_good_lines_applied, good_agreement, good_sale, sale_with, sandwich

#: The reproducers of the issue: each crashed `apply` and dropped the rest of the file.
CRASHING_LINES = {
    "recorded_at past 9999 in UTC": sale_with(
        "B1", b'"recorded_at":"9999-12-31T23:59:59-01:00"'),
    "recorded_at before year 1 in UTC": sale_with(
        "B2", b'"recorded_at":"0001-01-01T00:00:00+01:00"'),
    "surrogate escape and a fractional number": (
        b'{"type":"record_sale","sale_id":"S\\ud800","customer_id":"C1","product_id":"P1",'
        b'"quantity":1.5,"amount":"10.00","currency":"EUR","invoice_date":"2025-03-01"}'),
    "raw CESU surrogate and a fractional number": (
        b'{"type":"record_sale","sale_id":"S\xed\xa0\x80","customer_id":"C1",'
        b'"product_id":"P1","quantity":1.5,"amount":"10.00","currency":"EUR",'
        b'"invoice_date":"2025-03-01"}'),
}


@pytest.mark.parametrize("name", list(CRASHING_LINES))
def test_a_line_that_crashed_apply_is_rejected_alone(ledger: Ledger, name: str) -> None:
    lines = sandwich([CRASHING_LINES[name]])

    report = ledger.apply_lines(lines)

    assert [r.line for r in report.rejected] == [3]
    assert report.rejected[0].reason
    assert_good_lines_applied(ledger, report, good_sales=2)
    assert [r.line for r in ledger.rejections()] == [3]


@pytest.mark.parametrize(
    "failure", [OverflowError("date value out of range"), TypeError("surrogates not allowed"),
                ArithmeticError("overflow")], ids=lambda e: type(e).__name__,
)
def test_a_validator_failing_outside_pydantic_becomes_a_rejection(
    monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    """pydantic turns only ValueError and AssertionError into validation errors (the line
    given the recorded_at that sends a sale past the plain path, to pydantic)."""

    def fail(_: bytes) -> None:
        raise failure

    monkeypatch.setattr(c, "_COMMAND", type("Failing", (), {"validate_json": staticmethod(fail)}))
    with pytest.raises(InvalidCommand) as caught:
        c.parse_line(good_sale("S1", recorded_at="2025-03-01T00:00:00Z"))
    assert type(failure).__name__ in caught.value.reason


def test_a_line_the_parser_cannot_handle_at_all_is_rejected_alone(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    parse, plain = c.parse_line, c.plain_sale

    def parse_or_fail(line: bytes | str) -> c.Command:
        if b'"BAD"' in (line if isinstance(line, bytes) else line.encode()):
            raise RuntimeError("no parser should ever do this")
        return parse(line)

    def plain_or_fail(line: bytes) -> c.RecordSale | None:
        if b'"BAD"' in line:
            raise RuntimeError("no parser should ever do this")
        return plain(line)

    monkeypatch.setattr(c, "parse_line", parse_or_fail)
    monkeypatch.setattr(c, "plain_sale", plain_or_fail)  # apply's own fast path for sales

    report = ledger.apply_lines(sandwich([good_sale("BAD")]))

    assert [(r.line, r.command_type) for r in report.rejected] == [(3, "record_sale")]
    assert "RuntimeError" in report.rejected[0].reason
    assert_good_lines_applied(ledger, report, good_sales=2)


def test_apply_reads_each_line_with_plain_sale_once(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a line plain_sale leaves to pydantic goes straight on to validated_line: it is not given
    # to plain_sale a second time through parse_line (stop 25's review found it read twice)
    plain, seen = c.plain_sale, []

    def counted(line: bytes) -> c.RecordSale | None:
        seen.append(line)
        return plain(line)

    monkeypatch.setattr(c, "plain_sale", counted)
    number = good_sale("N1").replace(b'"quantity":"1"', b'"quantity":1')  # a JSON number
    lines = sandwich([number, good_sale("U1", quantity="1_000")])

    report = ledger.apply_lines(lines)

    assert sorted(seen) == sorted(lines)
    assert [r.line for r in report.rejected] == [5]  # "1_000" is not a decimal
    assert_good_lines_applied(ledger, report, good_sales=4)


def _bug_on(sale_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the record_sale handler fail (as a bug would) on one sale."""
    record = handlers.HANDLERS[c.RecordSale]

    def buggy(batch: handlers.Batch, cmd: c.RecordSale, recorded_at: object) -> str:
        if cmd.sale_id == sale_id:
            raise KeyError("a bug")
        return record(batch, cmd, recorded_at)  # type: ignore[arg-type]

    monkeypatch.setitem(handlers.HANDLERS, c.RecordSale, buggy)


def test_a_bug_stops_apply_at_its_line_with_every_line_before_it_applied(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bug_on("BUG", monkeypatch)
    lines = [good_agreement(), good_sale("S1"), b'{"type":"nope"}', good_sale("S2"),
             good_sale("BUG"), good_sale("S3")]

    with pytest.raises(ApplyStopped) as caught:
        ledger.apply_lines(lines)

    stopped = caught.value
    assert stopped.line == 5
    assert (stopped.report.accepted, len(stopped.report.rejected)) == (3, 1)
    assert stopped.report.to_dict()["stopped"] == {"line": 5, "error": "KeyError: 'a bug'"}
    # the lines before line 5 are committed (the rejection kept once), line 5 and 6 are not
    (row,) = ledger.liability(date(2025, 12, 31))
    assert row.basis == 2
    assert [r.line for r in ledger.rejections()] == [3]
    assert "4 lines before it were applied" in str(stopped)


def test_apply_exits_3_on_a_bug_with_one_line_naming_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bug_on("BUG", monkeypatch)
    batch = tmp_path / "book.jsonl"
    batch.write_bytes(b"\n".join([good_agreement(), good_sale("S1"), good_sale("BUG"),
                                  good_sale("S2")]) + b"\n")

    result = CliRunner().invoke(
        app, ["apply", str(batch), "--database", f"sqlite:///{tmp_path / 'l.db'}"]
    )

    assert result.exit_code == 3, result.output
    errors = [text for text in result.output.splitlines() if text.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "stopped at line 3" in errors[0]
    assert "2 lines before it were applied" in errors[0]
    assert "Traceback" not in result.output
