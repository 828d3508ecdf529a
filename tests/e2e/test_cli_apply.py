"""`rebate-ledger apply FILE|-` as a user types it (contract section 3): the summary it prints,
the rejections it names, its exit codes, exact decimals from JSON numbers, and a large file."""

from __future__ import annotations

import re
from decimal import Decimal

from .conftest import Run, Runner, agreement, jsonl, rows_by_id, sale

AS_OF = "2025-12-31"


def reported_lines(run: Run) -> dict[int, str]:
    """The lines of `apply` output that report an input line, by the first line number named."""
    found: dict[int, str] = {}
    for text in run.stdout.splitlines():
        match = re.search(r"\bline (\d+)\b", text)
        if match:
            number = int(match.group(1))
            assert number not in found, f"line {number} reported twice:\n{run}"
            found[number] = text
    return found


def liability_rows(run: Runner) -> dict[str, dict[str, str]]:
    answer = run("liability", "--as-of", AS_OF, "--format", "json")
    assert answer.code == 0, str(answer)
    return rows_by_id(answer.json())


def test_apply_file_prints_the_counts_and_exits_0_when_nothing_is_rejected(run: Runner) -> None:
    run.write("book.jsonl", [
        agreement("A1", "C1"),
        sale("S1", "C1", "10", "100.00", "2025-02-01"),
        sale("S2", "C1", "5", "50.00", "2025-03-01"),
        sale("S1", "C1", "10", "100.00", "2025-02-01"),  # the same sale again: a duplicate
    ])

    applied = run("apply", "book.jsonl")

    assert applied.code == 0, str(applied)
    assert applied.counts() == (3, 1, 0)
    # 1.00 per unit from 0, retroactive: 1.00 x (10 + 5) = 15.00; the duplicate adds nothing.
    row = liability_rows(run)["A1"]
    assert (row["basis"], row["accrued"], row["liability"]) == ("15", "15.00", "15.00")


def test_apply_dash_reads_the_batch_from_standard_input(run: Runner) -> None:
    batch = [
        agreement("A1", "C1", tiers=[{"from": "0", "rate": "2.50"}]),
        sale("S1", "C1", "4", "40.00", "2025-05-05"),
    ]
    applied = run("apply", "-", stdin=jsonl(batch))

    assert applied.code == 0, str(applied)
    assert applied.counts() == (2, 0, 0)
    # 2.50 per unit x 4 units = 10.00
    assert liability_rows(run)["A1"]["accrued"] == "10.00"


def test_apply_exits_1_names_each_rejection_and_still_applies_the_rest(run: Runner) -> None:
    run.write("mixed.jsonl", [
        agreement("A1", "C1"),                                     # line 1: accepted
        sale("S1", "C1", "4", "40.00", "2025-02-01"),              # line 2: accepted
        sale("S2", "C1", "7", "70.00", "2025-02-02", currency="eur"),  # line 3: bad currency
        "",                                                        # line 4: blank, skipped
        "{not json",                                               # line 5: unreadable line
        sale("S3", "C1", "6", "60.00", "2025-02-03"),              # line 6: accepted
        {"type": "submit_claim", "claim_id": "K1", "agreement_id": "NOPE",
         "amount": "5.00", "submitted_on": "2025-03-01"},          # line 7: unknown agreement
        sale("S4", "C1", "1", "10.00", "2025-02-04", colour="red"),  # line 8: unknown field
    ])

    applied = run("apply", "mixed.jsonl")

    assert applied.code == 1, str(applied)
    assert applied.counts() == (3, 0, 4)
    # Each rejection names its (physical) line, its command type and a reason naming the field;
    # no accepted line is reported.
    reported = reported_lines(applied)
    assert sorted(reported) == [3, 5, 7, 8], str(applied)
    assert "record_sale" in reported[3] and "currency" in reported[3]
    assert "json" in reported[5].lower()
    assert "submit_claim" in reported[7] and "agreement_id" in reported[7]
    assert "record_sale" in reported[8] and "colour" in reported[8]
    # The rest applied: 1.00 per unit x (4 + 6) = 10.00; S2 and S4 count for nothing.
    row = liability_rows(run)["A1"]
    assert (row["basis"], row["accrued"]) == ("10", "10.00")


