"""docs/openapi.json is the API's schema: a change to the API must come with it."""

from __future__ import annotations

from pathlib import Path

import orjson

from ledger.http.openapi import openapi_document
from tests.api.conftest import Api

CHECKED_IN = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_checked_in_document_is_the_apps() -> None:
    assert CHECKED_IN.read_bytes() == openapi_document(), (
        "the API changed: regenerate with `python -m ledger.http.openapi > docs/openapi.json` "
        "and review the difference")


def test_the_running_app_serves_that_document(api: Api) -> None:
    served = api.client.get("/openapi.json").json()
    assert served == orjson.loads(CHECKED_IN.read_bytes())
    paths = set(served["paths"])
    assert {"/v1/commands", "/v1/liability", "/v1/agreements/{agreement_id}", "/v1/proposals",
            "/v1/proposals/{proposal_id}/approve", "/v1/proposals/{proposal_id}/reject",
            "/healthz", "/readyz"} <= paths
    assert api.client.get("/docs").status_code == 200


def test_the_interactive_docs_need_no_network(api: Api) -> None:
    """/docs is the Swagger UI vendored with the package (scripts/vendor-web-assets): every
    script and style it loads comes from this server, none from a CDN, under a CSP that
    allows nothing else."""
    import re

    page = api.client.get("/docs")
    assert page.status_code == 200
    body = page.text
    assert "cdn." not in body and "http://" not in body and "https://" not in body, body
    assets = re.findall(r'(?:src|href)="(/docs-assets/[^"]+)"', body)
    assert sorted(assets) == ["/docs-assets/swagger-ui-bundle.js",
                              "/docs-assets/swagger-ui.css"]
    for asset in assets:
        served = api.client.get(asset)
        assert served.status_code == 200 and len(served.content) > 10_000
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "https:" not in policy and "*" not in policy
    assert api.client.get("/redoc").status_code == 404  # Redoc would load from a CDN


def test_docs_security_names_every_route() -> None:
    document = orjson.loads(CHECKED_IN.read_bytes())
    matrix = (CHECKED_IN.parent / "security.md").read_text()
    missing = [p for p in document["paths"]
               if p not in matrix and p.replace("{proposal_id}/", "{id}/") not in matrix
               and p.replace("{proposal_id}", "{id}").replace("{agreement_id}", "{id}")
               not in matrix and f"`.../{p.rsplit('/', 1)[-1]}`" not in matrix]
    assert not missing, f"docs/security.md says nothing of {missing}"
