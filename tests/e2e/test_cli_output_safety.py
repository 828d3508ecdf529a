"""Issue 15, point 5: what the CLI prints is safe to look at and to open. Control characters
from data (terminal escape sequences, bidi overrides) are escaped in every table and message;
`--format csv` neutralises cells a spreadsheet would run as formulas (OWASP's CSV injection
rule) but leaves numbers, negative money included, as numbers; JSON stays exact.

Since issue 10 an id with control or bidirectional characters is refused at input; a store
written before that may still hold one, so the hostile agreement is stored as such a store
has it (`store_legacy_agreement`), past the validation of today's input."""

from __future__ import annotations

import csv
import io

import orjson

from .conftest import Runner, agreement, sale

#: Clears the screen and sets the terminal's title; then red text; then a right-to-left override.
ESCAPES = "\x1b[2J\x1b]0;pwned\x07\x1b[31m\u202e"


def hostile_book(run: Runner) -> None:
    run.write("book.jsonl", [
        agreement(f"A{ESCAPES}", "C1"),  # refused today (issue 10): see store_legacy_agreement
        # 1.00 per unit on an amount basis: returns of more units than were sold, for less
        # money, make a negative accrual (README, contract decisions)
        agreement("=HYPERLINK(\"http://x\")", "@C2", basis="amount"),
        sale("S1", "C1", "5", "50.00", "2025-02-01"),
        sale("S2", "@C2", "1", "100.00", "2025-02-01"),
        sale("S3", "@C2", "-3", "-10.00", "2025-02-02"),  # a credit note
        {"type": f"record_sale{ESCAPES}", "sale_id": f"S{ESCAPES}"},
        {"type": "record_sale", "sale_id": "-2+3", "customer_id": "+C", "product_id": "P1",
         "quantity": "x", "amount": "1", "currency": "EUR", "invoice_date": "2025-02-01"},
    ])


def store_legacy_agreement(run: Runner) -> None:
    """The agreement `A<ESCAPES>` of C1 stored as a store made before ids were checked for
    control characters holds it: the parsed command's id replaced after validation."""
    from ledger import Ledger
    from ledger.commands import parse_line
    from ledger.core import SourcedCommand

    legacy = parse_line(orjson.dumps(agreement("A-legacy", "C1"))).model_copy(
        update={"agreement_id": f"A{ESCAPES}"})
    with Ledger(f"sqlite:///{run.cwd / '.rebate-ledger' / 'ledger.db'}") as book:
        report = book.apply_records([SourcedCommand(1, b"{}", legacy, None, "legacy")])
    assert report.accepted == 1, report.to_dict()


def assert_no_control_characters(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text, repr(text)


def test_tables_and_messages_escape_control_characters(run: Runner) -> None:
    hostile_book(run)

    applied = run("apply", "book.jsonl")
    store_legacy_agreement(run)
    listed = run("rejections")
    table = run("liability", "--as-of", "2025-12-31")

    assert applied.code == 1, str(applied)
    for answer in (applied, listed, table):
        assert_no_control_characters(answer.stdout + answer.stderr)
    assert "record_sale\\x1b[2J\\x1b]0;pwned\\x07\\x1b[31m\\u202e" in applied.stdout
    assert "record_sale\\x1b[2J" in listed.stdout
    assert "A\\x1b[2J" in table.stdout


def test_csv_neutralises_formulas_in_text_cells_and_keeps_numbers(run: Runner) -> None:
    hostile_book(run)
    run("apply", "book.jsonl")
    store_legacy_agreement(run)

    liability = list(csv.DictReader(io.StringIO(
        run("liability", "--as-of", "2025-12-31", "--format", "csv").stdout)))
    rejections = list(csv.DictReader(io.StringIO(run("rejections", "--format", "csv").stdout)))

    group = next(r for r in liability if "HYPERLINK" in r["agreement_id"])
    assert group["agreement_id"] == "'=HYPERLINK(\"http://x\")"
    assert group["customer_id"] == "'@C2"
    # B = 90.00 (amount), 1.00 x (1 - 3) units = -2.00: negative money, still a number
    assert (group["basis"], group["accrued"], group["liability"]) == ("90", "-2.00", "-2.00")
    first = next(r for r in liability if r["agreement_id"].startswith("A"))
    assert first["agreement_id"] == "A\\x1b[2J\\x1b]0;pwned\\x07\\x1b[31m\\u202e"
    for row in liability + rejections:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), row
            assert not cell.startswith("-") or cell.lstrip("-").replace(".", "").isdigit(), row
            assert_no_control_characters(cell)


def test_json_output_stays_exact(run: Runner) -> None:
    hostile_book(run)
    run("apply", "book.jsonl")
    store_legacy_agreement(run)

    document = run("liability", "--as-of", "2025-12-31", "--format", "json").json()
    rejected = orjson.loads(run("rejections", "--format", "json").stdout)["rejections"]

    ids = sorted(r["agreement_id"] for r in document["rows"])
    assert ids == sorted([f"A{ESCAPES}", "=HYPERLINK(\"http://x\")"])
    assert f"record_sale{ESCAPES}" in [r["command"] for r in rejected]


def test_square_brackets_in_ids_and_reasons_are_shown_not_taken_as_markup(run: Runner) -> None:
    """A reason or id holding `[word]` lost it in every table: rich read it as markup."""
    run.write("book.jsonl", [
        agreement("A[bold]1", "C[red]1"),
        sale("S1", "C[red]1", "3", "30.00", "2025-02-01"),
        {"type": "submit_claim", "claim_id": "K1", "agreement_id": "A[choose]",
         "amount": "1.00", "submitted_on": "2025-03-01"},
    ])
    assert run("apply", "book.jsonl").code == 1
    rejections = run("rejections", env={"COLUMNS": "300"})
    assert "'A[choose]'" in rejections.stdout, rejections.stdout
    liability = run("liability", "--as-of", "2025-12-31", env={"COLUMNS": "200"})
    assert "A[bold]1" in liability.stdout and "C[red]1" in liability.stdout, liability.stdout
    reconcile = run("reconcile", "--as-of", "2025-12-31", env={"COLUMNS": "300"})
    assert "A[bold]1" in reconcile.stdout and "C[red]1" in reconcile.stdout, reconcile.stdout
