"""Issue 14 point 4: the tables show money with thousands separators and the currency, units
named, rates as `0.44 EUR/unit` or `4 %`; json and csv stay plain and exact. The formatting is
checked by reading each text back: nothing is rounded, nothing lost."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from ledger.audit.output import (
    Report,
    basis_figure,
    count_figure,
    grouped,
    money_figure,
    money_text,
    rate_figure,
)

amounts = st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=6,
                      allow_nan=False, allow_infinity=False)


def back(text: str) -> Decimal:
    """A figure's text read back as a number (separators and unit dropped)."""
    return Decimal(text.split(" ")[0].replace(",", ""))


@given(amounts)
def test_money_text_reads_back_to_the_same_amount(value: Decimal) -> None:
    text = money_text(value, "EUR")
    assert text.endswith(" EUR")
    assert back(text) == value
    whole, _, cents = text.split(" ")[0].lstrip("-").partition(".")
    assert len(cents) >= 2  # two decimals at least, more only when the figure has more
    assert all(len(group) == 3 for group in whole.split(",")[1:])


@given(amounts)
def test_grouped_reads_back_and_drops_only_zeros(value: Decimal) -> None:
    text = grouped(value)
    assert back(text) == value
    assert not ("." in text and text.endswith("0"))


def test_the_worked_examples_of_the_issue() -> None:
    row = {"currency": "EUR", "basis_kind": "quantity", "rate_kind": "per_unit"}
    assert basis_figure()(Decimal("1050.000000"), row) == "1,050 units"
    assert money_figure()(Decimal("70000"), row) == "70,000.00 EUR"
    assert rate_figure()(Decimal("0.44"), row) == "0.44 EUR/unit"
    assert rate_figure()(Decimal("0.5"), row) == "0.50 EUR/unit"
    percent = {**row, "basis_kind": "amount", "rate_kind": "percent"}
    assert rate_figure()(Decimal("0.04"), percent) == "4 %"
    assert rate_figure()(Decimal("0.025"), percent) == "2.5 %"
    assert basis_figure()(Decimal("102341.81"), percent) == "102,341.81 EUR"
    assert count_figure()(1234, row) == "1,234"
    # a figure given as text (the reports' exact decimal strings) reads the same
    assert money_figure()("1234567.891", row) == "1,234,567.891 EUR"


def test_a_cell_that_is_not_a_number_is_shown_as_it_is() -> None:
    assert money_figure()("n/a", {"currency": "EUR"}) == "n/a"


def test_tables_use_the_figures_and_machine_formats_stay_plain() -> None:
    report = Report("t", ("agreement_id", "currency", "basis_kind", "basis", "accrued"),
                    [{"agreement_id": "A1", "currency": "USD", "basis_kind": "quantity",
                      "basis": Decimal("1050"), "accrued": Decimal("70000.00")},
                     {"agreement_id": "A2", "currency": "EUR", "basis_kind": "amount",
                      "basis": Decimal("1234.5"), "accrued": None}],
                    figures={"basis": basis_figure(), "accrued": money_figure()})
    assert report.cells() == [["A1", "USD", "quantity", "1,050 units", "70,000.00 USD"],
                              ["A2", "EUR", "amount", "1,234.50 EUR", ""]]
    assert {"basis", "accrued"} <= report.numeric_columns()
    assert "1050,70000.00" in report.to_csv()
    assert b'"accrued":"70000.00"' in report.to_json()
