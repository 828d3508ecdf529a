"""The import page: a CSV file or a workbook with its mapping is previewed (a dry run: what
would be accepted and rejected, each rejection with its row, column and value; nothing stored),
then applied, exactly the file previewed, once; CSRF on both forms; each role imports only the
commands it may send, and never one that needs a second person's approval."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from ledger.access import operator
from tests.web.conftest import ROLES, Web, csrf_of

SALES_MAPPING = b"""
[constants]
currency = "EUR"
[commands.record_sale]
sale_id = "Invoice"
customer_id = "Customer"
product_id = "Material"
quantity = "Qty"
amount = "Net"
invoice_date = "Date"
"""
#: Three sales of C1 and C2; the second row's quantity is not a number.
SALES_CSV = b"""Invoice,Customer,Material,Qty,Net,Date
S10,C1,P1,200,2000.00,2025-03-05
S11,C1,P1,abc,10.00,2025-03-06
S12,C2,P1,10,100.00,2025-03-07
"""
CLAIMS_MAPPING = b"""
[commands.submit_claim]
claim_id = "Claim"
agreement_id = "Agreement"
amount = "Amount"
submitted_on = "On"
"""


def liability_of(web: Web, agreement_id: str) -> str:
    answer = web.service.liability(operator("cli:tests"), date(2025, 3, 31),
                                   agreement_id=agreement_id)
    return str(answer["rows"][0]["liability"])


def preview(client: TestClient, data: bytes = SALES_CSV, mapping: bytes = SALES_MAPPING,
            name: str = "sales.csv", **fields: str) -> Any:
    page = client.get("/import")
    assert page.status_code == 200
    return client.post("/import", data={"csrf_token": csrf_of(page.text), "action": "preview",
                                        **fields},
                       files={"file": (name, data, "text/csv"),
                              "mapping": ("mapping.toml", mapping, "text/plain")})


def apply_token(html: str) -> str:
    found = re.search(r'name="upload" value="([A-Za-z0-9_-]+)"', html)
    assert found, "an apply form"
    return found.group(1)


def apply(client: TestClient, html: str, token: str | None = None) -> Any:
    """Press Apply, then follow the apply's page (polled while it runs) to its report."""
    sent = client.post("/import", data={"csrf_token": csrf_of(html), "action": "apply",
                                        "upload": apply_token(html) if token is None else token},
                       follow_redirects=False)
    if sent.status_code != 303:
        return sent
    assert re.fullmatch(r"/import/[A-Za-z0-9_-]{32}", sent.headers["location"])
    deadline = time.monotonic() + 60
    while True:
        page = client.get(sent.headers["location"])
        if 'hx-trigger="every 1s"' not in page.text:
            return page
        assert page.status_code == 200 and "<progress" in page.text
        assert time.monotonic() < deadline, "the apply did not end"
        time.sleep(0.05)


def test_ingest_previews_one_bad_row_then_applies_the_rest(web: Web) -> None:
    client = web.sign_in("ingest")
    assert client.get("/", follow_redirects=False).headers["location"] == "/import"
    shown = preview(client)
    assert shown.status_code == 200, shown.text
    assert "2 commands would be accepted, 0 would be duplicates" in shown.text
    assert "1 rejected; 3 rows read" in shown.text
    assert re.search(r"<th scope=\"row\">3</th><td>record_sale</td><td>quantity</td>"
                     r"<td class=\"reason\">row 3, column Qty = &#39;abc&#39;", shown.text)
    assert "Apply the 2 accepted commands" in shown.text
    assert 'sale_id = &#34;Invoice&#34;' in shown.text  # the mapping, kept for the next file
    assert (liability_of(web, "A1"), liability_of(web, "A2")) == ("100.00", "40.00")  # nothing
    done = apply(client, shown.text)
    assert done.status_code == 200
    assert "Imported sales.csv" in done.text and "2 commands were accepted" in done.text
    # A1: 100 + 200 units at 1; A2: 40 + 10 units at 1
    assert (liability_of(web, "A1"), liability_of(web, "A2")) == ("300.00", "50.00")
    kept = web.service.rejections(operator("cli:tests"))["rejections"]
    assert [(r["source"], r["line"]) for r in kept if "column Qty" in r["reason"]] == [
        ("import:web:sales.csv", 3)]
    again = apply(client, shown.text)  # pressed again: the first apply's report, once
    assert again.status_code == 200 and "2 commands were accepted" in again.text
    assert liability_of(web, "A1") == "300.00"
    twice = preview(client)  # the same file again: every sale a duplicate
    assert "0 commands would be accepted, 2 would be duplicates" in twice.text
    assert 'name="upload"' not in twice.text


