"""The HTTP API: a thin FastAPI adapter over `ledger.service.LedgerService`.

Every route reads its parameters, calls one method of the service for the caller's principal,
and returns its JSON; errors become RFC 9457 problem documents with the status of
`ledger.access.http_status`, the one mapping. Nothing here decides a rule or touches SQL.

No `from __future__ import annotations`: FastAPI reads the annotations of routes defined inside
`create_app`, whose dependency aliases are local.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import Annotated, Any

import orjson
from anyio import to_thread
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger import __version__
from ledger.access import (
    BadRequest,
    Principal,
    RateLimited,
    TooLarge,
    Unauthenticated,
    UnsupportedMedia,
    http_status,
)
from ledger.bootstrap import ApiSettings
from ledger.commands import lines_of
from ledger.errors import LedgerError, Rejection
from ledger.service import WORKBOOKS, LedgerService, Outcome, parse_day, parse_moment

log = logging.getLogger("ledger.http")

PROBLEM = "application/problem+json"
NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")
TITLES = {400: "Bad request", 401: "Unauthenticated", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 413: "Request too large",
          415: "Unsupported media type", 422: "Unprocessable request",
          429: "Too many requests", 500: "Internal error", 503: "Not ready"}

#: Client addresses whose failed sign-ins the limiter remembers at most (bounded memory).
LIMITER_CLIENTS_MAX = 10_000

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status,
            "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def error_problem(error: LedgerError) -> JSONResponse:
    """The answer to an error of the ledger: its status from `ledger.access.http_status`, the
    one mapping, and its message (naming the field, also as `field`, when it has one). Used by
    the exception handler and by the middlewares that answer before a route runs."""
    status = http_status(error)
    extra: dict[str, Any] = {}
    if isinstance(error, Rejection | BadRequest) and error.field:
        extra["field"] = error.field
    response = problem(status, str(error), **extra)
    if status == 401:
        response.headers["www-authenticate"] = "Bearer"
    return response


#: The media type of an Excel workbook.
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _json(document: Any, status: int = 200) -> Response:
    content = document if isinstance(document, bytes) else orjson.dumps(document)
    return Response(content, status_code=status, media_type="application/json")


class FailedSignIns:
    """Failed authentications per client address in a sliding window (per process)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        with self._lock:
            times = self._seen.get(client)
            if times is None:
                return
            cutoff = time.monotonic() - self.window_s
            while times and times[0] < cutoff:
                times.popleft()
            if len(times) >= self.limit:
                raise RateLimited(f"too many failed sign-ins from {client}; wait "
                                  f"{self.window_s:g} s")

    def fail(self, client: str) -> None:
        with self._lock:
            if client not in self._seen and len(self._seen) >= LIMITER_CLIENTS_MAX:
                self._seen.pop(next(iter(self._seen)))
            self._seen.setdefault(client, deque(maxlen=self.limit)).append(time.monotonic())


class BodyLimit:
    """413 for a body above the limit, told by Content-Length or counted while it streams,
    before it is read whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            # built only when needed (8b), through the one error mapping (8a)
            too_large = error_problem(TooLarge(
                f"the request body is above {self.limit} bytes (LEDGER_API_BODY_BYTES_MAX); "
                "send it in smaller requests"))
            await too_large(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise TooLarge(f"the request body is above {self.limit} bytes")
            return message

        await self.app(scope, counted, send)


class NulRefused:
    """422 for a request (the API's or a web page's) whose path or query holds a NUL
    character: no id, date or setting of the ledger does, and PostgreSQL's text columns cannot
    hold one (a query on it fails there rather than finding nothing)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":  # the API's routes and the web app's pages alike
            from urllib.parse import parse_qsl

            query = bytes(scope.get("query_string") or b"").decode("latin-1")
            where = next((name for name, value in parse_qsl(query, keep_blank_values=True)
                          if "\x00" in name or "\x00" in value), None)
            if where is None and "\x00" in str(scope["path"]):
                where = "path"
            if where is not None:
                name = where.replace("\x00", "\\u0000")
                await error_problem(BadRequest(
                    name, "holds a NUL character; no id, date or setting does: send the "
                    "value as it was recorded"))(scope, receive, send)
                return
        await self.app(scope, receive, send)


#: the vendored Swagger UI (scripts/vendor-web-assets), served at /docs-assets
SWAGGER_UI = FilePath(__file__).resolve().parent / "static" / "swagger-ui-dist-5.32.0"


