"""Writes examples/mappings/deals.xlsx: a "deals spreadsheet" as finance keeps one today, one
agreement a row, its tiers spread over columns (Tier 1 from, Tier 1 rate, Tier 2 from, ...).

    .venv/bin/python examples/mappings/make_deals_xlsx.py [OUT.xlsx]

Rates of percent deals are percentage cells (Excel keeps 2 % as 0.02 and shows "2.00%"); rates
of per-unit deals are money per unit. Start dates are date cells; one end date is a plain
number, an Excel serial day, as a column formatted "General" keeps it.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font

HEADER = ["Agreement", "Customer", "Currency", "Start", "End", "Basis", "Method", "Rate type",
          "Products", "Cap", "Tier 1 from", "Tier 1 rate", "Tier 2 from", "Tier 2 rate",
          "Tier 3 from", "Tier 3 rate", "Owner"]

DEALS: list[list[object]] = [
    ["DEAL-US-001", "US-001", "USD", date(2025, 1, 1), date(2025, 12, 31), "Net sales",
     "Retro", "%", None, None, 0, 0.01, 10000, 0.02, 25000, 0.03, "J. Rivera"],
    ["DEAL-US-002", "US-002", "USD", date(2025, 1, 1), 46022, "Units", "Stepped",
     "per unit", "1000, 1001", 500, 0, 0.5, 100, 0.75, None, None, "J. Rivera"],
    ["DEAL-US-003", "US-003", "USD", date(2025, 4, 1), date(2026, 3, 31), "Net sales",
     "Retro", "%", None, 2500, 0, 0.015, None, None, None, None, "M. Chen"],
]


def write(path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Deals"
    sheet.append(HEADER)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for deal in DEALS:
        sheet.append(deal)
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            column = HEADER[cell.column - 1]
            if isinstance(cell.value, date):
                cell.number_format = "DD.MM.YYYY"
            elif column.endswith("rate") and row[7].value == "%":
                cell.number_format = "0.00%"
            elif column.endswith("from") or column == "Cap":
                cell.number_format = "#,##0.00"
    sheet.freeze_panes = "A2"
    notes = book.create_sheet("Notes")
    notes.append(["Rates of % deals are percentages; per-unit rates are USD per unit."])
    book.save(path)


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("deals.xlsx"))