def test_apply_of_an_empty_file_accepts_nothing_and_exits_0(run: Runner) -> None:
    (run.cwd / "empty.jsonl").write_bytes(b"")

    applied = run("apply", "empty.jsonl")

    assert applied.code == 0, str(applied)
    assert applied.counts() == (0, 0, 0)
    assert "empty.jsonl is empty: no commands, nothing applied" in applied.stderr


def test_apply_exits_2_when_the_file_does_not_exist(run: Runner) -> None:
    applied = run("apply", "missing.jsonl")

    assert applied.code == 2, str(applied)
    assert "missing.jsonl" in applied.stderr
    assert "accepted" not in applied.stdout  # no summary: nothing was read, nothing applied


def test_apply_exits_2_when_the_input_is_a_directory(run: Runner) -> None:
    (run.cwd / "folder.jsonl").mkdir()

    applied = run("apply", "folder.jsonl")

    assert applied.code == 2, str(applied)
    assert "folder.jsonl" in applied.stderr
    assert "accepted" not in applied.stdout  # no summary: nothing was read, nothing applied


def test_json_numbers_are_read_as_exact_decimals_never_as_floats(run: Runner) -> None:
    # Quantities, amounts, tier bounds and rates as JSON numbers, not strings.
    run.write("numbers.jsonl", [
        agreement("A-AMT", "CX", basis="amount", rate_kind="percent",
                  tiers=[{"from": 0, "rate": 0.5}]),
        agreement("A-QTY", "CX", tiers=[{"from": 0, "rate": 0.1}]),
        agreement("A-SUM", "CY", basis="amount", rate_kind="percent",
                  tiers=[{"from": 0, "rate": 0.05}]),
        sale("X1", "CX", 0.1, 0.1, "2025-04-01"),
        sale("X2", "CX", 0.2, 0.2, "2025-04-02"),
        sale("X3", "CX", 12.5, 1.71, "2025-04-03"),
        sale("Y1", "CY", 1, 0.1, "2025-04-01"),
        sale("Y2", "CY", 2, 0.2, "2025-04-02"),
    ])

    applied = run("apply", "numbers.jsonl")

    assert applied.code == 0, str(applied)
    rows = liability_rows(run)
    # A-AMT: A = 0.1 + 0.2 + 1.71 = 2.01; 0.5 x 2.01 = 1.005, half up -> 1.01.
    # In binary floats 2.01 * 0.5 is 1.00499999999999989... and would round to 1.00.
    assert Decimal(rows["A-AMT"]["basis"]) == Decimal("2.01")
    assert rows["A-AMT"]["accrued"] == "1.01"
    # A-QTY: Q = 0.1 + 0.2 + 12.5 = 12.8; 0.1 x 12.8 = 1.28 (floats: 1.2800000000000002).
    assert Decimal(rows["A-QTY"]["basis"]) == Decimal("12.8")
    assert rows["A-QTY"]["accrued"] == "1.28"
    # A-SUM: A = 0.1 + 0.2 = 0.3 exactly (floats: 0.30000000000000004); 0.05 x 0.3 = 0.015,
    # half up -> 0.02.
    assert rows["A-SUM"]["basis"] == "0.3"
    assert rows["A-SUM"]["accrued"] == "0.02"


def test_twenty_thousand_sales_apply_with_exit_0_and_exact_totals(run: Runner) -> None:
    sales = 20_000
    batch = [agreement("BIG", "C1", tiers=[{"from": "0", "rate": "0.02"},
                                           {"from": "30000", "rate": "0.05"}])]
    batch += [sale(f"S{i}", "C1", str(1 + i % 3), "1.25", "2025-06-30") for i in range(sales)]
    batch.append(sale("S0", "C1", "1", "1.25", "2025-06-30"))  # S0 again: a duplicate
    run.write("big.jsonl", batch)

    applied = run("apply", "big.jsonl")

    assert applied.code == 0, str(applied)
    assert applied.counts() == (sales + 1, 1, 0)
    # Quantities 1, 2, 3 repeating over i = 0..19999: 6667 ones, 6667 twos, 6666 threes,
    # Q = 6667 + 13334 + 19998 = 39999 >= 30000, so the 0.05 tier applies retroactively:
    # 0.05 x 39999 = 1999.95.
    row = liability_rows(run)["BIG"]
    assert (row["basis"], row["accrued"], row["liability"]) == ("39999", "1999.95", "1999.95")
