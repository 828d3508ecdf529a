"""The general-ledger export (`gl-export`): the journal's postings of a period as the lines an
ERP's journal-entry upload takes, under the company's chart of accounts.

**The period's postings** are those of `journal --from D1 --to D2` (`ledger.audit.period`): for
the period D1 to D2 as known at K, the movement of each ledger account is its balance in the
journal at D2 minus its balance in the journal at the day before D1 (both as known at K), so
the export adds up to the trial balance's movements for the period, to the cent:

- *accrual*: per agreement, the accrued figure at D2 minus the accrued figure the day before
  D1 (accruals and true-ups together), posted on D2: an increase debits rebate expense and
  credits the accrued liability, a decrease the reverse;
- *settlement* and *write-off*: each posting of the journal at D2 whose valid date is in the
  period, posted on its valid date (the payment's `paid_on`, the write-off's effective date).

**Documents.** The lines are grouped into one document per currency and posting date, each
balanced (debits equal credits; checked, and a failing check is an error), and within it
netted per kind, ledger account, GL account and dimensions (cost centre, customer). Each
document has a stable reference: the prefix, the posting date, the currency and the first
eight hex digits of a SHA-256 over the period and the document's lines. The same period
exported twice with nothing changed gives the same references, so the ERP recognises the
second upload as a duplicate; a document whose content changed gets a new reference.

**Re-export after a late change.** `reverses=K0` (the `known_at` of the export uploaded
before) compares the export as known at K0 with the one as known at K: a document found in
both is left out (it is in the ERP already); each earlier document that changed is reversed
(reference `<reference>-R`, debits and credits swapped, same posting date), and each new
document is included. Uploading that after the first export leaves the ERP with exactly the
export as known at K.

**The mapping** (TOML, see examples/gl/accounts.toml): `[accounts.expense]`,
`[accounts.liability]` and `[accounts.cash]` each name the GL `account`, optionally a
`cost_center` and `customer = true` (fill the customer column); `[customers]` (optional)
maps the ledger's customer ids to the ERP's numbers; `[document]` holds the reference
`prefix` and `constants` (columns with one value on every line, such as a company code);
`[columns]` (optional) renames and orders the columns to match the upload template; `[csv]`
sets the `delimiter`, `decimal_separator` and `date_format` of the CSV file.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ledger.audit.journal import CASH, EXPENSE, LIABILITY
from ledger.audit.output import Report, money
from ledger.audit.period import period_books
from ledger.core import Ledger
from ledger.errors import LedgerError
from ledger.money import EXACT, ZERO

#: The mapping's keys for the ledger's accounts.
LEDGER_ACCOUNTS = {"expense": EXPENSE, "liability": LIABILITY, "cash": CASH}
#: The kinds of line: the journal's kinds, grouped.
KIND_OF = {"accrual": "accrual", "true-up": "accrual", "settlement": "settlement",
           "write-off": "write-off", "write-off reversal": "write-off"}
#: The columns of an export line, in their default order.
COLUMNS = ("document", "posting_date", "currency", "line", "account", "debit", "credit",
           "cost_center", "customer", "ledger_account", "kind", "text")
#: Bounds on what a mapping may hold (a GL account or reference is short).
TEXT_MAX = 100
DELIMITERS = (",", ";", "\t", "|")
#: An accounts file is a page of settings, and a [customers] table of some thousands at most.
MAPPING_CHARS_MAX = 1_000_000
MAPPING_EXAMPLE = ('[accounts.expense]\naccount = "410900"\n\n[accounts.liability]\n'
                   'account = "219100"\n\n[accounts.cash]\naccount = "113100"')


class GLMappingError(LedgerError):
    """The accounts file cannot be used: the message names the key and what to do."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


class GLExportError(LedgerError):
    """The export cannot be made from this book with this mapping (e.g. a customer missing
    from `[customers]`); the message says what to add."""


