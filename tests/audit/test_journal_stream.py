"""The journal streamed (issue 11, point 1): `write_journal` prints the same bytes as the
whole-book `journal_report`, one agreement's facts at a time, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from typing import Any

import pytest
from rich.console import Console

from ledger import Ledger
from ledger.audit import journal as journal_module
from ledger.audit.journal import iter_postings, journal_report, postings, write_journal
from ledger.audit.output import emit
from ledger.cli.finance import _plain_table

END = date(2025, 12, 31)
QUESTIONS: list[dict[str, Any]] = [
    {"as_of": END, "known_at": None},
    {"as_of": date(2025, 3, 31), "known_at": datetime(2025, 4, 2, 12, tzinfo=UTC)},
    {"as_of": END, "known_at": None, "agreement_id": "A1"},
    {"as_of": END, "known_at": None, "customer_id": "C2"},
    {"as_of": date(2024, 12, 31), "known_at": datetime(2024, 12, 31, tzinfo=UTC)},  # empty
]


def written(book: Ledger, output: str, plain_above: int = 2000, **question: Any) -> str:
    out = io.StringIO()
    console = Console(file=out, width=250, color_system=None)
    as_of, known_at = question.pop("as_of"), question.pop("known_at")
    write_journal(book, as_of, known_at, output, out, console, plain_above=plain_above,
                  **question)
    return out.getvalue()


@pytest.mark.parametrize("question", QUESTIONS)
def test_streamed_json_and_csv_are_the_reports_bytes(book: Ledger,
                                                     question: dict[str, Any]) -> None:
    report = journal_report(book, **question)
    assert written(book, "json", **question) == report.to_json().decode() + "\n"
    assert written(book, "csv", **question) == report.to_csv()


def test_streamed_json_counts_the_entries(book: Ledger) -> None:
    import orjson

    document = orjson.loads(written(book, "json", as_of=END, known_at=None))
    lines = postings(book, END)
    assert document["entries"] == len({p.entry for p in lines}) > 2
    assert len(document["rows"]) == len(lines) == 2 * document["entries"]
    assert document["as_of"] == "2025-12-31" and document["known_at"] is None


@pytest.mark.parametrize("question", QUESTIONS[:3])
def test_a_long_streamed_table_is_the_plain_table_of_the_whole_report(
        book: Ledger, question: dict[str, Any]) -> None:
    expected = io.StringIO()
    _plain_table(journal_report(book, **question), expected)
    assert written(book, "table", plain_above=3, **question) == expected.getvalue()


def test_a_short_streamed_table_is_richs(book: Ledger) -> None:
    expected = io.StringIO()
    emit(journal_report(book, END, agreement_id="A2"), "table",
         Console(file=expected, width=250, color_system=None))
    got = written(book, "table", as_of=END, known_at=None, agreement_id="A2")
    assert got == expected.getvalue() and "accrual" in got and "entries," in got


def test_postings_come_one_agreement_at_a_time(book: Ledger,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # the first agreement's postings are out before the second agreement's facts are read
    loaded: list[str] = []
    real = journal_module.load_facts

    def spy(session: Any, agreement_id: str, *args: Any) -> Any:
        loaded.append(agreement_id)
        return real(session, agreement_id, *args)

    monkeypatch.setattr(journal_module, "load_facts", spy)
    stream = iter_postings(book, END)
    first = next(stream)
    assert loaded == [first.agreement_id] == ["A1"]
    rest = list(stream)
    assert loaded == ["A1", "A2"]
    assert [first, *rest] == postings(book, END)
    count = len(rest) // 2 + 1  # numbered 1.. across agreements, two postings an entry
    assert [p.entry for p in [first, *rest]] == [n for n in range(1, count + 1) for _ in (0, 1)]


def test_the_trial_balance_reads_no_event_ids(book: Ledger,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> Any:
        raise AssertionError("the trial balance needs no event ids")

    monkeypatch.setattr(journal_module, "event_ids", refuse)
    report = journal_module.trial_balance_report(book, END)
    assert report.extra["balanced"] and report.extra["liability_matches"]
    assert all(p.events == () for p in iter_postings(book, END, with_events=False))


@pytest.mark.parametrize(("after", "limit"), [(0, None), (0, 2), (2, 3), (7, 5), (50, 1)])
def test_a_page_of_the_journal_is_those_rows_of_the_whole(book: Ledger, after: int,
                                                          limit: int | None) -> None:
    from ledger.audit.journal import journal_page

    whole = journal_report(book, END)
    page = journal_page(book, END, after=after, limit=limit)
    last = whole.extra["entries"] if limit is None else after + limit
    assert page.rows == [r for r in whole.rows if after < r["entry"] <= last]
    assert page.extra == whole.extra and page.notes == whole.notes
    if (after, limit) == (0, None):
        assert page.to_json() == whole.to_json()
