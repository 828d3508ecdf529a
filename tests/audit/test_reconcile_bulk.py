"""reconcile reads the money rows of many agreements in one query (issue 11, point 3: the web
reconcile page): the same rows, in the same order, as one query per agreement, and the same
report, on the demo's generated book (claims approved, rejected, settled; write-offs)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy.orm import Session

from ledger import Ledger
from ledger.audit import reconcile as reconcile_module
from ledger.audit.facts import load_money, load_money_of
from ledger.audit.reconcile import reconcile_report
from ledger.liability import FOREVER_US
from ledger.projections.core import to_us
from tests.audit.test_diff_stream import demo_book  # noqa: F401  (the fixture)

QUESTIONS = [(date(2025, 12, 31), None), (date(2025, 6, 30), datetime(2025, 8, 1, tzinfo=UTC))]


@pytest.mark.parametrize(("as_of", "known_at"), QUESTIONS)
def test_money_rows_of_many_agreements_are_each_agreements_rows(
        demo_book: Ledger, as_of: date, known_at: datetime | None) -> None:  # noqa: F811
    known_us = FOREVER_US if known_at is None else to_us(known_at)
    ids = [row.agreement_id for row in demo_book.liability(as_of, known_at)]
    with Session(demo_book.engine) as session:
        many = load_money_of(session, ids, as_of, known_us)
        one_by_one = {a: load_money(session, a, as_of, known_us) for a in ids}
    assert many == one_by_one and any(many.values())
    if known_at is None:  # the year's end: every kind of money row is there to compare
        assert {m.kind for rows in many.values() for m in rows} >= {
            "claimed", "approved", "paid", "written_off"}


@pytest.mark.parametrize(("as_of", "known_at"), QUESTIONS)
def test_the_report_is_the_same_whatever_the_chunk(
        demo_book: Ledger, monkeypatch: pytest.MonkeyPatch, as_of: date,  # noqa: F811
        known_at: datetime | None) -> None:
    whole = reconcile_report(demo_book, as_of, known_at).to_json()
    monkeypatch.setattr(reconcile_module, "AGREEMENTS_PER_QUERY", 1)
    assert reconcile_report(demo_book, as_of, known_at).to_json() == whole
    monkeypatch.setattr(reconcile_module, "AGREEMENTS_PER_QUERY", 3)
    assert reconcile_report(demo_book, as_of, known_at).to_json() == whole
