"""The web app's routes: sign-in, the liability, an agreement, a customer's statement.

Each page reads its query as text (so that no input becomes a framework error), calls one or two
service methods for the signed-in principal and renders the answer with Jinja2. Refusals of the
service become an HTML page with the status of `ledger.access.http_status`; a missing or expired
session redirects to /login. Sorting, paging, totals of what is shown and formatting are the only
work done here.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args
from urllib.parse import parse_qs, quote, urlencode

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from ledger import commands as c
from ledger.access import (
    COMMANDS_BY_ROLE,
    ROLES_BY_CAPABILITY,
    Capability,
    Principal,
    RateLimited,
    Role,
    Unauthenticated,
    http_status,
)
from ledger.bootstrap import ApiSettings
from ledger.errors import LedgerError
from ledger.http.app import FailedSignIns
from ledger.service import LedgerService, parse_day, parse_moment
from ledger.web import format as fmt
from ledger.web.sessions import LOGIN_COOKIE, SESSION_COOKIE, Session, Signer
from ledger.web.settings import WebSettings
from ledger.web.uploads import (
    LINES_SUFFIXES,
    STALE_S,
    Upload,
    Uploads,
    UploadTooLarge,
)

HERE = Path(__file__).resolve().parent
#: Scripts and styles only from this app (the vendored assets); no inline script.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
#: Longest form body read (sign-in, sign-out); a form of the web app is a few hundred bytes.
FORM_BYTES_MAX = 16_384
#: Longest mapping (TOML) the import page takes; the examples are about 2 KB.
MAPPING_BYTES_MAX = 65_536
#: Columns of the liability table, in order: (key, heading, kind).
LIABILITY_COLUMNS = [
    ("agreement_id", "Agreement", "text"), ("customer_id", "Customer", "text"),
    ("basis", "Basis", "quantity"), ("accrued", "Accrued", "money"),
    ("approved", "Approved", "money"), ("paid", "Paid", "money"),
    ("written_off", "Written off", "money"), ("liability", "Liability", "money"),
]
MONEY_KEYS = [key for key, _, kind in LIABILITY_COLUMNS if kind == "money"]
STATEMENT_COLUMNS = ["agreement_id", "via", "program_id", "currency", "basis_kind", "basis",
                     "customer_share", "tier_reached", "rate", "next_tier", "next_rate",
                     "still_needed", "accrued", "claimed", "paid", "written_off", "liability"]

#: Which step of the explanation derives each figure of the agreement page.
STEP_OF_FIGURE = {"basis": "Tier reached", "accrued": "Cap and rounding",
                  "approved": "Claims approved", "paid": "Settlements",
                  "written_off": "Write-offs", "liability": "Liability"}

#: The workbench's forms: command type -> its fields (name, label, required), in order.
CLAIM_FORMS: dict[str, list[tuple[str, str, bool]]] = {
    "submit_claim": [("claim_id", "Claim id", True), ("agreement_id", "Agreement", True),
                     ("amount", "Amount", True), ("submitted_on", "Submitted on", True)],
    "approve_claim": [("claim_id", "Claim id", True), ("approved_on", "Approved on", True),
                      ("approved_amount", "Approved amount (blank: as claimed)", False)],
    "reject_claim": [("claim_id", "Claim id", True), ("rejected_on", "Rejected on", True),
                     ("reason", "Reason", True)],
    "settle_claim": [("claim_id", "Claim id", True), ("paid_on", "Paid on", True),
                     ("paid_amount", "Paid amount (blank: as approved)", False),
                     ("payment_ref", "Payment reference", True)],
    "write_off": [("agreement_id", "Agreement", True), ("amount", "Amount", True),
                  ("effective_date", "Effective date", True), ("reason", "Reason", True)],
}

#: The choices of the new-agreement form, from the contract's own types.
AGREEMENT_CHOICES = {"basis": get_args(c.Basis), "tier_method": get_args(c.TierMethod),
                     "rate_kind": get_args(c.RateKind)}


class PageError(Exception):
    """A refusal of the page itself (a query it cannot read), shown with its status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["money"] = fmt.money
    env.filters["quantity"] = fmt.quantity
    env.filters["figures"] = fmt.figures
    return env


def _today() -> date:
    return datetime.now(UTC).date()


def _query(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value.strip() if value is not None and value.strip() else None


def _as_of(request: Request) -> date:
    text = _query(request, "as_of")
    return _today() if text is None else parse_day(text, "as_of")


def _known_at(request: Request) -> datetime | None:
    return parse_moment(_query(request, "known_at"), "known_at")


def _positive(request: Request, name: str, default: int) -> int:
    text = _query(request, name)
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= 1_000_000:
        raise PageError(400, f"{name}: {text!r} is not a whole number from 1 to 1000000")
    return int(text)


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: A diff download is kept in memory up to this size while it is written, then on disk.
DOWNLOAD_SPOOL_BYTES = 8 * 1024 * 1024


def _csv(rows: list[dict[str, Any]], columns: list[str], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:200]
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "content-disposition": f'attachment; filename="{safe}"'})


