"""The web app in a real browser: Debian's chromium driven by Playwright against
`rebate-ledger serve` on a free port, on SQLite and PostgreSQL. Finance reads the liability at a
quarter end as known at an earlier time and now, and drills to the late sale; a customer reads
its statement and a changed id gives 404; axe-core (vendored, served by the app) finds no serious
or critical violation on any page, at desktop and phone width."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ledger import Ledger
from ledger.access import operator
from ledger.service import LedgerService
from tests.api.conftest import BOOK
from tests.api.test_server import server
from tests.contract import helpers as h
from tests.web.conftest import add_web_users, password

AXE = "/static/vendor/axe-core-4.10.3/axe.min.js"
#: A sale of C1 invoiced in Q1 but recorded after the quarter end: the figure that changes.
LATE_SALE = h.at("2025-04-05T00:00:00Z", h.sale("S-LATE", "2000", "20000.00", "2025-03-20"))
#: A second tier for A1 (recorded after the book): what the watchlist shows the sales rep.
LADDER = h.at("2025-04-06T00:00:00Z", h.amend("A1", "2025-01-01",
                                            tiers=h.tier_list([("0", "1"), ("4100", "1.1")])))
#: Where to keep screenshots besides the test's folder (docs/ for the README), if set.
SHOTS = os.environ.get("LEDGER_WEB_SCREENSHOTS")


def chromium() -> str:
    """Debian's chromium; installed here when missing and we may (root with apt-get)."""
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)
        found = shutil.which("chromium")
    assert found, "the browser tests need Debian's chromium: apt-get install chromium"
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium())
        yield launched
        launched.close()


@pytest.fixture
def site(database_url: str, tmp_path: Path) -> Iterator[str]:
    with LedgerService(Ledger(database_url)) as service:
        h.accepted_all(service.ledger, [*BOOK, LATE_SALE, LADDER])
        service.close_period(operator("cli:tests"), "2025-Q1", None, None)
        add_web_users(service)
    with server(database_url, tmp_path) as base:
        yield base