@dataclass(frozen=True)
class AccountMap:
    account: str
    cost_center: str | None = None
    customer: bool = False


@dataclass(frozen=True)
class GLMapping:
    accounts: dict[str, AccountMap]  # by the ledger's account name
    prefix: str = "RL"
    constants: dict[str, str] = field(default_factory=dict)
    customers: dict[str, str] | None = None
    #: our column -> the upload template's header, in the template's order
    columns: dict[str, str] | None = None
    delimiter: str = ","
    decimal_separator: str = "."
    date_format: str = "%Y-%m-%d"

    @property
    def header(self) -> list[tuple[str, str]]:
        """(our column, its header) in output order: constants after the lines' columns."""
        if self.columns is not None:
            return list(self.columns.items())
        return [(c, c) for c in COLUMNS] + [(c, c) for c in self.constants]


def _text(value: Any, key: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value.strip() and not allow_empty):
        raise GLMappingError(key, f"must be a non-empty text in quotes (it is {value!r})")
    if len(value) > TEXT_MAX or any(ord(ch) < 32 for ch in value):
        raise GLMappingError(key, f"at most {TEXT_MAX} characters, no control characters")
    return value


def _table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GLMappingError(key, f"must be a table [{key}] (it is {value!r})")
    return value


def _no_other_keys(table: dict[str, Any], key: str, known: Iterable[str]) -> None:
    allowed = list(known)
    for name in table:
        if name not in allowed:
            where = f"[{key}]" if key else "the top level"
            raise GLMappingError(f"{key}.{name}" if key else name, "is not a key of this "
                                 f"mapping; the keys of {where} are: {', '.join(allowed)}")


