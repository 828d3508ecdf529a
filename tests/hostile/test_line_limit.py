"""Issue 15, point 6: a line longer than the limit is rejected without being read whole, and
the limit is exact: LINE_BYTES_MAX bytes, not counting the line ending (`\\n` or `\\r\\n`)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import Ledger
from ledger.commands import LINE_BYTES_MAX, bounded_lines, parse_line

from .helpers import assert_good_lines_applied, good_agreement, good_sale


def sale_of_length(sale_id: str, length: int) -> bytes:
    """A valid record_sale of exactly `length` bytes (padded with blanks inside the object)."""
    line = good_sale(sale_id)
    padded = line[:-1] + b" " * (length - len(line)) + b"}"
    assert len(padded) == length
    return padded


class SpyStream(io.BytesIO):
    """A stream that records the largest read asked of it."""

    largest_read = 0

    def readline(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        assert size is not None and size > 0, "an unbounded readline"
        self.largest_read = max(self.largest_read, size)
        return super().readline(size)

    def read(self, size: int | None = -1) -> bytes:
        raise AssertionError("bounded_lines reads lines, never the whole stream")


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b""], ids=["LF", "CRLF", "end of file"])
def test_a_line_of_exactly_the_limit_is_parsed_and_one_byte_more_is_rejected(
    ending: bytes,
) -> None:
    exact = sale_of_length("EXACT", LINE_BYTES_MAX)
    over = sale_of_length("OVER", LINE_BYTES_MAX + 1)

    (read_exact,) = list(bounded_lines(io.BytesIO(exact + ending)))
    (read_over,) = list(bounded_lines(io.BytesIO(over + ending)))

    assert parse_line(read_exact).sale_id == "EXACT"  # type: ignore[attr-defined]
    with pytest.raises(Exception, match=f"line is longer than {LINE_BYTES_MAX} bytes"):
        parse_line(read_over)


def test_an_overlong_line_is_skipped_in_bounded_reads_and_the_next_line_is_whole() -> None:
    huge = b'{"type":"record_sale","sale_id":"' + b"x" * (5 * LINE_BYTES_MAX) + b'"}'
    stream = SpyStream(good_sale("S1") + b"\n" + huge + b"\n" + good_sale("S2") + b"\n")

    lines = list(bounded_lines(stream))

    assert stream.largest_read <= LINE_BYTES_MAX + 2
    assert [len(line) for line in lines] == [len(good_sale("S1")) + 1, LINE_BYTES_MAX + 2,
                                             len(good_sale("S2")) + 1]
    assert lines[2] == good_sale("S2") + b"\n"


def test_apply_rejects_the_overlong_line_alone_and_applies_the_exact_one(
    ledger: Ledger,
) -> None:
    stream = io.BytesIO(b"\n".join([
        good_agreement(), sale_of_length("EXACT", LINE_BYTES_MAX),
        sale_of_length("OVER", 3 * LINE_BYTES_MAX), good_sale("AFTER"),
    ]) + b"\n")

    report = ledger.apply_lines(bounded_lines(stream))

    assert [(r.line, r.field) for r in report.rejected] == [(3, "")]
    assert "longer than" in report.rejected[0].reason
    assert_good_lines_applied(ledger, report, good_sales=2)


PEAK_RSS = """
import resource, sys
from ledger.cli import main
sys.argv = ["rebate-ledger", "apply", "--quiet", "--database", sys.argv[2], sys.argv[1]]
try:
    main()
finally:
    print("peak", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def peak_rss_kib(batch: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(batch), f"sqlite:///{batch.with_suffix('.db')}"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 1, done.stderr  # the long line is rejected
    return int(done.stderr.rsplit("peak", 1)[1])


def test_the_cli_does_not_hold_a_long_line_in_memory(tmp_path: Path) -> None:
    """Peak memory of `apply` with a 64 MiB line is that of a 2 MiB one, within 16 MiB (the
    old reader held the whole line, and a decoded copy of it)."""
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    for path, size in ((small, 2 * LINE_BYTES_MAX), (large, 64 * LINE_BYTES_MAX)):
        with path.open("wb") as out:
            out.write(good_agreement() + b"\n" + b'{"type":"record_sale","sale_id":"')
            out.write(b"x" * size)
            out.write(b'"}\n' + good_sale("S1") + b"\n")

    baseline, long_line = peak_rss_kib(small), peak_rss_kib(large)

    assert long_line - baseline < 16 * 1024, (baseline, long_line)