def add_web(app: FastAPI, service: LedgerService, settings: WebSettings | None = None) -> None:
    """Add the web app's pages (at /) and its static assets (at /static) to `app`."""
    settings = settings or WebSettings()
    limits = ApiSettings()
    limiter = FailedSignIns(limits.failed_auth_max, limits.failed_auth_window_s)
    signer = Signer(settings.session_secret, settings.session_max_age_s)
    templates = _templates()
    uploads = Uploads(settings.upload_dir, settings.upload_bytes_max)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def secure(request: Request) -> bool:
        return request.url.scheme == "https"

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        session: Session | None = getattr(request.state, "web_session", None)
        principal: Principal | None = getattr(request.state, "principal", None)
        html = templates.get_template(name).render(
            request=request, principal=principal, may=_may,
            writes=bool(principal and _commands_of(principal) & set(CLAIM_FORMS)),
            imports=bool(principal and service.importable(principal)),
            csrf=signer.csrf(session.nonce) if session else context.pop("csrf", ""),
            path=request.url.path, **context)
        response = HTMLResponse(html, status_code=status)
        response.headers["content-security-policy"] = CSP
        return response

    def to_login(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def page(handler: Callable[[Request, Principal], Any]) -> Callable[[Request], Any]:
        """A signed-in page: the principal of the session, and refusals shown as pages."""

        async def run(request: Request) -> Response:
            session = signer.session(request.cookies.get(SESSION_COOKIE))
            if session is None:
                return to_login(request)
            try:
                # open on the server: not signed out, revoked, rotated or expired
                principal = await run_in_threadpool(service.resume, session.user,
                                                    session.nonce)
            except Unauthenticated:
                return to_login(request)
            request.state.web_session = session
            request.state.principal = principal
            request.state.user = principal.name
            if request.method == "POST":
                if _is_multipart(request):
                    refusal = await _multipart(request, settings.upload_bytes_max)
                    if refusal is not None:
                        return render(request, "error.html", refusal[0], code=refusal[0],
                                      message=refusal[1])
                else:
                    request.state.form = await _form(request)
                if not signer.csrf_ok(session.nonce, request.state.form.get("csrf_token")):
                    return render(request, "error.html", 403, code=403, message=(
                        "csrf_token: the form is missing its token or came from another "
                        "site; reload the page and send it again."))
            try:
                result: Response = await run_in_threadpool(handler, request, principal)
            except Unauthenticated:
                return to_login(request)
            except LedgerError as error:
                return render(request, "error.html", http_status(error), message=str(error),
                              code=http_status(error))
            except PageError as error:
                return render(request, "error.html", error.status, message=str(error),
                              code=error.status)
            finally:
                for upload in getattr(request.state, "files", {}).values():
                    await upload.close()  # the parser's spooled copy
            return result

        return run

    # Sign-in ----------------------------------------------------------------------------------

    def login_form(request: Request, status: int = 200, message: str | None = None,
                   username: str = "") -> Response:
        nonce, cookie = signer.new_login_nonce()
        # the page asked for: from the link to /login, or kept by the form when it comes back
        form: dict[str, str] = getattr(request.state, "form", {})
        target = _safe_next(form.get("next") or request.query_params.get("next"))
        response = render(request, "login.html", status, csrf=signer.csrf(nonce),
                          message=message, username=username, next=target)
        response.set_cookie(LOGIN_COOKIE, cookie, max_age=3600, httponly=True,
                            samesite="strict", secure=secure(request), path="/login")
        return response

    @app.get("/login", include_in_schema=False)
    def get_login(request: Request) -> Response:
        return login_form(request)

    @app.post("/login", include_in_schema=False)
    async def post_login(request: Request) -> Response:
        form = await _form(request)
        request.state.form = form
        nonce = signer.login_nonce(request.cookies.get(LOGIN_COOKIE))
        if not signer.csrf_ok(nonce, form.get("csrf_token")):
            return login_form(request, 403, "The sign-in form had expired or came from "
                              "elsewhere; sign in again on this page.")
        username = form.get("username", "")
        password = form.get("password", "")
        client = request.client.host if request.client else "unknown"
        try:
            limiter.check(client)
            principal = await run_in_threadpool(service.sign_in, username, password)
        except RateLimited as error:
            return login_form(request, 429, f"Too many failed sign-ins: {error}.",
                              username=username)
        except Unauthenticated:
            limiter.fail(client)
            return login_form(request, 401, "Wrong user name or password. Check both and try "
                              "again.", username=username)
        session, cookie = signer.new_session(principal.name)
        try:
            await run_in_threadpool(service.start_session, principal.name, session.nonce,
                                    settings.session_max_age_s)
        except LedgerError as error:  # a read-only store cannot keep a session
            return login_form(request, http_status(error), f"Cannot sign in now: {error}",
                              username=username)
        target = _safe_next(form.get("next")) or _home(principal)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, cookie, max_age=settings.session_max_age_s,
                            httponly=True, samesite="strict", secure=secure(request), path="/")
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @app.post("/logout", include_in_schema=False)
    async def post_logout(request: Request) -> Response:
        form = await _form(request)
        session = signer.session(request.cookies.get(SESSION_COOKIE))
        if session is not None and not signer.csrf_ok(session.nonce, form.get("csrf_token")):
            request.state.web_session = session
            return render(request, "error.html", 403, code=403,
                          message="csrf_token: the sign-out form is missing its token or came "
                          "from another site; use the Sign out button of this app.")
        response: Response = RedirectResponse("/login", status_code=303)
        if session is not None:  # ended on the server: a copy of the cookie is refused too
            try:
                await run_in_threadpool(service.end_session, session.nonce)
            except LedgerError as error:  # a read-only store: say so, delete the cookie
                response = render(request, "error.html", http_status(error),
                                  code=http_status(error), message=(
                                      f"Signed out in this browser, but the session could not "
                                      f"be ended on the server ({error}); it ends when it "
                                      "expires."))
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def home(request: Request, principal: Principal) -> Response:
        return RedirectResponse(_home(principal), status_code=303)

    app.add_api_route("/", page(home), methods=["GET"], include_in_schema=False)

    # Liability --------------------------------------------------------------------------------

    def liability_view(request: Request, principal: Principal) -> dict[str, Any]:
        as_of = _as_of(request)
        known_at = _known_at(request)
        customer = _query(request, "customer")
        sort = _query(request, "sort") or "agreement_id"
        if sort not in {key for key, _, _ in LIABILITY_COLUMNS}:
            raise PageError(400, f"sort: {sort!r} is not a column; use one of "
                            + ", ".join(key for key, _, _ in LIABILITY_COLUMNS))
        direction = _query(request, "dir") or "asc"
        if direction not in ("asc", "desc"):
            raise PageError(400, f"dir: {direction!r}; use asc or desc")
        number = _positive(request, "page", 1)
        answer = service.liability(principal, as_of, known_at, customer_id=customer)
        rows = answer["rows"]
        kind = {key: k for key, _, k in LIABILITY_COLUMNS}[sort]

        def key(row: dict[str, Any]) -> Any:
            value = row.get(sort)
            if kind == "text":
                return (str(value or ""), row["agreement_id"])
            return (fmt.decimal(value) or Decimal(0), row["agreement_id"])

        rows = sorted(rows, key=key, reverse=direction == "desc")
        pages = max(1, -(-len(rows) // settings.page_rows))
        number = min(number, pages)
        shown = rows[(number - 1) * settings.page_rows:number * settings.page_rows]
        totals: dict[str, dict[str, Decimal]] = {}
        for row in rows:
            sums = totals.setdefault(row["currency"], {k: Decimal(0) for k in MONEY_KEYS})
            for k in MONEY_KEYS:
                sums[k] += fmt.decimal(row.get(k)) or Decimal(0)
        by_currency: dict[str, list[dict[str, Any]]] = {}
        for row in shown:
            by_currency.setdefault(row["currency"], []).append(row)
        return {"answer": answer, "rows": rows, "by_currency": by_currency, "totals": totals,
                "as_of": as_of, "known_at": _query(request, "known_at"), "customer": customer,
                "sort": sort, "dir": direction, "page": number, "pages": pages}

    def liability(request: Request, principal: Principal) -> Response:
        view = liability_view(request, principal)
        base = {k: v for k, v in (("as_of", view["as_of"].isoformat()),
                                  ("known_at", view["known_at"]), ("customer", view["customer"]))
                if v}

        def link(**change: Any) -> str:
            query = {**base, "sort": view["sort"], "dir": view["dir"], "page": view["page"],
                     **change}
            return "/liability?" + urlencode({k: v for k, v in query.items() if v})

        return render(request, "liability.html", columns=LIABILITY_COLUMNS, link=link,
                      csv_link="/liability.csv?" + urlencode(
                          {**base, "sort": view["sort"], "dir": view["dir"]}),
                      xlsx_link="/liability.xlsx?" + urlencode(base),
                      agreement_query=urlencode({k: v for k, v in base.items()
                                                 if k != "customer"}), **view)

    def liability_csv(request: Request, principal: Principal) -> Response:
        view = liability_view(request, principal)
        columns = ["agreement_id", "customer_id", "group_id", "program_id", "currency", "basis",
                   *MONEY_KEYS]
        return _csv(view["rows"], columns, f"liability-{view['as_of'].isoformat()}.csv")

    app.add_api_route("/liability", page(liability), methods=["GET"], include_in_schema=False)
    app.add_api_route("/liability.csv", page(liability_csv), methods=["GET"],
                      include_in_schema=False)

    # Agreement --------------------------------------------------------------------------------

    def agreement(request: Request, principal: Principal) -> Response:
        agreement_id = request.path_params["agreement_id"]
        as_of = _as_of(request)
        known_at = _known_at(request)
        head = service.agreement(principal, agreement_id)
        explained = orjson.loads(service.explain(principal, agreement_id, as_of, known_at))
        position = None
        if head.get("customer_id"):
            try:
                positions = orjson.loads(service.positions(principal, head["customer_id"], as_of,
                                                           known_at))
            except LedgerError:
                positions = {"rows": []}
            position = next((r for r in positions["rows"]
                             if r["agreement_id"] == agreement_id), None)
        details = explained.get("steps_detail") or []
        ladder = _ladder(details[0]["figures"].get("tiers") if details else None, position)
        liability = service.liability(principal, as_of, known_at, agreement_id=agreement_id)
        anchors = {figure: f"#step-{step['step']}" for step in explained.get("rows", [])
                   for figure, title in STEP_OF_FIGURE.items() if step["title"] == title}
        return render(request, "agreement.html", head=head, explained=explained, anchors=anchors,
                      position=position, ladder=ladder, row=next(iter(liability["rows"]), None),
                      as_of=as_of, known_at=_query(request, "known_at"),
                      recorded_by=explained.get("recorded_by", {}))

    app.add_api_route("/agreements/{agreement_id}", page(agreement), methods=["GET"],
                      include_in_schema=False)

    # Statement --------------------------------------------------------------------------------

    def statement_view(request: Request, principal: Principal) -> dict[str, Any]:
        as_of = _as_of(request)
        known_at = _known_at(request)
        customer = _query(request, "customer")
        if customer is None and principal.role in (Role.sales, Role.customer):
            customer = min(principal.customers) if principal.customers else None
        answer = None
        if customer is not None:
            answer = orjson.loads(service.positions(principal, customer, as_of, known_at))
        return {"as_of": as_of, "known_at": _query(request, "known_at"), "customer": customer,
                "answer": answer, "rows": answer["rows"] if answer else []}

    def statement(request: Request, principal: Principal) -> Response:
        view = statement_view(request, principal)
        query = {k: v for k, v in (("as_of", view["as_of"].isoformat()),
                                   ("known_at", view["known_at"]),
                                   ("customer", view["customer"])) if v}
        return render(request, "statement.html", csv_link="/statement.csv?" + urlencode(query),
                      pdf_link="/statement.pdf?" + urlencode(query),
                      agreement_query=urlencode({k: v for k, v in query.items()
                                                 if k != "customer"}),
                      customers=sorted(principal.customers), **view)

    def statement_csv(request: Request, principal: Principal) -> Response:
        view = statement_view(request, principal)
        if view["customer"] is None:
            raise PageError(400, "customer: give the customer whose statement to download")
        return _csv(view["rows"], STATEMENT_COLUMNS,
                    f"statement-{view['customer']}-{view['as_of'].isoformat()}.csv")

    def statement_pdf(request: Request, principal: Principal) -> Response:
        from ledger.web.pdf import statement_pdf as render_pdf

        view = statement_view(request, principal)
        if view["customer"] is None:
            raise PageError(400, "customer: give the customer whose statement to download")
        pdf = render_pdf(view["customer"], view["as_of"], view["known_at"], view["rows"],
                         principal.name)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_",
                      f"statement-{view['customer']}-{view['as_of'].isoformat()}.pdf")[:200]
        return Response(pdf, media_type="application/pdf", headers={
            "content-disposition": f'attachment; filename="{safe}"'})

    # Import: a CSV file or a workbook through a mapping, previewed, then applied -------------

    def importable(principal: Principal) -> frozenset[str]:
        offered = service.importable(principal)
        if not offered:
            raise PageError(403, f"role {principal.role.value} imports nothing; the import "
                            "page is for the roles that send commands (ingest, finance, "
                            "commercial, admin, a customer's claims)")
        return offered

    def import_page(request: Request, principal: Principal, status: int = 200,
                    message: str | None = None, **context: Any) -> Response:
        offered = importable(principal)
        form: dict[str, str] = getattr(request.state, "form", {})
        return render(request, "import.html", status, offered=sorted(offered),
                      message=message, failed=status >= 400,
                      sheet=form.get("sheet", ""), encoding=form.get("encoding", ""),
                      mapping_text=form.get("mapping_text", ""), **context)

    def import_form(request: Request, principal: Principal) -> Response:
        return import_page(request, principal)

    def import_post(request: Request, principal: Principal) -> Response:
        importable(principal)  # before anything of the upload is kept
        form: dict[str, str] = request.state.form
        if form.get("action") == "apply":
            return import_apply(request, principal, form.get("upload", ""))
        if form.get("action") != "preview":
            raise PageError(422, f"action: {form.get('action')!r}; preview or apply")
        files: dict[str, Any] = getattr(request.state, "files", {})
        data = files.get("file")
        if data is None or not data.filename:
            return import_page(request, principal, 422, "file: choose the CSV file or the "
                               ".xlsx workbook to import")
        mapping = files.get("mapping")
        mapping_bytes = mapping.file.read(MAPPING_BYTES_MAX + 1) if mapping is not None and \
            mapping.filename else form.get("mapping_text", "").encode()
        if len(mapping_bytes) > MAPPING_BYTES_MAX:
            return import_page(request, principal, 413, f"mapping: more than "
                               f"{MAPPING_BYTES_MAX:,} bytes; a mapping is a few dozen lines")
        # the mapping stays in the form for the next file (the file input cannot be refilled)
        form["mapping_text"] = mapping_bytes.decode("utf-8-sig", "replace")
        lines = Path(data.filename).suffix.lower() in LINES_SUFFIXES
        if lines and mapping_bytes.strip():
            return import_page(request, principal, 422, "mapping: a JSON Lines file holds "
                               "contract commands already and takes no mapping; leave the "
                               "mapping out, or upload a CSV file or a workbook")
        if not lines and not mapping_bytes.strip():
            return import_page(request, principal, 422, "mapping: choose the mapping file "
                               "(TOML) or paste the mapping (docs/importing.md shows how); a "
                               "JSON Lines file (.jsonl) of contract commands needs none")
        try:
            upload = uploads.keep(principal.name, data.filename, data.file, mapping_bytes,
                                  form.get("sheet", "").strip() or None,
                                  form.get("encoding", "").strip() or None)
        except UploadTooLarge as error:
            return import_page(request, principal, 413, str(error))
        try:
            return run_import(request, principal, upload, dry_run=True)
        except BaseException:
            uploads.drop(upload.token)
            raise

    def import_apply(request: Request, principal: Principal, token: str) -> Response:
        """Start the apply of a previewed upload (once) and show its progress page."""
        upload = uploads.get(principal.name, token)
        if upload is None:
            raise PageError(404, "upload: no file waits for you under this preview (it "
                            "waited more than an hour); upload it again")
        if uploads.start(upload.token):  # a second press shows the first apply's page
            uploads.report(upload.token, {"state": "running", "done": 0, "total": None})

            def job() -> None:
                try:
                    outcome = execute_import(principal, upload, dry_run=False, progress=lambda
                                             done, total: uploads.report(upload.token, {
                                                 "state": "running", "done": done,
                                                 "total": total}))
                except LedgerError as error:
                    outcome = {"status": http_status(error), "message": str(error)}
                except Exception as error:  # a bug: said on the page, not left running
                    outcome = {"status": 500, "message": "the import stopped on an internal "
                               f"error ({type(error).__name__}); what was stored before it "
                               "stays stored: see the rejections and the journal"}
                uploads.report(upload.token, {"state": "done", **outcome})

            threading.Thread(target=job, name=f"import-{upload.token[:8]}", daemon=True).start()
        return RedirectResponse(f"/import/{upload.token}", status_code=303)

    def import_job(request: Request, principal: Principal) -> Response:
        """An apply's progress while it runs (htmx polls it), then its report."""
        upload = uploads.get(principal.name, request.path_params["token"])
        state = uploads.state(upload.token) if upload is not None else None
        if upload is None or state is None:
            raise PageError(404, "upload: no import of yours under this address (an import's "
                            "page is kept an hour)")
        if state["state"] == "running" and time.time() - float(str(state["at"])) > STALE_S:
            state = {"state": "done", "status": 500, "message": (
                f"The apply of {upload.filename} reported nothing for {STALE_S // 60} minutes: "
                "its server stopped. What was stored before stays stored (the journal and the "
                "rejections show it); upload the file again to import the rest (rows already "
                "stored come back as duplicates).")}
        if state["state"] == "running":
            return import_page(request, principal, 200, None, job=state, dry_run=False,
                               filename=upload.filename, token=upload.token)
        message = state.get("message")
        return import_page(request, principal, int(str(state["status"])),
                           None if message is None else str(message), report=state.get("report"),
                           counts=state.get("counts"), dry_run=False,
                           stopped=state.get("stopped"), filename=upload.filename)

    def run_import(request: Request, principal: Principal, upload: Upload, *,
                   dry_run: bool) -> Response:
        """The preview of `upload` (a dry run), shown at once."""
        outcome = execute_import(principal, upload, dry_run=dry_run)
        offer = outcome["report"] is not None and outcome["stopped"] is None and \
            outcome["report"]["accepted"] > 0
        if not offer:
            uploads.drop(upload.token)  # nothing to apply
        return import_page(request, principal, outcome["status"], outcome["message"],
                           upload=upload if offer else None, report=outcome["report"],
                           counts=outcome["counts"], dry_run=dry_run,
                           stopped=outcome["stopped"], filename=upload.filename)

    def execute_import(principal: Principal, upload: Upload, *, dry_run: bool,
                       progress: Callable[[int, int | None], None] | None = None
                       ) -> dict[str, Any]:
        """Import `upload` (into nothing when `dry_run`): the outcome as the page shows it,
        JSON-able (an apply's is kept for its page). `progress(done, total)` after each
        chunk: bytes of a CSV file, rows of a workbook or a JSON Lines file."""
        from ledger.core import ApplyStopped
        from ledger.importing import (
            ImportCounts,
            ImportUnreadable,
            MappingError,
            load_mapping,
            rows_of,
        )

        source = f"import:web:{upload.filename}"
        stopped = None
        if upload.data.suffix in LINES_SUFFIXES:
            # the lines as `rebate-ledger apply` reads a file (`bounded_lines`: split at "\n",
            # a leading byte-order mark dropped, an overlong line never held whole), read from
            # the kept file twice (counted, then imported), never all in memory at once
            total = blank = 0
            with upload.data.open("rb") as handle:
                for line in c.bounded_lines(handle):
                    total += 1
                    blank += not line.strip()
            counts = ImportCounts(rows=total, blank=blank)
            read = [0]

            def counted() -> Iterator[bytes]:
                with upload.data.open("rb") as handle:
                    for line in c.bounded_lines(handle):
                        read[0] += 1
                        yield line

            try:
                report = service.import_lines(
                    principal, counted(), source=source, dry_run=dry_run,
                    on_chunk=None if progress is None else lambda: progress(read[0], total))
            except ApplyStopped as error:
                report, stopped = error.report, str(error)
        else:
            try:
                plan = load_mapping(upload.mapping)
                sheet, importer, rows = rows_of(upload.data, plan, sheet=upload.sheet,
                                                encoding=upload.encoding)
            except (MappingError, ImportUnreadable) as error:
                text = str(error).replace(str(upload.data), upload.filename).replace(
                    str(upload.mapping), "the mapping")
                return {"status": 422 if isinstance(error, MappingError) else 400,
                        "message": f"Not imported: {text}", "report": None, "counts": None,
                        "stopped": None}
            try:
                report = service.import_file(
                    principal, {m.kind for m in plan.commands.values()}, rows, source=source,
                    dry_run=dry_run, on_chunk=None if progress is None else lambda: progress(
                        sheet.done(), sheet.total))
            except ApplyStopped as error:
                report, stopped = error.report, str(error)
            finally:
                sheet.close()
            counts = importer.counts
        return {"status": 200 if stopped is None else 422 if dry_run else 500,
                "message": None, "report": report.to_dict(),
                "counts": {"rows": counts.rows, "blank": counts.blank,
                           "skipped": counts.skipped},
                "stopped": stopped}

    app.add_api_route("/import", page(import_form), methods=["GET"], include_in_schema=False)
    app.add_api_route("/import", page(import_post), methods=["POST"], include_in_schema=False)
    app.add_api_route("/import/{token}", page(import_job), methods=["GET"],
                      include_in_schema=False)

    # Customers: a sales rep's page of each customer ------------------------------------------

    def customers(request: Request, principal: Principal) -> Response:
        service.require(principal, Capability.read, "read customers")
        wanted = _query(request, "customer")
        if wanted is not None:
            return RedirectResponse(f"/customers/{quote(wanted, safe='')}", status_code=303)
        return render(request, "customers.html", customers=sorted(principal.customers))

    def customer(request: Request, principal: Principal) -> Response:
        """Where the customer stands in each agreement and program that covers it (issue 13
        point 4: `positions --customer`), with what each next tier still needs."""
        customer_id = request.path_params["customer_id"]
        as_of = _as_of(request)
        known_at = _known_at(request)
        answer = orjson.loads(service.positions(principal, customer_id, as_of, known_at))
        rows = answer["rows"]
        query = {k: v for k, v in (("as_of", as_of.isoformat()),
                                   ("known_at", _query(request, "known_at"))) if v}
        pitch = sorted((r for r in rows if r.get("next_tier") is not None),
                       key=lambda r: (fmt.decimal(r.get("still_needed")) or Decimal(0),
                                      r["agreement_id"]))
        groups = sorted({r["via"].removeprefix("group ") for r in rows if r["via"] != "own"})
        return render(request, "customer.html", customer=customer_id, rows=rows, pitch=pitch,
                      groups=groups, as_of=as_of, known_at=_query(request, "known_at"),
                      agreement_query=urlencode(query),
                      statement_query=urlencode({"customer": customer_id, **query}))

    app.add_api_route("/customers", page(customers), methods=["GET"], include_in_schema=False)
    app.add_api_route("/customers/{customer_id}", page(customer), methods=["GET"],
                      include_in_schema=False)

    # Watchlist and reconcile ------------------------------------------------------------------

    def watchlist(request: Request, principal: Principal) -> Response:
        as_of = _as_of(request)
        known_at = _known_at(request)
        customer = _query(request, "customer")
        if customer is None and principal.role in (Role.sales, Role.customer):
            wanted: list[str | None] = list(sorted(principal.customers))
        else:
            wanted = [customer]
        rows: list[dict[str, Any]] = []
        for one in wanted:
            rows += orjson.loads(service.opportunities(principal, as_of, known_at,
                                                       customer_id=one))["rows"]
        rows.sort(key=lambda r: (-(fmt.decimal(r.get("extra_rebate")) or Decimal(0)),
                                 r["agreement_id"]))
        for row in rows:
            days = row.get("days_left")
            row["by"] = ((as_of + timedelta(days=days)).isoformat()
                         if isinstance(days, int) and 0 <= days <= 36_500 else None)
        return render(request, "watchlist.html", rows=rows, as_of=as_of,
                      known_at=_query(request, "known_at"), customer=customer,
                      scoped=principal.role in (Role.sales, Role.customer))

    def reconcile(request: Request, principal: Principal) -> Response:
        as_of = _as_of(request)
        known_at = _known_at(request)
        flagged = _query(request, "flagged") is not None
        answer = orjson.loads(service.reconcile(principal, as_of, known_at,
                                                customer_id=_query(request, "customer"),
                                                flagged_only=flagged))
        return render(request, "reconcile.html", answer=answer, as_of=as_of,
                      known_at=_query(request, "known_at"), flagged=flagged,
                      customer=_query(request, "customer"),
                      xlsx_link="/reconcile.xlsx?" + urlencode({k: v for k, v in (
                          ("as_of", as_of.isoformat()), ("known_at", _query(request, "known_at")),
                          ("customer", _query(request, "customer")),
                          ("flagged", "1" if flagged else None)) if v}))

    app.add_api_route("/watchlist", page(watchlist), methods=["GET"], include_in_schema=False)
    app.add_api_route("/reconcile", page(reconcile), methods=["GET"], include_in_schema=False)

    # Overview ---------------------------------------------------------------------------------

    def overview(request: Request, principal: Principal) -> Response:
        closes = service.periods(principal)["periods"]
        points = []
        for close in sorted(closes, key=lambda c: (c["period_end"], c["closed_at"])):
            end = parse_day(close["period_end"], "period_end")
            now = service.liability(principal, end)["rows"]
            at_close = _totals(close["reported"])
            known_now = _totals(now)
            for currency in sorted(set(at_close) | set(known_now)):
                reported = at_close.get(currency, Decimal(0))
                current = known_now.get(currency, Decimal(0))
                points.append({"period": close["period"], "period_end": close["period_end"],
                               "closed_at": close["closed_at"], "currency": currency,
                               "at_close": reported, "now": current,
                               "change": current - reported})
        # the agreements behind each change are the diff's (linked): reconcile over the whole
        # book would cost this page tens of seconds on a large store
        adjustments = [p for p in points if p["change"] != 0]
        chart = {currency: {"x": [p["period_end"] for p in points if p["currency"] == currency],
                            "at_close": [str(p["at_close"]) for p in points
                                         if p["currency"] == currency],
                            "now": [str(p["now"]) for p in points
                                    if p["currency"] == currency]}
                 for currency in sorted({p["currency"] for p in points})}
        return render(request, "overview.html", points=points, adjustments=adjustments,
                      chart=orjson.dumps(chart).decode())

    app.add_api_route("/overview", page(overview), methods=["GET"], include_in_schema=False)

    # Auditors: diff, verify, trial balance, evidence ------------------------------------------

    def diff(request: Request, principal: Principal) -> Response:
        as_of = _as_of(request)
        k1_text = _query(request, "known_at")
        vs_text = _query(request, "vs")
        after = _query(request, "after")
        answer = None
        links: dict[str, str | None] = {}
        if k1_text is not None:
            k1 = parse_moment(k1_text, "known_at")
            assert k1 is not None
            # a page of changes at a time: only the agreements it shows are computed
            answer = orjson.loads(service.diff_page(
                principal, as_of, k1, parse_moment(vs_text, "vs"), after=after,
                limit=settings.page_rows))
            query = {k: v for k, v in (("as_of", as_of.isoformat()), ("known_at", k1_text),
                                       ("vs", vs_text)) if v}
            links = {
                "next": (f"/diff?{urlencode({**query, 'after': answer['next']})}"
                         if answer["next"] else None),
                "first": f"/diff?{urlencode(query)}" if after else None,
                "json": f"/diff.json?{urlencode(query)}",
                "csv": f"/diff.csv?{urlencode(query)}"}
        else:
            service.require(principal, Capability.read_books, "read the diff")
        return render(request, "diff.html", answer=answer, as_of=as_of, known_at=k1_text,
                      vs=vs_text, links=links)

    def diff_download(output: str) -> Callable[[Request, Principal], Response]:
        """The whole diff as the CLI prints it (`diff --format json|csv`), its totals with it:
        written as computed, in bounded memory, to a spooled file, then streamed."""
        def download(request: Request, principal: Principal) -> Response:
            as_of = _as_of(request)
            k1 = parse_moment(_query(request, "known_at"), "known_at")
            if k1 is None:
                raise PageError(422, "known_at: the diff compares two moments; give known_at "
                                "(K1), and vs (K2) or nothing for now")
            # closed by the response once sent (or below on an error): no `with`
            spool = tempfile.SpooledTemporaryFile(max_size=DOWNLOAD_SPOOL_BYTES)  # noqa: SIM115
            text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
            try:
                service.write_diff(principal, as_of, k1, parse_moment(_query(request, "vs"),
                                                                      "vs"), output, text)
                text.flush()
            except BaseException:
                text.close()
                raise
            raw = text.detach()
            raw.seek(0)
            kind = "application/json" if output == "json" else "text/csv; charset=utf-8"
            return StreamingResponse(
                iter(lambda: raw.read(1 << 16), b""), media_type=kind,
                background=BackgroundTask(raw.close), headers={
                    "content-disposition":
                        f'attachment; filename="diff-{as_of.isoformat()}.{output}"'})
        return download

    def audit(request: Request, principal: Principal) -> Response:
        as_of = _as_of(request)
        known_at = _known_at(request)
        # verify re-derives every read table: run on request, not on every visit
        verified = service.verify(principal) if _query(request, "verify") else None
        balance = orjson.loads(service.trial_balance(principal, as_of, known_at))
        query = urlencode({k: v for k, v in (("as_of", as_of.isoformat()),
                                             ("known_at", _query(request, "known_at"))) if v})
        return render(request, "audit.html", verified=verified, balance=balance, as_of=as_of,
                      known_at=_query(request, "known_at"), evidence_link=f"/evidence.zip?{query}")

    def evidence(request: Request, principal: Principal) -> Response:
        as_of = _as_of(request)
        pack = service.evidence(principal, as_of, _known_at(request))
        return Response(pack, media_type="application/zip", headers={
            "content-disposition": f'attachment; filename="evidence-{as_of.isoformat()}.zip"'})

    def journal(request: Request, principal: Principal) -> Response:
        as_of = _as_of(request)
        known_at = _known_at(request)
        after_text = _query(request, "after")
        if after_text is not None and not after_text.isdigit():
            raise PageError(422, f"after: {after_text!r} is not an entry number (0 or more)")
        after = int(after_text) if after_text else 0
        agreement = _query(request, "agreement")
        answer = orjson.loads(service.journal(principal, as_of, known_at,
                                              agreement_id=agreement, after=after,
                                              limit=settings.page_rows))
        query = {k: v for k, v in (("as_of", as_of.isoformat()),
                                   ("known_at", _query(request, "known_at")),
                                   ("agreement", agreement)) if v}
        next_link = (f"/journal?{urlencode({**query, 'after': answer['next']})}"
                     if answer.get("next") else None)
        return render(request, "journal.html", answer=answer, as_of=as_of,
                      known_at=_query(request, "known_at"), agreement=agreement,
                      next_link=next_link, first_link=f"/journal?{urlencode(query)}"
                      if after else None, xlsx_link=f"/journal.xlsx?{urlencode(query)}")

    app.add_api_route("/journal", page(journal), methods=["GET"], include_in_schema=False)

    # Excel downloads beside the CSV: LedgerService.workbook, as GET /v1/workbooks/{report}
    def workbook_download(report: str) -> Callable[[Request, Principal], Response]:
        def download(request: Request, principal: Principal) -> Response:
            as_of = _as_of(request)
            book = service.workbook(principal, report, as_of, _known_at(request),
                                    agreement_id=_query(request, "agreement"),
                                    customer_id=_query(request, "customer"),
                                    flagged_only=_query(request, "flagged") is not None)
            return Response(book, media_type=XLSX_TYPE, headers={
                "content-disposition":
                    f'attachment; filename="{report}-{as_of.isoformat()}.xlsx"'})
        return download

    for report in ("liability", "reconcile", "journal"):
        app.add_api_route(f"/{report}.xlsx", page(workbook_download(report)), methods=["GET"],
                          include_in_schema=False)
    app.add_api_route("/diff", page(diff), methods=["GET"], include_in_schema=False)
    for output in ("json", "csv"):
        app.add_api_route(f"/diff.{output}", page(diff_download(output)), methods=["GET"],
                          include_in_schema=False)
    app.add_api_route("/audit", page(audit), methods=["GET"], include_in_schema=False)
    app.add_api_route("/evidence.zip", page(evidence), methods=["GET"], include_in_schema=False)

    # Claims workbench -------------------------------------------------------------------------

    def claims_page(request: Request, principal: Principal, status: int = 200,
                    message: str | None = None, rejections: list[dict[str, Any]] | None = None,
                    action: str | None = None, draft: dict[str, str] | None = None) -> Response:
        """The workbench: the forms the user's role may send; `message` and `rejections` say
        what the last one did."""
        offered = [a for a in CLAIM_FORMS if a in _commands_of(principal)]
        return render(request, "claims.html", status, forms=CLAIM_FORMS, offered=offered,
                      message=message, failed=status >= 400, rejections=rejections or [],
                      action=action, draft=draft or {}, today=_today().isoformat())

    def claims(request: Request, principal: Principal) -> Response:
        if not _commands_of(principal) & set(CLAIM_FORMS):
            raise PageError(403, f"role {principal.role.value} sends no claim commands; "
                            "the statement and liability pages show the claims' figures")
        return claims_page(request, principal)

    def claim_command(request: Request, principal: Principal) -> Response:
        form: dict[str, str] = request.state.form
        action = form.get("action", "")
        if action not in CLAIM_FORMS:
            raise PageError(422, f"action: {action!r} is not one of "
                            + ", ".join(CLAIM_FORMS))
        command: dict[str, Any] = {"type": action}
        for name, _label, required in CLAIM_FORMS[action]:
            value = form.get(name, "").strip()
            if value or required:
                command[name] = value
        outcome = service.submit(principal, [orjson.dumps(command)])
        if outcome.status == 202:
            text = (f"The {action} is proposal {outcome.body['proposal_id']}: another finance "
                    "or admin user approves it in Proposals.")
            return claims_page(request, principal, 202, text, action=action)
        if outcome.status == 200:
            duplicate = outcome.body.get("duplicates")
            text = (f"The {action} was already recorded (a duplicate): nothing changed."
                    if duplicate else f"The {action} is recorded.")
            return claims_page(request, principal, 200, text, action=action)
        return claims_page(request, principal, 422, f"The ledger refused the {action}; "
                           "correct the fields named below.",
                           rejections=outcome.body.get("rejections", []), action=action,
                           draft=form)

    app.add_api_route("/claims", page(claims), methods=["GET"], include_in_schema=False)
    app.add_api_route("/claims", page(claim_command), methods=["POST"], include_in_schema=False)

    # Proposals --------------------------------------------------------------------------------

    def proposals_page(request: Request, principal: Principal, status: int = 200,
                       message: str | None = None, rejections: list[dict[str, Any]] | None = None,
                       draft: dict[str, str] | None = None) -> Response:
        """The inbox; `message` says what the last form did (an error unless status is 200)."""
        found = service.proposals(principal)
        pending = [p for p in found if p["status"] == "pending"]
        decided = [p for p in reversed(found) if p["status"] != "pending"][:50]
        return render(request, "proposals.html", status, pending=pending, decided=decided,
                      choices=AGREEMENT_CHOICES,
                      message=message, failed=status != 200,
                      rejections=rejections or [], draft=draft or {},
                      proposed=_query(request, "proposed"))

    def proposals(request: Request, principal: Principal) -> Response:
        return proposals_page(request, principal)

    def propose(request: Request, principal: Principal) -> Response:
        form: dict[str, str] = request.state.form
        command = _new_agreement(form) if form.get("kind") == "create" else _amendment(form)
        outcome = service.submit(principal, [orjson.dumps(command)])
        if outcome.status == 202:
            return RedirectResponse(f"/proposals?proposed={quote(outcome.body['proposal_id'])}",
                                    status_code=303)
        if outcome.status == 200:
            return RedirectResponse("/proposals", status_code=303)
        what = "new agreement" if command["type"] == "create_agreement" else "amendment"
        return proposals_page(request, principal, 422, f"The ledger refused the {what}; "
                              "correct the fields named below.",
                              rejections=outcome.body.get("rejections", []), draft=form)

    def decide(request: Request, principal: Principal) -> Response:
        proposal_id = request.path_params["proposal_id"]
        action = request.path_params["action"]
        try:
            if action == "approve":
                outcome = service.approve(principal, proposal_id)
                verdict = ("approved and applied" if outcome.status == 200 else
                           "approved, but the ledger refused to apply it: " + "; ".join(
                               r["reason"] for r in outcome.body["report"]["rejections"]))
            elif action == "reject":
                form: dict[str, str] = request.state.form
                service.reject_proposal(principal, proposal_id, form.get("reason", ""))
                verdict = "rejected"
            else:
                raise PageError(404, f"action: {action!r}; approve or reject")
        except LedgerError as error:
            if http_status(error) == 404:
                raise
            return proposals_page(request, principal, http_status(error),
                                  f"Proposal {proposal_id}: {error}")
        return proposals_page(request, principal, 200, f"Proposal {proposal_id} {verdict}.")

    app.add_api_route("/proposals", page(proposals), methods=["GET"], include_in_schema=False)
    app.add_api_route("/proposals", page(propose), methods=["POST"], include_in_schema=False)
    app.add_api_route("/proposals/{proposal_id}/{action}", page(decide), methods=["POST"],
                      include_in_schema=False)

    app.add_api_route("/statement", page(statement), methods=["GET"], include_in_schema=False)
    app.add_api_route("/statement.csv", page(statement_csv), methods=["GET"],
                      include_in_schema=False)
    app.add_api_route("/statement.pdf", page(statement_pdf), methods=["GET"],
                      include_in_schema=False)


def _totals(rows: list[dict[str, Any]]) -> dict[str, Decimal]:
    """The liability of `rows` added up per currency (what a table's total line shows)."""
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row["currency"]] = totals.get(row["currency"], Decimal(0)) + (
            fmt.decimal(row.get("liability")) or Decimal(0))
    return totals