def test_an_xlsx_workbook_and_a_pasted_mapping(web: Web) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Sales"
    for row in SALES_CSV.decode().splitlines():
        sheet.append(row.split(","))
    out = io.BytesIO()
    book.save(out)
    client = web.sign_in("admin")
    page = client.get("/import")
    shown = client.post("/import", data={"csrf_token": csrf_of(page.text), "action": "preview",
                                         "mapping_text": SALES_MAPPING.decode(),
                                         "sheet": "Sales"},
                        files={"file": ("sales.xlsx", out.getvalue(), "application/vnd.ms-excel")})
    assert shown.status_code == 200, shown.text
    assert "2 commands would be accepted" in shown.text and "1 rejected" in shown.text
    assert apply(client, shown.text).status_code == 200
    assert liability_of(web, "A1") == "300.00"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_imports_only_what_it_may_send(web: Web, role: str) -> None:
    client = web.sign_in(role)
    page = client.get("/import")
    may_import = role in ("admin", "finance", "commercial", "customer", "ingest")
    assert page.status_code == (200 if may_import else 403)
    assert ('href="/import"' in page.text) == may_import
    if not may_import:
        token = csrf_of(client.get("/liability").text)
        refused = client.post("/import", data={"csrf_token": token, "action": "preview"},
                              files={"file": ("sales.csv", SALES_CSV, "text/csv")})
        assert refused.status_code == 403 and "imports nothing" in refused.text
        return
    answer = preview(client)
    if role in ("admin", "ingest"):
        assert answer.status_code == 200
    else:
        assert answer.status_code == 403 and "may not import record_sale" in answer.text
        assert liability_of(web, "A1") == "100.00"


def test_deals_need_a_second_person_even_for_an_admin(web: Web) -> None:
    mapping = b"""
[constants]
currency = "EUR"
basis = "quantity"
tier_method = "retroactive"
rate_kind = "per_unit"
[commands.create_agreement]
agreement_id = "Id"
customer_id = "Customer"
period_start = "Start"
period_end = "End"
tiers = { from = "From", rate = "Rate" }
"""
    client = web.sign_in("admin")
    answer = preview(client, b"Id,Customer,Start,End,From,Rate\nA9,C1,2025-01-01,2025-12-31,0,1\n",
                     mapping)
    assert answer.status_code == 403
    assert "may not import create_agreement" in answer.text
    assert "propose them in the proposals inbox" in answer.text
    assert liability_of(web, "A1") == "100.00"


def test_a_customer_imports_claims_only_on_its_own_agreements(web: Web) -> None:
    client = web.sign_in("customer")
    shown = preview(client, b"Claim,Agreement,Amount,On\nK7,A1,30.00,2025-03-20\n"
                    b"K8,A2,1.00,2025-03-20\n", CLAIMS_MAPPING, name="claims.csv")
    assert shown.status_code == 200, shown.text
    assert "1 command would be accepted" in shown.text and "1 rejected" in shown.text
    assert "A2" in shown.text and "40.00" not in shown.text  # told nothing of C2's agreement
    assert apply(client, shown.text).status_code == 200
    assert "80.00 EUR" in client.get("/statement?as_of=2025-03-31").text  # 50 + 30 claimed