def parse_mapping(text: str) -> GLMapping:
    """The accounts file's text as a `GLMapping`; a `GLMappingError` naming the key and what
    to do if it is not valid TOML or misses or misspells a key."""
    if len(text) > MAPPING_CHARS_MAX:
        raise GLMappingError("", f"the accounts file has {len(text):,} characters, more than "
                             f"the {MAPPING_CHARS_MAX:,} an accounts mapping may have; is it "
                             "the right file?")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise GLMappingError("", f"not valid TOML: {error}; fix the line named") from None
    _no_other_keys(data, "", ("accounts", "customers", "document", "columns",
                                         "csv"))
    if "accounts" not in data:
        raise GLMappingError("accounts", "missing: every ledger account needs its GL "
                             f"account, e.g.\n{MAPPING_EXAMPLE}")
    accounts_table = _table(data["accounts"], "accounts")
    for name in accounts_table:
        if name not in LEDGER_ACCOUNTS:
            raise GLMappingError(f"accounts.{name}", "is not a ledger account; the ledger "
                                 f"posts to: {', '.join(LEDGER_ACCOUNTS)} ("
                                 + "; ".join(f"{k} = {v}" for k, v in LEDGER_ACCOUNTS.items())
                                 + ")")
    accounts: dict[str, AccountMap] = {}
    for name, ledger_account in LEDGER_ACCOUNTS.items():
        key = f"accounts.{name}"
        if name not in accounts_table:
            raise GLMappingError(key, f"missing: the ledger posts to {ledger_account!r}; add "
                                 f'[{key}] with account = "<your GL account>"')
        entry = _table(accounts_table[name], key)
        _no_other_keys(entry, key, ("account", "cost_center", "customer"))
        if "account" not in entry:
            raise GLMappingError(f"{key}.account",
                                 'missing: add account = "<your GL account>"')
        customer = entry.get("customer", False)
        if not isinstance(customer, bool):
            raise GLMappingError(f"{key}.customer", f"must be true or false (it is "
                                 f"{customer!r})")
        accounts[ledger_account] = AccountMap(
            _text(entry["account"], f"{key}.account"),
            _text(entry["cost_center"], f"{key}.cost_center") if "cost_center" in entry
            else None,
            customer)
    customers = None
    if "customers" in data:
        customers = {str(k): _text(v, f"customers.{k}")
                     for k, v in _table(data["customers"], "customers").items()}
    document = _table(data.get("document", {}), "document")
    _no_other_keys(document, "document", ("prefix", "constants"))
    prefix = _text(document.get("prefix", "RL"), "document.prefix")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,12}", prefix):
        raise GLMappingError("document.prefix", f"{prefix!r}: 1 to 12 letters, digits, _ or -")
    constants = {str(k): _text(v, f"document.constants.{k}", allow_empty=True)
                 for k, v in _table(document.get("constants", {}),
                                    "document.constants").items()}
    for name in constants:
        if name in COLUMNS:
            raise GLMappingError(f"document.constants.{name}", "is a column of every line "
                                 "already; give the constant another name")
    columns = None
    if "columns" in data:
        columns = {str(k): _text(v, f"columns.{k}")
                   for k, v in _table(data["columns"], "columns").items()}
        known = [*COLUMNS, *constants]
        for name in columns:
            if name not in known:
                raise GLMappingError(f"columns.{name}", "is not a column of the export; the "
                                     f"columns are: {', '.join(known)}")
        if not columns:
            raise GLMappingError("columns", "is empty: name at least one column, or leave "
                                 "[columns] out for all of them")
    csv_table = _table(data.get("csv", {}), "csv")
    _no_other_keys(csv_table, "csv", ("delimiter", "decimal_separator", "date_format"))
    delimiter = csv_table.get("delimiter", ",")
    if delimiter not in DELIMITERS:
        raise GLMappingError("csv.delimiter", f"{delimiter!r}: one of "
                             + ", ".join(repr(d) for d in DELIMITERS))
    decimal_separator = csv_table.get("decimal_separator", ".")
    if decimal_separator not in (".", ","):
        raise GLMappingError("csv.decimal_separator", f"{decimal_separator!r}: '.' or ','")
    if decimal_separator == delimiter:
        raise GLMappingError("csv.decimal_separator", "is the delimiter too; with a decimal "
                             'comma, set delimiter = ";"')
    date_format = _text(csv_table.get("date_format", "%Y-%m-%d"), "csv.date_format")
    probe = date(2025, 12, 31).strftime(date_format)
    if not all(part in probe for part in ("31", "12")) or "2025" not in probe and \
            "25" not in probe:
        raise GLMappingError("csv.date_format", f"{date_format!r} does not show the day, "
                             'month and year; e.g. "%d.%m.%Y" or "%m/%d/%Y"')
    return GLMapping(accounts, prefix, constants, customers, columns, delimiter,
                     decimal_separator, date_format)


@dataclass(frozen=True)
class GLLine:
    document: str
    posting_date: date
    currency: str
    line: int
    account: str
    debit: Decimal
    credit: Decimal
    cost_center: str | None
    customer: str | None
    ledger_account: str
    kind: str
    text: str

    def to_row(self, constants: dict[str, str]) -> dict[str, Any]:
        return {"document": self.document, "posting_date": self.posting_date,
                "currency": self.currency, "line": self.line, "account": self.account,
                "debit": money(self.debit), "credit": money(self.credit),
                "cost_center": self.cost_center,
                "customer": self.customer, "ledger_account": self.ledger_account,
                "kind": self.kind, "text": self.text, **constants}


@dataclass(frozen=True)
class GLDocument:
    reference: str
    posting_date: date
    currency: str
    lines: tuple[GLLine, ...]

    @property
    def debits(self) -> Decimal:
        return sum((x.debit for x in self.lines), ZERO)

    @property
    def credits(self) -> Decimal:
        return sum((x.credit for x in self.lines), ZERO)

    @property
    def balanced(self) -> bool:
        return self.debits == self.credits


