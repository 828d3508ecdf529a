"""Issue 14 point 2: a filter naming an id the store has never seen, or a `--known-at` before
the first recorded command, is an error naming it (exit 2) with the closest known ids, never an
empty answer that reads like "nothing is owed"."""

from __future__ import annotations

import orjson
import pytest

from ledger.lookup import near_names, one_off

from .conftest import Runner, agreement, sale

BOOK = [
    agreement("A1", "ACME", program_id="GOLD", recorded_at="2025-01-05T09:00:00Z"),
    {"type": "create_group", "group_id": "G-NORTH", "recorded_at": "2025-01-06T09:00:00Z"},
    sale("S1", "ACME", "5", "50.00", "2025-02-01", recorded_at="2025-02-02T09:00:00Z"),
]


@pytest.fixture
def book(run: Runner) -> Runner:
    run.write("book.jsonl", BOOK)
    assert run("apply", "book.jsonl", "-q").code == 0
    return run


@pytest.mark.parametrize(("args", "message"), [
    (("liability", "--as-of", "2025-12-31", "--customer", "acme"),
     "error: --customer: no customer 'acme' in this store; did you mean 'ACME'?"),
    (("liability", "--as-of", "2025-12-31", "--agreement", "A2"),
     "error: --agreement: no agreement 'A2' in this store; did you mean 'A1'?"),
    (("liability", "--as-of", "2025-12-31", "--group", "G-NORT"),
     "error: --group: no group 'G-NORT' in this store; did you mean 'G-NORTH'?"),
    (("liability", "--as-of", "2025-12-31", "--program", "GLOD"),
     "error: --program: no program 'GLOD' in this store; did you mean 'GOLD'?"),
    (("liability", "--as-of", "2025-12-31", "--agreement", "ZZZ"),
     "error: --agreement: no agreement 'ZZZ' in this store; check the spelling (ids are "
     "case-sensitive) or the --database"),
    (("explain", "--as-of", "2025-12-31", "--agreement", "a1"),
     "error: --agreement: no agreement 'a1' in this store; did you mean 'A1'?"),
    (("opportunities", "--as-of", "2025-06-30", "--customer", "ACM"),
     "error: --customer: no customer 'ACM' in this store; did you mean 'ACME'?"),
    (("positions", "--as-of", "2025-06-30", "--customer", "ACMEE"),
     "error: --customer: no customer 'ACMEE' in this store; did you mean 'ACME'?"),
    (("journal", "--as-of", "2025-06-30", "--agreement", "A11"),
     "error: --agreement: no agreement 'A11' in this store; did you mean 'A1'?"),
    (("trial-balance", "--as-of", "2025-06-30", "--customer", "acme"),
     "error: --customer: no customer 'acme' in this store; did you mean 'ACME'?"),
    (("reconcile", "--as-of", "2025-06-30", "--customer", "CAME"),
     "error: --customer: no customer 'CAME' in this store; did you mean 'ACME'?"),
    (("journal", "--as-of", "2025-06-30", "--known-at", "2024-12-31T00:00:00Z"),
     "error: --known-at 2024-12-31T00:00:00Z is before the first recorded command "
     "(2025-01-05T09:00:00Z): nothing was known then; give a later --known-at"),
])
def test_an_unseen_name_is_an_error_naming_it(book: Runner, args: tuple[str, ...],
                                              message: str) -> None:
    done = book(*args, "--format", "json")
    assert (done.code, done.stdout) == (2, ""), str(done)
    assert done.stderr.splitlines()[-1] == message, str(done)


def test_liability_as_known_before_the_first_command_is_the_contracts_empty_answer_with_a_note(
    book: Runner,
) -> None:
    """Contract 2: an agreement does not exist before it was recorded, so `liability` as known
    at a moment before anything was recorded answers no rows (exit 0); it says why on stderr."""
    done = book("liability", "--as-of", "2025-12-31", "--known-at", "2025-01-04",
                "--format", "json")
    assert done.code == 0, str(done)
    assert orjson.loads(done.stdout)["rows"] == []
    assert done.stderr.splitlines()[-1] == (
        "note: --known-at 2025-01-04T23:59:59.999999Z is before the first recorded command "
        "(2025-01-05T09:00:00Z): nothing was known then; no agreement existed yet")


def test_simulate_for_an_unseen_customer_is_an_error(book: Runner) -> None:
    draft = dict(agreement("D1", "acme"))
    book.write("draft.jsonl", [draft])
    done = book("simulate", "--draft", "draft.jsonl")
    assert (done.code, done.stderr.splitlines()[-1]) == (
        2, "error: the draft's customer_id: no customer 'acme' in this store; did you mean "
        "'ACME'?"), str(done)


def test_a_known_name_still_answers(book: Runner) -> None:
    done = book("liability", "--as-of", "2025-12-31", "--customer", "ACME",
                "--known-at", "2025-01-05T09:00:00Z", "--format", "json")
    assert done.code == 0, str(done)
    assert [row["agreement_id"] for row in done.json()["rows"]] == ["A1"]


def test_one_character_off() -> None:
    assert one_off("acme", "acm") and one_off("acme", "acmee") and one_off("acme", "acne")
    assert one_off("acme", "came")  # two neighbours swapped
    assert not one_off("acme", "acme") and not one_off("acme", "ac")
    assert near_names("a1", ["A1", "A2", "B1"]) == ["A1"]
    assert near_names("A3", ["A1", "A2", "B1"]) == ["A1", "A2"]
