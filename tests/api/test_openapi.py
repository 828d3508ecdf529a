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


def test_docs_security_names_every_route() -> None:
    document = orjson.loads(CHECKED_IN.read_bytes())
    matrix = (CHECKED_IN.parent / "security.md").read_text()
    missing = [p for p in document["paths"]
               if p not in matrix and p.replace("{proposal_id}/", "{id}/") not in matrix
               and p.replace("{proposal_id}", "{id}").replace("{agreement_id}", "{id}")
               not in matrix and f"`.../{p.rsplit('/', 1)[-1]}`" not in matrix]
    assert not missing, f"docs/security.md says nothing of {missing}"
