"""ledger.text: text made safe for a store, a terminal and a spreadsheet (issue 15)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from ledger.audit.output import Report
from ledger.text import csv_cell, printable, printable_lines, storable


@pytest.mark.parametrize("text", ["=1+2", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx", "-", "=",
                                  "-12.50abc", "-1e5"])
def test_a_text_cell_a_spreadsheet_would_run_gets_a_quote(text: str) -> None:
    assert csv_cell(text) == printable("'" + text)


@pytest.mark.parametrize("value", ["-12.50", "-3", "12.50", "0", "", "abc", "A=1",
                                   Decimal("-12.50"), -3])
def test_numbers_and_harmless_text_are_left_as_they_are(value: object) -> None:
    assert csv_cell(value) == value


def test_a_report_csv_neutralises_text_and_keeps_negative_money() -> None:
    report = Report(title="t", columns=("id", "name", "amount", "day"), rows=[
        {"id": "=cmd|' /C calc'!A0", "name": "-2+3", "amount": Decimal("-12.50"),
         "day": date(2025, 1, 1)},
    ])
    lines = report.to_csv().splitlines()
    assert lines[1] == "'=cmd|' /C calc'!A0,'-2+3,-12.50,2025-01-01"


def test_a_report_table_escapes_control_characters_in_cells() -> None:
    report = Report(title="t", columns=("id",), rows=[{"id": "A\x1b[31m\u202e"}])
    (cell,) = report.to_table().columns[0].cells
    assert str(cell) == "A\\x1b[31m\\u202e"  # a rich Text: shown as is, not as markup


@pytest.mark.parametrize(("text", "shown"), [
    ("a\x1b[2Jb", "a\\x1b[2Jb"), ("\x9b31m", "\\x9b31m"), ("r\rl", "r\\x0dl"),
    ("\u202egnp.exe", "\\u202egnp.exe"), ("\ud800", "\\ud800"), ("t\tn\n", "t\\x09n\\x0a"),
    ("Müller 東京 😀", "Müller 東京 😀"),
])
def test_printable_escapes_what_a_terminal_acts_on_and_nothing_else(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_printable_lines_keeps_newlines_only() -> None:
    assert printable_lines("a\x1b\nb\t") == "a\\x1b\nb\\x09"


def test_storable_escapes_nul_and_lone_surrogates_only() -> None:
    assert storable("a\x00b\ud800c\x1bé😀") == "a\\u0000b\\ud800c\x1bé😀"
