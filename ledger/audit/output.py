"""One way to print a tool's answer: `--format table|json|csv`.

A tool hands over a `Report`: a title, its columns, and rows of plain values (`Decimal`,
`date`, `datetime`, `str`, `int`, `None`, lists). JSON keeps money exact (decimals as strings,
money with the precision the tool gave it), CSV writes one line per row (a text cell a spreadsheet
would run as a formula neutralised: `ledger.text.csv_cell`), and the table is rich's,
right-aligning numbers (control characters in cells escaped: `ledger.text.printable`).
"""

from __future__ import annotations

import csv
import io
import re
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TextIO

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ledger.text import csv_cell, printable

CENT = Decimal("0.01")
#: a descriptive column of a table folds down to this many characters
FOLDED_MIN = 12
#: a text cell that is a figure (right-aligned and never folded in a table)
NUMBER_TEXT = re.compile(r"[+-]?\d[\d,]*(\.\d+)?")


def money(value: Decimal) -> Decimal:
    """A money figure shown with its two decimals (more only when it has more)."""
    quantized = value.quantize(CENT)
    return quantized if quantized == value else value


#: how a table shows one figure for people: (the cell's value, its whole row) -> text
Figure = Callable[[Any, Mapping[str, Any]], str]


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    if isinstance(value, (Decimal, int)):
        return Decimal(value)
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def grouped(value: Decimal) -> str:
    """A number with thousands separators and no redundant trailing zeros: `1,050`, `12.5`."""
    if value == value.to_integral_value():
        return f"{value.quantize(Decimal(1)):,}"
    return f"{value.normalize():,f}"


def money_text(value: Decimal, currency: str | None = None) -> str:
    """`70000` -> `70,000.00 EUR`: two decimals (more only when the figure has more, so a
    figure is never rounded on screen), thousands separators, the currency."""
    text = f"{money(value):,}"
    if "." not in text:
        text += ".00"
    return f"{text} {currency}" if currency else text


def _shown(figure: Callable[[Decimal, Mapping[str, Any]], str]) -> Figure:
    def show(value: Any, row: Mapping[str, Any]) -> str:
        number = _decimal(value)
        return _cell(value) if number is None else figure(number, row)
    return show


def money_figure(currency_column: str = "currency", *, currency: str | None = None) -> Figure:
    """Money in the row's currency (or `currency` for every row): `70,000.00 EUR`."""
    return _shown(lambda v, row: money_text(v, currency or row.get(currency_column)))


def units_figure() -> Figure:
    """A quantity: `1,050 units`."""
    return _shown(lambda v, row: f"{grouped(v)} units")


def count_figure() -> Figure:
    """A count: `1,234`."""
    return _shown(lambda v, row: grouped(v))


def basis_figure(kind_column: str = "basis_kind", currency_column: str = "currency", *,
                 kind: str | None = None, currency: str | None = None) -> Figure:
    """A basis (or a threshold, a gap) as its agreement measures it: `1,050 units` for a
    quantity basis, `70,000.00 EUR` for an amount basis (`kind`, `currency`: the same for
    every row)."""
    def show(v: Decimal, row: Mapping[str, Any]) -> str:
        if (kind or row.get(kind_column)) == "quantity":
            return f"{grouped(v)} units"
        return money_text(v, currency or row.get(currency_column))
    return _shown(show)


def rate_figure(kind_column: str = "rate_kind", currency_column: str = "currency") -> Figure:
    """A tier's rate: `0.44 EUR/unit` per unit (money per unit: two decimals at least), `4 %`
    for a percent rate (stored as 0.04)."""
    def show(v: Decimal, row: Mapping[str, Any]) -> str:
        if row.get(kind_column) == "percent":
            return f"{grouped(v * 100)} %"
        currency = row.get(currency_column)
        return f"{money_text(v, currency)}/unit" if currency else f"{money_text(v)}/unit"
    return _shown(show)