@dataclass(frozen=True)
class GLExport:
    start: date
    end: date
    known_at: datetime
    reverses: datetime | None
    documents: tuple[GLDocument, ...]
    #: documents of the earlier export left out as unchanged (with `reverses`)
    unchanged: int = 0

    @property
    def balanced(self) -> bool:
        return all(d.balanced for d in self.documents)

    def lines(self) -> list[GLLine]:
        return [x for d in self.documents for x in d.lines]


_Key = tuple[str, str, str, str | None, str | None]  # kind, ledger account, GL, cc, customer


def _movements(ledger: Ledger, start: date, end: date, known_at: datetime
               ) -> Iterable[tuple[str, date, str, str, str | None, Decimal]]:
    """(currency, posting date, kind, ledger account, customer, amount: debit - credit) for
    every posting of the period: the same postings as `journal --from D1 --to D2`
    (ledger.audit.period: per agreement the change in accrued, posted on D2; settlements and
    write-offs on their valid dates). Memory: a posting per agreement and payment."""
    books = period_books(ledger, start, end, known_at, with_events=False)
    for posting in books.postings:
        yield (posting.currency, posting.valid_date, KIND_OF[posting.kind], posting.account,
               posting.customer_id, EXACT.subtract(posting.debit, posting.credit))


def build_export(ledger: Ledger, start: date, end: date, known_at: datetime,
                 mapping: GLMapping) -> GLExport:
    """The export of the period as known at `known_at` under `mapping`."""
    if end < start:
        raise GLExportError(f"--to {end} is before --from {start}: give the period's first "
                            "and last days")
    totals: dict[tuple[str, date], dict[_Key, Decimal]] = defaultdict(dict)
    for currency, posted, kind, ledger_account, customer, amount in _movements(
            ledger, start, end, known_at):
        target = mapping.accounts[ledger_account]
        dimension = None
        if target.customer and customer is not None:
            dimension = customer
            if mapping.customers is not None:
                if customer not in mapping.customers:
                    raise GLExportError(
                        f"customers.{customer}: customer {customer!r} has postings in the "
                        f"period but no entry in [customers] of the accounts file; add "
                        f'{customer} = "<its number in the ERP>" under [customers]')
                dimension = mapping.customers[customer]
        key = (kind, ledger_account, target.account, target.cost_center, dimension)
        lines = totals[(currency, posted)]
        lines[key] = EXACT.add(lines.get(key, ZERO), amount)
    documents = []
    for (currency, posted), lines in sorted(totals.items(), key=lambda i: (i[0][1], i[0][0])):
        documents += _document(mapping, start, end, currency, posted, lines)
    return GLExport(start, end, known_at, None, tuple(documents))


def _document(mapping: GLMapping, start: date, end: date, currency: str, posted: date,
              totals: dict[_Key, Decimal]) -> list[GLDocument]:
    order = {"accrual": 0, "settlement": 1, "write-off": 2}
    ledger_order = {EXPENSE: 0, LIABILITY: 1, CASH: 2}
    kept = sorted(((k, v) for k, v in totals.items() if v != 0),
                  key=lambda i: (order[i[0][0]], ledger_order[i[0][1]], i[0][2],
                                 i[0][3] or "", i[0][4] or ""))
    if not kept:
        return []
    content = repr((start.isoformat(), end.isoformat(), currency, posted.isoformat(),
                    [(k, str(v)) for k, v in kept])).encode()
    digest = hashlib.sha256(content).hexdigest()[:8].upper()
    reference = f"{mapping.prefix}-{posted:%Y%m%d}-{currency}-{digest}"
    lines = []
    for n, ((kind, ledger_account, account, cost_center, customer), amount) in enumerate(
            kept, 1):
        lines.append(GLLine(
            reference, posted, currency, n, account,
            amount if amount > 0 else ZERO, -amount if amount < 0 else ZERO,
            cost_center, customer, ledger_account, kind,
            f"rebate {kind} {start:%Y-%m-%d}..{end:%Y-%m-%d}"))
    return [GLDocument(reference, posted, currency, tuple(lines))]


