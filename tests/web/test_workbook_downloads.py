"""The web app's Excel downloads beside its CSV (liability) and on the reconcile and journal
pages: workbooks from LedgerService.workbook, with the rights and scoping of the page."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from decimal import Decimal
from typing import Any

import orjson
import pytest
from openpyxl import load_workbook

from ledger.access import operator
from tests.web.conftest import ROLES, Web, shown

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BOOKS = {"admin", "finance", "commercial", "auditor"}
AS_OF = "2025-03-31"


def sheet_rows(content: bytes, key: str) -> list[dict[str, Any]]:
    """Every row of every sheet whose header holds `key`, as dicts by header."""
    book = load_workbook(io.BytesIO(content), read_only=True)
    rows = []
    for sheet in book.worksheets:
        values = list(sheet.iter_rows(values_only=True))
        if values and key in values[0]:
            rows += [dict(zip(values[0], row, strict=False)) for row in values[1:]]
    return rows


def test_the_pages_link_their_excel_download(web: Web) -> None:
    client = web.sign_in("finance")
    for page in (f"/liability?as_of={AS_OF}", f"/reconcile?as_of={AS_OF}&customer=C1",
                 f"/journal?as_of={AS_OF}&agreement=A1"):
        html = client.get(page).text
        link = re.search(r'<a href="([^"]+\.xlsx[^"]*)" download>Download Excel</a>', html)
        assert link, page
        answer = client.get(link.group(1).replace("&amp;", "&"))
        assert answer.status_code == 200 and answer.headers["content-type"] == XLSX
        assert "attachment" in answer.headers["content-disposition"]
    assert "Download CSV</a> · <a href=" in client.get(f"/liability?as_of={AS_OF}").text


@pytest.mark.parametrize("role", [r for r in ROLES if r != "ingest"])
def test_liability_workbook_holds_the_csvs_figures(web: Web, role: str) -> None:
    client = web.sign_in(role)
    listed = list(csv.DictReader(io.StringIO(
        client.get(f"/liability.csv?as_of={AS_OF}").text)))
    answer = client.get(f"/liability.xlsx?as_of={AS_OF}")
    assert answer.status_code == 200 and answer.headers["content-type"] == XLSX
    rows = sheet_rows(answer.content, "agreement_id")
    assert sorted(r["agreement_id"] for r in rows) == sorted(r["agreement_id"] for r in listed)
    assert sorted(r["agreement_id"] for r in rows) == (
        ["A1", "A2"] if role in BOOKS else ["A1"])
    for row in listed:
        (cell,) = [r for r in rows if r["agreement_id"] == row["agreement_id"]]
        assert isinstance(cell["liability"], int | float | Decimal)  # a number cell
        assert Decimal(str(cell["liability"])) == Decimal(row["liability"])
        assert Decimal(str(cell["accrued"])) == Decimal(row["accrued"])
    assert any(Decimal(r["accrued"]) != 0 for r in listed)  # the figures compared are real


@pytest.mark.parametrize("role", ["sales", "customer"])
def test_scoped_users_never_get_another_customers_workbook(web: Web, role: str) -> None:
    client = web.sign_in(role)
    other = client.get(f"/liability.xlsx?as_of={AS_OF}&customer=C2")
    if other.status_code == 200:  # the liability answers only its own rows, as the API's
        assert sheet_rows(other.content, "agreement_id") == []
    else:
        assert other.status_code == 404 and "A2" not in shown(other.content)
    for page in ("reconcile", "journal"):
        refused = client.get(f"/{page}.xlsx?as_of={AS_OF}&customer=C1")
        assert refused.status_code == 403 and refused.headers["content-type"].startswith(
            "text/html")


def test_every_role_on_every_download(web: Web) -> None:
    found = {}
    for role in ROLES:
        client = web.sign_in(role)
        for page in ("liability", "reconcile", "journal"):
            answer = client.get(f"/{page}.xlsx?as_of={AS_OF}")
            found[role, page] = answer.status_code
            if answer.status_code == 200:
                load_workbook(io.BytesIO(answer.content), read_only=True)
        client.cookies.clear()
    expected = {(role, page): 200 if role in BOOKS or (page == "liability" and role != "ingest")
                else 403 for role in ROLES for page in ("liability", "reconcile", "journal")}
    assert found == expected
    assert web.client.get(f"/journal.xlsx?as_of={AS_OF}",
                          follow_redirects=False).status_code in (302, 303)


def test_reconcile_and_journal_workbooks_hold_the_books_figures(web: Web) -> None:
    client = web.sign_in("auditor")
    admin = operator("cli:tests")
    reconcile = orjson.loads(web.service.reconcile(admin, date.fromisoformat(AS_OF)))
    rows = sheet_rows(client.get(f"/reconcile.xlsx?as_of={AS_OF}").content, "agreement_id")
    for want in reconcile["rows"]:
        (got,) = [r for r in rows if r["agreement_id"] == want["agreement_id"]]
        assert Decimal(str(got["claimed"])) == Decimal(want["claimed"])
        assert Decimal(str(got["liability"])) == Decimal(want["liability"])
    assert {r["agreement_id"] for r in rows} == {"A1", "A2"}
    flagged = sheet_rows(client.get(f"/reconcile.xlsx?as_of={AS_OF}&flagged=1").content,
                         "agreement_id")
    assert len(flagged) == reconcile["flagged"]

    journal = sheet_rows(client.get(f"/journal.xlsx?as_of={AS_OF}&agreement=A1").content,
                         "account")
    assert journal and {r["agreement_id"] for r in journal} == {"A1"}
    debit = sum(Decimal(str(r["debit"] or 0)) for r in journal)
    credit = sum(Decimal(str(r["credit"] or 0)) for r in journal)
    assert debit == credit and debit > 0
    whole = sheet_rows(client.get(f"/journal.xlsx?as_of={AS_OF}").content, "account")
    assert {r["agreement_id"] for r in whole} == {"A1", "A2"}


@pytest.mark.parametrize("query", ["as_of=garbage", "as_of=2025-02-30", "known_at=yesterday",
                                   "as_of=2025-03-31&agreement=%00", "as_of=2025-03-31&flagged",
                                   "as_of=9999-99-99", ""])
def test_garbage_never_500(web: Web, query: str) -> None:
    client = web.sign_in("admin")
    for page in ("liability", "reconcile", "journal"):
        answer = client.get(f"/{page}.xlsx?{query}")
        assert answer.status_code < 500, (page, query, answer.text[:300])
