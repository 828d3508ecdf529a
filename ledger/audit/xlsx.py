"""Excel workbooks of the reports (`--format xlsx --out FILE`), for finance.

A `Report` (or a stream of rows, for the journal) becomes a workbook a spreadsheet user can
work with at once:

- figures are number cells, never text: money with two decimals and the currency's code
  (`#,##0.00 "EUR"`), other figures (basis, rates, counts) as plain numbers. The value written
  is the `Decimal` itself, so the file holds its exact digits (no float rounding on the way
  out; Excel computes with 15 significant digits, far above any rebate figure);
- dates are date cells, timestamps date-time cells in UTC (Excel has no time zones), to the
  millisecond;
- a header row with the same column names as JSON and CSV, frozen, with filters, and column
  widths from the longest value of the first `WIDTH_ROWS` rows;
- one sheet per currency when a report has a `currency` column (so that no column ever sums
  two currencies), sheets of the report's tables of totals and checks, and an `about` sheet
  last: the question asked (as_of, known_at, ...), the figures beside the rows, the notes;
- a text cell is always text: a value starting with `=` is not run as a formula, and control
  characters (which a workbook cannot hold) are written as escapes (`\\x01`).

Workbooks are written in openpyxl's write-only mode: rows go to the file as they come, so a
journal of millions of postings never sits in memory (only the first `WIDTH_ROWS` rows of each
sheet are held, to measure the column widths).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from copy import copy
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from ledger.audit.output import Report, plain

#: Columns of money, by name, in every report: two decimals and the currency's code.
MONEY_COLUMNS = frozenset({
    "accrued", "claimed", "approved", "paid", "written_off", "liability", "debit", "credit",
    "balance", "debits", "credits", "accrued_before", "accrued_after", "liability_before",
    "liability_after", "liability_change", "earned_now", "earned_at_next_tier",
    "extra_rebate", "liability_account", "contract_liability", "amount", "opening",
    "closing", "movement",
})
#: Columns of other figures whose values some reports give as text (`format_decimal`):
#: written as numbers.
NUMBER_COLUMNS = frozenset({
    "basis", "basis_before", "basis_after", "next_tier", "next_rate", "gap",
    "projected_basis",
})
#: The liability's columns (`LiabilityRow.to_dict`), for a workbook without rows.
LIABILITY_COLUMNS = ("agreement_id", "customer_id", "group_id", "program_id", "currency",
                     "basis", "accrued", "approved", "paid", "written_off", "liability")
#: Rows of each sheet held to measure the column widths before the rest is streamed.
WIDTH_ROWS = 500
#: Column widths, in characters.
WIDTH_MIN, WIDTH_MAX = 8, 60
DATE_FORMAT = "yyyy-mm-dd"
TIMESTAMP_FORMAT = "yyyy-mm-dd hh:mm:ss.000"
NUMBER_FORMAT = "#,##0.00########"
#: A currency code that may stand inside a number format (quoted).
CURRENCY_CODE = re.compile(r"[A-Za-z]{1,8}")
#: Characters a sheet name cannot hold.
SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def money_format(currency: str | None) -> str:
    """Two decimals, thousands separators, and the currency's code after the figure."""
    if currency and CURRENCY_CODE.fullmatch(currency):
        return f'#,##0.00 "{currency}"'
    return "#,##0.00"