def unbalanced(export: GLExport) -> list[str]:
    """A sentence for each document whose debits and credits differ (none, unless a bug:
    every posting of the journal is one side of a balanced entry)."""
    return [f"document {d.reference} is not balanced: debits {d.debits} vs credits "
            f"{d.credits}" for d in export.documents if not d.balanced]


def reversal(document: GLDocument) -> GLDocument:
    """`document` reversed: the same lines with debits and credits swapped."""
    reference = f"{document.reference}-R"
    return GLDocument(reference, document.posting_date, document.currency, tuple(
        replace(x, document=reference, debit=x.credit, credit=x.debit,
                text=f"reversal of {document.reference}") for x in document.lines))


def re_export(earlier: GLExport, now: GLExport) -> GLExport:
    """What to upload after `earlier` so that the ERP holds `now`: the reversal of each
    earlier document that changed, and each new document; unchanged ones left out."""
    before = {d.reference: d for d in earlier.documents}
    after = {d.reference for d in now.documents}
    documents = [reversal(d) for d in earlier.documents if d.reference not in after]
    documents += [d for d in now.documents if d.reference not in before]
    unchanged = len([d for d in now.documents if d.reference in before])
    documents.sort(key=lambda d: (d.posting_date, d.currency, d.reference))
    return GLExport(now.start, now.end, now.known_at, earlier.known_at, tuple(documents),
                    unchanged)


def per_account(export: GLExport) -> dict[tuple[str, str], Decimal]:
    """(currency, ledger account) -> debits minus credits of the export's lines."""
    found: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for line in export.lines():
        key = (line.currency, line.ledger_account)
        found[key] = EXACT.add(found[key], EXACT.subtract(line.debit, line.credit))
    return dict(found)


def export_report(export: GLExport, mapping: GLMapping) -> Report:
    """The export as a `Report`: its lines under the mapping's columns, the period and the
    documents beside them."""
    header = mapping.header
    rows = [{name: line.to_row(mapping.constants).get(ours) for ours, name in header}
            for line in export.lines()]
    known = export.known_at.isoformat()
    return Report(
        title=f"General-ledger export {export.start} to {export.end}, as known at {known}",
        columns=[name for _, name in header],
        rows=rows,
        meta={"period_from": export.start, "period_to": export.end,
              "known_at": export.known_at, "reverses": export.reverses},
        extra={"documents": [{"document": d.reference, "posting_date": d.posting_date,
                              "currency": d.currency, "lines": len(d.lines),
                              "debits": d.debits, "credits": d.credits,
                              "balanced": d.balanced} for d in export.documents],
               "balanced": export.balanced, "unchanged_documents": export.unchanged},
        notes=[_summary(export)],
    )


def _summary(export: GLExport) -> str:
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for document in export.documents:
        totals[document.currency] = EXACT.add(totals[document.currency], document.debits)
    said = ", ".join(f"{v:.2f} {k}" for k, v in sorted(totals.items())) or "nothing"
    return (f"{len(export.documents)} documents, {len(export.lines())} lines, debits = "
            f"credits in each ({said})"
            + (f"; {export.unchanged} unchanged documents left out" if export.reverses
               else ""))


def to_csv(report: Report, mapping: GLMapping) -> str:
    """The export's lines as the upload's CSV: the mapping's delimiter, decimal separator and
    date format; money with two decimals (more only where the ledger has more)."""
    import csv
    import io

    from ledger.text import csv_cell

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=mapping.delimiter, lineterminator="\r\n")
    writer.writerow(report.columns)
    for row in report.rows:
        cells: list[object] = []
        for value in row.values():
            if isinstance(value, Decimal):
                text = format(money(value), "f")
                cells.append(text.replace(".", mapping.decimal_separator))
            elif isinstance(value, date):
                cells.append(value.strftime(mapping.date_format))
            elif value is None:
                cells.append("")
            else:
                cells.append(csv_cell(str(value)))
        writer.writerow(cells)
    return buffer.getvalue()
