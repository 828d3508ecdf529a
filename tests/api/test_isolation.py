"""Sales and customer users see their own customers only: another customer's resource is a
404 that tells nothing of it, and a liability query returns their own rows only."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.contract import helpers as h

SCOPED = ["sales", "customer"]


@pytest.mark.parametrize("role", SCOPED)
def test_only_its_own_rows(api: Api, role: str) -> None:
    def agreements(query: str) -> list[str]:
        response = api.client.get(f"/v1/liability?as_of=2025-12-31{query}",
                                  headers=api.headers(role))
        assert response.status_code == 200
        return [r["agreement_id"] for r in response.json()["rows"]]

    assert agreements("") == ["A1"]
    assert agreements("&customer=C2") == []
    assert agreements("&agreement=A2") == []
    assert agreements("&customer=C1") == ["A1"]
    assert [r["agreement_id"] for r in api.client.get(
        "/v1/liability?as_of=2025-12-31", headers=api.headers("auditor")).json()["rows"]] == [
        "A1", "A2"]


@pytest.mark.parametrize("role", SCOPED)
def test_another_customers_agreement_is_not_found(api: Api, role: str) -> None:
    for path in ("/v1/agreements/A2", "/v1/explain?agreement=A2&as_of=2025-12-31",
                 "/v1/opportunities?as_of=2025-06-30&customer=C2",
                 "/v1/positions?as_of=2025-06-30&customer=C2"):
        theirs = api.client.get(path, headers=api.headers(role))
        missing = api.client.get(path.replace("A2", "A404").replace("C2", "C404"),
                                 headers=api.headers(role))
        assert theirs.status_code == missing.status_code == 404, path
        assert "A2" not in missing.text and "C2" not in missing.text
        assert theirs.json()["detail"].replace("A2", "X").replace("C2", "X") == \
            missing.json()["detail"].replace("A404", "X").replace("C404", "X")
    assert api.client.get("/v1/agreements/A1", headers=api.headers(role)).status_code == 200


def test_a_customer_claims_on_its_own_agreements_only(api: Api) -> None:
    mine = api.post_commands("customer", [h.submit("K10", "5.00", submitted_on="2025-03-01")])
    assert mine.status_code == 200 and mine.json()["accepted"] == 1
    theirs = api.post_commands("customer", [h.submit("K11", "5.00", agreement_id="A2",
                                                     submitted_on="2025-03-01")])
    missing = api.post_commands("customer", [h.submit("K12", "5.00", agreement_id="A404",
                                                      submitted_on="2025-03-01")])
    assert theirs.status_code == missing.status_code == 422
    assert theirs.json()["rejections"][0]["reason"].replace("A2", "X") == \
        missing.json()["rejections"][0]["reason"].replace("A404", "X")
    # nothing was stored for A2: the finance view shows its one claim of the book only
    reconcile = api.client.get("/v1/reconcile?as_of=2025-12-31&customer=C2",
                               headers=api.headers("finance")).json()
    assert [r["claimed"] for r in reconcile["rows"]] == ["20.00"]