def plain(value: Any) -> Any:
    """A value as JSON and CSV show it: decimals and times as strings, the rest as is."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@dataclass
class Report:
    """What a tool prints: `rows` (dicts keyed by `columns`), and `meta` (the question asked:
    as_of, known_at, ...) that JSON puts beside the rows and the table in its title."""

    title: str
    columns: Sequence[str]
    rows: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    #: extra top-level JSON members (e.g. totals, a balance check)
    extra: dict[str, Any] = field(default_factory=dict)
    #: lines printed under the table (totals, verdicts); JSON has them in `extra`
    notes: list[str] = field(default_factory=list)
    #: CSV's columns when they differ from the others' (e.g. a column per flag); row keys
    #: only CSV names are left out of JSON
    csv_columns: Sequence[str] | None = None
    #: how the table shows a column's figures for people (money with thousands separators and
    #: the currency, units named, rates as `0.44 EUR/unit` or `4 %`); json and csv stay exact
    figures: Mapping[str, Figure] = field(default_factory=dict)

    def to_json(self) -> bytes:
        only_csv = set(self.csv_columns or ()) - set(self.columns)
        rows = ([{k: v for k, v in r.items() if k not in only_csv} for r in self.rows]
                if only_csv else self.rows)
        document = {**plain(self.meta), "rows": [plain(r) for r in rows],
                    **plain(self.extra)}
        return orjson.dumps(document)

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.csv_columns or self.columns),
                                lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: csv_cell(_cell(v)) for k, v in plain(row).items()})
        return buffer.getvalue()

    def numeric_columns(self) -> set[str]:
        """The columns of figures: Decimal or int values, or text that is a number."""
        found = set(self.figures) & set(self.columns)
        for column in self.columns:
            values = [r.get(column) for r in self.rows]
            typed = any(isinstance(v, (Decimal, int)) and not isinstance(v, bool)
                        for v in values)
            texts = [v for v in values if isinstance(v, str) and v]
            if typed or (texts and all(NUMBER_TEXT.fullmatch(v) for v in texts)
                         and len(texts) == sum(v not in (None, "") for v in values)):
                found.add(column)
        return found

    def cells(self) -> list[list[str]]:
        return [[printable(self._shown(c, row)) for c in self.columns] for row in self.rows]

    def _shown(self, column: str, row: Mapping[str, Any]) -> str:
        return shown(row, column, self.figures)

    def to_table(self) -> Table:
        table = Table(title=Text(self.title))
        numeric = self.numeric_columns()
        cells = self.cells()
        for i, column in enumerate(self.columns):
            if column in numeric:  # a figure is never cut or folded
                table.add_column(column, justify="right", no_wrap=True)
            else:  # an id keeps its line when it is short; long texts fold
                longest = max([len(line[i]) for line in cells], default=0)
                table.add_column(column, justify="left", overflow="fold",
                                 min_width=min(longest, FOLDED_MIN))
        for line in cells:  # Text: a cell holding [word] is not rich markup
            table.add_row(*(Text(cell) for cell in line))
        return table

    def fits(self, width: int) -> bool:
        """Whether the table on a terminal `width` columns wide shows every figure whole and
        no line wider than the terminal: rendered once with the rows that hold each column's
        longest cell (those decide the columns' widths)."""
        cells = self.cells()
        if not cells:
            return True
        widest = sorted({max(range(len(cells)), key=_length_of(cells, i))
                         for i in range(len(self.columns))})
        sample = Report(self.title, self.columns, [self.rows[n] for n in widest],
                        figures=self.figures)
        buffer = io.StringIO()
        Console(file=buffer, width=width, color_system=None, legacy_windows=False,
                force_terminal=False).print(sample.to_table(), crop=False)
        text = buffer.getvalue()
        if any(len(line) > width for line in text.splitlines()):
            return False
        numeric = [i for i, c in enumerate(self.columns) if c in self.numeric_columns()]
        return all(f" {cells[n][i]} " in text for n in widest for i in numeric if cells[n][i])

    def to_cards(self, width: int) -> str:
        """One block per row, `column  value` per line, long values wrapped under themselves:
        for a terminal too narrow for the table (every figure whole, nothing cut)."""
        label = max((len(c) for c in self.columns), default=0) + 2
        room = max(width - label, 20)
        out = [*textwrap.wrap(self.title, width), "=" * min(len(self.title), width)]
        for line in self.cells():
            for column, value in zip(self.columns, line, strict=True):
                parts = textwrap.wrap(value, room, break_long_words=False,
                                      break_on_hyphens=False) or [""]
                out.append(f"{column:<{label}}{parts[0]}".rstrip())
                out += [" " * label + part for part in parts[1:]]
            out.append("")
        return "\n".join(out)


def shown(row: Mapping[str, Any], column: str, figures: Mapping[str, Figure]) -> str:
    """A cell as a table shows it: through the column's figure when it has one."""
    value = row.get(column)
    figure = figures.get(column)
    if figure is not None and value is not None and value != "":
        return figure(value, row)
    return _cell(plain(value))


def _length_of(cells: list[list[str]], column: int) -> Callable[[int], int]:
    return lambda row: len(cells[row][column])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def emit(report: Report, output: str, console: Console, stream: TextIO | None = None) -> None:
    """Print `report` in `output` format ("table", "json" or "csv")."""
    out = stream or sys.stdout
    if output == "json":
        out.write(report.to_json().decode() + "\n")
    elif output == "csv":
        out.write(report.to_csv())
    else:
        width = console.width
        if report.rows and not console.is_dumb_terminal and not report.fits(width):
            console.print(report.to_cards(width), highlight=False, markup=False,
                          soft_wrap=True)
        else:
            console.print(report.to_table())
        for note in report.notes:
            console.print(note, highlight=False, markup=False)
