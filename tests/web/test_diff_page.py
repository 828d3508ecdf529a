"""The diff page a page of changed agreements at a time (issue 9, point 3: every page within a
second at a million sales): the pages, followed by their `next` links, hold exactly the whole
diff's rows and changes, in order; the downloads are the CLI's bytes; only readers of the books
reach them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from ledger import Ledger
from ledger.access import Principal, Role
from ledger.service import LedgerService
from tests.contract import helpers as h
from tests.web.conftest import Web, add_web_users, web_app

AS_OF = date(2025, 3, 31)
K1 = datetime(2025, 4, 1, tzinfo=UTC)
AGREEMENTS = 25


def book() -> list[dict[str, Any]]:
    """25 agreements (A01..A25, customers C01..C25) with a sale each before K1; after K1 a
    late sale for every agreement but A05 and A17, an amendment of A03 and a sale of A20
    invoiced after D (recorded in between, yet no part of the position at D)."""
    commands: list[dict[str, Any]] = []
    for n in range(1, AGREEMENTS + 1):
        commands.append(h.at("2025-01-01T00:00:00Z", h.agreement(
            f"A{n:02d}", customer_id=f"C{n:02d}", tiers=(("0", "1"), ("100", "2")))))
    for n in range(1, AGREEMENTS + 1):
        commands.append(h.at("2025-02-01T00:00:00Z", h.sale(
            f"S{n:02d}", str(10 * n), f"{100 * n}.00", "2025-01-15", customer_id=f"C{n:02d}")))
    for n in range(1, AGREEMENTS + 1):
        if n in (5, 17, 20):
            continue
        commands.append(h.at("2025-04-05T00:00:00Z", h.sale(
            f"L{n:02d}", "7", "70.00", "2025-03-20", customer_id=f"C{n:02d}")))
    commands.append(h.at("2025-04-06T00:00:00Z", h.amend(
        "A03", "2025-01-01", tiers=h.tier_list((("0", "1.5"), ("100", "2.5"))))))
    commands.append(h.at("2025-04-07T00:00:00Z", h.sale(
        "LATER", "5", "50.00", "2025-05-02", customer_id="C20")))
    return commands


@pytest.fixture
def service(database_url: str) -> Iterator[LedgerService]:
    service = LedgerService(Ledger(database_url))
    h.accepted_all(service.ledger, book())
    add_web_users(service)
    yield service
    service.close()


AUDITOR = Principal("auditor", Role.auditor)


def pages(service: LedgerService, limit: int) -> list[dict[str, Any]]:
    found = []
    after = None
    while True:
        page = orjson.loads(service.diff_page(AUDITOR, AS_OF, K1, after=after, limit=limit))
        found.append(page)
        if page["next"] is None:
            return found
        after = page["next"]
        assert len(found) < 50, "the pages end"


@pytest.mark.parametrize("limit", [1, 7, 10, 100])
def test_the_pages_hold_the_whole_diff_in_order(service: LedgerService, limit: int) -> None:
    whole = orjson.loads(service.diff(AUDITOR, AS_OF, K1))
    changed = [r["agreement_id"] for r in whole["rows"]]
    # every agreement but A05 and A17 (nothing recorded) and A20 (its sale counts after D)
    assert changed == [f"A{n:02d}" for n in range(1, AGREEMENTS + 1) if n not in (5, 17, 20)]
    found = pages(service, limit)
    assert [r for p in found for r in p["rows"]] == whole["rows"]
    assert [c for p in found for c in p["changes"]] == whole["changes"]
    assert all(len(p["rows"]) == limit for p in found[:-1])
    # who recorded each event, as the whole diff names them
    for page in found:
        assert page["recorded_by"] == {k: v for k, v in whole["recorded_by"].items()
                                       if k in page["recorded_by"]}
    if len(found) == 1:
        assert found[0]["whole"] and found[0]["total_change"] == whole["total_change"]
    else:
        assert not any(p["whole"] for p in found)
        total = sum((Decimal(p["page_change"]["EUR"]) for p in found), Decimal(0))
        assert total == Decimal(whole["total_change"]["EUR"])


def test_the_amendment_and_the_late_sales_are_on_their_page(service: LedgerService) -> None:
    first, second, *_ = pages(service, 2)
    assert [r["agreement_id"] for r in first["rows"]] == ["A01", "A02"]
    assert first["next"] == "A02"
    kinds = [[x["kind"] for x in c["causes"]] for c in second["changes"]]
    assert [r["agreement_id"] for r in second["rows"]] == ["A03", "A04"]
    assert kinds == [["late sale", "retroactive amendment"], ["late sale"]]


def test_a_page_after_the_last_change_is_empty(service: LedgerService) -> None:
    page = orjson.loads(service.diff_page(AUDITOR, AS_OF, K1, after="A25", limit=10))
    assert page["rows"] == [] and page["next"] is None and not page["whole"]


def test_the_web_page_links_page_to_page_and_downloads_the_cli_bytes(
        service: LedgerService) -> None:
    with web_app(service) as client:  # 10 rows a page
        web = Web(service, client)
        signed = web.sign_in("auditor")
        url = "/diff?as_of=2025-03-31&known_at=2025-04-01T00:00:00Z"
        shown: list[str] = []
        seen = 0
        while url:
            html = signed.get(url).text
            seen += 1
            shown += re.findall(r'<h2 id="d-\d+"><a href="/agreements/(A\d+)\?', html)
            assert "The whole diff's count and totals are in the downloads" in html
            nexts = re.findall(r'href="(/diff\?[^"]+)" rel="next"', html)
            url = nexts[0].replace("&amp;", "&") if nexts else ""
        assert seen == 3
        assert shown == [r["agreement_id"] for r in orjson.loads(
            service.diff(AUDITOR, AS_OF, K1))["rows"]]
        report = service.diff_report(AUDITOR, AS_OF, K1)
        query = "as_of=2025-03-31&known_at=2025-04-01T00:00:00Z"
        as_json = signed.get(f"/diff.json?{query}")
        assert as_json.status_code == 200
        assert as_json.content == report.to_json() + b"\n"
        assert "attachment" in as_json.headers["content-disposition"]
        as_csv = signed.get(f"/diff.csv?{query}")
        assert as_csv.text == report.to_csv()
        assert signed.get("/diff.json?as_of=2025-03-31").status_code == 422
        assert signed.get(f"/diff.csv?{query}&vs=2025-01-01").status_code == 422
        # one page when all fits: the whole diff's count and totals on the page
        # (after the late sales: A03's amendment; C20's later sale counts after D)
        html = signed.get("/diff?as_of=2025-03-31&known_at=2025-04-05T12:00:00Z").text
        assert "1 agreement changed; EUR" in html and 'rel="next"' not in html
        assert "retroactive amendment" in html


@pytest.mark.parametrize("role", ["customer", "sales", "ingest"])
def test_the_downloads_are_for_the_books_readers(service: LedgerService, role: str) -> None:
    with web_app(service) as client:
        signed = Web(service, client).sign_in(role)
        for output in ("json", "csv"):
            answer = signed.get(f"/diff.{output}?as_of=2025-03-31&known_at=2025-04-01")
            assert answer.status_code == 403
