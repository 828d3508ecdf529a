"""A NUL character in any /v1 parameter is a 422 naming it, on both stores: PostgreSQL's text
columns cannot hold one, and a query with it failed there with a 500."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api

PATHS = [
    ("/v1/liability?as_of=2025-12-31&agreement=%00", "agreement"),
    ("/v1/liability?as_of=2025-12-31&customer=A%001", "customer"),
    ("/v1/agreements/A1%00", "path"),
    ("/v1/explain?as_of=2025-12-31&agreement=%00", "agreement"),
    ("/v1/journal?as_of=2025-12-31&agreement=%00", "agreement"),
    ("/v1/reconcile?as_of=2025-12-31&customer=%00", "customer"),
    ("/v1/claims?customer=%00", "customer"),
    ("/v1/positions?as_of=2025-06-30&customer=C1%00", "customer"),
]


@pytest.mark.parametrize(("path", "field"), PATHS, ids=[p.split("?")[0] for p, _ in PATHS])
def test_a_nul_in_a_parameter_is_a_422_naming_it(api: Api, path: str, field: str) -> None:
    for role in ("admin", "customer"):
        response = api.client.get(path, headers=api.headers(role))
        assert response.status_code == 422, (role, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"] == field
        assert "NUL" in response.json()["detail"]
    # without the NUL the same route answers
    clean = api.client.get(path.replace("%00", ""), headers=api.headers("admin"))
    assert clean.status_code in (200, 404), clean.text


@pytest.mark.parametrize("path", ["/agreements/A1%00", "/liability?as_of=2025-12-31&customer=%00",
                                  "/statement?customer=C1%00"])
def test_a_nul_in_a_web_pages_parameter_is_a_422_too(api: Api, path: str) -> None:
    """The web app's pages read the same store: a NUL is refused before any query."""
    response = api.client.get(path, follow_redirects=False)
    assert response.status_code == 422, response.text
    assert "NUL" in response.json()["detail"]
