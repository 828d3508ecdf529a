"""The general-ledger export (issue 10, point 5): every document balances; the lines add up,
per currency and account, to the trial balance's movements for the period (the trial balance
at the period's end minus the one the day before it starts, as known at K); references are
stable; a re-export after a late change reverses what changed; mapping errors name the key and
what to do; and the CLI as a user types it, with the example accounts file.

The book is test_trial_balance.py's (EUR: A1 for C1, A2 for C2; USD: A5 for C5). Its S3 is a
late sale: invoiced 2025-03-20 (Q1), recorded 2025-07-15.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from ledger import Ledger
from ledger.audit import gl
from ledger.audit.journal import iter_postings, trial_balance
from ledger.money import ZERO
from tests.audit.test_trial_balance import BOTH, START, in_usd
from tests.contract import helpers as h
from tests.e2e.conftest import Runner
from tests.test_ledger_properties import agreements, sales, stamped

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "gl" / "accounts.toml"
MAPPING = gl.parse_mapping(EXAMPLE.read_text())
NOW = datetime(2025, 12, 31, 23, 59, tzinfo=UTC)
PERIODS = [(date(2025, 1, 1), date(2025, 3, 31)), (date(2025, 4, 1), date(2025, 6, 30)),
           (date(2025, 7, 1), date(2025, 12, 31)), (date(2025, 1, 1), date(2025, 12, 31)),
           (date(2025, 4, 2), date(2025, 4, 2)), (date(2024, 1, 1), date(2024, 12, 31))]
KNOWN = [datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 5, 1, 12, tzinfo=UTC),
         datetime(2025, 7, 14, tzinfo=UTC), NOW]


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    path = tmp_path_factory.mktemp("gl") / "ledger.db"
    with Ledger(f"sqlite:///{path}") as ledger:
        h.accepted_all(ledger, BOTH)
        yield ledger


def movements(ledger: Ledger, start: date, end: date,
              known_at: datetime) -> dict[tuple[str, str], Decimal]:
    """The trial balance's movement per (currency, account) for the period: the balance at
    `end` minus the balance the day before `start`, both as known at K."""
    found: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for sign, day in ((1, end), (-1, start - timedelta(days=1))):
        for balance in trial_balance(iter_postings(ledger, day, known_at, with_events=False)):
            found[(balance.currency, balance.account)] += sign * balance.balance
    return {k: v for k, v in found.items() if v != 0}


@pytest.mark.parametrize("known_at", KNOWN, ids=[k.date().isoformat() for k in KNOWN])
@pytest.mark.parametrize(("start", "end"), PERIODS, ids=[f"{s}..{e}" for s, e in PERIODS])
def test_documents_balance_and_lines_add_up_to_the_trial_balance_movements(
        book: Ledger, start: date, end: date, known_at: datetime) -> None:
    export = gl.build_export(book, start, end, known_at, MAPPING)
    for document in export.documents:
        assert document.debits == document.credits
        assert document.debits > 0
        assert {x.currency for x in document.lines} == {document.currency}
        assert {x.posting_date for x in document.lines} == {document.posting_date}
        assert start <= document.posting_date <= end
        assert all((x.debit == 0) != (x.credit == 0) for x in document.lines)
    keys = [(d.currency, d.posting_date) for d in export.documents]
    assert len(keys) == len(set(keys))  # one document per currency and posting date
    assert {k: v for k, v in gl.per_account(export).items() if v != 0} == movements(
        book, start, end, known_at)


def test_the_example_mapping_names_accounts_cost_centres_and_customers(book: Ledger) -> None:
    export = gl.build_export(book, date(2025, 4, 1), date(2025, 6, 30), NOW, MAPPING)
    lines = export.lines()
    assert lines, "Q2 has settlements and write-offs"
    ledger_to_gl = {"rebate expense (contra-revenue)": "410900",
                    "accrued rebate liability": "219100", "cash / credit notes": "113100"}
    for line in lines:
        assert line.account == ledger_to_gl[line.ledger_account]
        assert line.cost_center == ("CC-4100" if line.account == "410900" else None)
        assert (line.customer is None) == (line.account == "113100")
        if line.customer is not None:
            assert line.customer in {"100001", "100002", "100005"}
    row = gl.export_report(export, MAPPING).rows[0]
    assert row["CompanyCode"] == "1000" and row["DocumentType"] == "SA"


def test_references_are_stable_and_change_with_the_content(book: Ledger) -> None:
    start, end = date(2025, 1, 1), date(2025, 3, 31)
    first = gl.build_export(book, start, end, datetime(2025, 7, 1, tzinfo=UTC), MAPPING)
    again = gl.build_export(book, start, end, datetime(2025, 7, 10, tzinfo=UTC), MAPPING)
    # nothing recorded between the two moments: the same documents, the same references
    assert [d.reference for d in first.documents] == [d.reference for d in again.documents]
    late = gl.build_export(book, start, end, NOW, MAPPING)  # after the late sale S3
    changed = {d.reference for d in late.documents} - {d.reference for d in first.documents}
    assert changed, "the late sale changes the Q1 accrual document"
    assert all(r.startswith("RL-20250331-EUR-") for r in changed)


def test_a_re_export_reverses_what_changed_and_the_erp_ends_with_the_new_export(
        book: Ledger) -> None:
    start, end = date(2025, 1, 1), date(2025, 3, 31)
    k0 = datetime(2025, 7, 1, tzinfo=UTC)
    earlier = gl.build_export(book, start, end, k0, MAPPING)
    now = gl.build_export(book, start, end, NOW, MAPPING)
    upload = gl.re_export(earlier, now)
    assert upload.balanced and upload.reverses == k0
    reversed_refs = {d.reference for d in upload.documents if d.reference.endswith("-R")}
    assert reversed_refs == {f"{d.reference}-R" for d in earlier.documents
                             if d.reference not in {n.reference for n in now.documents}}
    assert reversed_refs
    assert upload.unchanged == len(now.documents) - (len(upload.documents) - len(reversed_refs))
    # in the ERP: the first upload plus this one is the export as known now, account by account
    held: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for export in (earlier, upload):
        for key, value in gl.per_account(export).items():
            held[key] += value
    assert {k: v for k, v in held.items() if v != 0} == {
        k: v for k, v in gl.per_account(now).items() if v != 0}
    assert not any(d.reference in {e.reference for e in earlier.documents}
                   for d in upload.documents)  # never a reference the ERP holds already


def test_a_customer_missing_from_the_customers_table_is_named(book: Ledger) -> None:
    mapping = gl.parse_mapping(EXAMPLE.read_text().replace('C5 = "100005"\n', ""))
    with pytest.raises(gl.GLExportError, match=r"customers\.C5: .*add C5 = "):
        gl.build_export(book, date(2025, 1, 1), date(2025, 12, 31), NOW, mapping)


BASE = '[accounts.expense]\naccount = "4"\n[accounts.liability]\naccount = "2"\n' \
       '[accounts.cash]\naccount = "1"\n'


@pytest.mark.parametrize(("text", "key", "says"), [
    ("[accounts\nx = 1", "", "not valid TOML"),
    ('[document]\nprefix = "RL"\n', "accounts", "missing"),
    (BASE.replace('[accounts.cash]\naccount = "1"\n', ""), "accounts.cash",
     "add [accounts.cash]"),
    (BASE.replace('account = "1"', 'acount = "1"'), "accounts.cash.acount",
     "not a key of this mapping"),
    (BASE + '[accounts.expens]\naccount = "4"\n', "accounts.expens", "not a ledger account"),
    (BASE.replace('account = "4"', 'account = 4'), "accounts.expense.account",
     "text in quotes"),
    (BASE.replace('account = "4"', 'account = "4"\ncustomer = "yes"'),
     "accounts.expense.customer", "true or false"),
    (BASE + '[csv]\ndelimiter = ":"\n', "csv.delimiter", "one of"),
    (BASE + '[csv]\ndecimal_separator = ","\n', "csv.decimal_separator", 'delimiter = ";"'),
    (BASE + '[csv]\ndate_format = "%Y"\n', "csv.date_format", "day, month and year"),
    (BASE + '[columns]\namount = "Amount"\n', "columns.amount", "not a column"),
    (BASE + '[document]\nprefix = "R L"\n', "document.prefix", "letters, digits"),
    (BASE + '[document.constants]\ndebit = "x"\n', "document.constants.debit",
     "another name"),
    ('extra = 1\n' + BASE, "extra", "keys of the top level"),
    (BASE + "# " + "x" * gl.MAPPING_CHARS_MAX + "\n", "", "is it the right file"),
])
def test_mapping_errors_name_the_key_and_what_to_do(text: str, key: str, says: str) -> None:
    with pytest.raises(gl.GLMappingError) as caught:
        gl.parse_mapping(text)
    assert caught.value.key == key
    assert says in str(caught.value)


def test_the_minimal_mapping_gives_every_column_under_its_own_name(book: Ledger) -> None:
    mapping = gl.parse_mapping(BASE)
    export = gl.build_export(book, date(2025, 1, 1), date(2025, 12, 31), NOW, mapping)
    report = gl.export_report(export, mapping)
    assert list(report.columns) == list(gl.COLUMNS)
    text = gl.to_csv(report, mapping)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(export.lines())
    assert all(r["cost_center"] == "" and r["customer"] == "" for r in rows)


# the CLI, as a user types it ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    runner = Runner(tmp_path_factory.mktemp("gl-cli"))
    runner.write("book.jsonl", BOTH)
    done = runner("apply", "book.jsonl")
    assert done.code == 0, str(done)
    return runner


def test_cli_gl_export_csv_and_xlsx_with_the_example_accounts(cli: Runner) -> None:
    args = ("gl-export", "--from", "2025-01-01", "--to", "2025-12-31", "--accounts",
            str(EXAMPLE), "--known-at", "2025-12-31")
    printed = cli(*args)
    assert printed.code == 0, str(printed)
    assert "--reverses 2025-12-31T23:59:59.999999Z" in printed.stderr
    rows = list(csv.DictReader(io.StringIO(printed.stdout), delimiter=";"))
    assert rows and list(rows[0])[:3] == ["CompanyCode", "Reference", "DocumentType"]
    debits: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for row in rows:  # decimal commas and day.month.year, as the mapping says
        debits[row["Reference"]] += Decimal(row["Debit"].replace(",", "."))
        debits[row["Reference"]] -= Decimal(row["Credit"].replace(",", "."))
        assert datetime.strptime(row["PostingDate"], "%d.%m.%Y")
    assert set(debits.values()) == {ZERO}  # every document balances

    target = cli.cwd / "gl.xlsx"
    written = cli(*args, "--format", "xlsx", "--out", str(target))
    assert written.code == 0, str(written)
    workbook = load_workbook(target)
    assert workbook.sheetnames == ["lines", "documents", "about"]
    sheet = workbook["lines"]
    header = [c.value for c in sheet[1]]
    read = [dict(zip(header, (c.value for c in row), strict=True))
            for row in sheet.iter_rows(min_row=2)]
    assert len(read) == len(rows)
    for got, want in zip(read, rows, strict=True):
        assert got["Reference"] == want["Reference"]
        assert Decimal(repr(got["Debit"])) == Decimal(want["Debit"].replace(",", "."))
        assert got["PostingDate"].strftime("%d.%m.%Y") == want["PostingDate"]
        assert got["GLAccount"] == want["GLAccount"]  # text: leading zeros would be kept


def test_cli_gl_export_errors_name_the_key_and_exit_2(cli: Runner) -> None:
    bad = cli.cwd / "bad.toml"
    bad.write_text(BASE.replace('[accounts.cash]\naccount = "1"\n', ""))
    done = cli("gl-export", "--from", "2025-01-01", "--to", "2025-03-31", "--accounts",
               str(bad))
    assert done.code == 2
    assert f"{bad}: accounts.cash: missing" in done.stderr.replace("\n", " ")
    assert done.stdout == ""
    missing = cli("gl-export", "--from", "2025-01-01", "--to", "2025-03-31", "--accounts",
                  "nope.toml")
    assert missing.code == 2 and "--accounts nope.toml" in missing.stderr
    backwards = cli("gl-export", "--from", "2025-03-31", "--to", "2025-01-01", "--accounts",
                    str(EXAMPLE))
    assert backwards.code == 2 and "--to" in backwards.stderr
    terminal = cli("gl-export", "--from", "2025-01-01", "--to", "2025-03-31", "--accounts",
                   str(EXAMPLE), "--format", "xlsx")
    assert terminal.code == 2 and "--out" in terminal.stderr


def test_cli_re_export_with_reverses(cli: Runner) -> None:
    args = ("gl-export", "--from", "2025-01-01", "--to", "2025-03-31", "--accounts",
            str(EXAMPLE), "--format", "json")
    first = cli(*args, "--known-at", "2025-07-01")
    assert first.code == 0, str(first)
    again = cli(*args, "--reverses", "2025-07-01")
    assert again.code == 0, str(again)
    documents = again.json()["documents"]
    assert any(d["document"].endswith("-R") for d in documents)
    assert all(d["balanced"] for d in documents)
    earlier = {d["document"] for d in first.json()["documents"]}
    assert {d["document"][:-2] for d in documents if d["document"].endswith("-R")} <= earlier


def test_an_unbalanced_document_is_named_so_the_command_refuses_it() -> None:
    line = gl.GLLine("RL-X", date(2025, 3, 31), "EUR", 1, "410900", Decimal("1.00"), ZERO,
                     None, None, "rebate expense (contra-revenue)", "accrual", "t")
    export = gl.GLExport(date(2025, 1, 1), date(2025, 3, 31), NOW, None, (
        gl.GLDocument("RL-X", date(2025, 3, 31), "EUR", (line,)),))
    assert not export.balanced
    assert gl.unbalanced(export) == ["document RL-X is not balanced: debits 1.00 vs credits 0"]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(eur=agreements(), usd=agreements(),
       first=st.integers(1, 5).flatmap(lambda n: sales("S", n)),
       late=st.integers(0, 3).flatmap(lambda n: sales("L", n)),
       claim=st.integers(0, 3000), write_off=st.integers(0, 500),
       start=st.dates(date(2025, 1, 1), date(2025, 12, 31)),
       days=st.integers(0, 400), known_minutes=st.integers(0, 2100),
       earlier_minutes=st.integers(0, 2100))
def test_any_book_any_period_balances_and_adds_up_to_the_trial_balance(
    eur: dict[str, Any], usd: dict[str, Any], first: list[dict[str, Any]],
    late: list[dict[str, Any]], claim: int, write_off: int, start: date, days: int,
    known_minutes: int, earlier_minutes: int,
) -> None:
    """Random books in two currencies (random tiers, sales, late sales, a claim paid, a
    write-off), a random period and moment K: every document balances, the lines add up to
    the trial balance's movements; and a re-export against a random earlier K0, added to the
    export at K0, holds the export at K."""
    usd = {**usd, "agreement_id": "A2", "customer_id": "C2", "currency": "USD"}
    later: list[dict[str, Any]] = [*late, *in_usd(late)]
    if claim:
        later += [
            {"type": "submit_claim", "claim_id": "K2", "agreement_id": "A2",
             "amount": f"{claim / 100:.2f}", "submitted_on": "2025-06-01"},
            {"type": "approve_claim", "claim_id": "K2", "approved_on": "2025-06-02"},
            {"type": "settle_claim", "claim_id": "K2", "paid_on": "2025-06-03",
             "payment_ref": "P2"},
        ]
    if write_off:
        later.append({"type": "write_off", "agreement_id": "A1",
                      "amount": f"{write_off / 100:.2f}", "effective_date": "2025-09-30",
                      "reason": "test"})
    mapping = gl.parse_mapping(BASE.replace('account = "4"', 'account = "4"\ncustomer = true'))
    end = start + timedelta(days=days)
    with tempfile.TemporaryDirectory() as folder, Ledger(
        f"sqlite:///{Path(folder) / 'ledger.db'}"
    ) as ledger:
        ledger.apply(stamped([eur, usd, *first, *in_usd(first)], 0))
        ledger.apply(stamped(later, 1000))
        moments = sorted(START + timedelta(minutes=m) for m in (known_minutes, earlier_minutes))
        exports = [gl.build_export(ledger, start, end, k, mapping) for k in moments]
        for export, k in zip(exports, moments, strict=True):
            assert gl.unbalanced(export) == []
            assert {key: v for key, v in gl.per_account(export).items() if v != 0} == \
                movements(ledger, start, end, k)
        if moments[0] < moments[1]:
            upload = gl.re_export(exports[0], exports[1])
            assert gl.unbalanced(upload) == []
            held: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
            for export in (exports[0], upload):
                for key, value in gl.per_account(export).items():
                    held[key] += value
            assert {key: v for key, v in held.items() if v != 0} == {
                key: v for key, v in gl.per_account(exports[1]).items() if v != 0}


def test_cli_gl_export_adds_up_to_the_cli_trial_balances(cli: Runner) -> None:
    """As a user checks it: the export's lines per currency and ledger account equal the
    trial balance at --to minus the trial balance the day before --from (both CLI runs)."""
    plain = cli.cwd / "plain.toml"
    plain.write_text(BASE)
    for start, end, before in (("2025-04-01", "2025-06-30", "2025-03-31"),
                               ("2025-01-01", "2025-12-31", "2024-12-31")):
        export = cli("gl-export", "--from", start, "--to", end, "--accounts", str(plain),
                     "--known-at", "2025-12-31", "--format", "json")
        assert export.code == 0, str(export)
        lines: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        for row in export.json()["rows"]:
            lines[(row["currency"], row["ledger_account"])] += Decimal(row["debit"]) - Decimal(
                row["credit"])
        balances: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        for day, sign in ((end, 1), (before, -1)):
            tb = cli("trial-balance", "--as-of", day, "--known-at", "2025-12-31",
                     "--format", "json")
            assert tb.code == 0, str(tb)
            for row in tb.json()["rows"]:
                balances[(row["currency"], row["account"])] += sign * Decimal(row["balance"])
        assert {k: v for k, v in lines.items() if v} == {k: v for k, v in balances.items() if v}
        assert lines, "each period moves money"
