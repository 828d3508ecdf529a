"""Issue 14 point 4 (part): on an 80-column terminal the liability table shows every figure in
full, with thousands separators (descriptive columns go first); the trial balance shows Dr/Cr;
json and csv stay plain and exact."""

from __future__ import annotations

from decimal import Decimal

import pytest

from .conftest import Runner, agreement, sale


@pytest.fixture
def book(run: Runner) -> Runner:
    commands = []
    for i in range(3):
        commands += [
            agreement(f"RB-2025-000{i}", f"CUSTOMER-WITH-A-LONG-NAME-{i}", program_id="GOLD",
                      tiers=[{"from": "0", "rate": "1.37"}]),
            sale(f"S{i}", f"CUSTOMER-WITH-A-LONG-NAME-{i}", "65271.5", "9999999.99",
                 "2025-03-01"),
        ]
    run.write("book.jsonl", commands)
    assert run("apply", "book.jsonl", "-q").code == 0
    return run


def test_every_liability_figure_is_whole_on_80_columns(book: Runner) -> None:
    done = book("liability", "--as-of", "2025-12-31", env={"COLUMNS": "80"})
    assert done.code == 0, str(done)
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, done.stdout
    assert "…" not in done.stdout
    # 65,271.5 units x 1.37 = 89,421.955 -> 89,421.96 each; three of them: 268,265.88
    assert sum(line.count("89,421.96") for line in lines) == 6  # accrued and liability
    total = next(line for line in lines if "268,265.88" in line)
    assert total.count("268,265.88") == 2 and "65,271.5" in done.stdout


def test_machine_formats_stay_plain(book: Runner) -> None:
    done = book("liability", "--as-of", "2025-12-31", "--format", "csv", env={"COLUMNS": "80"})
    assert done.code == 0 and "RB-2025-0000,CUSTOMER-WITH-A-LONG-NAME-0,,GOLD,EUR,65271.5," \
        "89421.96,0.00,0.00,0.00,89421.96" in done.stdout, str(done)


def test_the_trial_balance_says_dr_and_cr(book: Runner) -> None:
    table = book("trial-balance", "--as-of", "2025-12-31")
    assert table.code == 0, str(table)
    expense = next(line for line in table.stdout.splitlines() if "rebate expense" in line)
    liability = next(line for line in table.stdout.splitlines()
                     if "accrued rebate liability" in line)
    assert "268,265.88 Dr" in expense and "268,265.88 Cr" in liability
    assert "-268" not in table.stdout
    csv = book("trial-balance", "--as-of", "2025-12-31", "--format", "csv")
    assert "EUR,accrued rebate liability,0.00,268265.88,-268265.88" in csv.stdout, str(csv)


@pytest.mark.parametrize(("command", "key"), [
    (("reconcile", "--as-of", "2026-06-30"), "agreement_id"),
    (("opportunities", "--as-of", "2025-06-30"), "agreement_id"),
])
def test_reports_too_wide_for_80_columns_show_every_figure_whole(
        book: Runner, command: tuple[str, ...], key: str) -> None:
    """Issue 14 point 4: reconcile and opportunities cut every figure to one character on 80
    columns. On a terminal too narrow for the table they turn vertical: a block per row."""
    book.write("more.jsonl", [
        agreement("RB-2025-0100", "CUSTOMER-WITH-A-LONG-NAME-0",
                  tiers=[{"from": "0", "rate": "1.37"}, {"from": "100000", "rate": "2.05"}]),
    ])
    assert book("apply", "more.jsonl", "-q").code == 0
    rows = book(*command, "--format", "json").json()["rows"]
    assert rows
    done = book(*command, env={"COLUMNS": "80"})
    assert done.code == 0, str(done)
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, done.stdout
    assert "…" not in done.stdout
    for row in rows:
        for column, value in row.items():
            if isinstance(value, str) and value and len(value) < 60 and column != "flags":
                assert any(line.split(None, 1)[:1] == [column]
                           and _same(line.split(None, 1)[1], value) for line in lines), (
                    column, value, done.stdout)
    wide = book(*command, env={"COLUMNS": "400"})
    assert "┃" in wide.stdout  # room enough: the table


def _same(shown: str, value: str) -> bool:
    """Whether a card's `shown` text is the json `value`: the same text, or the same figure
    written for people (`89,421.96 EUR`, `1,050 units`, `0.44 EUR/unit`, `4 %` for 0.04)."""
    if shown == value:
        return True
    number, _, unit = shown.partition(" ")
    try:
        figure = Decimal(number.replace(",", ""))
        return (figure / 100 if unit == "%" else figure) == Decimal(value)
    except ArithmeticError:
        return False