def add_docs(app: FastAPI) -> None:
    """The interactive API docs at /docs, from the Swagger UI vendored with the package (no
    CDN: the machine running the service may have no route to one)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs-assets", StaticFiles(directory=SWAGGER_UI), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="rebate-ledger API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="data:,")


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-resource-policy": "same-origin",
}
CSP = "default-src 'none'; frame-ancestors 'none'"
#: The interactive docs: the vendored Swagger UI's script and style, its inline start-up
#: script, and the OpenAPI document it fetches, all from this server.
DOCS_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' "
            "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")


class AccessLog:
    """Security headers on every response, and one structured log line per request: user,
    route, status, milliseconds, client (never a credential)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        docs = scope["path"] == "/docs" or scope["path"].startswith("/docs-assets/")

        async def with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = dict(SECURITY_HEADERS)
                extra["content-security-policy"] = DOCS_CSP if docs else CSP
                headers += [(k.encode(), v.encode()) for k, v in extra.items()
                            if k.encode() not in present]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        finally:
            route = scope.get("route")
            client = scope.get("client")
            log.info(orjson.dumps({
                "user": scope.get("state", {}).get("user"),
                "method": scope["method"],
                "route": getattr(route, "path", scope["path"]),
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 2),
                "client": client[0] if client else None,
            }).decode())


