"""`--format xlsx --out FILE` on the report commands (issue 10, point 4): each workbook read
back with openpyxl equals the same command's `--format json`, cell by cell; money cells are
numbers with the currency's format (read back to the exact Decimal), dates are dates, the
header is frozen with filters and column widths, one sheet per currency; a workbook is never
printed to the terminal, and `--out` keeps its promises (no store file, no overwrite without
`--force`).

The book is test_trial_balance.py's: conftest.py's worked book (EUR) plus a USD agreement.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from openpyxl import load_workbook

from ledger.audit import xlsx
from tests.audit.test_trial_balance import BOTH
from tests.e2e.conftest import Runner

#: (command, its arguments); each is run with --format json and --format xlsx --out
COMMANDS = [
    ("liability", ("--as-of", "2025-12-31")),
    ("reconcile", ("--as-of", "2025-12-31")),
    ("journal", ("--as-of", "2025-12-31")),
    ("trial-balance", ("--as-of", "2025-12-31")),
    ("explain", ("--agreement", "A1", "--as-of", "2025-12-31")),
    ("diff", ("--as-of", "2025-12-31", "--known-at", "2025-06-01")),
    ("opportunities", ("--as-of", "2025-03-31")),
]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    runner = Runner(tmp_path_factory.mktemp("xlsx"))
    runner.write("book.jsonl", BOTH)
    done = runner("apply", "book.jsonl")
    assert done.code == 0, str(done)
    return runner


def _expected(column: str, value: Any) -> Any:
    """A JSON value as the workbook must hold it (after openpyxl reads it back)."""
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return "; ".join(str(v) for v in value) or None
    if isinstance(value, str) and (column in xlsx.MONEY_COLUMNS or column in xlsx.NUMBER_COLUMNS):
        return Decimal(value)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return date.fromisoformat(value)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})",
                                               value):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        # Excel keeps milliseconds
        return moment.replace(tzinfo=None, microsecond=moment.microsecond // 1000 * 1000)
    return value


def _read(column: str, cell: Any) -> Any:
    value = cell.value
    if column in xlsx.MONEY_COLUMNS or column in xlsx.NUMBER_COLUMNS:
        if value is None:
            return None
        assert isinstance(value, (int, float)), f"{column}: {value!r} is not a number cell"
        return Decimal(repr(value))  # exact: the file holds the Decimal's digits
    if isinstance(value, datetime) and cell.number_format == xlsx.DATE_FORMAT:
        return value.date()
    return value


def _sheet_rows(sheet: Any) -> tuple[list[str], list[list[Any]]]:
    rows = list(sheet.iter_rows())
    header = [c.value for c in rows[0]]
    return header, [[_read(h, c) for h, c in zip(header, row, strict=True)] for row in rows[1:]]


@pytest.mark.parametrize(("command", "args"), COMMANDS, ids=[c for c, _ in COMMANDS])
def test_workbook_equals_the_json_of_the_same_command(cli: Runner, command: str,
                                                      args: tuple[str, ...]) -> None:
    document = cli(command, *args, "--format", "json")
    assert document.code == 0, str(document)
    rows = document.json()["rows"]
    assert rows, "the book gives every report rows"
    target = cli.cwd / f"{command}.xlsx"
    target.unlink(missing_ok=True)
    done = cli(command, *args, "--format", "xlsx", "--out", str(target))
    assert done.code == 0, str(done)
    assert done.stdout == ""
    assert f"wrote {target}" in done.stderr

    workbook = load_workbook(target)
    currencies = sorted({r["currency"] for r in rows if r.get("currency")})
    data = currencies or [workbook.sheetnames[0]]
    assert workbook.sheetnames[:len(data)] == data  # a sheet per currency, in order
    assert workbook.sheetnames[-1] == "about"
    seen = []
    for name in data:
        sheet = workbook[name]
        header, read = _sheet_rows(sheet)
        assert sheet.freeze_panes == "A2"
        assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, len(header)).column_letter}" \
                                        f"{len(read) + 1}"
        assert all(sheet.cell(1, i + 1).font.b for i in range(len(header)))
        assert all(sheet.column_dimensions[sheet.cell(1, i + 1).column_letter].width
                   >= min(len(h) + 2, xlsx.WIDTH_MAX) for i, h in enumerate(header))
        mine = [r for r in rows if not currencies or r["currency"] == name]
        assert len(read) == len(mine)
        for got, want in zip(read, mine, strict=True):
            assert dict(zip(header, got, strict=True)) == {
                c: _expected(c, want.get(c)) for c in header}
            seen.append(want)
        for i, column in enumerate(header):  # money: two decimals and the currency
            if column in xlsx.MONEY_COLUMNS and read:
                assert sheet.cell(2, i + 1).number_format == xlsx.money_format(
                    name if currencies else None)
    assert len(seen) == len(rows)
    about = {row[0].value: row[1].value for row in workbook["about"].iter_rows(min_row=2)}
    assert about["as_of"].date() == date.fromisoformat(document.json().get("as_of", "2025-"
                                                                           "12-31"))


def test_money_reads_back_as_the_exact_decimal(tmp_path: Path) -> None:
    """The file holds each Decimal's own digits; openpyxl reads them back to the same value,
    also where binary floating point arithmetic would drift (0.1 + 0.2)."""
    figures = [Decimal("0.1") + Decimal("0.2"), Decimal("1234567890123.45"),
               Decimal("-0.01"), Decimal("178838.87"), Decimal("0.005"), Decimal("1E+3")]
    book = xlsx.XlsxBook()
    book.table("t", ("currency", "amount"), [{"currency": "EUR", "amount": f}
                                             for f in figures])
    buffer = io.BytesIO()
    book.save(buffer)
    raw = zipfile.ZipFile(io.BytesIO(buffer.getvalue())).read("xl/worksheets/sheet1.xml")
    written = re.findall(rb'<c r="B\d+"[^>]*t="n"[^>]*><v>([^<]*)</v>', raw)
    assert [Decimal(v.decode()) for v in written] == figures
    sheet = load_workbook(io.BytesIO(buffer.getvalue()))["EUR"]
    assert [Decimal(repr(c.value)) for (c,) in sheet.iter_rows(min_row=2, min_col=2)] == figures


def test_text_is_never_a_formula_and_control_characters_are_escaped() -> None:
    book = xlsx.XlsxBook()
    book.table("t", ("agreement_id", "about"), [
        {"agreement_id": "=HYPERLINK(\"http://x\")", "about": "a\x01b\x1b[31m"}])
    buffer = io.BytesIO()
    book.save(buffer)
    sheet = load_workbook(io.BytesIO(buffer.getvalue()))["t"]
    cells = [c for c in next(sheet.iter_rows(min_row=2))]
    assert [c.data_type for c in cells] == ["s", "s"]
    assert [c.value for c in cells] == ['=HYPERLINK("http://x")', "a\\x01b\\x1b[31m"]


def test_rows_are_streamed_holding_only_the_first_rows_of_each_sheet(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A generator of rows is consumed as it goes: with WIDTH_ROWS = 10, at most 10 rows of
    each sheet are held, whatever the count, and every row is in the file."""
    monkeypatch.setattr(xlsx, "WIDTH_ROWS", 10)
    held: list[int] = []
    book = xlsx.XlsxBook()
    original = book._add

    def spy(sheet: Any, row: dict[str, Any]) -> None:
        original(sheet, row)
        held.append(len(sheet.pending or []))

    monkeypatch.setattr(book, "_add", spy)
    rows = ({"currency": "USD" if n % 3 else "EUR", "debit": Decimal(n) / 100, "entry": n}
            for n in range(1, 1001))
    assert book.table("journal", ("entry", "currency", "debit"), rows) == 1000
    assert max(held) < 10
    buffer = io.BytesIO()
    book.save(buffer)
    workbook = load_workbook(io.BytesIO(buffer.getvalue()), read_only=True)
    assert workbook.sheetnames == ["EUR", "USD"]
    entries = sorted(r[0] for name in ("EUR", "USD")
                     for r in workbook[name].iter_rows(min_row=2, values_only=True))
    assert entries == list(range(1, 1001))


