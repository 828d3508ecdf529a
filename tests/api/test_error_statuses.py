"""Issue 8 point 1: the HTTP API maps errors to statuses in one place, `HTTP_STATUS` in
ledger/access.py through `error_problem` in ledger/http/app.py: the routes, the request
checks and the middlewares that answer before a route runs (body limit, NUL refusal) alike.
Only the framework's own errors (its 404/405 for an unknown route) and the last-resort 500
are answered with a status given elsewhere."""

from __future__ import annotations

import ast
from pathlib import Path

from ledger.access import HTTP_STATUS, UnsupportedMedia, http_status
from tests.api.conftest import Api

APP = Path(__file__).resolve().parents[2] / "ledger" / "http" / "app.py"
#: Functions that may call `problem(status, ...)` with a status of their own: the one mapping,
#: the framework's HTTP errors (404 unknown route, 405 method) and the last resort (500).
OWN_STATUS = {"error_problem", "http_error", "unexpected"}


def status_choices(source: str) -> list[str]:
    """Calls of `problem(...)` or `JSONResponse(..., status_code=...)` outside OWN_STATUS."""
    found: list[str] = []

    def visit(node: ast.AST, inside: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside = node.name
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("problem", "JSONResponse") and inside not in OWN_STATUS \
                and inside != "problem":
            found.append(f"{inside}:{node.lineno}")
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(source), "")
    return found


def test_no_route_or_middleware_picks_an_error_status_itself() -> None:
    assert status_choices(APP.read_text()) == []


def test_the_check_sees_a_status_picked_in_a_route() -> None:
    planted = ("def error_problem(error):\n    return problem(http_status(error), str(error))\n"
               "def post(request):\n    return problem(415, 'send JSON')\n")
    assert status_choices(planted) == ["post:4"]


def test_a_body_type_the_endpoint_does_not_take_is_415_from_the_mapping(api: Api) -> None:
    assert http_status(UnsupportedMedia("x")) == 415
    assert (UnsupportedMedia, 415) in HTTP_STATUS
    answer = api.client.post("/v1/commands", content=b"a,b\n1,2\n",
                             headers=api.headers("admin", **{"Content-Type": "text/csv"}))
    assert answer.status_code == 415
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["status"] == 415 and problem["title"] == "Unsupported media type"
    assert "'text/csv'" in problem["detail"] and "application/x-ndjson" in problem["detail"]


def test_a_nul_in_a_query_is_422_naming_the_parameter(api: Api) -> None:
    answer = api.client.get("/v1/liability?as_of=%00", headers=api.headers("admin"))
    assert answer.status_code == 422
    assert answer.json()["field"] == "as_of"
    assert answer.json()["detail"].startswith("as_of: holds a NUL character")
