"""Enrollment at a glance in the web app (issue 13 point 4): a sales rep's customer page and a
customer's statement show every agreement that covers the customer (its own and its buying
groups', with the program of each), the tier reached, the next tier and what it still needs,
through `LedgerService.positions`; each role sees only the customers it may."""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.contract import helpers as h
from tests.web.conftest import ROLES, Web, shown

#: C1 and C2 join buying group G1 from 1 January (recorded 2 March); the group's agreement GA,
#: made from program P-GOLD, pays 0.5 a unit from 0 and 1 a unit from 500.
GROUP = [
    h.at("2025-03-02T00:00:00Z", h.group("G1")),
    h.at("2025-03-02T00:00:01Z", h.join("C1", "2025-01-01")),
    h.at("2025-03-02T00:00:02Z", h.join("C2", "2025-01-01")),
    h.at("2025-03-02T00:00:03Z", h.group_agreement("GA", program_id="P-GOLD",
                                                   tiers=[("0", "0.5"), ("500", "1")])),
]


@pytest.fixture
def grouped(web: Web) -> Web:
    h.accepted_all(web.service.ledger, GROUP)
    return web


def row_of(html: str, agreement_id: str) -> str:
    found = re.search(rf"<tr>\s*<th scope=\"row\">(?:<a [^>]*>)?{agreement_id}<.*?</tr>", html,
                      re.S)
    assert found, f"a row of {agreement_id}"
    return found.group(0)


def test_a_sales_rep_sees_where_its_customer_stands_in_each_agreement_and_program(
        grouped: Web) -> None:
    client = grouped.sign_in("sales")
    listing = shown(client.get("/customers").text)
    assert 'href="/customers/C1"' in listing and "C2" not in listing
    html = client.get("/customers/C1?as_of=2025-03-31").text
    assert "2 agreements cover C1" in html and "buying group G1" in html
    own = row_of(html, "A1")
    assert "own agreement" in own and 'href="/agreements/A1?as_of=2025-03-31"' in own
    group = row_of(html, "GA")
    # the group's basis is C1's 100 units and C2's 40: 140 at 0.5 = 70.00; 360 more to 500
    assert "group G1" in group and "P-GOLD" in group
    assert "140 quantity" in group and "C1's share: 100" in group
    assert "from 500 at 1: 360 to go" in group and "70.00 EUR" in group
    assert "/agreements/GA" not in html  # a group's agreement is not one a rep may open
    assert ("360 more quantity on GA (group G1, program P-GOLD) reaches the tier from 500 at 1"
            in html)
    assert 'href="/statement?customer=C1&amp;as_of=2025-03-31"' in html


@pytest.mark.parametrize("role", ["sales", "customer"])
def test_another_customers_page_is_404_and_shows_nothing_of_it(grouped: Web, role: str) -> None:
    client = grouped.sign_in(role)
    for page in ("/customers/C2", "/customers/C2?as_of=2025-03-31", "/customers?customer=C2"):
        answer = client.get(page)
        assert answer.status_code == 404, page
        assert "40.00" not in shown(answer.text) and "A2" not in shown(answer.text)
    assert client.get("/customers/C1?as_of=2025-03-31").status_code == 200


@pytest.mark.parametrize("role", ROLES)
def test_the_customer_page_for_every_role(grouped: Web, role: str) -> None:
    client = grouped.sign_in(role)
    answer = client.get("/customers/C2?as_of=2025-03-31")
    expected = {"ingest": 403, "sales": 404, "customer": 404}.get(role, 200)
    assert answer.status_code == expected
    if expected == 200:  # the books' readers open the group's agreement too
        assert 'href="/agreements/GA?as_of=2025-03-31"' in answer.text
        assert "C2's share: 40" in row_of(answer.text, "GA")


def test_the_customer_page_travels_in_time(grouped: Web) -> None:
    client = grouped.sign_in("sales")
    before = client.get("/customers/C1?as_of=2025-03-31&known_at=2025-03-01T12:00:00Z").text
    assert "1 agreement covers C1" in before and ">GA<" not in before
    assert 'value="2025-03-01T12:00:00Z"' in before
    garbage = client.get("/customers/C1?as_of=2025-02-30")
    assert garbage.status_code == 422 and "as_of" in garbage.text


def test_the_statement_shows_the_groups_agreement_with_the_customers_share(
        grouped: Web) -> None:
    client = grouped.sign_in("customer")
    html = client.get("/statement?as_of=2025-03-31").text
    group = row_of(html, "GA")
    assert "group G1" in group and "P-GOLD" in group and "C1's share: 100" in group
    assert "360 to go" in group
    rows = {r["agreement_id"]: r for r in csv.DictReader(io.StringIO(client.get(
        "/statement.csv?as_of=2025-03-31").text))}
    assert (rows["GA"]["via"], rows["GA"]["program_id"], rows["GA"]["customer_share"],
            rows["GA"]["still_needed"], rows["GA"]["accrued"]) == (
        "group G1", "P-GOLD", "100", "360", "70.00")
    assert rows["A1"]["via"] == "own"