def check_accessibility(page: Page, where: str) -> None:
    page.add_script_tag(url=AXE)
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
             .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)}))""")
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    assert not bad, f"{where}: {bad}"


def shot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def sign_in(page: Page, base: str, user: str) -> None:
    page.goto(f"{base}/login")
    check_accessibility(page, "/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password(user))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def sign_in_with_the_keyboard(page: Page, base: str, user: str) -> None:
    """Tab to the user name (past the skip link), type, Tab, type, Enter: no mouse."""
    page.goto(f"{base}/login")
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "username":
            break
    assert page.evaluate("document.activeElement.id") == "username"
    page.keyboard.type(user)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(password(user))
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)


def money_cells(page: Page, agreement_id: str) -> list[str]:
    row = page.locator("tr", has=page.get_by_role("link", name=agreement_id, exact=True))
    return [t.strip() for t in row.locator("td.money").all_inner_texts()]


def test_finance_reads_the_liability_then_and_now_and_drills_down(
        browser: Browser, site: str, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{site}/login")
    page.get_by_label("User name").fill("finance")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert "Wrong user name or password" in page.get_by_role("alert").inner_text()
    sign_in(page, site, "finance")
    assert page.url.endswith("/liability")

    # the quarter end, as the books stood on 1 April (before the late sale was recorded)
    page.get_by_label("As of (valid date D)").fill("2025-03-31")
    page.get_by_label("As known at (K; blank: now)").fill("2025-04-01T00:00:00Z")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**known_at=2025-04-01*")
    page.get_by_role("link", name="A1", exact=True).wait_for()
    then = money_cells(page, "A1")
    assert then[0] == "100.00 EUR" and then[-1] == "100.00 EUR"
    check_accessibility(page, "/liability (known at)")
    shot(page, tmp_path, "liability-known-at-close")

    # as known now: the late sale of 2,000 units adds 2,000.00 (rate 1 per unit)
    page.get_by_label("As known at (K; blank: now)").fill("")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(lambda url: "known_at=2025" not in url)
    page.get_by_role("link", name="A1", exact=True).wait_for()
    page.wait_for_function("!document.querySelector('.htmx-request')")
    now = money_cells(page, "A1")
    assert now[0] == "2,100.00 EUR" and now[-1] == "2,100.00 EUR"
    assert "2,140.00 EUR" in page.locator("tfoot").inner_text()  # the EUR total with A2
    shot(page, tmp_path, "liability-now")

    # drill from the changed figure to the sale that changed it
    page.get_by_role("link", name="A1", exact=True).click()
    page.wait_for_url("**/agreements/A1*")
    page.get_by_role("link", name="2,100.00 EUR").first.click()
    derivation = page.locator("ol.steps").inner_text()
    assert "2025-03 quantity 2000" in derivation
    assert "accrued 2100.00" in derivation or "2100.00" in derivation
    check_accessibility(page, "/agreements/A1")
    shot(page, tmp_path, "agreement")

    # from the liability as known at the close to what changed since, down to the late sale
    page.goto(f"{site}/liability?as_of=2025-03-31&known_at=2025-04-01T00:00:00Z")
    page.get_by_role("link", name="What changed since 2025-04-01T00:00:00Z").click()
    changed = page.locator("main").inner_text()
    assert "100.00 EUR → 2,100.00 EUR" in changed and "late sale S-LATE" in changed

    page.get_by_role("link", name="Overview").click()
    page.locator("#chart canvas").first.wait_for()
    table = page.get_by_role("table", name="The liability at each period")
    assert "2,140.00 EUR" in table.inner_text()
    check_accessibility(page, "/overview")
    shot(page, tmp_path, "overview")

    for where in ("/reconcile?as_of=2025-06-30", "/watchlist?as_of=2025-03-31"):
        page.goto(f"{site}{where}")
        check_accessibility(page, where)

    # phone width: the page does not overflow sideways (tables scroll in their own box)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{site}/liability?as_of=2025-03-31")
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    check_accessibility(page, "/liability (phone)")
    page.close()


def test_a_customer_reads_its_statement_and_not_anothers(
        browser: Browser, site: str, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in_with_the_keyboard(page, site, "customer")
    assert "/statement" in page.url
    page.get_by_role("link", name="Claims").click()
    page.get_by_label("Claim id").fill("K-WEB")
    page.get_by_label("Agreement").fill("A1")
    page.get_by_label("Amount").fill("30.00")
    page.get_by_label("Submitted on").fill("2025-03-20")
    page.get_by_role("button", name="Submit claim").click()
    assert "submit_claim is recorded" in page.get_by_role("alert").inner_text()
    check_accessibility(page, "/claims")
    page.get_by_role("link", name="Statement").click()
    page.get_by_label("As of").fill("2025-03-31")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**as_of=2025-03-31*")
    assert money_cells(page, "A1") == ["2,100.00 EUR", "80.00 EUR", "0.00 EUR", "2,100.00 EUR"]
    check_accessibility(page, "/statement")
    shot(page, tmp_path, "statement")

    answer = page.goto(page.url.replace("customer=C1", "customer=C2"))
    assert answer is not None and answer.status == 404
    shown = page.locator("main").inner_text()
    assert "A2" not in shown and "40.00" not in shown  # nothing of C2's agreement
    check_accessibility(page, "404")
    answer = page.goto(f"{site}/agreements/A2")
    assert answer is not None and answer.status == 404
    assert "40.00" not in page.locator("main").inner_text()

    # the check can fail: a form field without its label is a critical violation
    page.goto(f"{site}/statement")
    page.evaluate("document.querySelectorAll('label').forEach(l => l.remove())")
    with pytest.raises(AssertionError, match="label"):
        check_accessibility(page, "/statement without labels")
    page.close()


def test_commercial_proposes_and_finance_approves_in_the_browser(
        browser: Browser, site: str, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, site, "commercial")
    page.get_by_role("link", name="Proposals").click()
    page.get_by_label("Agreement", exact=True).fill("A2")
    page.get_by_label("Effective from").fill("2025-01-01")
    page.get_by_label("Tiers, one per line as FROM: RATE (blank: unchanged)").fill("0: 3")
    page.get_by_role("button", name="Propose the amendment").click()
    assert "waits for approval" in page.get_by_role("status").inner_text()
    assert "after A2: 120.00 EUR" in page.locator("article.proposal").inner_text()
    assert page.get_by_role("button", name="Approve A2").count() == 0
    check_accessibility(page, "/proposals (commercial)")
    context.close()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, site, "finance")
    page.goto(f"{site}/liability?as_of=2025-03-31&customer=C2")
    assert money_cells(page, "A2")[-1] == "40.00 EUR"
    page.get_by_role("link", name="Proposals").click()
    check_accessibility(page, "/proposals (finance)")
    shot(page, tmp_path, "proposals")
    page.get_by_role("button", name="Approve A2").click()
    assert "approved and applied" in page.get_by_role("alert").inner_text()
    page.goto(f"{site}/liability?as_of=2025-03-31&customer=C2")
    assert money_cells(page, "A2")[-1] == "120.00 EUR"
    context.close()


def test_a_sales_rep_sees_only_its_customers_on_the_watchlist(
        browser: Browser, site: str, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})
    sign_in(page, site, "sales")
    page.get_by_role("link", name="Watchlist").click()
    page.get_by_label("As of").fill("2025-03-31")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/watchlist?as_of=2025-03-31*")
    table = page.locator("main").inner_text()
    assert "A1" in table and "A2" not in table and "C2" not in table
    assert "2,000 more quantity by 2025-12-31" in table  # basis 2,100 of 4,100
    check_accessibility(page, "/watchlist (phone)")
    shot(page, tmp_path, "watchlist-phone")
    # from the watchlist to the customer's page: where it stands in each agreement
    page.get_by_role("link", name="C1", exact=True).click()
    page.wait_for_url("**/customers/C1*")
    standing = page.locator("main").inner_text()
    assert "2,000 more quantity on A1 reaches the tier from 4,100 at 1.1" in standing
    check_accessibility(page, "/customers/C1 (phone)")
    shot(page, tmp_path, "customer-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    answer = page.goto(page.url.replace("/customers/C1", "/customers/C2"))
    assert answer is not None and answer.status == 404
    page.close()


def test_an_auditor_downloads_the_evidence_and_finds_no_form_that_writes(
        browser: Browser, site: str, tmp_path: Path) -> None:
    import zipfile

    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    sign_in(page, site, "auditor")
    page.get_by_role("link", name="Diff").click()
    page.get_by_label("As of (valid date D)").fill("2025-03-31")
    page.get_by_label("As known at K1").fill("2025-04-01T00:00:00Z")
    page.get_by_role("button", name="Compare").click()
    assert "late sale S-LATE" in page.locator("main").inner_text()
    check_accessibility(page, "/diff")
    shot(page, tmp_path, "diff")
    page.get_by_role("link", name="Audit").click()
    page.get_by_label("As of").fill("2025-03-31")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**as_of=2025-03-31*")
    check_accessibility(page, "/audit")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the evidence pack at 2025-03-31").click()
    saved = tmp_path / "evidence.zip"
    download.value.save_as(saved)
    assert zipfile.ZipFile(saved).namelist()
    for where in ("/liability", "/statement?customer=C1", "/proposals", "/reconcile", "/audit",
                  "/diff", "/watchlist", "/agreements/A1", "/journal", "/overview"):
        page.goto(f"{site}{where}")
        actions = page.eval_on_selector_all(
            "form[method=post]", "forms => forms.map(f => f.getAttribute('action'))")
        assert actions == ["/logout"], (where, actions)
        if where == "/journal":
            check_accessibility(page, where)
    assert page.get_by_role("link", name="Claims").count() == 0
    # signing out ends the session on the server: its cookie, kept and replayed in another
    # browser, leads to the sign-in page
    kept = [c for c in context.cookies() if c["name"] == "rl_session"]
    assert kept
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login*")
    context.close()
    replay = browser.new_context()
    replay.add_cookies(kept)  # type: ignore[arg-type]
    again = replay.new_page()
    again.goto(f"{site}/liability")
    assert "/login" in again.url
    assert again.get_by_label("User name").count() == 1
    replay.close()


def test_the_import_preview_rejects_one_bad_row_and_applies_the_rest(
        browser: Browser, site: str, tmp_path: Path) -> None:
    from tests.web.test_import_page import SALES_CSV, SALES_MAPPING

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, site, "ingest")
    page.wait_for_url("**/import")
    check_accessibility(page, "/import")
    page.get_by_label("File (CSV, .xlsx or JSON Lines)").set_input_files(
        files=[{"name": "sales.csv", "mimeType": "text/csv", "buffer": SALES_CSV}])
    page.get_by_label("Mapping file (TOML; none for JSON Lines)").set_input_files(
        files=[{"name": "sales.toml", "mimeType": "text/plain", "buffer": SALES_MAPPING}])
    page.get_by_role("button", name="Preview").click()
    page.get_by_role("heading", name="Preview of sales.csv: nothing is stored yet").wait_for()
    assert "2 commands would be accepted" in page.locator("main").inner_text()
    rejected = page.get_by_role("table", name="Rejected rows").inner_text()
    assert "row 3, column Qty = 'abc'" in rejected
    check_accessibility(page, "/import (preview)")
    shot(page, tmp_path, "import-preview")
    # while the apply runs, the page says so and the button cannot be pressed twice (held here
    # before it is sent, then sent as the form is)
    page.evaluate("""() => document.querySelector('form[data-progress=applying]')
                     .addEventListener('submit', (e) => e.preventDefault(), {once: true})""")
    page.get_by_role("button", name="Apply the 2 accepted commands").click()
    assert page.locator("#applying").is_visible()
    assert page.get_by_role("button", name="Apply the 2 accepted commands").is_disabled()
    page.evaluate("document.querySelector('form[data-progress=applying]').submit()")
    page.get_by_role("heading", name="Imported sales.csv").wait_for()
    assert "2 commands were accepted" in page.locator("main").inner_text()
    page.close()
    # the sales are in the books: finance sees A1 grow by 200 units at 1 a unit
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, site, "finance")
    page.goto(f"{site}/liability?as_of=2025-03-31&customer=C1")
    assert money_cells(page, "A1")[-1] == "2,300.00 EUR"  # 100 + 2,000 late + 200
    page.close()