def _text(value: str) -> str:
    return ILLEGAL_CHARACTERS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def _figure(value: Any) -> Decimal | None:
    """A money or number column's text (`"1234.50"`) as a Decimal; None if it is not one."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


@dataclass
class _Sheet:
    worksheet: Any
    columns: Sequence[str]
    currency: str | None
    #: rows held until the widths are measured; None once they are set and the rows written
    pending: list[dict[str, Any]] | None = field(default_factory=list)
    rows: int = 0


class XlsxBook:
    """A workbook being written: `table` streams rows into sheets, `about` adds the report's
    question and notes, `save` writes the file (once)."""

    def __init__(self) -> None:
        self.workbook = Workbook(write_only=True)
        self._names: set[str] = set()
        self._styles: dict[str, Any] = {}

    # sheets --------------------------------------------------------------------------

    def _sheet_name(self, wanted: str) -> str:
        name = SHEET_FORBIDDEN.sub("_", _text(wanted)).strip("'")[:31] or "sheet"
        base, n = name, 1
        while name.lower() in self._names:
            n += 1
            name = f"{base[:28]} {n}"
        self._names.add(name.lower())
        return name

    def _new_sheet(self, name: str, columns: Sequence[str], currency: str | None) -> _Sheet:
        worksheet = self.workbook.create_sheet(self._sheet_name(name))
        worksheet.freeze_panes = "A2"
        return _Sheet(worksheet, columns, currency)

    def _styled(self, sheet: _Sheet, value: Any, number_format: str) -> Any:
        """A cell of `value` with `number_format`; the style is made once per format and
        copied (setting a format on each cell costs a look-up in the workbook's tables)."""
        cell = WriteOnlyCell(sheet.worksheet, value)
        style = self._styles.get(number_format)
        if style is None:
            cell.number_format = number_format
            self._styles[number_format] = copy(cell._style)
        else:
            cell._style = copy(style)
        return cell

    def _cell(self, sheet: _Sheet, column: str, value: Any, currency: str | None) -> Any:
        """What `append` gets for one value: a styled cell for figures, dates and times, the
        plain value for text and whole numbers (the fast path of write-only mode)."""
        if column in MONEY_COLUMNS or column in NUMBER_COLUMNS:
            figure = _figure(value)
            if figure is not None:
                return self._styled(sheet, figure, money_format(currency)
                                    if column in MONEY_COLUMNS else NUMBER_FORMAT)
        if value is None or isinstance(value, (bool, int)):
            return value
        if isinstance(value, datetime):
            moment = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
            return self._styled(sheet, moment, TIMESTAMP_FORMAT)
        if isinstance(value, date):
            return self._styled(sheet, value, DATE_FORMAT)
        if isinstance(value, Decimal):
            return self._styled(sheet, value, NUMBER_FORMAT)
        if isinstance(value, (list, tuple)):
            value = "; ".join(str(plain(v)) for v in value)
        elif isinstance(value, dict):
            value = "; ".join(f"{k}: {plain(v)}" for k, v in value.items())
        text = _text(str(value))
        if not text.startswith("="):
            return text
        cell = WriteOnlyCell(sheet.worksheet, text)
        cell.data_type = "s"  # text, even when it starts with "=": never a formula
        return cell

    def _write(self, sheet: _Sheet, row: dict[str, Any]) -> None:
        currency = sheet.currency or (row.get("currency") if "currency" in sheet.columns
                                      else None)
        sheet.worksheet.append([self._cell(sheet, c, row.get(c), currency)
                                for c in sheet.columns])
        sheet.rows += 1

    def _start(self, sheet: _Sheet) -> None:
        """Measure the widths from the held rows, write the header and the held rows."""
        held = sheet.pending or []
        for i, column in enumerate(sheet.columns, 1):
            longest = max([len(column)] + [_width(column, r.get(column)) for r in held])
            sheet.worksheet.column_dimensions[get_column_letter(i)].width = (
                min(max(longest + 2, WIDTH_MIN), WIDTH_MAX))
        bold = Font(bold=True)
        header = []
        for column in sheet.columns:
            cell = WriteOnlyCell(sheet.worksheet, _text(column))
            cell.font = bold
            cell.data_type = "s"
            header.append(cell)
        sheet.worksheet.append(header)
        sheet.pending = None
        for row in held:
            self._write(sheet, row)

    def _add(self, sheet: _Sheet, row: dict[str, Any]) -> None:
        if sheet.pending is None:
            self._write(sheet, row)
            return
        sheet.pending.append(row)
        if len(sheet.pending) >= WIDTH_ROWS:
            self._start(sheet)

    def _close(self, sheet: _Sheet) -> None:
        if sheet.pending is not None:
            self._start(sheet)
        last = get_column_letter(max(len(sheet.columns), 1))
        sheet.worksheet.auto_filter.ref = f"A1:{last}{sheet.rows + 1}"

    def table(self, name: str, columns: Sequence[str], rows: Iterable[dict[str, Any]], *,
              by_currency: bool | None = None) -> int:
        """Write `rows` (consumed as they come) under a header of `columns`: one sheet per
        currency, named by it, when `by_currency` (default: when there is a `currency`
        column), else one sheet `name`. Returns the number of rows."""
        split = "currency" in columns if by_currency is None else by_currency
        sheets: dict[str | None, _Sheet] = {}
        first = len(self.workbook.sheetnames)
        count = 0
        for row in rows:
            key = str(row.get("currency")) if split else None
            sheet = sheets.get(key)
            if sheet is None:
                sheet = sheets[key] = self._new_sheet(key or name, columns, key)
            self._add(sheet, row)
            count += 1
        if not sheets:  # no rows: the header alone says what would be there
            sheets[None] = self._new_sheet(name, columns, None)
        for sheet in sheets.values():
            self._close(sheet)
        # the currencies' sheets in alphabetical order, whatever order the rows came in
        ordered = sorted(sheets.values(), key=lambda s: s.worksheet.title)
        for place, sheet in enumerate(ordered, first):
            now = self.workbook.sheetnames.index(sheet.worksheet.title)
            if now != place:
                self.workbook.move_sheet(sheet.worksheet.title, offset=place - now)
        return count

    def about(self, title: str, items: Sequence[tuple[str, Any]], notes: Sequence[str]) -> None:
        """The `about` sheet: the report's title, `items` as name and value rows (dates and
        figures as such), and the notes."""
        sheet = self._new_sheet("about", ("item", "value"), None)
        rows = [{"item": "report", "value": title}]
        rows += [{"item": name, "value": value} for name, value in items]
        rows += [{"item": "times", "value": "timestamps are UTC"}]
        rows += [{"item": "note", "value": note} for note in notes]
        for row in rows:
            self._add(sheet, row)
        self._close(sheet)

    def save(self, handle: IO[bytes]) -> None:
        self.workbook.save(handle)


def _width(column: str, value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, datetime):
        return 23
    if isinstance(value, date):
        return 10
    if column in MONEY_COLUMNS:
        figure = _figure(value)
        if figure is not None:
            return len(f"{figure:,.2f}") + 6  # the currency's code after it
    if isinstance(value, (list, tuple)):
        return sum(len(str(v)) + 2 for v in value)
    return len(str(plain(value)))


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, Decimal, date, bool))


