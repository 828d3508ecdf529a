"""LedgerService.import_rows on SQLite and PostgreSQL: mapped rows go through the same rules as
`apply`, in chunks (a command of a later chunk sees the earlier ones), every rejection kept with
its row number and source; a dry run reports the same outcome and stores nothing at all."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.access import operator
from ledger.config import Settings
from ledger.core import ApplyReport, Ledger
from ledger.importing import parse_mapping, rows_of
from ledger.service import LedgerService

MAPPING = {
    "choose": {"column": "Kind", "values": {"A": "agreement", "S": "sale"}},
    "constants": {"currency": "EUR"},
    "commands": {
        "agreement": {"type": "create_agreement", "agreement_id": "Id", "customer_id": "Customer",
                      "period_start": {"value": "2025-01-01"},
                      "period_end": {"value": "2025-12-31"}, "basis": {"value": "amount"},
                      "tier_method": {"value": "retroactive"},
                      "rate_kind": {"value": "percent"},
                      "tiers": {"from": "From", "rate": "Rate"}},
        "sale": {"type": "record_sale", "sale_id": "Id", "customer_id": "Customer",
                 "product_id": {"value": "P1"}, "quantity": {"value": "1"},
                 "amount": "Amount", "invoice_date": "Day"},
    },
}
CSV = ("Kind,Id,Customer,From,Rate,Amount,Day\n"
       "A,A1,C1,0,0.01,,\n"
       "A,A1,,1000,0.02,,\n"
       "S,S1,C1,,,600.00,2025-02-01\n"
       "S,S2,C1,,,x,2025-02-02\n"            # cannot be mapped: rejected, kept
       "S,S3,C1,,,500.00,2025-02-03\n"
       "S,S1,C1,,,600.00,2025-02-01\n"       # the same sale again: a duplicate
       "S,S4,C1,,,-1.00,2025-02-04\n")       # quantity 1, amount -1: the ledger's rule refuses it


def run_import(service: LedgerService, path: Path, *, dry_run: bool) -> ApplyReport:
    sheet, _, rows = rows_of(path, parse_mapping(MAPPING))
    try:
        return service.import_rows(operator("cli:test"), rows, source=f"import:{path.name}",
                                   dry_run=dry_run)
    finally:
        sheet.close()


@pytest.mark.parametrize("chunk_lines", [1, 5000])
def test_imported_rows_apply_like_apply_and_a_dry_run_stores_nothing(
        database_url: str, tmp_path: Path, chunk_lines: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_CHUNK_LINES", str(chunk_lines))
    path = tmp_path / "book.csv"
    path.write_text(CSV)
    book = Ledger(database_url)
    assert book.settings.chunk_lines == Settings().chunk_lines == chunk_lines
    service = LedgerService(book)
    try:
        preview = run_import(service, path, dry_run=True)
        assert book.rejections() == []
        assert book.liability(date(2025, 12, 31)) == []

        report = run_import(service, path, dry_run=False)
        for done in (preview, report):
            assert done.accepted == 3
            assert [(n, kind) for n, kind, _ in done.duplicates] == [(7, "record_sale")]
            assert [(r.line, r.field) for r in done.rejected] == [(5, "amount"), (8, "amount")]
        kept = book.rejections()
        assert [(r.line, r.source) for r in kept] == [(5, "import:book.csv"),
                                                      (8, "import:book.csv")]
        assert "row 5, column Amount = 'x'" in kept[0].reason
        (row,) = book.liability(date(2025, 12, 31))
        # 600 + 500 = 1,100 reaches the second tier (from 1,000): 2 % of 1,100
        assert (row.basis, row.accrued) == (Decimal("1100.00"), Decimal("22.00"))
    finally:
        service.close()


def test_a_file_that_breaks_off_applies_what_was_read_and_stops_naming_the_row(
        sqlite_url: str, tmp_path: Path) -> None:
    from collections.abc import Iterator

    from ledger.core import ApplyStopped
    from ledger.importing import ImportUnreadable, MappedRow

    path = tmp_path / "book.csv"
    path.write_text(CSV)
    sheet, _, rows = rows_of(path, parse_mapping(MAPPING))

    def breaking() -> Iterator[MappedRow]:
        for row in rows:
            yield row
            if row.number == 4:  # the agreement (rows 2-3) and sale S1
                raise ImportUnreadable("book.csv: row 5 cannot be read")

    with LedgerService(Ledger(sqlite_url)) as service:
        with pytest.raises(ApplyStopped) as stopped:
            service.import_rows(operator("cli:test"), breaking(), source="import:book.csv")
        sheet.close()
        assert stopped.value.report.accepted == 2
        assert stopped.value.report.stopped_at == 5
        assert "row 5 cannot be read" in str(stopped.value)
        (row,) = service.ledger.liability(date(2025, 12, 31))
        assert row.basis == Decimal("600.00")  # what was read before the break is applied


def test_a_dry_run_has_no_size_bound_on_either_database(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More rows than a chunk (2 here): a preview of any size, on SQLite (into a copy of the
    store) and PostgreSQL (the chunks in one transaction rolled back); the duplicate of row 7
    is of row 4, two chunks earlier."""
    monkeypatch.setenv("LEDGER_CHUNK_LINES", "2")
    path = tmp_path / "book.csv"
    path.write_text(CSV)
    with LedgerService(Ledger(database_url)) as service:
        preview = run_import(service, path, dry_run=True)
        assert (preview.accepted, len(preview.rejected)) == (3, 2)
        assert [n for n, _, _ in preview.duplicates] == [7]
        assert service.ledger.liability(date(2025, 12, 31)) == []
        assert service.ledger.rejections() == []
        assert run_import(service, path, dry_run=False).to_dict() == preview.to_dict()