def _commands_of(principal: Principal) -> frozenset[str]:
    return COMMANDS_BY_ROLE.get(principal.role, frozenset())


def _may(principal: Principal | None, capability: str) -> bool:
    """For the templates: whether to offer a page or a form (the service decides anyway)."""
    return principal is not None and principal.role in ROLES_BY_CAPABILITY[
        Capability(capability)]


def _home(principal: Principal) -> str:
    if principal.role is Role.ingest:
        return "/import"  # the only page of a role that sends sales and reads nothing
    return "/statement" if principal.role in (Role.customer,) else "/liability"


def _safe_next(target: str | None) -> str | None:
    """Only a path of this app (never `//elsewhere` or a URL): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target if target.startswith("/") and len(target) <= 2000 else None


def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("multipart/form-data")


async def _multipart(request: Request, bytes_max: int) -> tuple[int, str] | None:
    """Read a file-upload form into `request.state.form` (its fields) and
    `request.state.files` (its files, spooled to disk by the parser); a refusal (status,
    message) when the body is too large or says no size."""
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        return 411, "Content-Length: the upload must say its size; send it from the form"
    if int(length) > bytes_max + FORM_BYTES_MAX:
        return 413, (f"file: the upload is {int(length):,} bytes, more than "
                     f"{bytes_max:,}; split the file, or import it with the command line")
    try:
        found = await request.form(max_files=2, max_fields=20,
                                   max_part_size=MAPPING_BYTES_MAX + FORM_BYTES_MAX)
    except Exception:  # the parser's refusals (malformed body, too many parts): the client's
        return 400, "the upload form could not be read; send it again from the import page"
    request.state.form = {k: v for k, v in found.items() if isinstance(v, str)}
    request.state.files = {k: v for k, v in found.items() if not isinstance(v, str)}
    return None


async def _form(request: Request) -> dict[str, str]:
    """A url-encoded form body (bounded), first value of each field."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_BYTES_MAX:
            return {}
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in fields.items() if values}