def test_finance_opens_any_customer_by_id(grouped: Web) -> None:
    client = grouped.sign_in("finance")
    form = client.get("/customers").text
    assert 'name="customer"' in form
    answer = client.get("/customers?customer=C2", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/customers/C2"
    nobody = client.get("/customers/NOBODY?as_of=2025-03-31")
    assert nobody.status_code == 200 and "No agreement covers NOBODY" in nobody.text


# The statement as PDF --------------------------------------------------------------------------


def pdf_text(content: bytes) -> str:
    from pypdf import PdfReader

    assert content.startswith(b"%PDF-")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    return " ".join(text.split())  # a cell's text may wrap inside its column


def test_the_statement_pdf_holds_the_customers_figures(grouped: Web) -> None:
    h.accepted_all(grouped.service.ledger, [
        h.at("2025-03-10T00:00:00Z", h.sale("S9", "1234.5", "99999.99", "2025-03-05"))])
    client = grouped.sign_in("customer")
    page = client.get("/statement?as_of=2025-03-31").text
    assert 'href="/statement.pdf?as_of=2025-03-31&amp;customer=C1"' in page
    answer = client.get("/statement.pdf?as_of=2025-03-31")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert 'filename="statement-C1-2025-03-31.pdf"' in answer.headers["content-disposition"]
    text = pdf_text(answer.content)
    assert "Rebate statement of customer C1" in text and "At 2025-03-31, as known now" in text
    # A1: 1,334.5 units at 1 a unit; the group's GA: C1's 1,334.5 and C2's 40 units = 1,374.5,
    # past the tier from 500 at 1 a unit
    statement = {r["agreement_id"]: r for r in csv.DictReader(io.StringIO(client.get(
        "/statement.csv?as_of=2025-03-31").text))}
    from ledger.web import format as fmt

    for agreement_id, row in statement.items():
        assert agreement_id in text
        for key in ("accrued", "claimed", "liability"):
            assert fmt.money(row[key], "EUR") in text, (agreement_id, key)
    assert "1,334.50 EUR" in text and "50.00 EUR" in text
    assert "group G1" in text and "P-GOLD" in text and "(C1: 1,334.5)" in text
    total = sum(fmt.decimal(r["liability"]) or 0 for r in statement.values())
    assert f"outstanding {fmt.money(total, 'EUR')}" in text
    assert "A2" not in text and "C2" not in text


def test_the_statement_pdf_as_known_at_an_earlier_time(grouped: Web) -> None:
    client = grouped.sign_in("finance")
    text = pdf_text(client.get(
        "/statement.pdf?customer=C1&as_of=2025-03-31&known_at=2025-01-31T00:00:00Z").content)
    assert "as known at 2025-01-31T00:00:00Z" in text
    assert "A1" in text and "0.00 EUR" in text and "100.00 EUR" not in text
    assert "GA" not in text  # the group was recorded in March


@pytest.mark.parametrize("role", ["sales", "customer"])
def test_another_customers_pdf_is_404(grouped: Web, role: str) -> None:
    client = grouped.sign_in(role)
    answer = client.get("/statement.pdf?customer=C2&as_of=2025-03-31")
    assert answer.status_code == 404 and not answer.content.startswith(b"%PDF")
    assert "40.00" not in answer.text


def test_a_pdf_needs_a_customer_and_writes_any_id(grouped: Web) -> None:
    client = grouped.sign_in("finance")
    assert client.get("/statement.pdf?as_of=2025-03-31").status_code == 400
    odd = client.get("/statement.pdf?customer=%E5%AE%A2%E6%88%B7&as_of=2025-03-31")
    assert odd.status_code == 200
    assert "No agreement covers this customer" in pdf_text(odd.content)


def test_the_pdf_prints_ids_in_any_script_its_font_has(grouped: Web) -> None:
    """DejaVu Sans (vendored) draws Latin with diacritics, Greek and Cyrillic as they are; a
    character it has no glyph for (CJK) is a `?`, never a broken PDF."""
    customer = "Łódź-Ωμέγα-Привет"
    h.accepted_all(grouped.service.ledger, [
        h.at("2025-03-20T00:00:00Z", h.agreement("ÅGRÉE-1", customer_id=customer)),
        h.at("2025-03-21T00:00:00Z", h.sale("S-ÆØ", "10", "100.00", "2025-03-05",
                                             customer_id=customer))])
    client = grouped.sign_in("finance")
    answer = client.get("/statement.pdf", params={"customer": customer, "as_of": "2025-03-31"})
    assert answer.status_code == 200
    text = pdf_text(answer.content)
    assert f"Rebate statement of customer {customer}" in text and "ÅGRÉE-1" in text
    assert "?" not in text
    odd = pdf_text(client.get("/statement.pdf", params={
        "customer": "客户-Ä", "as_of": "2025-03-31"}).content)
    assert "Rebate statement of customer ??-Ä" in odd
