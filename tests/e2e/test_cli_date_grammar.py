"""Issue 14 point 3: one grammar for `--known-at` (a date YYYY-MM-DD meaning the end of that day
UTC, or a full timestamp with its offset) and YYYY-MM-DD for `--as-of`; `20250716` and other
shapes are refused with the accepted forms, never read as another moment of the same day."""

from __future__ import annotations

import pytest

from .conftest import Runner, agreement, sale

FORMS = ("a date YYYY-MM-DD (the end of that day, UTC) or a timestamp with its offset "
         "(2025-07-16T09:00:00Z, 2025-07-16T11:00:00+02:00)")


@pytest.fixture
def book(run: Runner) -> Runner:
    run.write("book.jsonl", [
        agreement("A1", "C1", recorded_at="2025-07-01T09:00:00Z"),
        sale("S1", "C1", "5", "50.00", "2025-07-01", recorded_at="2025-07-16T09:00:00Z"),
    ])
    assert run("apply", "book.jsonl", "-q").code == 0
    return run


def accrued(book: Runner, known_at: str) -> str:
    done = book("liability", "--as-of", "2025-12-31", "--known-at", known_at, "--format", "json")
    assert done.code == 0, str(done)
    return done.json()["rows"][0]["accrued"]


def test_the_two_forms_answer(book: Runner) -> None:
    assert accrued(book, "2025-07-16") == "5.00"  # the end of that day: the sale is known
    assert accrued(book, "2025-07-16T08:59:59Z") == "0.00"
    assert accrued(book, "2025-07-16T11:00:00+02:00") == "5.00"


@pytest.mark.parametrize("value", [
    "20250716", "2025-07-16T09:00:00", "2025-7-16", "16.07.2025", "2025-07-16T09",
])
def test_other_shapes_are_refused_with_the_two_forms(book: Runner, value: str) -> None:
    done = book("liability", "--as-of", "2025-12-31", "--known-at", value, "--format", "json",
                env={"COLUMNS": "400"})
    assert (done.code, done.stdout) == (2, ""), str(done)
    assert (f"Invalid value for --known-at: {value!r} is neither of the two accepted forms: "
            f"{FORMS}") in done.stderr, str(done)


@pytest.mark.parametrize("value", ["20251231", "2025-12-31T00:00:00Z", "2025-12-1"])
def test_as_of_takes_a_date_only(book: Runner, value: str) -> None:
    done = book("liability", "--as-of", value, env={"COLUMNS": "400"})
    assert done.code == 2, str(done)
    assert f"Invalid value for --as-of: {value!r} is not a date YYYY-MM-DD" in done.stderr