def _tiers(text: str) -> list[dict[str, str]]:
    """Lines `FROM: RATE` as the contract's tiers, as typed (a line without a colon goes as
    `from` only, so that the ledger names what is missing)."""
    tiers = []
    for line in text.splitlines():
        if line.strip():
            start, colon, rate = line.partition(":")
            tiers.append({"from": start.strip(), "rate": rate.strip()} if colon
                         else {"from": start.strip()})
    return tiers


def _new_agreement(form: dict[str, str]) -> dict[str, Any]:
    """A `create_agreement` from the form's fields, as typed: the ledger checks them."""
    command: dict[str, Any] = {"type": "create_agreement"}
    for name in ("agreement_id", "customer_id", "currency", "period_start", "period_end",
                 "basis", "tier_method", "rate_kind"):
        command[name] = form.get(name, "").strip()
    command["tiers"] = _tiers(form.get("tiers", ""))
    if form.get("cap", "").strip():
        command["cap"] = form["cap"].strip()
    return command


def _amendment(form: dict[str, str]) -> dict[str, Any]:
    """An `amend_agreement` from the form's fields, as typed: the ledger checks them and names
    what is wrong. Tiers are lines `FROM: RATE`; a line without a colon goes as `from` only."""
    command: dict[str, Any] = {"type": "amend_agreement",
                               "agreement_id": form.get("agreement_id", "").strip(),
                               "effective_from": form.get("effective_from", "").strip()}
    tiers = _tiers(form.get("tiers", ""))
    if tiers:
        command["tiers"] = tiers
    if form.get("cap", "").strip():
        command["cap"] = form["cap"].strip()
    return command


def _ladder(tiers: Any, position: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The tiers in force as the explanation states them (`from 0: 1, from 1000: 2`), each
    marked reached / next by the position the service computed."""
    if not isinstance(tiers, str) or not tiers.startswith("from "):
        return []
    ladder = []
    for part in tiers.split(", "):
        start, _, rate = part.removeprefix("from ").partition(": ")
        ladder.append({"from": start, "rate": rate, "reached": False, "next": False})
    if position:
        for step in ladder:
            step["reached"] = fmt.decimal(step["from"]) == fmt.decimal(position.get("tier_reached"))
            step["next"] = fmt.decimal(step["from"]) == fmt.decimal(position.get("next_tier"))
    return ladder
