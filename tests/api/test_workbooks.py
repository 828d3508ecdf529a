"""The downloads of issue 10 in the API: `GET /v1/workbooks/{report}` is the workbook of
`rebate-ledger REPORT --format xlsx` (read back, its rows equal the route's JSON), with the
rights and scoping of that read; `POST /v1/gl-export` takes the accounts mapping as its body
and answers the upload's CSV (or xlsx, json), balanced per document."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from ledger import Ledger
from ledger.http.app import XLSX, create_app
from ledger.service import WORKBOOKS, LedgerService
from tests.api.conftest import Api, add_users
from tests.audit.test_trial_balance import BOTH
from tests.audit.test_xlsx_exports import _expected, _sheet_rows
from tests.contract import helpers as h

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gl" / "accounts.toml"

#: (report, its query, the JSON route answering the same question)
SAME = [
    ("liability", "as_of=2025-12-31&known_at=2025-12-31", "/v1/liability"),
    ("reconcile", "as_of=2025-12-31&grace_days=10", "/v1/reconcile"),
    ("journal", "as_of=2025-06-30", "/v1/journal"),
    ("trial-balance", "as_of=2025-12-31", "/v1/trial-balance"),
    ("explain", "agreement=A1&as_of=2025-06-30", "/v1/explain"),
    ("diff", "as_of=2025-06-30&known_at=2025-04-30&vs=2025-07-31", "/v1/diff"),
    ("opportunities", "as_of=2025-03-31", "/v1/opportunities"),
]


@pytest.fixture
def api(sqlite_url: str) -> Iterator[Api]:
    service = LedgerService(Ledger(sqlite_url))
    h.accepted_all(service.ledger, BOTH)
    tokens = add_users(service)
    with TestClient(create_app(service)) as client:
        yield Api(service, client, tokens)
    service.close()


def workbook_rows(content: bytes) -> list[dict[str, object]]:
    workbook = load_workbook(io.BytesIO(content))
    rows = []
    for sheet in workbook.worksheets:
        if sheet.title in ("about", "checks", "totals", "by cause"):
            continue
        header, read = _sheet_rows(sheet)
        rows += [dict(zip(header, r, strict=True)) for r in read]
    return rows


def test_every_workbook_holds_the_rows_of_its_json_route(api: Api) -> None:
    assert sorted(WORKBOOKS) == sorted(r for r, _, _ in SAME)
    for report, query, route in SAME:
        response = api.client.get(f"/v1/workbooks/{report}?{query}",
                                  headers=api.headers("auditor"))
        assert response.status_code == 200, (report, response.text)
        assert response.headers["content-type"] == XLSX
        assert f'filename="{report}-' in response.headers["content-disposition"]
        want = api.client.get(f"{route}?{query}", headers=api.headers("auditor")).json()["rows"]
        got = workbook_rows(response.content)
        assert want, report
        key = [c for c in ("currency",) if all(c in r for r in want)]
        ordered = sorted(want, key=lambda r: [r[k] for k in key])  # sheets by currency
        assert got == [{c: _expected(c, r.get(c)) for c in got[0]} for r in ordered], report


def test_a_sales_user_gets_only_its_customers_and_no_books(api: Api) -> None:
    mine = api.client.get("/v1/workbooks/liability?as_of=2025-12-31",
                          headers=api.headers("sales"))
    assert mine.status_code == 200
    assert {r["customer_id"] for r in workbook_rows(mine.content)} == {"C1"}
    books = api.client.get("/v1/workbooks/journal?as_of=2025-12-31",
                           headers=api.headers("sales"))
    assert books.status_code == 403
    other = api.client.get("/v1/workbooks/opportunities?as_of=2025-03-31&customer=C2",
                           headers=api.headers("sales"))
    assert other.status_code == 404


def test_an_unknown_workbook_and_a_diff_without_k1_are_named(api: Api) -> None:
    unknown = api.client.get("/v1/workbooks/ledger?as_of=2025-12-31",
                             headers=api.headers("auditor"))
    assert unknown.status_code == 404 and "reconcile" in unknown.json()["detail"]
    diff = api.client.get("/v1/workbooks/diff?as_of=2025-12-31", headers=api.headers("auditor"))
    assert diff.status_code == 422 and "known_at" in diff.json()["detail"]


def test_gl_export_through_the_api(api: Api) -> None:
    response = api.client.post("/v1/gl-export?from=2025-01-01&to=2025-12-31",
                               content=EXAMPLE.read_bytes(), headers=api.headers("finance"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text), delimiter=";"))
    assert rows
    net: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        net[row["Reference"]] += Decimal(row["Debit"].replace(",", ".")) - Decimal(
            row["Credit"].replace(",", "."))
    assert set(net.values()) == {Decimal(0)}
    workbook = api.client.post("/v1/gl-export?from=2025-01-01&to=2025-12-31&format=xlsx",
                               content=EXAMPLE.read_bytes(), headers=api.headers("finance"))
    assert workbook.status_code == 200
    assert load_workbook(io.BytesIO(workbook.content)).sheetnames == [
        "lines", "documents", "about"]
    bad = api.client.post("/v1/gl-export?from=2025-01-01&to=2025-12-31",
                          content=b'[accounts.expense]\naccount = "4"\n',
                          headers=api.headers("finance"))
    assert bad.status_code == 400 and "accounts.liability" in bad.json()["detail"]
    sales = api.client.post("/v1/gl-export?from=2025-01-01&to=2025-12-31",
                            content=EXAMPLE.read_bytes(), headers=api.headers("sales"))
    assert sales.status_code == 403
