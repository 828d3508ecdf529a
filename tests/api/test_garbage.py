"""No input gives a 500 or a stack trace: garbage bodies, headers and parameters on every
route get a problem document naming what was wrong; a body over the limit gets 413."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from ledger.bootstrap import ApiSettings
from ledger.http.app import create_app
from tests.api.conftest import Api

BODIES = [
    b"", b"{", b"[]", b"null", b"42", b'"text"', b"\xff\xfe\x00", b"{}" * 1000,
    b'{"type": "record_sale", "quantity": 1e999999}', b'{"type": ' + b"[" * 5000,
    b'{"type": "create_agreement", "tiers": [{"from": 1.5e308, "rate": -0}]}',
    orjson.dumps({"type": "x" * 10_000}), b'{"type":"record_sale"}\n\n\n{"a":1}',
    "{\"type\": \"write_off\", \"reason\": \"\u202e\ud7ff\"}".encode(),
]
ROUTES = [
    ("POST", "/v1/commands"), ("POST", "/v1/simulate"), ("POST", "/v1/periods/close"),
    ("POST", "/v1/proposals/x/reject"), ("POST", "/v1/proposals/x/approve"),
]
QUERIES = [
    "/v1/liability?as_of=2025-13-45", "/v1/liability?as_of=2025-12-31&known_at=yesterday",
    "/v1/liability", "/v1/liability?as_of=%00", "/v1/explain?as_of=2025-12-31&agreement=",
    "/v1/diff?as_of=2025-12-31&known_at=2025-06-01&vs=2025-01-01", "/v1/events?after=-1",
    "/v1/events?limit=0", "/v1/events?limit=abc", "/v1/rejections?limit=-5",
    "/v1/reconcile?as_of=2025-12-31&grace_days=1e9", "/v1/agreements/%2e%2e%2f",
    "/v1/proposals?status=whatever", "/v1/opportunities?as_of=2025-06-30&limit=0",
    "/v1/nothing-here", "/v1/events/0", "/v1/events/-1", "/v1/events/%00",
    "/v1/events/not-a-uuid/1", "/v1/events/00000000-0000-0000-0000-000000000000/1",
    "/v1/events/99999999999999999999999", "/v1/events/1%2F2",
]
#: odd but valid: the first and last days a date can be
ODD = ["/v1/evidence?as_of=0001-01-01", "/v1/journal?as_of=9999-12-31&known_at=0001-01-01",
       "/v1/liability?as_of=9999-12-31&known_at=0001-01-01T00:00:00-23:59"]


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson",
                                          "text/plain"])
def test_garbage_bodies(api: Api, content_type: str) -> None:
    for method, path in ROUTES:
        for body in BODIES:
            response = api.client.request(method, path, content=body, headers=api.headers(
                "admin", **{"content-type": content_type}))
            assert response.status_code < 500, (path, body[:60], response.text)
            assert "Traceback" not in response.text
            if response.headers["content-type"] == "application/json" and \
                    path == "/v1/commands" and response.status_code == 422:
                # the report of apply: every line rejected with its reason, kept
                report = response.json()
                assert report["rejected"] == len(report["rejections"]) >= 1
            elif response.status_code >= 400:
                assert response.headers["content-type"] == "application/problem+json"


def test_an_empty_body_is_no_command(api: Api) -> None:
    for body in (b"", b"\n \n"):
        response = api.client.post("/v1/commands", content=body, headers=api.headers("admin"))
        assert response.status_code == 422 and response.json()["field"] == "body"


def test_garbage_parameters(api: Api) -> None:
    for path in QUERIES:
        response = api.client.get(path, headers=api.headers("admin"))
        assert 400 <= response.status_code < 500, (path, response.text)
        problem = response.json()
        assert problem["status"] == response.status_code and problem["detail"], path
    for path in ODD:
        assert api.client.get(path, headers=api.headers("admin")).status_code == 200, path


def test_garbage_credentials(api: Api) -> None:
    for header in ("Bearer", "Bearer ", "bearer \x00", "Bearer " + "x" * 10_000, "Token a",
                   "Bearer rl_" + "é"):
        response = api.client.get("/v1/liability?as_of=2025-12-31",
                                  headers={"Authorization": header.encode("utf-8")})
        assert response.status_code == 401, header[:20]


def test_a_body_above_the_limit_is_refused_before_it_is_read(api: Api) -> None:
    settings = ApiSettings(body_bytes_max=2048)
    with TestClient(create_app(api.service, settings)) as client:
        big = client.post("/v1/commands", content=b"x" * 4096, headers=api.headers("admin"))
        assert big.status_code == 413 and "2048" in big.json()["detail"]

        def chunks():  # no Content-Length: counted while it streams
            for _ in range(4):
                yield b"y" * 1024

        streamed = client.post("/v1/commands", content=chunks(), headers=api.headers("admin"))
        assert streamed.status_code == 413


def test_failed_sign_ins_are_rate_limited_per_client(api: Api) -> None:
    settings = ApiSettings(failed_auth_max=3, failed_auth_window_s=600)
    with TestClient(create_app(api.service, settings)) as client:
        codes = [client.get("/v1/liability?as_of=2025-12-31",
                            headers={"Authorization": "Bearer wrong"}).status_code
                 for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        # the limit is on the client address: even a good token waits
        assert client.get("/v1/liability?as_of=2025-12-31",
                          headers=api.headers("admin")).status_code == 429


def test_security_headers_and_no_cors(api: Api) -> None:
    response = api.client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "access-control-allow-origin" not in response.headers