def test_the_import_forms_need_the_csrf_token(web: Web) -> None:
    client = web.sign_in("ingest")
    refused = client.post("/import", data={"action": "preview"},
                          files={"file": ("sales.csv", SALES_CSV, "text/csv"),
                                 "mapping": ("m.toml", SALES_MAPPING, "text/plain")})
    assert refused.status_code == 403 and "csrf_token" in refused.text
    shown = preview(client)
    forged = client.post("/import", data={"action": "apply", "upload": apply_token(shown.text),
                                          "csrf_token": "x" * 43})
    assert forged.status_code == 403
    assert liability_of(web, "A1") == "100.00"


def test_another_users_preview_cannot_be_applied(web: Web) -> None:
    client = web.sign_in("ingest")
    token = apply_token(preview(client).text)
    web.client.cookies.clear()
    admin = web.sign_in("admin")
    answer = apply(admin, admin.get("/import").text, token)
    assert answer.status_code == 404
    assert liability_of(web, "A1") == "100.00"
    for bad in ("../../etc", "", "x" * 32):
        assert apply(admin, admin.get("/import").text, bad).status_code == 404


def test_a_bad_mapping_or_file_names_what_to_fix_and_imports_nothing(web: Web) -> None:
    client = web.sign_in("ingest")
    unknown = preview(client, mapping=SALES_MAPPING.replace(b'"Qty"', b'"Quantity"'))
    assert unknown.status_code == 400 and "column &#39;Quantity&#39;" in unknown.text
    assert "Not imported" in unknown.text and 'name="upload"' not in unknown.text
    assert "/tmp" not in unknown.text and "upload.csv" not in unknown.text  # no server path
    unknown_key = preview(client, mapping=SALES_MAPPING + b"[nonsense]\n")
    assert unknown_key.status_code == 422 and "nonsense" in unknown_key.text
    not_toml = preview(client, mapping=b"[commands.record_sale\n")
    assert not_toml.status_code == 422 and "TOML" in not_toml.text
    old_excel = preview(client, name="sales.xls")
    assert old_excel.status_code == 400 and "save it as .xlsx or CSV" in old_excel.text
    no_file = client.post("/import", data={"csrf_token": csrf_of(client.get("/import").text),
                                           "action": "preview"})
    assert no_file.status_code in (403, 422)
    no_mapping = preview(client, mapping=b"")
    assert no_mapping.status_code == 422 and "mapping:" in no_mapping.text
    latin = preview(client, data=SALES_CSV.replace(b"S12,C2", b"S12,C\xe92"))
    assert latin.status_code == 400 and "latin-1" in latin.text
    assert liability_of(web, "A1") == "100.00"


def test_an_upload_above_the_bound_is_refused_before_it_is_read(web: Web) -> None:
    from ledger.web.settings import WebSettings
    from tests.web.conftest import web_app

    with web_app(web.service, WebSettings(session_secret="tests", upload_bytes_max=1024)) as c:
        client = Web(web.service, c).sign_in("ingest")
        big = preview(client, data=SALES_CSV + b"S99,C1,P1,1,1.00,2025-03-07\n" * 2000)
        assert big.status_code == 413 and "split the file" in big.text
        small = preview(client)
        assert small.status_code == 200


def lines(*commands: dict[str, Any]) -> bytes:
    return b"\n".join(orjson.dumps(c) for c in commands) + b"\n"


def test_a_json_lines_file_needs_no_mapping(web: Web) -> None:
    from tests.contract import helpers as h

    client = web.sign_in("ingest")
    data = lines(h.sale("S20", "300", "3000.00", "2025-03-05"),
                 {**h.sale("S21", "1", "1.00", "2025-03-05"), "quantity": "many"},
                 {"type": "launch_rocket"}) + b"\n"
    shown = preview(client, data, b"", name="sales.jsonl")
    assert shown.status_code == 200, shown.text
    assert "1 command would be accepted" in shown.text and "2 rejected; 4 rows read, 1 blank" in \
        shown.text
    assert "quantity" in shown.text and "launch_rocket" in shown.text
    assert liability_of(web, "A1") == "100.00"
    assert "1 command was accepted" in apply(client, shown.text).text
    assert liability_of(web, "A1") == "400.00"  # 100 + 300 units at 1
    with_mapping = preview(client, data, SALES_MAPPING, name="sales.jsonl")
    assert with_mapping.status_code == 422 and "takes no mapping" in with_mapping.text


