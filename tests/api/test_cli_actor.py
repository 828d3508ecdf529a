"""`apply` from the command line records who loaded it: `--as NAME`, else `cli:<OS user>`."""

from __future__ import annotations

import getpass
from pathlib import Path

import orjson

from ledger import Ledger
from ledger.access import Role, operator
from ledger.service import LedgerService
from tests.api.test_server import cli
from tests.contract import helpers as h


def test_apply_records_the_operator_or_the_name_given(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    book = tmp_path / "book.jsonl"
    book.write_bytes(orjson.dumps(h.agreement("A1")) + b"\n")
    assert cli(tmp_path, "apply", str(book), "--database", url).returncode == 0
    book.write_bytes(orjson.dumps(h.sale("S1", "1", "1.00")) + b"\n")
    assert cli(tmp_path, "apply", str(book), "--as", "erp-import",
               "--database", url).returncode == 0
    bad = cli(tmp_path, "apply", str(book), "--as", " x", "--database", url)
    assert bad.returncode == 2 and "name" in bad.stderr
    with LedgerService(Ledger(url)) as service:
        events = service.events(operator("t"), 0)["events"]
        assert [(e["type"], e["actor"], e["role"]) for e in events] == [
            ("AgreementCreated", f"cli:{getpass.getuser()}", Role.admin.value),
            ("SalesRecorded", "erp-import", Role.admin.value)]


def test_a_line_with_a_nul_byte_is_rejected_and_kept(database_url: str) -> None:
    """PostgreSQL's text columns refuse NUL: the line is rejected before the store sees it,
    kept with `\\u0000` in its place, and the lines around it apply."""
    with LedgerService(Ledger(database_url)) as service:
        lines = [orjson.dumps(h.agreement("A1")), b'{"type": "record_sale"\x00}',
                 orjson.dumps(h.sale("S1", "1", "1.00"))]
        report = service.load(operator("t"), lines, source="nul.jsonl")
        assert report.accepted == 2 and [r.line for r in report.rejected] == [2]
        (kept,) = service.ledger.rejections()
        assert "NUL" in kept.reason and "\\u0000" in kept.command and "\x00" not in kept.command
