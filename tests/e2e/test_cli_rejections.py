"""Rejections as a user meets them (contract sections 1 and 3): `apply` names each rejected line,
its command and a reason naming the field or rule; a rejected command changes nothing; and
`rebate-ledger rejections` keeps every one of them, across several apply runs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .conftest import Run, Runner, agreement, jsonl, rows_by_id, sale


@dataclass(frozen=True)
class Bad:
    """A line that must be rejected: its command type ("" when it has none) and a word its
    reason must contain (the field or rule it breaks)."""

    command: dict[str, Any] | str
    command_type: str
    names: str


SETUP: list[dict[str, Any]] = [
    agreement("A1", "C1"),                                    # 1.00 per unit from 0
    sale("S1", "C1", "5", "50.00", "2025-02-01"),
    {"type": "submit_claim", "claim_id": "K1", "agreement_id": "A1", "amount": "3.00",
     "submitted_on": "2025-03-01"},
]

#: One of each kind of rejection, applied after SETUP in the first run (no line carries
#: recorded_at except the two that test it, so the accepted lines are stamped by the clock).
BAD_FIRST_RUN: list[Bad] = [
    Bad(sale("S2", "C1", "1", "10.00", "2025-02-02", colour="red"), "record_sale", "colour"),
    Bad({k: v for k, v in sale("S3", "C1", "1", "1", "2025-02-02").items()
         if k != "invoice_date"}, "record_sale", "invoice_date"),
    Bad(sale("S4", "C1", "lots", "10.00", "2025-02-02"), "record_sale", "quantity"),
    Bad(sale("S5", "C1", "1", "10.00", "2025-02-02", currency="eur"), "record_sale", "currency"),
    Bad(sale("S6", "C1", "1", "-10.00", "2025-02-02"), "record_sale", "amount"),
    Bad(sale("S1", "C1", "6", "50.00", "2025-02-01"), "record_sale", "sale_id"),
    Bad({"type": "reverse_sale", "sale_id": "S404", "reversed_on": "2025-03-01"},
        "reverse_sale", "sale_id"),
    Bad(agreement("A2", "C2", period_start="2025-12-31", period_end="2025-01-01"),
        "create_agreement", "period_start"),
    Bad(agreement("A3", "C3", tier_method="incremental", rate_kind="percent"),
        "create_agreement", "tier_method"),
    Bad(agreement("A4", "C4", tiers=[{"from": "10", "rate": "1"}, {"from": "5", "rate": "2"}]),
        "create_agreement", "tiers"),
    Bad(agreement("A5", "C5", cap="0"), "create_agreement", "cap"),
    Bad(agreement("A1", "C9"), "create_agreement", "agreement_id"),
    Bad({"type": "approve_claim", "claim_id": "K1", "approved_on": "2025-03-02",
         "approved_amount": "4.00"}, "approve_claim", "approved_amount"),
    Bad({"type": "settle_claim", "claim_id": "K1", "paid_on": "2025-03-03",
         "payment_ref": "PAY-1"}, "settle_claim", "approved"),
    Bad({"type": "write_off", "agreement_id": "A1", "amount": "50.00",
         "effective_date": "2025-06-30", "reason": "too much"}, "write_off", "liability"),
    Bad(sale("S7", "C1", "1", "10.00", "2025-02-02", recorded_at="2025-01-01T00:00:00Z"),
        "record_sale", "recorded_at"),
    Bad(sale("S8", "C1", "1", "10.00", "2025-02-02", recorded_at="3025-01-01T00:00:00Z"),
        "record_sale", "recorded_at"),
    Bad("[1, 2]", "", "object"),
    Bad("{not json", "", "json"),
]

#: The second run, through standard input.
BAD_STDIN: list[Bad] = [
    Bad({"type": "bogus"}, "bogus", "type"),
    Bad({"type": "write_off", "agreement_id": "NOPE", "amount": "1.00",
         "effective_date": "2025-06-30", "reason": "x"}, "write_off", "agreement_id"),
]

#: The third run: a valid sale, then one more rejection.
THIRD_RUN: list[dict[str, Any]] = [sale("S9", "C1", "2", "20.00", "2025-04-01")]
BAD_THIRD_RUN = Bad({"type": "reject_claim", "claim_id": "K404", "rejected_on": "2025-04-02",
                     "reason": "no"}, "reject_claim", "claim_id")


@dataclass(frozen=True)
class Expected:
    source: str
    line: int
    bad: Bad


#: Every rejection of the three runs, in the order they happened.
EXPECTED: list[Expected] = (
    [Expected("first.jsonl", len(SETUP) + i, bad) for i, bad in enumerate(BAD_FIRST_RUN, 1)]
    + [Expected("-", i, bad) for i, bad in enumerate(BAD_STDIN, 1)]
    + [Expected("third.jsonl", len(THIRD_RUN) + 1, BAD_THIRD_RUN)]
)


@dataclass(frozen=True)
class History:
    run: Runner
    applied: list[Run]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    """Three apply runs with rejections into one embedded default store."""
    run = Runner(tmp_path_factory.mktemp("rejections"))
    run.write("first.jsonl", [*SETUP, *(bad.command for bad in BAD_FIRST_RUN)])
    run.write("third.jsonl", [*THIRD_RUN, BAD_THIRD_RUN.command])
    applied = [
        run("apply", "first.jsonl"),
        run("apply", "-", stdin=jsonl(bad.command for bad in BAD_STDIN)),
        run("apply", "third.jsonl"),
    ]
    yield History(run, applied)


def reported_lines(run: Run) -> dict[int, str]:
    """The lines of `apply` output that report an input line, by the first line number named."""
    found: dict[int, str] = {}
    for text in run.stdout.splitlines():
        match = re.search(r"\bline (\d+)\b", text)
        if match:
            found.setdefault(int(match.group(1)), text)
    return found


def test_apply_exits_1_and_counts_every_rejection_of_each_run(history: History) -> None:
    first, stdin, third = history.applied

    assert [run.code for run in history.applied] == [1, 1, 1], "\n".join(map(str, history.applied))
    assert first.counts() == (len(SETUP), 0, len(BAD_FIRST_RUN))
    assert stdin.counts() == (0, 0, len(BAD_STDIN))
    assert third.counts() == (len(THIRD_RUN), 0, 1)


def test_apply_names_the_line_command_and_field_or_rule_of_each_rejection(
    history: History,
) -> None:
    runs = dict(zip(["first.jsonl", "-", "third.jsonl"], history.applied, strict=True))
    for source, run in runs.items():
        expected = [e for e in EXPECTED if e.source == source]
        reported = reported_lines(run)
        assert sorted(reported) == [e.line for e in expected], str(run)
        for e in expected:
            text = reported[e.line]
            assert e.bad.command_type in text, (e, text)
            assert e.bad.names.lower() in text.lower(), (e, text)


def test_rejected_commands_change_nothing(history: History) -> None:
    answer = history.run("liability", "--as-of", "2025-12-31", "--format", "json")

    assert answer.code == 0, str(answer)
    rows = rows_by_id(answer.json())
    # Only A1 exists (A2..A5 and the second A1 were rejected). Accepted sales S1 (5 units) and
    # S9 (2 units): 1.00 x 7 = 7.00; the claim was never approved, nothing paid or written off.
    assert list(rows) == ["A1"]
    a1 = rows["A1"]
    assert (a1["customer_id"], a1["basis"], a1["accrued"], a1["approved"], a1["paid"],
            a1["written_off"], a1["liability"]) == (
        "C1", "7", "7.00", "0.00", "0.00", "0.00", "7.00"
    )


def test_rejections_json_keeps_every_rejection_of_every_run_in_order(history: History) -> None:
    answer = history.run("rejections", "--format", "json")

    assert answer.code == 0, str(answer)
    kept = answer.json()["rejections"]
    assert [(r["source"], r["line"], r["command"] or "") for r in kept] == [
        (e.source, e.line, e.bad.command_type) for e in EXPECTED
    ]
    for record, e in zip(kept, EXPECTED, strict=True):
        assert e.bad.names.lower() in record["reason"].lower(), (e, record)


def test_rejections_table_shows_source_line_command_and_reason(history: History) -> None:
    answer = history.run("rejections")

    assert answer.code == 0, str(answer)
    for e in EXPECTED:
        pattern = rf"{re.escape(e.source)}\W+{e.line}\W+{re.escape(e.bad.command_type)}"
        assert re.search(pattern, answer.stdout), (e, answer.stdout)
    for word in {e.bad.names for e in EXPECTED}:
        assert word.lower() in answer.stdout.lower(), word


def test_rejections_of_a_fresh_ledger_is_an_empty_list(run: Runner) -> None:
    # issue 14: a store is made by a writing command; reading one that does not exist is an error
    run.write("empty.jsonl", [])
    assert run("apply", "empty.jsonl").code == 0
    answer = run("rejections", "--format", "json")

    assert answer.code == 0, str(answer)
    assert answer.json() == {"rejections": []}