def test_a_json_lines_upload_is_read_as_apply_reads_a_file(web: Web) -> None:
    # Excel and Windows editors start a file with a byte-order mark and end lines with \r\n:
    # the page once rejected line 1 for the mark, which `rebate-ledger apply` drops; an
    # overlong line is rejected alone, never held whole
    from ledger.commands import LINE_BYTES_MAX
    from tests.contract import helpers as h

    client = web.sign_in("ingest")
    overlong = orjson.dumps({**h.sale("S22", "1", "1.00", "2025-03-05"),
                             "product_id": "P" * (LINE_BYTES_MAX + 10)})
    data = (b"\xef\xbb\xbf" + orjson.dumps(h.sale("S20", "300", "3000.00", "2025-03-05"))
            + b"\r\n" + overlong + b"\r\n"
            + orjson.dumps(h.sale("S21", "2", "2.00", "2025-03-05")) + b"\r\n")
    shown = preview(client, data, b"", name="excel.jsonl")
    assert shown.status_code == 200, shown.text
    assert "2 commands would be accepted" in shown.text, shown.text
    assert "1 rejected; 3 rows read, 0 blank" in shown.text
    assert "2 commands were accepted" in apply(client, shown.text).text
    assert liability_of(web, "A1") == "402.00"  # 100 + 300 + 2 units at 1


def test_json_lines_follow_the_roles_rules(web: Web) -> None:
    from tests.contract import helpers as h

    finance = web.sign_in("finance")
    refused = preview(finance, lines(h.approve("K1", "2025-03-04"),
                                     h.sale("S20", "300", "3000.00")), b"", name="mixed.jsonl")
    assert refused.status_code == 403 and "may not import record_sale" in refused.text
    web.client.cookies.clear()
    admin = web.sign_in("admin")
    deal = preview(admin, lines(h.amend("A1", "2025-01-01", tiers=h.tier_list([("0", "9")]))),
                   b"", name="deal.jsonl")
    assert deal.status_code == 403 and "proposals inbox" in deal.text
    assert liability_of(web, "A1") == "100.00"


@pytest.fixture
def web_on(database_url: str) -> Iterator[Web]:
    """`web` on SQLite and on PostgreSQL (where a preview is a transaction rolled back)."""
    from ledger import Ledger
    from ledger.service import LedgerService
    from tests.api.conftest import BOOK
    from tests.contract import helpers as h
    from tests.web.conftest import add_web_users, web_app

    service = LedgerService(Ledger(database_url))
    h.accepted_all(service.ledger, BOOK)
    add_web_users(service)
    with web_app(service) as client:
        yield Web(service, client)
    service.close()


def test_preview_stores_nothing_and_apply_stores_it_on_both_databases(web_on: Web) -> None:
    client = web_on.sign_in("ingest")
    shown = preview(client)
    assert "2 commands would be accepted" in shown.text and "1 rejected" in shown.text
    assert liability_of(web_on, "A1") == "100.00"
    assert not web_on.service.rejections(operator("cli:tests"))["rejections"]
    assert "2 commands were accepted" in apply(client, shown.text).text
    assert liability_of(web_on, "A1") == "300.00"
    assert len(web_on.service.rejections(operator("cli:tests"))["rejections"]) == 1


