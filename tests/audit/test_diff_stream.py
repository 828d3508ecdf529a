"""The diff streamed (issue 11, point 1): `write_diff` prints, agreement by agreement and in
bounded memory, the same bytes as the whole-book diff it replaced (tests/audit/previous_diff.py,
the code before the change, verbatim), on a generated book (the demo's: groups with late
joins, amendments, forecast revisions, claims, write-offs, a reversal, four closed quarters)
and on the worked book of conftest.py, SQLite and PostgreSQL."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from ledger import Ledger
from ledger.audit import diff as diff_module
from ledger.audit.diff import diff_report, iter_changes, write_diff
from ledger.demo import QUARTER_ENDS, History, close_of, load_history, plan_book
from tests.audit import previous_diff as previous

YEAR_END = date(2025, 12, 31)


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def demo_book(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """The demo's generated 2025 book (10 customers), loaded once per database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('diff-stream') / 'demo.db'}"
    else:
        url = fresh_database(request.getfixturevalue("pg_server"))
    with Ledger(url) as ledger:
        loaded = load_history(ledger, History(plan_book(7, 10), ask=ledger.liability))
        assert loaded.closes == ["2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4"]
        yield ledger


def fresh_database(admin_url: str) -> str:
    """An empty database on the test server, named uniquely (a module-scoped fixture cannot
    use the function-scoped `database_url`)."""
    import sqlalchemy as sa

    from ledger.store import normalise_url

    name = f"ledger_diff_stream_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.engine.make_url(normalise_url(admin_url)).set(database=name).render_as_string(
        hide_password=False)


def demo_questions() -> list[dict[str, Any]]:
    """Each quarter as reported at its close against now, and two windows of knowledge."""
    questions: list[dict[str, Any]] = [
        {"as_of": end, "k1": close_of(end), "k2": None} for end in QUARTER_ENDS]
    questions += [
        {"as_of": YEAR_END, "k1": datetime(2025, 6, 1, tzinfo=UTC),
         "k2": datetime(2025, 10, 1, tzinfo=UTC)},
        {"as_of": date(2025, 6, 30), "k1": datetime(2025, 1, 1, tzinfo=UTC), "k2": None},
    ]
    return questions


def written(book: Ledger, output: str, question: dict[str, Any], **options: Any) -> str:
    out = io.StringIO()
    write_diff(book, question["as_of"], question["k1"], question["k2"], output, out,
               **options)
    return out.getvalue()


def previous_report(book: Ledger, question: dict[str, Any], **options: Any) -> Any:
    return previous.diff_report(book, question["as_of"], question["k1"], question["k2"],
                                **options)


@pytest.mark.parametrize("detail", [False, True])
@pytest.mark.parametrize("number", range(len(demo_questions())))
def test_the_streamed_diff_is_the_previous_whole_book_diff_byte_for_byte(
        demo_book: Ledger, number: int, detail: bool) -> None:
    question = demo_questions()[number]
    before = previous_report(demo_book, question, detail=detail)
    assert before.rows, "every question of the demo book has changes to compare"
    json_text = written(demo_book, "json", question, detail=detail)
    assert json_text == before.to_json().decode() + "\n"
    assert written(demo_book, "csv", question, detail=detail) == before.to_csv()
    now = diff_report(demo_book, question["as_of"], question["k1"], question["k2"],
                      detail=detail)
    assert now.to_json() == before.to_json()
    assert (now.title, now.columns, now.notes) == (before.title, before.columns, before.notes)


def test_the_demo_questions_see_every_kind_of_cause(demo_book: Ledger) -> None:
    # the comparison above is only as strong as the causes the book holds
    kinds = {cause.kind for question in demo_questions()
             for change in previous.diff(demo_book, question["as_of"], question["k1"],
                                         question["k2"])
             for cause in change.causes}
    assert {"late sale", "sale", "return", "retroactive amendment", "new agreement",
            "amendment", "forecast revision", "claim submitted", "claim approved",
            "settlement", "late join", "late leave"} <= kinds, kinds


def test_one_agreement_and_a_group_agreement_stream_the_same(demo_book: Ledger) -> None:
    question = demo_questions()[-2]
    changes = previous.diff(demo_book, question["as_of"], question["k1"], question["k2"])
    groups = [c.agreement_id for c in changes if c.customer_id is None]
    own = [c.agreement_id for c in changes if c.customer_id is not None]
    assert groups and own
    for agreement in (groups[0], own[0]):
        before = previous_report(demo_book, question, agreement_id=agreement)
        assert [r["agreement_id"] for r in before.rows] == [agreement]
        assert written(demo_book, "json", question,
                       agreement_id=agreement) == before.to_json().decode() + "\n"


def test_the_worked_book_streams_the_same(book: Ledger) -> None:
    question = {"as_of": date(2025, 3, 31), "k1": datetime(2025, 4, 10, tzinfo=UTC),
                "k2": None}
    before = previous_report(book, question)
    assert [r["agreement_id"] for r in before.rows] == ["A1"]
    assert written(book, "json", question) == before.to_json().decode() + "\n"
    assert written(book, "csv", question, detail=True) == previous_report(
        book, question, detail=True).to_csv()
    empty = {"as_of": date(2025, 3, 31), "k1": datetime(2025, 12, 1, tzinfo=UTC), "k2": None}
    assert previous_report(book, empty).rows == []
    assert written(book, "json", empty) == previous_report(
        book, empty).to_json().decode() + "\n"


def test_changes_come_one_agreement_at_a_time_without_the_basis(
        demo_book: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    # the first change is out before the next agreement's facts are read; no agreement's
    # basis rows are loaded, and the sales recorded in between are read for its buyers only
    loaded: list[tuple[str, bool]] = []
    asked: list[list[str]] = []
    real_facts, real_between = diff_module.load_facts, diff_module._recorded_between

    def facts_spy(session: Any, agreement_id: str, *args: Any, **options: Any) -> Any:
        loaded.append((agreement_id, options.get("with_basis", True)))
        return real_facts(session, agreement_id, *args, **options)

    def between_spy(session: Any, k1_us: int, k2_us: int, customers: Any,
                    currency: str, held: Any = None) -> Any:
        asked.append(sorted(set(customers)))
        return real_between(session, k1_us, k2_us, asked[-1], currency, held)

    monkeypatch.setattr(diff_module, "load_facts", facts_spy)
    monkeypatch.setattr(diff_module, "_recorded_between", between_spy)
    question = demo_questions()[-1]
    stream = iter_changes(demo_book, question["as_of"], question["k1"], question["k2"])
    first = next(stream)
    assert loaded[-1][0] == first.agreement_id
    count = len(loaded)
    rest = list(stream)
    assert len(loaded) > count and rest
    assert all(with_basis is False for _, with_basis in loaded)
    assert asked and all(len(customers) <= 10 for customers in asked)


def test_reversals_read_agreement_by_agreement_give_the_same_bytes(
        demo_book: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    # a few reversals recorded in between are read once for the whole diff; more than
    # REVERSALS_HELD are read with each agreement's sales: both ways print the same
    reversed_ = [q for q in demo_questions()
                 if any(x.kind == "reversal" for c in previous.diff(
                     demo_book, q["as_of"], q["k1"], q["k2"]) for x in c.causes)]
    assert reversed_, "the demo book has a reversal recorded between two moments asked"
    monkeypatch.setattr(diff_module, "REVERSALS_HELD", 0)
    for question in reversed_:
        for detail in (False, True):
            assert written(demo_book, "json", question, detail=detail) == previous_report(
                demo_book, question, detail=detail).to_json().decode() + "\n"
