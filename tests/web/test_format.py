"""Figures for people (`ledger.web.format`): the separators change, never the digits."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from ledger.web import format as fmt


def test_a_reconcile_flags_figures_get_separators_and_nothing_else_changes() -> None:
    flag = ("post-close adjustment to 2025-Q4: liability at 2025-12-31 reported 1724.25 at the "
            "close 2026-01-10T00:00:00+00:00, now 3509.22 (+1784.97)")
    assert fmt.figures(flag) == (
        "post-close adjustment to 2025-Q4: liability at 2025-12-31 reported 1,724.25 at the "
        "close 2026-01-10T00:00:00+00:00, now 3,509.22 (+1,784.97)")
    assert fmt.figures("negative liability: -1234567.50") == "negative liability: -1,234,567.50"
    assert fmt.figures("approved 25.00 + pending 10.00 > accrued 30.00") == (
        "approved 25.00 + pending 10.00 > accrued 30.00")
    # not money: a quantity with more decimals, a version, an ISO time with fractions
    for text in ("rate 0.055", "1.2.3", "2025-04-10T00:00:00.25+00:00", "30 days > 14"):
        assert fmt.figures(text) == text


@given(st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=2,
                   allow_nan=False, allow_infinity=False),
       st.sampled_from(["approved {} > accrued 1.00", "now {} (+0.01)", "{}"]))
def test_figures_are_the_money_filters_digits(value: Decimal, sentence: str) -> None:
    shown = fmt.figures(sentence.format(value))
    assert shown == sentence.format(fmt.money(value))
    assert shown.replace(",", "") == sentence.format(value)
