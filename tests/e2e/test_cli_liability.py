"""`rebate-ledger liability` as a user types it (contract sections 2 and 3): one JSON object with
`as_of`, `known_at` and the rows of every agreement known at K, figures to the cent on a small
book worked by hand; csv and table output; `--known-at` forms; which store `--database`,
`LEDGER_DATABASE_URL`, the embedded default and `LEDGER_HOME` select; read-your-writes; and the
same answers on PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from .conftest import CLI, TIMEOUT_S, Runner, agreement, clean_env, rows_by_id, sale

ROW_FIELDS = (
    "agreement_id", "customer_id", "group_id", "program_id", "currency", "basis", "accrued",
    "approved", "paid", "written_off", "liability",
)
MONEY_FIELDS = ("accrued", "approved", "paid", "written_off", "liability")
MONEY_TEXT = re.compile(r"-?\d+\.\d{2}")


def usd_sale(sale_id: str, customer_id: str, quantity: str, amount: str, invoice_date: str,
             recorded_at: str) -> dict[str, Any]:
    return sale(sale_id, customer_id, quantity, amount, invoice_date, currency="USD",
                recorded_at=recorded_at)


#: A small book loaded as history (every command carries `recorded_at`, in order).
BOOK: list[dict[str, Any]] = [
    # A1: C1, EUR, quantity basis, retroactive per unit: 1.00 from 0 units, 1.50 from 100.
    agreement("A1", "C1", tiers=[{"from": "0", "rate": "1.00"}, {"from": "100", "rate": "1.50"}],
              recorded_at="2025-01-05T09:00:00Z"),
    # A3: C3, no sales at all: it exists, with zero figures.
    agreement("A3", "C3", recorded_at="2025-01-06T09:00:00Z"),
    sale("S1", "C1", "60", "600.00", "2025-02-10", recorded_at="2025-02-11T09:00:00Z"),
    # C2's first sale arrives before C2's agreement exists: A2 counts it once created.
    usd_sale("S3", "C2", "8", "800.00", "2025-02-20", "2025-02-21T09:00:00Z"),
    sale("S2", "C1", "50", "500.00", "2025-03-15", recorded_at="2025-03-16T12:00:00Z"),
    # A2: C2, USD, amount basis, incremental percent: 2 % up to 1000, 5 % above; cap 40.00.
    agreement("A2", "C2", currency="USD", basis="amount", tier_method="incremental",
              rate_kind="percent", tiers=[{"from": "0", "rate": "0.02"},
                                          {"from": "1000", "rate": "0.05"}],
              cap="40.00", recorded_at="2025-03-18T08:00:00Z"),
    usd_sale("S4", "C2", "7", "700.00", "2025-03-20", "2025-03-21T09:00:00Z"),
    # C1 buys in USD too: not A1's currency, so A1 ignores it.
    usd_sale("S5", "C1", "1000", "1000.00", "2025-03-20", "2025-03-21T10:00:00Z"),
    {"type": "submit_claim", "claim_id": "K1", "agreement_id": "A1", "amount": "100.00",
     "submitted_on": "2025-04-01", "recorded_at": "2025-04-01T09:00:00Z"},
    {"type": "approve_claim", "claim_id": "K1", "approved_on": "2025-04-02",
     "recorded_at": "2025-04-02T09:00:00Z"},
    {"type": "settle_claim", "claim_id": "K1", "paid_on": "2025-04-10", "payment_ref": "PAY-1",
     "paid_amount": "60.00", "recorded_at": "2025-04-10T09:00:00Z"},
    {"type": "write_off", "agreement_id": "A1", "amount": "5.00", "effective_date": "2025-04-15",
     "reason": "goodwill", "recorded_at": "2025-04-15T09:00:00Z"},
]

#: The book as of 2025-04-30, everything known, worked by hand from contract section 2:
#: A1: Q = 60 + 50 = 110 (S5 is USD) >= 100, so 1.50 x 110 = 165.00 accrued; approved 100.00
#:     (K1, approved amount defaults to the claim); paid 60.00; written off 5.00;
#:     liability = 165.00 - 60.00 - 5.00 = 100.00.
#: A2: A = 800 + 700 = 1500; inc(1500) = 0.02 x 1000 + 0.05 x (1500 - 1000) = 20 + 25 = 45,
#:     capped at 40.00; nothing claimed, so liability 40.00.
#: A3: no sales: basis 0, everything 0.00.
EXPECTED_APRIL: dict[str, dict[str, str]] = {
    "A1": {"agreement_id": "A1", "customer_id": "C1", "group_id": None,
           "program_id": None, "currency": "EUR", "basis": "110",
           "accrued": "165.00", "approved": "100.00", "paid": "60.00", "written_off": "5.00",
           "liability": "100.00"},
    "A2": {"agreement_id": "A2", "customer_id": "C2", "group_id": None,
           "program_id": None, "currency": "USD", "basis": "1500",
           "accrued": "40.00", "approved": "0.00", "paid": "0.00", "written_off": "0.00",
           "liability": "40.00"},
    "A3": {"agreement_id": "A3", "customer_id": "C3", "group_id": None,
           "program_id": None, "currency": "EUR", "basis": "0",
           "accrued": "0.00", "approved": "0.00", "paid": "0.00", "written_off": "0.00",
           "liability": "0.00"},
}


def comparable(row: dict[str, str]) -> dict[str, Any]:
    """A row with its basis as a Decimal: the contract fixes money to two decimals, but the
    basis only as a decimal string ("1500" and "1500.00" are the same basis)."""
    return {**{k: ("" if v is None else v) for k, v in row.items()},
            "basis": Decimal(row["basis"])}


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def liability_json(run: Runner, *options: str) -> dict[str, Any]:
    answer = run("liability", *options, "--format", "json")
    assert answer.code == 0, str(answer)
    document = answer.json()
    assert isinstance(document, dict), str(answer)
    return document


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    """The CLI in a folder whose embedded default store holds BOOK, applied once."""
    run = Runner(tmp_path_factory.mktemp("book"))
    run.write("book.jsonl", BOOK)
    applied = run("apply", "book.jsonl")
    assert applied.code == 0, str(applied)
    assert applied.counts() == (len(BOOK), 0, 0)
    yield run


@pytest.fixture(scope="module")
def april(book: Runner) -> dict[str, Any]:
    """`liability --as-of 2025-04-30 --format json` of BOOK, everything known."""
    return liability_json(book, "--as-of", "2025-04-30")


# The document ------------------------------------------------------------------------------


def test_liability_json_is_one_object_of_as_of_known_at_and_rows(april: dict[str, Any]) -> None:
    document = april

    assert set(document) == {"as_of", "known_at", "rows"}
    assert document["as_of"] == "2025-04-30"
    # No --known-at: as known now, a timestamp with its offset.
    assert instant(document["known_at"]).tzinfo is not None


def test_liability_rows_have_exactly_the_contract_fields_as_strings(april: dict[str, Any]) -> None:
    document = april

    assert document["rows"], "the book has agreements"
    for row in document["rows"]:
        assert set(row) == set(ROW_FIELDS)
        # contract 4: group_id and program_id are null when the agreement has none
        assert all(isinstance(row[name], str) for name in ROW_FIELDS if name not in (
            "group_id", "program_id")), row
        assert row["group_id"] is None and row["program_id"] is None, row
        for name in MONEY_FIELDS:
            assert MONEY_TEXT.fullmatch(row[name]), (name, row[name])
        Decimal(row["basis"])  # a decimal string


def test_liability_as_of_april_matches_the_figures_worked_by_hand(april: dict[str, Any]) -> None:
    document = april

    # Every agreement, sorted by agreement_id.
    assert [row["agreement_id"] for row in document["rows"]] == ["A1", "A2", "A3"]
    assert [comparable(row) for row in document["rows"]] == [
        comparable(EXPECTED_APRIL[agreement_id]) for agreement_id in ("A1", "A2", "A3")
    ]


def test_liability_counts_only_claims_settlements_and_write_offs_dated_by_as_of(
    book: Runner,
) -> None:
    rows = rows_by_id(liability_json(book, "--as-of", "2025-04-12"))

    # By 2025-04-12: K1 approved (04-02) and paid 60.00 (04-10); the write-off (04-15) not yet.
    # liability = 165.00 - 60.00 - 0.00 = 105.00
    a1 = rows["A1"]
    assert (a1["accrued"], a1["approved"], a1["paid"], a1["written_off"], a1["liability"]) == (
        "165.00", "100.00", "60.00", "0.00", "105.00"
    )


def test_liability_lists_an_agreement_before_its_period_with_zero_figures(book: Runner) -> None:
    rows = rows_by_id(liability_json(book, "--as-of", "2024-12-31"))

    # All three agreements are recorded, so all exist; no sale is dated by 2024-12-31.
    assert sorted(rows) == ["A1", "A2", "A3"]
    assert {rows[a]["accrued"] for a in rows} == {"0.00"}
    assert {Decimal(rows[a]["basis"]) for a in rows} == {Decimal(0)}


def test_liability_filters_by_agreement_and_by_customer(book: Runner) -> None:
    by_agreement = liability_json(book, "--as-of", "2025-04-30", "--agreement", "A2")
    by_customer = liability_json(book, "--as-of", "2025-04-30", "--customer", "C1")

    assert [comparable(r) for r in by_agreement["rows"]] == [comparable(EXPECTED_APRIL["A2"])]
    assert [comparable(r) for r in by_customer["rows"]] == [comparable(EXPECTED_APRIL["A1"])]


# --known-at --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "known_at", ["2025-03-16T11:00:00Z", "2025-03-16T13:00:00+02:00"], ids=["Z", "plus-2h"]
)
def test_liability_known_at_a_timestamp_ignores_what_was_recorded_later(
    book: Runner, known_at: str
) -> None:
    document = liability_json(book, "--as-of", "2025-03-31", "--known-at", known_at)

    # Both spell 2025-03-16 11:00 UTC: S2 (recorded 12:00 UTC that day) and A2 (recorded
    # 03-18) are not known yet. A1: Q = 60 < 100, so 1.00 x 60 = 60.00. Read 13:00+02:00 as
    # 13:00 UTC and S2 would count: 1.50 x 110 = 165.00.
    assert instant(document["known_at"]) == datetime(2025, 3, 16, 11, tzinfo=UTC)
    rows = rows_by_id(document)
    assert sorted(rows) == ["A1", "A3"]
    assert (rows["A1"]["basis"], rows["A1"]["accrued"]) == ("60", "60.00")


def test_liability_known_at_a_date_knows_everything_recorded_that_day(book: Runner) -> None:
    on_the_day = rows_by_id(
        liability_json(book, "--as-of", "2025-03-31", "--known-at", "2025-03-16")
    )
    day_before = rows_by_id(
        liability_json(book, "--as-of", "2025-03-31", "--known-at", "2025-03-15")
    )

    # S2 was recorded at 12:00 UTC on 2025-03-16: Q = 110 >= 100, 1.50 x 110 = 165.00;
    # the day before only S1: 1.00 x 60 = 60.00. A2 (recorded 03-18) exists in neither.
    assert sorted(on_the_day) == sorted(day_before) == ["A1", "A3"]
    assert on_the_day["A1"]["accrued"] == "165.00"
    assert day_before["A1"]["accrued"] == "60.00"


def test_liability_known_at_leaves_out_a_write_off_recorded_later(book: Runner) -> None:
    rows = rows_by_id(
        liability_json(book, "--as-of", "2025-04-30", "--known-at", "2025-04-11T00:00:00Z")
    )

    # The write-off was recorded 2025-04-15: as known at 04-11, 165.00 - 60.00 - 0.00 = 105.00.
    assert (rows["A1"]["written_off"], rows["A1"]["liability"]) == ("0.00", "105.00")
    # A2's sales and cap were all known by then: 40.00 as in April.
    assert comparable(rows["A2"]) == comparable(EXPECTED_APRIL["A2"])


# Other formats -----------------------------------------------------------------------------


def test_liability_csv_has_the_contract_columns_and_the_json_figures(book: Runner) -> None:
    answer = book("liability", "--as-of", "2025-04-30", "--format", "csv")

    assert answer.code == 0, str(answer)
    reader = csv.DictReader(io.StringIO(answer.stdout))
    assert tuple(reader.fieldnames or ()) == ROW_FIELDS
    assert [comparable(row) for row in reader] == [
        comparable(EXPECTED_APRIL[agreement_id]) for agreement_id in ("A1", "A2", "A3")
    ]


def test_liability_table_is_the_default_and_shows_every_agreement(book: Runner) -> None:
    answer = book("liability", "--as-of", "2025-04-30")

    assert answer.code == 0, str(answer)
    for agreement_id in ("A1", "A2", "A3"):
        assert re.search(rf"\b{agreement_id}\b", answer.stdout), answer.stdout
    for figure in ("165.00", "100.00", "40.00"):
        assert figure in answer.stdout, answer.stdout


# Which store -------------------------------------------------------------------------------


def test_database_option_and_environment_select_separate_stores_and_the_option_wins(
    run: Runner, tmp_path: Path
) -> None:
    one, two = f"sqlite:///{tmp_path / 'one.db'}", f"sqlite:///{tmp_path / 'two.db'}"
    run.write("one.jsonl", [agreement("ONE", "C1"), sale("S1", "C1", "3", "30", "2025-02-01")])
    run.write("two.jsonl", [agreement("TWO", "C2"), sale("S2", "C2", "4", "40", "2025-02-01")])

    # --database wins over LEDGER_DATABASE_URL when both are given.
    assert run("apply", "one.jsonl", "--database", one,
               env={"LEDGER_DATABASE_URL": two}).code == 0
    assert run("apply", "two.jsonl", env={"LEDGER_DATABASE_URL": two}).code == 0

    in_one = rows_by_id(liability_json(run, "--as-of", "2025-12-31", "--database", one))
    in_two = rows_by_id(
        run("liability", "--as-of", "2025-12-31", "--format", "json",
            env={"LEDGER_DATABASE_URL": two}).json()
    )
    # 1.00 per unit: 3 units -> 3.00 in one, 4 units -> 4.00 in two; neither sees the other.
    assert {k: r["accrued"] for k, r in in_one.items()} == {"ONE": "3.00"}
    assert {k: r["accrued"] for k, r in in_two.items()} == {"TWO": "4.00"}
    # Neither went to the embedded default of the working directory (issue 14: reading a
    # store that does not exist is an error, and creates nothing).
    assert run("liability", "--as-of", "2025-12-31").code == 2
    assert not (run.cwd / ".rebate-ledger").exists()


def test_default_store_is_rebate_ledger_folder_in_the_working_directory(
    tmp_path: Path,
) -> None:
    here, elsewhere = Runner(tmp_path / "here"), Runner(tmp_path / "elsewhere")
    here.cwd.mkdir()
    elsewhere.cwd.mkdir()
    here.write("book.jsonl", [agreement("A1", "C1"), sale("S1", "C1", "2", "20", "2025-02-01")])

    assert here("apply", "book.jsonl").code == 0

    assert (here.cwd / ".rebate-ledger" / "ledger.db").is_file()
    assert rows_by_id(liability_json(here, "--as-of", "2025-12-31"))["A1"]["accrued"] == "2.00"
    assert elsewhere("liability", "--as-of", "2025-12-31").code == 2  # no store there


def test_ledger_home_moves_the_default_store(run: Runner, tmp_path: Path) -> None:
    home = tmp_path / "ledger-home"
    run.write("book.jsonl", [agreement("A1", "C1"), sale("S1", "C1", "2", "20", "2025-02-01")])

    assert run("apply", "book.jsonl", env={"LEDGER_HOME": str(home)}).code == 0

    assert (home / "ledger.db").is_file()
    assert not (run.cwd / ".rebate-ledger" / "ledger.db").exists()
    moved = run("liability", "--as-of", "2025-12-31", "--format", "json",
                env={"LEDGER_HOME": str(home)})
    assert [r["accrued"] for r in moved.json()["rows"]] == ["2.00"]
    assert run("liability", "--as-of", "2025-12-31").code == 2  # no store in the default place


# Read your writes --------------------------------------------------------------------------


def test_each_apply_is_visible_to_the_very_next_liability_process(run: Runner) -> None:
    run.write("1.jsonl", [agreement("A1", "C1", tiers=[{"from": "0", "rate": "1.00"},
                                                       {"from": "10", "rate": "2.00"}]),
                          sale("S1", "C1", "4", "40", "2025-02-01")])
    run.write("2.jsonl", [sale("S2", "C1", "6", "60", "2025-03-01"),
                          sale("S3", "C1", "1", "10", "2025-03-02", currency="eu")])  # rejected
    run.write("3.jsonl", [{"type": "reverse_sale", "sale_id": "S1", "reversed_on": "2025-04-01"}])

    def accrued() -> str:
        return rows_by_id(liability_json(run, "--as-of", "2025-12-31"))["A1"]["accrued"]

    assert run("apply", "1.jsonl").code == 0
    assert accrued() == "4.00"  # Q = 4 < 10: 1.00 x 4
    assert run("apply", "2.jsonl").code == 1
    assert accrued() == "20.00"  # Q = 4 + 6 = 10 >= 10: 2.00 x 10 (S3 rejected)
    assert run("apply", "3.jsonl").code == 0
    assert accrued() == "6.00"  # S1 reversed: Q = 6 < 10: 1.00 x 6


# PostgreSQL --------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_book_gives_the_same_figures_on_postgresql(run: Runner, database_url: str) -> None:
    assert database_url.startswith("postgresql")
    run.write("book.jsonl", BOOK)

    applied = run("apply", "book.jsonl", "--database", database_url)

    assert applied.code == 0, str(applied)
    assert applied.counts() == (len(BOOK), 0, 0)
    april = liability_json(run, "--as-of", "2025-04-30", "--database", database_url)
    assert [comparable(row) for row in april["rows"]] == [
        comparable(EXPECTED_APRIL[agreement_id]) for agreement_id in ("A1", "A2", "A3")
    ]
    # As known at 2025-03-16 13:00+02:00 (= 11:00 UTC): only S1 for A1, A2 not yet recorded.
    earlier = rows_by_id(liability_json(
        run, "--as-of", "2025-03-31", "--known-at", "2025-03-16T13:00:00+02:00",
        "--database", database_url,
    ))
    assert sorted(earlier) == ["A1", "A3"]
    assert earlier["A1"]["accrued"] == "60.00"
    # Nothing went to the embedded default of the working directory.
    assert not (run.cwd / ".rebate-ledger").exists()


def test_liability_table_piped_without_columns_keeps_each_row_on_one_line(book: Runner) -> None:
    """Rich falls back to 80 columns without a terminal; piped into a file or `less`, a row of
    the table must still be one whole line (no wrapped or truncated figures)."""
    env = {k: v for k, v in clean_env().items() if k != "COLUMNS"}
    done = subprocess.run(
        [str(CLI), "liability", "--as-of", "2025-04-30"],
        cwd=book.cwd, env=env, capture_output=True, timeout=TIMEOUT_S, check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    expected = liability_json(book, "--as-of", "2025-04-30")["rows"]
    lines = done.stdout.decode().splitlines()
    for row in expected:
        matching = [line for line in lines if f" {row['agreement_id']} " in line]
        assert len(matching) == 1, (row["agreement_id"], lines)
        # issue 14: figures carry thousands separators in the table (json stays plain)
        cells = [cell.strip().replace(",", "") for cell in matching[0].strip("│ ").split("│")]
        # the table shows who the agreement is with in one column, and no program column
        # when no agreement has one
        shown = [name for name in ROW_FIELDS if name not in ("group_id", "program_id")]
        assert cells == [row[name] for name in shown], (cells, row)