def about_items(report: Report) -> tuple[list[tuple[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The report's `meta` and `extra` as the about sheet's items (scalars, and flat
    dictionaries of scalars as `name.key`), and its tables (lists of flat dictionaries, and
    dictionaries of flat dictionaries keyed by currency) as sheets. Nested detail stays in
    `--format json`."""
    items: list[tuple[str, Any]] = []
    tables: dict[str, list[dict[str, Any]]] = {}
    for name, value in [*report.meta.items(), *report.extra.items()]:
        if _scalar(value):
            items.append((name, value))
        elif isinstance(value, dict) and all(_scalar(v) for v in value.values()):
            items += [(f"{name}.{k}", v) for k, v in value.items()]
        elif isinstance(value, dict) and all(
                isinstance(v, dict) and all(_scalar(x) for x in v.values())
                for v in value.values()):
            tables[name] = [{"currency": k, **v} for k, v in value.items()]
        elif isinstance(value, list) and value and all(
                isinstance(v, dict) and all(_scalar(x) for x in v.values()) for v in value):
            tables[name] = list(value)
        else:
            items.append((name, "in --format json"))
    return items, tables


def write_report(report: Report, handle: IO[bytes], *, name: str = "report",
                 columns: Sequence[str] | None = None,
                 by_currency: bool | None = None) -> None:
    """`report` as a workbook on `handle`: its rows (one sheet per currency when it has a
    currency column), a sheet per table of its `extra`, and the about sheet."""
    book = XlsxBook()
    book.table(name, list(columns or report.columns), report.rows, by_currency=by_currency)
    items, tables = about_items(report)
    for title, rows in tables.items():
        keys = list(dict.fromkeys(k for row in rows for k in row))
        book.table(title.replace("_", " "), keys, rows, by_currency=False)
    book.about(report.title, items, report.notes)
    book.save(handle)


def write_journal(ledger: Any, as_of: date, known_at: datetime | None, handle: IO[bytes], *,
                  agreement_id: str | None = None, customer_id: str | None = None) -> int:
    """The journal (`ledger.audit.journal`) as a workbook, streamed posting by posting in
    bounded memory: a sheet per currency, and the about sheet with the question and the
    counts. Returns the number of postings."""
    from ledger.audit import journal

    entries = 0
    rows = (line.to_row() for line in journal.iter_postings(
        ledger, as_of, known_at, agreement_id=agreement_id, customer_id=customer_id))

    def counted() -> Iterable[dict[str, Any]]:
        nonlocal entries
        for row in rows:
            entries = max(entries, int(str(row["entry"])))
            yield row

    book = XlsxBook()
    count = book.table("journal", journal.JOURNAL_COLUMNS, counted())
    book.about(journal._journal_title(as_of, known_at),
               [("as_of", as_of), ("known_at", known_at), ("entries", entries),
                ("postings", count)],
               [journal._journal_note(entries, count)])
    book.save(handle)
    return count
