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
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TextIO

import orjson
from rich.console import Console
from rich.table import Table

from ledger.text import csv_cell, printable

CENT = Decimal("0.01")


def money(value: Decimal) -> Decimal:
    """A money figure shown with its two decimals (more only when it has more)."""
    quantized = value.quantize(CENT)
    return quantized if quantized == value else value


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

    def to_table(self) -> Table:
        table = Table(title=self.title)
        numeric = {c for c in self.columns
                   if any(isinstance(r.get(c), (Decimal, int)) for r in self.rows)}
        for column in self.columns:
            table.add_column(column, justify="right" if column in numeric else "left")
        for row in self.rows:
            table.add_row(*(printable(_cell(plain(row.get(c)))) for c in self.columns))
        return table


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
        console.print(report.to_table())
        for note in report.notes:
            console.print(note, highlight=False, markup=False)
