"""The web app's pages through FastAPI's TestClient: sign-in and sessions, CSRF, every page
for every role, customers kept to their own pages, figures formatted for people, time travel,
sorting, paging, CSV, and no 500 for any query."""

from __future__ import annotations

import csv
import io
import re
import time

import orjson
import pytest

from ledger.web.sessions import SESSION_COOKIE, Signer
from tests.contract import helpers as h
from tests.web.conftest import ROLES, Web, csrf_of, shown

PAGES = ["/", "/liability?as_of=2025-03-31", "/liability.csv?as_of=2025-03-31",
         "/agreements/A1?as_of=2025-03-31", "/statement?customer=C1&as_of=2025-03-31",
         "/statement.csv?customer=C1&as_of=2025-03-31", "/watchlist?as_of=2025-03-31",
         "/customers", "/customers/C1?as_of=2025-03-31",
         "/statement.pdf?customer=C1&as_of=2025-03-31"]
READERS = [r for r in ROLES if r != "ingest"]


def cells(html: str) -> list[str]:
    return re.findall(r'<td class="money">([^<]*)</td>', html)


# Sign-in, sessions, CSRF ----------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_page_redirects_to_login_without_a_session(web: Web, page: str) -> None:
    answer = web.client.get(page, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")


def test_login_form_has_the_named_inputs_and_a_csrf_token(web: Web) -> None:
    html = web.client.get("/login").text
    assert 'name="username"' in html and 'name="password"' in html
    assert len(csrf_of(html)) > 20


def test_sign_in_sets_a_strict_httponly_session_and_signs_out(web: Web) -> None:
    form = web.client.get("/login?next=/statement%3Fcustomer%3DC1")
    answer = web.client.post("/login", data={"username": "finance", "password": "finance-secret-pw",
                                             "csrf_token": csrf_of(form.text),
                                             "next": "/statement?customer=C1"},
                             follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/statement?customer=C1"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    page = web.client.get("/liability?as_of=2025-03-31")
    assert page.status_code == 200 and "A2" in page.text
    out = web.client.post("/logout", data={"csrf_token": csrf_of(page.text)},
                          follow_redirects=False)
    assert out.status_code == 303
    assert web.client.get("/liability", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_secure_over_https(web: Web) -> None:
    web.client.base_url = web.client.base_url.copy_with(scheme="https")  # type: ignore[assignment]
    form = web.client.get("/login")
    answer = web.client.post("/login", data={"username": "auditor",
                                             "password": "auditor-secret-pw",
                                             "csrf_token": csrf_of(form.text)},
                             follow_redirects=False)
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "Secure" in cookie


def test_a_wrong_password_shows_the_form_again_with_a_message(web: Web) -> None:
    form = web.client.get("/login")
    answer = web.client.post("/login", data={"username": "finance", "password": "wrong",
                                             "csrf_token": csrf_of(form.text)})
    assert answer.status_code == 401
    assert "Wrong user name or password" in answer.text
    assert 'value="finance"' in answer.text
    again = web.client.post("/login", data={"username": "finance", "password": "wrong",
                                            "next": "/statement?customer=C1",
                                            "csrf_token": csrf_of(answer.text)})
    assert 'name="next" value="/statement?customer=C1"' in again.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


def test_sign_in_without_the_csrf_token_is_refused(web: Web) -> None:
    web.client.get("/login")
    answer = web.client.post("/login", data={"username": "finance",
                                             "password": "finance-secret-pw"},
                             follow_redirects=False)
    assert answer.status_code == 403
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    forged = web.client.post("/login", data={"username": "finance", "password":
                                             "finance-secret-pw", "csrf_token": "x" * 43},
                             follow_redirects=False)
    assert forged.status_code == 403


def test_sign_out_without_the_csrf_token_is_refused_and_the_session_stays(web: Web) -> None:
    client = web.sign_in("finance")
    answer = client.post("/logout", data={}, follow_redirects=False)
    assert answer.status_code == 403
    assert client.get("/liability?as_of=2025-03-31").status_code == 200


def test_a_forged_or_expired_session_goes_back_to_login(web: Web) -> None:
    signer = Signer("tests", 60)
    _, expired = signer.new_session("finance", now=time.time() - 120)
    _, forged = Signer("other secret", 3600).new_session("finance")
    for cookie in (expired, forged, "garbage", "a.b.c"):
        web.client.cookies.set(SESSION_COOKIE, cookie)
        answer = web.client.get("/liability", follow_redirects=False)
        assert answer.status_code == 303, cookie
    # signed with the right secret, but never opened on the server (sessions are kept there)
    _, unknown = signer.new_session("finance")
    web.client.cookies.set(SESSION_COOKIE, unknown)
    assert web.client.get("/liability", follow_redirects=False).status_code == 303
    web.client.cookies.clear()
    assert web.sign_in("finance").get("/liability?as_of=2025-03-31").status_code == 200


def test_a_revoked_users_session_ends(web: Web) -> None:
    from ledger.access import operator

    client = web.sign_in("sales")
    assert client.get("/liability?as_of=2025-03-31").status_code == 200
    web.service.revoke_user(operator("cli:tests"), "sales")
    assert client.get("/liability", follow_redirects=False).status_code == 303


def test_next_never_leaves_the_app(web: Web) -> None:
    form = web.client.get("/login")
    answer = web.client.post("/login", data={"username": "finance",
                                             "password": "finance-secret-pw",
                                             "csrf_token": csrf_of(form.text),
                                             "next": "//evil.example/x"},
                             follow_redirects=False)
    assert answer.headers["location"] == "/liability"


# Every page for every role ----------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_page_for_every_role(web: Web, role: str) -> None:
    client = web.sign_in(role)
    for page in PAGES[1:]:
        answer = client.get(page)
        assert answer.status_code == (403 if role == "ingest" else 200), (page, answer.text)
        if answer.headers["content-type"].startswith("text/html"):
            assert "content-security-policy" in answer.headers
            assert "<script>" not in answer.text


@pytest.mark.parametrize("role", ["sales", "customer"])
def test_another_customers_pages_are_404_and_its_rows_absent(web: Web, role: str) -> None:
    client = web.sign_in(role)
    for page in ("/agreements/A2", "/agreements/A2?as_of=2025-03-31",
                 "/statement?customer=C2", "/statement.csv?customer=C2",
                 "/customers/C2", "/customers/C2?as_of=2025-03-31", "/agreements/NOPE"):
        answer = client.get(page)
        assert answer.status_code == 404, page
        assert "C2" not in shown(answer.text).replace("'C2'", "") or "no customer" in answer.text
    listing = client.get("/liability?as_of=2025-03-31")
    assert "A1" in listing.text and "/agreements/A2" not in listing.text
    assert "A2" not in client.get("/liability.csv?as_of=2025-03-31").text
    assert "A2" not in shown(client.get("/liability?as_of=2025-03-31&customer=C2").text)


@pytest.mark.parametrize("role", ["finance", "auditor", "commercial", "admin"])
def test_book_readers_see_every_customer(web: Web, role: str) -> None:
    client = web.sign_in(role)
    assert client.get("/agreements/A2?as_of=2025-03-31").status_code == 200
    assert "A2" in client.get("/statement?customer=C2&as_of=2025-03-31").text


def test_customer_lands_on_its_statement(web: Web) -> None:
    client = web.sign_in("customer")
    page = client.get("/")
    assert page.url.path == "/statement"
    assert "customer C1" in page.text and "A1" in page.text


GARBAGE = ["as_of=garbage", "as_of=2025-02-30", "known_at=yesterday", "page=-1", "page=0",
           "page=99999999999", "sort=__class__", "dir=sideways", "customer=%00%ff",
           "as_of=" + "9" * 5000, "known_at=2025-13-01T00:00:00Z", "customer=<script>x</script>"]


@pytest.mark.parametrize("role", ["finance", "customer"])
def test_no_query_gives_a_500(web: Web, role: str) -> None:
    client = web.sign_in(role)
    for query in GARBAGE:
        for page in ("/liability", "/liability.csv", "/agreements/A1", "/agreements/%00",
                     "/statement", "/statement.csv", "/watchlist", "/reconcile",
                     "/proposals", "/journal", "/diff", "/diff.json", "/diff.csv", "/audit",
                     "/evidence.zip",
                     "/customers", "/customers/C1", "/customers/%00", "/statement.pdf"):
            answer = client.get(f"{page}?{query}")
            assert answer.status_code < 500, (page, query)
            if answer.headers["content-type"].startswith("text/html"):  # a PDF may name it
                assert "<script>x" not in answer.text


def test_a_bad_date_names_the_field(web: Web) -> None:
    client = web.sign_in("finance")
    answer = client.get("/liability?as_of=2025-02-30")
    assert answer.status_code == 422
    assert "as_of" in answer.text and "YYYY-MM-DD" in answer.text


# The liability page --------------------------------------------------------------------------


def test_liability_is_formatted_for_people_with_totals(web: Web) -> None:
    h.accepted_all(web.service.ledger, [
        h.at("2025-03-10T00:00:00Z", h.sale("S9", "1234.5", "99999.99", "2025-03-05"))])
    client = web.sign_in("finance")
    html = client.get("/liability?as_of=2025-03-31").text
    assert "1,334.5" in html  # the basis of A1: 100 + 1234.5
    assert "1,334.50 EUR" in html  # accrued, rate 1 per unit
    assert "1,374.50 EUR" in html  # the EUR total over A1 and A2
    assert 'href="/agreements/A1?as_of=2025-03-31"' in html


def test_liability_as_known_at_an_earlier_time(web: Web) -> None:
    client = web.sign_in("finance")
    now = cells(client.get("/liability?as_of=2025-03-31&sort=agreement_id").text)
    before = cells(client.get(
        "/liability?as_of=2025-03-31&known_at=2025-01-31T00:00:00Z&sort=agreement_id").text)
    assert now[0] == "100.00 EUR" and before[0] == "0.00 EUR"


def test_liability_sorts_and_filters(web: Web) -> None:
    client = web.sign_in("finance")
    down = client.get("/liability?as_of=2025-03-31&sort=liability&dir=desc").text
    up = client.get("/liability?as_of=2025-03-31&sort=liability&dir=asc").text
    assert down.index(">A1</a>") < down.index(">A2</a>")
    assert up.index(">A2</a>") < up.index(">A1</a>")
    only = client.get("/liability?as_of=2025-03-31&customer=C2").text
    assert ">A2</a>" in only and ">A1</a>" not in only


def test_liability_pages_a_large_book_and_downloads_the_filter(web: Web) -> None:
    book = [h.at("2025-03-02T00:00:00Z", h.agreement(f"B{n:03}", customer_id=f"D{n:03}"))
            for n in range(23)]
    h.accepted_all(web.service.ledger, book)
    client = web.sign_in("finance")
    first = client.get("/liability?as_of=2025-03-31").text
    assert "page 1 of 3" in first and 'rel="next"' in first
    third = client.get("/liability?as_of=2025-03-31&page=3").text
    assert len(re.findall(r'<th scope="row"><a href="/agreements/', third)) == 25 - 20
    beyond = client.get("/liability?as_of=2025-03-31&page=9")
    assert beyond.status_code == 200 and "page 3 of 3" in beyond.text
    rows = list(csv.DictReader(io.StringIO(client.get(
        "/liability.csv?as_of=2025-03-31&sort=agreement_id&dir=desc").text)))
    assert len(rows) == 25
    assert [r["agreement_id"] for r in rows][:2] == ["B022", "B021"]
    assert {r["liability"] for r in rows if r["agreement_id"] == "A1"} == {"100.00"}


# Agreement and statement -----------------------------------------------------------------------


def test_agreement_page_shows_terms_ladder_and_derivation(web: Web) -> None:
    h.accepted_all(web.service.ledger, [
        h.at("2025-03-02T00:00:00Z", h.amend("A1", "2025-01-01",
                                             tiers=h.tier_list([("0", "1"), ("500", "2")])))])
    client = web.sign_in("finance")
    html = client.get("/agreements/A1?as_of=2025-03-31").text
    assert html.count("<strong>created</strong>") == 1
    assert "<strong>amended</strong>" in html or "amend" in html
    assert "400 more to reach the next tier" in html  # basis 100, next tier from 500
    assert "next: 400 to go" in html
    assert "The derivation gives the ledger's figure: 100.00 EUR" in html
    assert "recorded by" in html


def test_statement_shows_earned_claimed_paid_outstanding_and_csv(web: Web) -> None:
    client = web.sign_in("customer")
    html = client.get("/statement?as_of=2025-03-31").text
    assert cells(html) == ["100.00 EUR", "50.00 EUR", "0.00 EUR", "100.00 EUR"]
    rows = list(csv.DictReader(io.StringIO(client.get(
        "/statement.csv?as_of=2025-03-31").text)))
    assert [(r["agreement_id"], r["accrued"], r["claimed"]) for r in rows] == [
        ("A1", "100.00", "50.00")]


def test_failed_sign_ins_are_rate_limited(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.web.conftest import web_app

    monkeypatch.setenv("LEDGER_API_FAILED_AUTH_MAX", "3")
    with web_app(web.service) as client:
        statuses = []
        for _ in range(4):
            form = client.get("/login")
            statuses.append(client.post("/login", data={
                "username": "finance", "password": "guess", "csrf_token": csrf_of(form.text)
            }).status_code)
        form = client.get("/login")
        right = client.post("/login", data={"username": "finance",
                                            "password": "finance-secret-pw",
                                            "csrf_token": csrf_of(form.text)})
    assert statuses == [401, 401, 401, 429]
    assert right.status_code == 429 and "Too many failed sign-ins" in right.text


def test_every_web_setting_is_documented_with_its_default() -> None:
    from pathlib import Path

    from ledger.web.settings import WebSettings

    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for name, field in WebSettings.model_fields.items():
        variable = f"`LEDGER_WEB_{name.upper()}`"
        row = next((line for line in doc.splitlines() if line.startswith(f"| {variable}")), None)
        assert row is not None, variable
        if field.default is not None and not callable(field.default_factory):
            assert f"`{field.default}`" in row, (variable, field.default)


# Proposals inbox -------------------------------------------------------------------------------


def propose(client, **fields: str):  # type: ignore[no-untyped-def]
    page = client.get("/proposals")
    return client.post("/proposals", data={"csrf_token": csrf_of(page.text), **fields},
                       follow_redirects=False)


def proposal_id(html: str) -> str:
    found = re.search(r'action="/proposals/([0-9a-f-]{36})/approve"', html)
    assert found, "an approve form"
    return found.group(1)


@pytest.mark.parametrize("role", ROLES)
def test_the_inbox_is_for_the_books_readers(web: Web, role: str) -> None:
    answer = web.sign_in(role).get("/proposals")
    assert answer.status_code == (200 if role in ("admin", "finance", "commercial", "auditor")
                                  else 403)
    offers_form = 'action="/proposals" ' in answer.text
    assert offers_form == (role in ("admin", "commercial"))


def test_commercial_proposes_finance_approves_and_the_figure_changes(web: Web) -> None:
    commercial = web.sign_in("commercial")
    sent = propose(commercial, agreement_id="A1", effective_from="2025-01-01",
                   tiers="0: 1\n50: 3", cap="")
    assert sent.status_code == 303 and "proposed=" in sent.headers["location"]
    inbox = commercial.get(sent.headers["location"]).text
    assert "waits for approval" in inbox
    assert "before A1: 100.00 EUR; after A1: 300.00 EUR" in inbox
    assert "/approve" not in inbox  # commercial never approves
    web.client.cookies.clear()
    finance = web.sign_in("finance")
    before = cells(finance.get("/liability?as_of=2025-03-31&customer=C1").text)
    inbox = finance.get("/proposals").text
    done = finance.post(f"/proposals/{proposal_id(inbox)}/approve",
                        data={"csrf_token": csrf_of(inbox)})
    assert done.status_code == 200 and "approved and applied" in done.text
    after = cells(finance.get("/liability?as_of=2025-03-31&customer=C1").text)
    assert (before[0], after[0]) == ("100.00 EUR", "300.00 EUR")
    again = finance.post(f"/proposals/{proposal_id(inbox)}/approve",
                         data={"csrf_token": csrf_of(inbox)})
    assert again.status_code == 409 and "already" in again.text


def test_nobody_approves_their_own_proposal(web: Web) -> None:
    admin = web.sign_in("admin")
    assert propose(admin, agreement_id="A2", effective_from="2025-01-01",
                   tiers="0: 2").status_code == 303
    inbox = admin.get("/proposals").text
    assert "/approve" not in inbox and "Your proposal" in inbox
    web.client.cookies.clear()
    finance = web.sign_in("finance")
    target = proposal_id(finance.get("/proposals").text)
    web.client.cookies.clear()
    admin = web.sign_in("admin")
    inbox = admin.get("/proposals").text
    own = admin.post(f"/proposals/{target}/approve", data={"csrf_token": csrf_of(inbox)})
    assert own.status_code == 403 and "four eyes" in own.text


def test_a_refused_proposal_shows_the_ledgers_reasons_inline(web: Web) -> None:
    commercial = web.sign_in("commercial")
    answer = propose(commercial, agreement_id="A1", effective_from="2025-01-01",
                     tiers="zero: 1")
    assert answer.status_code == 422
    assert "tiers[0].from" in answer.text and 'value="A1"' in answer.text
    assert "Waiting for approval (0)" in answer.text


def test_finance_rejects_with_a_reason_and_needs_one(web: Web) -> None:
    commercial = web.sign_in("commercial")
    propose(commercial, agreement_id="A1", effective_from="2025-01-01", tiers="0: 5")
    web.client.cookies.clear()
    finance = web.sign_in("finance")
    inbox = finance.get("/proposals").text
    target = proposal_id(inbox)
    blank = finance.post(f"/proposals/{target}/reject",
                         data={"csrf_token": csrf_of(inbox), "reason": " "})
    assert blank.status_code == 422 and "reason" in blank.text
    done = finance.post(f"/proposals/{target}/reject",
                        data={"csrf_token": csrf_of(inbox), "reason": "rate too high"})
    assert done.status_code == 200 and "rate too high" in done.text
    assert "Waiting for approval (0)" in done.text


def test_the_inbox_forms_refuse_a_post_without_csrf(web: Web) -> None:
    commercial = web.sign_in("commercial")
    answer = commercial.post("/proposals", data={"agreement_id": "A1",
                                                 "effective_from": "2025-01-01",
                                                 "tiers": "0: 9"})
    assert answer.status_code == 403 and "csrf_token" in answer.text
    assert "Waiting for approval (0)" in commercial.get("/proposals").text
    web.client.cookies.clear()
    finance = web.sign_in("finance")
    assert finance.post("/proposals/x/approve", data={}).status_code == 403
    unknown = finance.post("/proposals/nope/approve",
                           data={"csrf_token": csrf_of(finance.get("/proposals").text)})
    assert unknown.status_code == 404


# Watchlist and reconcile -----------------------------------------------------------------------

LADDERS = [h.at("2025-03-02T00:00:00Z", h.amend("A1", "2025-01-01",
                                                tiers=h.tier_list([("0", "1"), ("500", "2")]))),
           h.at("2025-03-02T00:00:01Z", h.amend("A2", "2025-01-01",
                                                tiers=h.tier_list([("0", "1"), ("60", "1.5")])))]


def test_watchlist_sorts_by_extra_rebate_and_says_what_is_needed(web: Web) -> None:
    h.accepted_all(web.service.ledger, LADDERS)
    html = web.sign_in("finance").get("/watchlist?as_of=2025-03-31").text
    # A1: 400 more units to reach 500 at 2 earns 1000 - 100 = 900 more; A2: 20 more, 90 - 40 = 50
    assert html.index(">A1</a>") < html.index(">A2</a>")
    assert "900.00 EUR" in html and "50.00 EUR" in html
    assert "400 more quantity by 2025-12-31 reaches the tier from 500 at 2" in html


def test_a_sales_rep_sees_only_its_customers_on_the_watchlist(web: Web) -> None:
    h.accepted_all(web.service.ledger, LADDERS)
    client = web.sign_in("sales")
    html = shown(client.get("/watchlist?as_of=2025-03-31").text)
    assert ">A1</a>" in html and ">A2</a>" not in html and "C2" not in html
    assert client.get("/watchlist?as_of=2025-03-31&customer=C2").status_code == 404


@pytest.mark.parametrize("role", ROLES)
def test_reconcile_is_for_the_books_readers(web: Web, role: str) -> None:
    answer = web.sign_in(role).get("/reconcile?as_of=2025-03-31&flagged=1")
    assert answer.status_code == (200 if role in ("admin", "finance", "commercial", "auditor")
                                  else 403)


def test_reconcile_shows_the_flags_with_links(web: Web) -> None:
    h.accepted_all(web.service.ledger, [
        h.at("2025-03-05T00:00:01Z", h.approve("K1", "2025-03-04"))])
    html = web.sign_in("finance").get("/reconcile?as_of=2025-06-30&flagged=1").text
    assert "1 of 2 agreements flagged" in html
    assert ">A2</a>" not in html  # not flagged
    assert 'href="/agreements/A1?as_of=2025-06-30"' in html
    assert "approved unpaid: claim K1 approved 50.00 on 2025-03-04" in html


# Claims workbench ------------------------------------------------------------------------------


def send(client, action: str, **fields: str):  # type: ignore[no-untyped-def]
    page = client.get("/claims")
    assert page.status_code == 200
    return client.post("/claims", data={"csrf_token": csrf_of(page.text), "action": action,
                                        **fields})


@pytest.mark.parametrize("role", ROLES)
def test_the_workbench_offers_each_role_its_forms_only(web: Web, role: str) -> None:
    answer = web.sign_in(role).get("/claims")
    offered = set(re.findall(r'name="action" value="([a-z_]+)"', answer.text))
    expected = {"customer": {"submit_claim"},
                "finance": {"approve_claim", "reject_claim", "settle_claim", "write_off"},
                "admin": {"submit_claim", "approve_claim", "reject_claim", "settle_claim",
                          "write_off"}}.get(role, set())
    assert offered == expected
    assert answer.status_code == (200 if expected else 403)


def test_an_auditor_reaches_no_form_that_writes(web: Web) -> None:
    client = web.sign_in("auditor")
    for page in [*PAGES[1:], "/proposals", "/reconcile?as_of=2025-03-31", "/claims"]:
        html = client.get(page).text
        assert re.findall(r'method="post" action="([^"]+)"', html) in ([], ["/logout"]), page
    token = csrf_of(client.get("/liability").text)
    refused = client.post("/claims", data={"csrf_token": token, "action": "approve_claim",
                                           "claim_id": "K1", "approved_on": "2025-03-04"})
    assert refused.status_code == 403


def test_a_customer_submits_a_claim_and_sees_it_on_its_statement(web: Web) -> None:
    client = web.sign_in("customer")
    done = send(client, "submit_claim", claim_id="K7", agreement_id="A1", amount="30.00",
                submitted_on="2025-03-20")
    assert done.status_code == 200 and "submit_claim is recorded" in done.text
    assert cells(client.get("/statement?as_of=2025-03-31").text)[1] == "80.00 EUR"
    other = send(client, "submit_claim", claim_id="K8", agreement_id="A2", amount="1.00",
                 submitted_on="2025-03-20")
    assert other.status_code == 422 and "40.00" not in other.text
    blank = send(client, "submit_claim", claim_id="K9", agreement_id="A1", amount="",
                 submitted_on="2025-03-20")
    assert blank.status_code == 422 and "amount" in blank.text and 'value="K9"' in blank.text


def test_finance_approves_and_settles_and_sees_refusals_inline(web: Web) -> None:
    client = web.sign_in("finance")
    too_much = send(client, "approve_claim", claim_id="K1", approved_on="2025-03-04",
                    approved_amount="999.00")
    assert too_much.status_code == 422 and "approved_amount" in too_much.text
    assert send(client, "approve_claim", claim_id="K1", approved_on="2025-03-04",
                approved_amount="").status_code == 200
    assert send(client, "settle_claim", claim_id="K1", paid_on="2025-03-10",
                payment_ref="PAY-9").status_code == 200
    row = cells(client.get("/statement?customer=C1&as_of=2025-03-31").text)
    assert row == ["100.00 EUR", "50.00 EUR", "50.00 EUR", "50.00 EUR"]
    write_off = send(client, "write_off", agreement_id="A2", amount="5.00",
                     effective_date="2025-03-31", reason="small balance")
    assert write_off.status_code == 202 and "is proposal" in write_off.text


def test_the_workbench_refuses_a_post_without_csrf_or_with_an_unknown_action(web: Web) -> None:
    client = web.sign_in("finance")
    assert client.post("/claims", data={"action": "approve_claim", "claim_id": "K1",
                                        "approved_on": "2025-03-04"}).status_code == 403
    token = csrf_of(client.get("/claims").text)
    assert client.post("/claims", data={"csrf_token": token,
                                        "action": "record_sale"}).status_code == 422


# Auditors' pages -------------------------------------------------------------------------------

LATE = h.at("2025-04-05T00:00:00Z", h.sale("S-LATE", "2000", "20000.00", "2025-03-20"))


@pytest.mark.parametrize("role", ROLES)
def test_the_auditors_pages_are_for_the_books_readers(web: Web, role: str) -> None:
    client = web.sign_in(role)
    allowed = role in ("admin", "finance", "commercial", "auditor")
    for page in ("/diff?as_of=2025-03-31&known_at=2025-04-01", "/diff",
                 "/audit?as_of=2025-03-31", "/audit?as_of=2025-03-31&verify=1",
                 "/evidence.zip?as_of=2025-03-31"):
        assert client.get(page).status_code == (200 if allowed else 403), page


def test_diff_names_the_late_sale_and_the_change(web: Web) -> None:
    h.accepted_all(web.service.ledger, [LATE])
    html = web.sign_in("auditor").get("/diff?as_of=2025-03-31&known_at=2025-04-01").text
    assert "100.00 EUR → 2,100.00 EUR (2,000.00 EUR)" in html
    assert "late sale S-LATE recorded 2025-04-05T00:00:00Z" in html
    assert ">A2</a>" not in html


def test_audit_verifies_balances_and_downloads_the_evidence(web: Web) -> None:
    import zipfile

    from ledger.access import operator

    client = web.sign_in("auditor")
    html = client.get("/audit?as_of=2025-03-31&verify=1").text
    events = web.service.verify(operator("cli:tests"))["events"]
    assert events > 0 and f"The store verifies: {events} events chained" in html
    assert "Balanced; the liability account matches" in html
    assert "140.00 EUR" in html
    pack = client.get("/evidence.zip?as_of=2025-03-31")
    assert pack.headers["content-type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(pack.content)).namelist()


# Overview --------------------------------------------------------------------------------------


def test_overview_draws_the_close_then_and_now_and_the_adjustments(web: Web) -> None:
    from ledger.access import operator

    web.service.close_period(operator("cli:tests"), "2025-Q1", None, None)
    # recorded now, after the close: a post-close adjustment
    h.accepted_all(web.service.ledger, [h.sale("S-LATE", "2000", "20000.00", "2025-03-20")])
    client = web.sign_in("finance")
    html = client.get("/overview").text
    row = re.search(r"<th scope=\"row\">2025-Q1</th>.*?</tr>", html, re.S)
    assert row, html
    figures = re.findall(r">([0-9,.-]+ EUR)</a>", row.group(0))
    assert figures == ["140.00 EUR", "2,140.00 EUR", "2,000.00 EUR"]
    assert "2025-Q1 (EUR): 2,000.00 EUR since the close" in html
    diff = re.search(r'href="(/diff\?[^"]+)">the agreements and events behind it', html)
    assert diff
    assert "late sale S-LATE" in client.get(diff.group(1).replace("&amp;", "&")).text
    data = orjson.loads(re.search(r'id="chart-data">(.*?)</script>', html).group(1))  # type: ignore[union-attr]
    assert data == {"EUR": {"x": ["2025-03-31"], "at_close": ["140.00"], "now": ["2140.00"]}}
    assert 'src="/static/vendor/uplot-1.6.31/uPlot.iife.min.js"' in html


@pytest.mark.parametrize("role", ROLES)
def test_the_overview_is_for_the_books_readers(web: Web, role: str) -> None:
    answer = web.sign_in(role).get("/overview")
    assert answer.status_code == (200 if role in ("admin", "finance", "commercial", "auditor")
                                  else 403)
    if answer.status_code == 200:
        assert "No period is closed yet" in answer.text


def test_the_journal_pages_entries_with_who_recorded_them(web: Web) -> None:
    book = [h.at("2025-03-02T00:00:00Z", h.agreement(f"B{n:02}", customer_id=f"D{n:02}"))
            for n in range(12)]
    book += [h.at("2025-03-03T00:00:00Z", h.sale(f"T{n:02}", "1", "10.00", "2025-03-01",
                                                  customer_id=f"D{n:02}")) for n in range(12)]
    h.accepted_all(web.service.ledger, book)
    client = web.sign_in("auditor")
    first = client.get("/journal?as_of=2025-03-31").text
    assert "entries at 2025-03-31" in first and 'rel="next"' in first
    following = re.search(r'href="(/journal\?[^"]*after=[0-9]+)" rel="next"', first)
    assert following
    second = client.get(following.group(1).replace("&amp;", "&")).text
    assert "First page" in second
    assert client.get("/journal?as_of=2025-03-31&after=x").status_code == 422
    assert web.sign_in("sales").get("/journal?as_of=2025-03-31").status_code == 403


def test_the_liability_known_at_links_to_what_changed(web: Web) -> None:
    html = web.sign_in("finance").get("/liability?as_of=2025-03-31&known_at=2025-01-31").text
    assert 'href="/diff?as_of=2025-03-31&amp;known_at=2025-01-31"' in html


def test_commercial_proposes_a_new_agreement_and_finance_approves_it(web: Web) -> None:
    commercial = web.sign_in("commercial")
    fields = {"kind": "create", "agreement_id": "A9", "customer_id": "C1", "currency": "EUR",
              "period_start": "2025-01-01", "period_end": "2025-12-31", "basis": "quantity",
              "tier_method": "retroactive", "rate_kind": "per_unit", "tiers": "0: 0.5"}
    refused = propose(commercial, **{**fields, "currency": "euro"})
    assert refused.status_code == 422 and "currency" in refused.text
    assert 'value="euro"' in refused.text and "refused the new agreement" in refused.text
    assert propose(commercial, **fields).status_code == 303
    web.client.cookies.clear()
    finance = web.sign_in("finance")
    inbox = finance.get("/proposals").text
    assert "create_agreement of" in inbox
    done = finance.post(f"/proposals/{proposal_id(inbox)}/approve",
                        data={"csrf_token": csrf_of(inbox)})
    assert "approved and applied" in done.text
    # A9 covers C1's sale S1 (100 units) at 0.5 a unit
    assert cells(finance.get("/liability?as_of=2025-03-31&customer=C1&sort=agreement_id")
                 .text)[5:6] == ["50.00 EUR"]


def test_every_time_travel_form_is_the_one_macro() -> None:
    """The heading and the D/K form of each page come from `_time_travel.html` (the diff page
    asks for two moments, its own form)."""
    from pathlib import Path

    import ledger.web

    folder = Path(ledger.web.__file__).parent / "templates"
    written = sorted(p.name for p in folder.glob("*.html")
                     if 'name="known_at"' in p.read_text())
    assert written == ["_time_travel.html", "diff.html"]
    users = sorted(p.name for p in folder.glob("*.html") if "time_travel(" in p.read_text())
    assert users == ["_time_travel.html", "agreement.html", "audit.html", "customer.html",
                     "journal.html", "liability.html", "reconcile.html", "statement.html",
                     "watchlist.html"]


def test_shown_blanks_the_random_tokens_that_isolation_checks_must_not_read() -> None:
    # CI once failed because a session's CSRF token held the letters "C2"
    page = ('<input type="hidden" name="csrf_token" value="T6HaRqIHdoC2RBVV">'
            '<input type="hidden" name="upload" value="xA2y"><td>C1</td>')
    assert "C2" not in shown(page) and "A2" not in shown(page) and "C1" in shown(page)