def test_a_workbook_is_not_printed_to_the_terminal(cli: Runner) -> None:
    done = cli("liability", "--as-of", "2025-12-31", "--format", "xlsx")
    assert done.code == 2
    assert "--out" in done.stderr and "--format xlsx" in done.stderr
    assert done.stdout == ""
    table_out = cli("journal", "--out", "j.txt")
    assert table_out.code == 2 and "--format xlsx, json or csv" in table_out.stderr
    assert not (cli.cwd / "j.txt").exists()


def test_out_never_overwrites_without_force_nor_writes_over_the_store(cli: Runner) -> None:
    target = cli.cwd / "kept.xlsx"
    target.write_bytes(b"precious")
    refused = cli("reconcile", "--as-of", "2025-12-31", "--format", "xlsx", "--out", str(target))
    assert refused.code == 2 and "--force" in refused.stderr
    assert target.read_bytes() == b"precious"
    forced = cli("reconcile", "--as-of", "2025-12-31", "--format", "xlsx", "--out", str(target),
                 "--force")
    assert forced.code == 0, str(forced)
    assert load_workbook(target).sheetnames == ["EUR", "USD", "totals", "about"]
    store = cli.cwd / ".rebate-ledger" / "ledger.db"
    before = store.read_bytes()
    over = cli("journal", "--format", "xlsx", "--out", str(store), "--force")
    assert over.code == 2 and "store" in over.stderr
    assert store.read_bytes() == before


def test_json_and_csv_to_out_are_the_printed_bytes(cli: Runner) -> None:
    for output in ("json", "csv"):
        printed = cli("journal", "--as-of", "2025-12-31", "--format", output)
        target = cli.cwd / f"journal.{output}"
        target.unlink(missing_ok=True)
        written = cli("journal", "--as-of", "2025-12-31", "--format", output,
                      "--out", str(target))
        assert written.code == 0, str(written)
        assert target.read_text() == printed.stdout
    printed = cli("liability", "--as-of", "2025-12-31", "--known-at", "2025-12-31",
                  "--format", "json")
    target = cli.cwd / "liability.json"
    written = cli("liability", "--as-of", "2025-12-31", "--known-at", "2025-12-31",
                  "--format", "json", "--out", str(target))
    assert written.code == 0, str(written)
    assert orjson.loads(target.read_bytes()) == printed.json()
