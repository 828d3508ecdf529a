"""Reconcile and positions read an agreement's money rows, never its basis rows (issue 11,
point 2): the accrued figure comes from `Ledger.liability`, which sums in the database."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from ledger import Ledger
from ledger.audit import facts
from ledger.audit.positions import positions
from ledger.audit.reconcile import reconcile

END = date(2025, 12, 31)


@pytest.fixture
def no_basis_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> Any:
        raise AssertionError("the basis rows were read")

    monkeypatch.setattr(facts, "load_basis", refuse)
    monkeypatch.setattr(facts, "load_facts", refuse)


def test_reconcile_reads_no_basis_rows(book: Ledger, no_basis_rows: None) -> None:
    lines = {x.agreement_id: x for x in reconcile(book, END)}
    # A1: claim K1 of 100.00 submitted, approved and paid; 10.00 written off
    assert lines["A1"].claimed == lines["A1"].approved == lines["A1"].paid == 100
    assert lines["A1"].written_off == 10 and lines["A1"].accrued > 0
    assert lines["A2"].claimed == 0 and lines["A2"].accrued > 0


def test_positions_read_no_basis_rows(book: Ledger, no_basis_rows: None) -> None:
    (a1,) = positions(book, "C1", END)
    assert a1.claimed == 100