def test_a_running_apply_shows_its_progress_and_polls(web: Web) -> None:
    from ledger.web.uploads import Uploads

    client = web.sign_in("ingest")
    token = apply_token(preview(client).text)
    assert client.get(f"/import/{token}").status_code == 404  # not applied yet
    folder = Uploads(None, 1024)  # the app's folder (the default), as another worker sees it
    assert folder.start(token) and not folder.start(token)
    folder.report(token, {"state": "running", "done": 50, "total": 200})
    page = client.get(f"/import/{token}")
    assert page.status_code == 200
    assert f'hx-get="/import/{token}" hx-trigger="every 1s"' in page.text
    assert 'value="25"' in page.text and "25 % of the file read and stored" in page.text
    web.client.cookies.clear()
    other = web.sign_in("admin")
    assert other.get(f"/import/{token}").status_code == 404
    stale = folder.folder / token / "state.json"
    stale.write_bytes(stale.read_bytes().replace(b'"at":', b'"at":1,"was":'))
    web.client.cookies.clear()
    client = web.sign_in("ingest")
    stopped = client.get(f"/import/{token}")
    assert stopped.status_code == 500 and "its server stopped" in stopped.text
    assert "hx-trigger" not in stopped.text
    folder.report(token, {"state": "done", "status": 403, "message": "role x may not import y"})
    web.client.cookies.clear()
    client = web.sign_in("ingest")
    done = client.get(f"/import/{token}")
    assert done.status_code == 403 and "may not import y" in done.text
    assert "hx-trigger" not in done.text


def test_a_malformed_or_unsized_upload_is_refused_not_a_500(web: Web) -> None:
    client = web.sign_in("ingest")
    for body in (b"--x\r\nnonsense", b"--x\r\nContent-Disposition: form-data; name=\"a\""
                 b"\r\n\r\nno closing boundary", b"--x\r\nContent-Disposition: nonsense\r\n\r\n"
                 b"v\r\n--x--\r\n", b"\xff" * 100):
        garbage = client.post("/import", content=body, headers={
            "content-type": "multipart/form-data; boundary=x"})
        assert garbage.status_code in (400, 403), body  # unreadable, or without its token
        assert "Traceback" not in garbage.text

    def chunks() -> Iterator[bytes]:
        yield b"--x\r\n"

    unsized = client.post("/import", content=chunks(), headers={
        "content-type": "multipart/form-data; boundary=x"})
    assert unsized.status_code == 411 and "Content-Length" in unsized.text
    no_boundary = client.post("/import", content=b"abc", headers={
        "content-type": "multipart/form-data"})
    assert no_boundary.status_code < 500


def test_a_preview_larger_than_a_chunk_on_either_database(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 2 rows: the preview (on PostgreSQL, every chunk in one transaction rolled
    back) sees the duplicate of row 2 in row 5, stores nothing, and the apply then does what
    it said."""
    from ledger import Ledger
    from ledger.service import LedgerService
    from tests.contract import helpers as h
    from tests.web.conftest import BOOK, add_web_users, web_app

    monkeypatch.setenv("LEDGER_CHUNK_LINES", "2")
    service = LedgerService(Ledger(database_url))
    h.accepted_all(service.ledger, BOOK)
    add_web_users(service)
    rows = b"".join(b"S2%d,C1,P1,10,100.00,2025-03-0%d\n" % (n, n + 1) for n in range(4))
    data = b"Invoice,Customer,Material,Qty,Net,Date\n" + rows + rows[:rows.index(b"\n") + 1]
    try:
        with web_app(service) as client:
            web = Web(service, client)
            signed = web.sign_in("ingest")
            shown = preview(signed, data)
            assert shown.status_code == 200, shown.text
            assert "4 commands would be accepted, 1 would be duplicates" in shown.text
            assert liability_of(web, "A1") == "100.00"  # nothing stored
            done = apply(signed, shown.text)
            assert "4 commands were accepted, 1 were duplicates" in done.text, done.text
            assert liability_of(web, "A1") == "140.00"  # 100 + 4 sales of 10 units at 1
    finally:
        service.close()
