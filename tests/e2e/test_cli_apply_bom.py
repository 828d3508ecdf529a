"""A UTF-8 byte-order mark before the first line (Notepad, Excel's "CSV UTF-8") is part of the
file, not of line 1: `apply` used to reject the whole first line as "not valid JSON" (issue 10,
point 3). A mark anywhere else is still a character of its line."""

from __future__ import annotations

from .conftest import Runner, agreement, jsonl, rows_by_id, sale


def test_a_byte_order_mark_before_the_first_line_is_accepted(run: Runner) -> None:
    body = jsonl([agreement("A1", "C1"), sale("S1", "C1", "10", "100.00", "2025-02-01")])
    (run.cwd / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + body.replace(b"\n", b"\r\n"))
    applied = run("apply", "bom.jsonl")
    assert applied.code == 0, str(applied)
    assert applied.counts() == (2, 0, 0)
    answer = run("liability", "--as-of", "2025-12-31", "--format", "json")
    assert answer.code == 0, str(answer)
    assert set(rows_by_id(answer.json())) == {"A1"}


def test_a_byte_order_mark_inside_the_file_is_still_refused(run: Runner) -> None:
    first, second = jsonl([agreement("A1", "C1")]), jsonl([agreement("A2", "C2")])
    (run.cwd / "mid.jsonl").write_bytes(first + b"\xef\xbb\xbf" + second)
    applied = run("apply", "mid.jsonl")
    assert applied.code == 1, str(applied)
    assert applied.counts() == (1, 0, 1)
    assert "line 2" in applied.stdout


def test_only_the_first_line_loses_a_mark_and_an_overlong_first_line_stays_too_long() -> None:
    import io

    from ledger.commands import LINE_BYTES_MAX, UTF8_BOM, bounded_lines

    lines = list(bounded_lines(io.BytesIO(UTF8_BOM + b"{}\n" + UTF8_BOM + b"{}\n")))
    assert lines == [b"{}\n", UTF8_BOM + b"{}\n"]
    assert list(bounded_lines(io.BytesIO(UTF8_BOM))) == []
    overlong = UTF8_BOM + b"{" + b" " * (LINE_BYTES_MAX + 10) + b"}\n{}\n"
    first, second = bounded_lines(io.BytesIO(overlong))
    assert len(first) == LINE_BYTES_MAX + 2 and first.startswith(UTF8_BOM)
    assert second == b"{}\n"
