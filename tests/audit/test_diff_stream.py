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


def test_changes_come_a_batch_at_a_time_without_the_basis(
        demo_book: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    # the first batch's changes are out before the next batch's facts are read; no
    # agreement's basis rows are loaded (load_facts_of reads terms, members and money only),
    # and the sales recorded in between are read for the batch's buyers only
    loaded: list[list[str]] = []
    asked: list[list[str]] = []
    real_facts, real_between = diff_module.load_facts_of, diff_module._recorded_between

    def facts_spy(session: Any, agreement_ids: Any, *args: Any) -> Any:
        loaded.append(list(agreement_ids))
        found = real_facts(session, agreement_ids, *args)
        assert all(not facts.basis_rows for facts in found.values())
        return found

    def between_spy(session: Any, k1_us: int, k2_us: int, customers: Any,
                    currency: str | None, held: Any = None) -> Any:
        asked.append(sorted(set(customers)))
        return real_between(session, k1_us, k2_us, asked[-1], currency, held)

    monkeypatch.setattr(diff_module, "load_facts_of", facts_spy)
    monkeypatch.setattr(diff_module, "_recorded_between", between_spy)
    monkeypatch.setattr(diff_module, "AGREEMENTS_PER_BATCH", 2)
    question = demo_questions()[-1]
    stream = iter_changes(demo_book, question["as_of"], question["k1"], question["k2"])
    first = next(stream)
    assert len(loaded) == 1 and first.agreement_id in loaded[0] and len(loaded[0]) <= 2
    rest = list(stream)
    assert len(loaded) > 1 and rest
    assert all(len(batch) <= 2 for batch in loaded)
    # each batch's buyers: two agreements' customers, or a group's members
    assert asked and all(len(customers) <= 10 for customers in asked)
    assert [c.agreement_id for c in [first, *rest]] == [
        c.agreement_id for c in previous.diff(demo_book, question["as_of"], question["k1"],
                                              question["k2"])]


def test_a_batch_holds_few_sales_recorded_in_between(
        demo_book: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    # an agreement whose buyers' sales recorded in between pass SALES_HELD is a batch of
    # its own; the bytes are the same whatever the batches
    monkeypatch.setattr(diff_module, "SALES_HELD", 1)
    loaded: list[list[str]] = []
    real_facts = diff_module.load_facts_of

    def facts_spy(session: Any, agreement_ids: Any, *args: Any) -> Any:
        loaded.append(list(agreement_ids))
        return real_facts(session, agreement_ids, *args)

    monkeypatch.setattr(diff_module, "load_facts_of", facts_spy)
    question = demo_questions()[-2]
    assert written(demo_book, "json", question) == previous_report(
        demo_book, question).to_json().decode() + "\n"
    assert loaded and max(len(batch) for batch in loaded) <= 2


def test_only_the_agreements_touched_in_between_are_computed(
        book: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    # an agreement that nothing recorded in (K1, K2] concerns is not computed at all (A2 of
    # the worked book: nothing about it is recorded after March); the ones computed hold
    # every change of the previous whole-book diff
    question = {"as_of": date(2025, 3, 31), "k1": datetime(2025, 4, 10, tzinfo=UTC),
                "k2": None}
    computed: list[str] = []
    real_facts = diff_module.load_facts_of

    def facts_spy(session: Any, agreement_ids: Any, *args: Any) -> Any:
        computed.extend(agreement_ids)
        return real_facts(session, agreement_ids, *args)

    monkeypatch.setattr(diff_module, "load_facts_of", facts_spy)
    changes = [c.agreement_id for c in iter_changes(
        book, question["as_of"], question["k1"], question["k2"])]
    every = [r.agreement_id for r in book.liability(question["as_of"], question["k2"])]
    assert set(changes) <= set(computed) < set(every)
    assert computed == ["A1"]
    assert changes == [c.agreement_id for c in previous.diff(
        book, question["as_of"], question["k1"], question["k2"])]


def test_a_page_of_changes_starts_after_an_agreement(demo_book: Ledger) -> None:
    question = demo_questions()[-2]
    whole = list(iter_changes(demo_book, question["as_of"], question["k1"], question["k2"]))
    assert len(whole) >= 3
    cut = whole[1].agreement_id
    rest = list(iter_changes(demo_book, question["as_of"], question["k1"], question["k2"],
                             after=cut))
    assert [c.agreement_id for c in rest] == [c.agreement_id for c in whole[2:]]
    assert [c.causes for c in rest] == [c.causes for c in whole[2:]]


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