def create_app(service: LedgerService, settings: ApiSettings | None = None) -> FastAPI:
    """The API over `service` (built once per process by ledger.bootstrap)."""
    settings = settings or ApiSettings()
    limiter = FailedSignIns(settings.failed_auth_max, settings.failed_auth_window_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The service's blocking calls run on these threads (anyio's default is 40): with
        # one interpreter lock, more threads than the store's pooled connections only queue
        # for both, and past the pool each call opened a connection and closed it again.
        to_thread.current_default_thread_limiter().total_tokens = settings.threads
        yield

    app = FastAPI(
        title="rebate-ledger API",
        version=__version__,
        lifespan=lifespan,
        # FastAPI's OpenTelemetry hooks asked the environment for a tracer on every request;
        # the structured access log (AccessLog) is this service's record of requests.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # served below from the vendored Swagger UI, never from a CDN
        redoc_url=None,
        description="The rebate ledger as a service: contract commands, the liability at any "
        "point in time, four-eyes proposals and the auditors' toolkit. Every /v1 route needs "
        "`Authorization: Bearer TOKEN` (`rebate-ledger users add`). Errors are RFC 9457 "
        "problem documents.",
    )
    app.state.service = service
    add_docs(app)

    if settings.cors_origins.strip():
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
                           allow_origins=[o.strip() for o in settings.cors_origins.split(",")
                                          if o.strip()])
    app.add_middleware(NulRefused)
    app.add_middleware(AccessLog)
    app.add_middleware(BodyLimit, limit=settings.body_bytes_max)

    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, error: LedgerError) -> Response:
        return error_problem(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        found = error.errors()
        first = found[0] if found else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path",
                                                                            "body"))
        # a parameter that cannot be used: BadRequest, whose status is the mapping's (422)
        return error_problem(BadRequest(where, str(first.get(
            "msg", "invalid" if where else "invalid request"))))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        return problem(error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return problem(500, "an unexpected error; it is logged on the server")

    async def principal(request: Request) -> Principal:
        # On the event loop, not a thread: one indexed lookup by the token's digest (tens of
        # microseconds on SQLite, a round trip on PostgreSQL) costs less than handing the
        # request to a thread and back, which every route then did twice.
        client = request.client.host if request.client else "unknown"
        limiter.check(client)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("send Authorization: Bearer TOKEN (rebate-ledger users "
                                      "add prints one)")
            found = service.authenticate(token.strip())
        except Unauthenticated:
            limiter.fail(client)
            raise
        request.state.user = found.name
        return found

    Caller = Annotated[Principal, Depends(principal)]
    AsOf = Annotated[str, Query(description="valid date D, YYYY-MM-DD")]
    KnownAt = Annotated[str | None, Query(
        description="as the books stood at K: ISO 8601 timestamp, or a date (end of that day, "
        "UTC); default everything recorded")]

    def outcome(result: Outcome) -> Response:
        return _json(result.body, result.status)

    # Health -------------------------------------------------------------------------------

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> dict[str, Any]:
        """The store answers."""
        return service.ready()

    # Commands and proposals ----------------------------------------------------------------

    @app.post("/v1/commands", tags=["commands"], responses={
        200: {"description": "every command applied (or a duplicate)"},
        202: {"description": "deal changes became proposals awaiting approval"},
        422: {"description": "some commands rejected; the rest applied"}})
    async def post_commands(request: Request, caller: Caller) -> Response:
        """One contract command as a JSON object, or many as JSON Lines
        (`Content-Type: application/x-ndjson`); the report of `apply --format json`. An
        `Idempotency-Key` header makes a retry answer the first response again."""
        media = request.headers.get("content-type", "application/json").split(";")[0].strip()
        body = await request.body()
        if media in NDJSON_TYPES:
            lines = lines_of(body)
        elif media in ("application/json", ""):
            lines = [body]
        else:
            raise UnsupportedMedia(f"Content-Type {media!r}: send application/json (one command) "
                           "or application/x-ndjson (JSON Lines)")
        key = request.headers.get("idempotency-key")
        result = await run_in_threadpool(service.submit, caller, lines, idempotency_key=key)
        return outcome(result)

    @app.get("/v1/proposals", tags=["proposals"])
    def list_proposals(caller: Caller, status: str | None = None) -> Response:
        """Proposals (deal changes awaiting a second person), oldest first."""
        return _json({"proposals": service.proposals(caller, status)})

    @app.get("/v1/proposals/{proposal_id}", tags=["proposals"])
    def get_proposal(proposal_id: str, caller: Caller) -> Response:
        return _json(service.proposal(caller, proposal_id))

    @app.post("/v1/proposals/{proposal_id}/approve", tags=["proposals"])
    def approve_proposal(proposal_id: str, caller: Caller) -> Response:
        """Apply the proposal now, recorded as the proposer's, approved by the caller (a
        finance or admin user other than the proposer)."""
        return outcome(service.approve(caller, proposal_id))

    @app.post("/v1/proposals/{proposal_id}/reject", tags=["proposals"])
    async def reject_proposal(proposal_id: str, request: Request, caller: Caller) -> Response:
        """Reject the proposal; body `{"reason": "..."}`."""
        reason = _reason(await request.body())
        return outcome(await run_in_threadpool(service.reject_proposal, caller, proposal_id,
                                               reason))

    # Reads --------------------------------------------------------------------------------

    @app.get("/v1/liability", tags=["reads"])
    async def get_liability(caller: Caller, as_of: AsOf, known_at: KnownAt = None,
                            agreement: str | None = None,
                            customer: str | None = None) -> Response:
        """What `liability --format json` prints for the same arguments."""
        day, moment = parse_day(as_of, "as_of"), parse_moment(known_at, "known_at")
        # an answer kept for the store's position is served here; one to compute, on a thread
        kept = service.liability_kept(caller, day, moment, agreement_id=agreement,
                                      customer_id=customer)
        if kept is not None:
            return _json(kept)
        return _json(await run_in_threadpool(service.liability, caller, day, moment,
                                             agreement_id=agreement, customer_id=customer))

    @app.get("/v1/agreements/{agreement_id}", tags=["reads"])
    def get_agreement(agreement_id: str, caller: Caller) -> Response:
        """The agreement and its terms history, each version with who recorded it."""
        return _json(service.agreement(caller, agreement_id))

    @app.get("/v1/explain", tags=["toolkit"])
    def get_explain(caller: Caller, agreement: str, as_of: AsOf,
                    known_at: KnownAt = None) -> Response:
        return _json(service.explain(caller, agreement, parse_day(as_of, "as_of"),
                                     parse_moment(known_at, "known_at")))

    @app.get("/v1/opportunities", tags=["toolkit"])
    def get_opportunities(caller: Caller, as_of: AsOf, known_at: KnownAt = None,
                          customer: str | None = None,
                          limit: Annotated[int | None, Query(ge=1)] = None) -> Response:
        return _json(service.opportunities(caller, parse_day(as_of, "as_of"),
                                           parse_moment(known_at, "known_at"),
                                           customer_id=customer, limit=limit))

    @app.get("/v1/positions", tags=["toolkit"])
    def get_positions(caller: Caller, customer: str, as_of: AsOf,
                      known_at: KnownAt = None) -> Response:
        """Every agreement covering the customer at D (its own and its buying groups'), with
        tier reached, next tier, what is still needed, the money and its share of a group."""
        return _json(service.positions(caller, customer, parse_day(as_of, "as_of"),
                                       parse_moment(known_at, "known_at")))

    @app.get("/v1/programs", tags=["toolkit"])
    def get_programs(caller: Caller, as_of: AsOf, known_at: KnownAt = None) -> Response:
        """Programs with their enrolled agreements and totals per currency."""
        return _json(service.programs(caller, parse_day(as_of, "as_of"),
                                      parse_moment(known_at, "known_at")))

    @app.get("/v1/journal", tags=["toolkit"])
    def get_journal(caller: Caller, as_of: AsOf, known_at: KnownAt = None,
                    agreement: str | None = None, customer: str | None = None,
                    after: Annotated[int, Query(ge=0, description="cursor: the last entry "
                                                "of the previous page")] = 0,
                    limit: Annotated[int | None, Query(ge=1, le=100_000, description=
                                                       "entries per page")] = None) -> Response:
        """The journal; page it with `after` and `limit` (`next` is the next cursor)."""
        return _json(service.journal(caller, parse_day(as_of, "as_of"),
                                     parse_moment(known_at, "known_at"),
                                     agreement_id=agreement, customer_id=customer,
                                     after=after, limit=limit))

    @app.get("/v1/trial-balance", tags=["toolkit"])
    def get_trial_balance(caller: Caller, as_of: AsOf, known_at: KnownAt = None,
                          agreement: str | None = None,
                          customer: str | None = None) -> Response:
        return _json(service.trial_balance(caller, parse_day(as_of, "as_of"),
                                           parse_moment(known_at, "known_at"),
                                           agreement_id=agreement, customer_id=customer))

    @app.get("/v1/reconcile", tags=["toolkit"])
    def get_reconcile(caller: Caller, as_of: AsOf, known_at: KnownAt = None,
                      customer: str | None = None,
                      grace_days: Annotated[int, Query(ge=0, le=36_500)] = 60,
                      unpaid_days: Annotated[int, Query(ge=0, le=36_500)] = 30,
                      flagged: bool = False) -> Response:
        return _json(service.reconcile(caller, parse_day(as_of, "as_of"),
                                       parse_moment(known_at, "known_at"),
                                       customer_id=customer, grace_days=grace_days,
                                       unpaid_days=unpaid_days, flagged_only=flagged))

    @app.get("/v1/diff", tags=["toolkit"])
    def get_diff(caller: Caller, as_of: AsOf,
                 known_at: Annotated[str, Query(description="K1, the earlier moment")],
                 vs: KnownAt = None) -> Response:
        k1 = parse_moment(known_at, "known_at")
        assert k1 is not None
        return _json(service.diff(caller, parse_day(as_of, "as_of"), k1,
                                  parse_moment(vs, "vs")))

    @app.post("/v1/simulate", tags=["toolkit"])
    async def post_simulate(request: Request, caller: Caller,
                            as_of: str | None = None) -> Response:
        """A draft (JSON Lines: a create_agreement and optional amend_agreement lines) over the
        sales already recorded; nothing is stored."""
        draft = lines_of(await request.body())
        day = parse_day(as_of, "as_of") if as_of is not None else None
        return _json(await run_in_threadpool(service.simulate, caller, draft, day))

    @app.get("/v1/claims", tags=["reads"])
    def get_claims(caller: Caller, agreement: str | None = None, customer: str | None = None,
                   status: str | None = None) -> Response:
        """What `claims --format json` prints: the claims register, filtered by agreement,
        customer and status (submitted, approved, rejected, settled)."""
        return _json(service.claims(caller, agreement_id=agreement, customer_id=customer,
                                    status=status))

    @app.get("/v1/rejections", tags=["toolkit"])
    def get_rejections(caller: Caller,
                       limit: Annotated[int | None, Query(ge=1)] = None) -> Response:
        return _json(service.rejections(caller, limit))

    @app.get("/v1/periods", tags=["toolkit"])
    def get_periods(caller: Caller, known_at: KnownAt = None) -> Response:
        return _json(service.periods(caller, parse_moment(known_at, "known_at")))

    @app.post("/v1/periods/close", tags=["toolkit"])
    async def post_close(request: Request, caller: Caller) -> Response:
        """Close a period: body `{"period": "2025-Q4"}` or `{"from": D1, "to": D2}`."""
        fields = _object(await request.body())
        start = fields.get("from")
        end = fields.get("to")
        period = fields.get("period")
        for name, value in (("period", period), ("from", start), ("to", end)):
            if value is not None and not isinstance(value, str):
                raise BadRequest(name, "a string")
        return _json(await run_in_threadpool(
            service.close_period, caller, period,
            parse_day(start, "from") if start else None, parse_day(end, "to") if end else None))

    @app.get("/v1/verify", tags=["toolkit"])
    def get_verify(caller: Caller) -> Response:
        return _json(service.verify(caller))

    @app.get("/v1/evidence", tags=["toolkit"], response_class=Response,
             responses={200: {"content": {"application/zip": {}}}})
    def get_evidence(caller: Caller, as_of: AsOf, known_at: KnownAt = None) -> Response:
        pack = service.evidence(caller, parse_day(as_of, "as_of"),
                                parse_moment(known_at, "known_at"))
        return Response(pack, media_type="application/zip", headers={
            "content-disposition": f'attachment; filename="evidence-{as_of}.zip"'})

    @app.get("/v1/workbooks/{report}", tags=["toolkit"], response_class=Response,
             responses={200: {"content": {XLSX: {}}}})
    def get_workbook(
        report: Annotated[str, Path(description="one of: " + ", ".join(WORKBOOKS))],
        caller: Caller, as_of: AsOf, known_at: KnownAt = None,
        agreement: str | None = None, customer: str | None = None, vs: KnownAt = None,
        grace_days: Annotated[int, Query(ge=0, le=36_500)] = 60,
        unpaid_days: Annotated[int, Query(ge=0, le=36_500)] = 30,
        flagged: bool = False, limit: Annotated[int | None, Query(ge=1)] = None,
    ) -> Response:
        """The report as an Excel workbook: what `rebate-ledger REPORT --format xlsx --out
        FILE` writes for the same arguments (money as number cells with the currency, a sheet
        per currency, frozen header, filters)."""
        day = parse_day(as_of, "as_of")
        data = service.workbook(caller, report, day, parse_moment(known_at, "known_at"),
                                agreement_id=agreement, customer_id=customer,
                                vs=parse_moment(vs, "vs"), grace_days=grace_days,
                                unpaid_days=unpaid_days, flagged_only=flagged, limit=limit)
        return Response(data, media_type=XLSX, headers={
            "content-disposition": f'attachment; filename="{report}-{day.isoformat()}.xlsx"'})

    @app.post("/v1/gl-export", tags=["toolkit"], response_class=Response,
              responses={200: {"content": {"text/csv": {}, XLSX: {}}}})
    async def post_gl_export(
        request: Request, caller: Caller,
        start: Annotated[str, Query(alias="from", description="the period's first day")],
        end: Annotated[str, Query(alias="to", description="the period's last day")],
        known_at: KnownAt = None,
        reverses: Annotated[str | None, Query(
            description="the known_at of the export uploaded before (a re-export)")] = None,
        format: Annotated[str, Query(pattern="^(csv|xlsx|json)$")] = "csv",  # noqa: A002
    ) -> Response:
        """The general-ledger export of the period (`rebate-ledger gl-export`): the body is the
        accounts mapping (TOML, as examples/gl/accounts.toml)."""
        from ledger.audit.gl import export_report, to_csv, unbalanced

        body = await request.body()
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadRequest("body", "the accounts mapping must be UTF-8 TOML") from None
        first, last = parse_day(start, "from"), parse_day(end, "to")
        if last < first:
            raise BadRequest("to", f"{last} is before from {first}")
        export, mapping = await run_in_threadpool(
            service.gl_export, caller, first, last, text, parse_moment(known_at, "known_at"),
            parse_moment(reverses, "reverses"))
        wrong = unbalanced(export)
        if wrong:
            raise AssertionError("; ".join(wrong))  # a bug: every journal entry balances
        report = export_report(export, mapping)
        name = f"gl-{first.isoformat()}-{last.isoformat()}"
        if format == "json":
            return _json(report.to_json())
        if format == "xlsx":
            import io

            from ledger.audit.xlsx import write_report

            buffer = io.BytesIO()
            write_report(report, buffer, name="lines", by_currency=False)
            return Response(buffer.getvalue(), media_type=XLSX, headers={
                "content-disposition": f'attachment; filename="{name}.xlsx"'})
        return Response(to_csv(report, mapping).encode(), media_type="text/csv", headers={
            "content-disposition": f'attachment; filename="{name}.csv"'})

    @app.get("/v1/events", tags=["toolkit"])
    def get_events(caller: Caller, after: Annotated[int, Query(ge=0)] = 0,
                   limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> Response:
        """The event log in store order after the cursor `after`; `next` is the next cursor."""
        return _json(service.events(caller, after, limit))

    @app.get("/v1/events/{reference:path}", tags=["toolkit"])
    def get_event(caller: Caller, reference: str) -> Response:
        """One stored event by store position or event id (`<aggregate id>/<version>`): type,
        times, who recorded it, the business ids it is about, chain hashes and payload."""
        return _json(service.event(caller, reference))

    return app


def _object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as error:
        raise BadRequest("", f"the body is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise BadRequest("", "the body is a JSON object")
    return value


def _reason(body: bytes) -> str:
    reason = _object(body).get("reason")
    if not isinstance(reason, str):
        raise BadRequest("reason", 'required: {"reason": "why"}')
    return reason
