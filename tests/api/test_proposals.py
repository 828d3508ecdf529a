"""Four eyes: deal changes and write-offs sent through the API are proposals, with their
what-if, until another finance or admin user approves them."""

from __future__ import annotations

import orjson

from tests.api.conftest import Api
from tests.contract import helpers as h


def _liability(api: Api, agreement: str) -> str:
    rows = api.client.get(f"/v1/liability?as_of=2025-12-31&agreement={agreement}",
                          headers=api.headers("finance")).json()["rows"]
    return rows[0]["liability"] if rows else "none"


def test_a_write_off_waits_for_a_second_person(api: Api) -> None:
    # A1: 100 units at 1.00 = 100.00 accrued; nothing paid yet
    response = api.post_commands("finance", [h.write_off("30.00")])
    assert response.status_code == 202
    pid = response.json()["proposal_id"]
    assert _liability(api, "A1") == "100.00"  # not in force
    proposal = api.client.get(f"/v1/proposals/{pid}", headers=api.headers("auditor")).json()
    assert proposal["status"] == "pending" and proposal["proposed_by"] == "finance"
    what_if = proposal["what_if"]
    assert what_if["before"][0]["liability"] == "100.00"
    assert what_if["after"][0]["liability"] == "70.00"

    own = api.client.post(f"/v1/proposals/{pid}/approve", headers=api.headers("finance"))
    assert own.status_code == 403 and "own proposal" in own.json()["detail"]
    assert _liability(api, "A1") == "100.00"

    approved = api.client.post(f"/v1/proposals/{pid}/approve", headers=api.headers("finance2"))
    assert approved.status_code == 200
    assert approved.json()["proposal"]["status"] == "approved"
    assert approved.json()["proposal"]["decided_by"] == "finance2"
    assert _liability(api, "A1") == "70.00"
    again = api.client.post(f"/v1/proposals/{pid}/approve", headers=api.headers("admin"))
    assert again.status_code == 409
    assert _liability(api, "A1") == "70.00"
    # recorded as the proposer's, approved by the approver
    event = api.client.get("/v1/events?after=0&limit=10000",
                           headers=api.headers("auditor")).json()["events"][-1]
    assert (event["type"], event["actor"], event["approved_by"]) == (
        "RebateWrittenOff", "finance", "finance2")


def test_an_amendment_shows_who_proposed_and_approved_it(api: Api) -> None:
    response = api.post_commands("commercial", [h.amend("A1", "2025-01-01", tiers=h.tier_list(
        (("0", "2"),)))])
    pid = response.json()["proposal_id"]
    assert response.json()["proposals"] == [
        {"line": 1, "command": "amend_agreement", "proposal_id": pid}]
    api.client.post(f"/v1/proposals/{pid}/approve", headers=api.headers("admin"))
    versions = api.client.get("/v1/agreements/A1", headers=api.headers("sales")).json()[
        "versions"]
    assert [(v["kind"], v["recorded_by"], v["approved_by"]) for v in versions] == [
        ("created", "unknown", None), ("amended", "commercial", "admin")]
    assert versions[1]["effective_from"] == "2025-01-01"
    assert _liability(api, "A1") == "200.00"


def test_a_rejected_proposal_changes_nothing(api: Api) -> None:
    pid = api.post_commands("commercial", [h.agreement("A9", customer_id="C1")]).json()[
        "proposal_id"]
    no_reason = api.client.post(f"/v1/proposals/{pid}/reject", headers=api.headers("finance"),
                                content=b"{}")
    assert no_reason.status_code == 422 and no_reason.json()["field"] == "reason"
    rejected = api.client.post(f"/v1/proposals/{pid}/reject", headers=api.headers("finance"),
                               content=orjson.dumps({"reason": "terms not signed"}))
    assert rejected.status_code == 200
    assert rejected.json()["proposal"]["reason"] == "terms not signed"
    assert api.client.get("/v1/agreements/A9", headers=api.headers("admin")).status_code == 404
    late = api.client.post(f"/v1/proposals/{pid}/approve", headers=api.headers("admin"))
    assert late.status_code == 409
    listed = api.client.get("/v1/proposals?status=rejected",
                            headers=api.headers("auditor")).json()["proposals"]
    assert [p["proposal_id"] for p in listed] == [pid]


def test_a_proposal_that_breaks_a_rule_is_rejected_at_once(api: Api) -> None:
    response = api.post_commands("commercial", [h.amend("NOPE", "2025-01-01", cap="1")])
    assert response.status_code == 422
    assert response.json()["proposals"] == []
    assert "NOPE" in response.json()["rejections"][0]["reason"]
    assert api.service.ledger.rejections()[-1].source == "api:commercial"


def test_an_unknown_proposal_is_404(api: Api) -> None:
    for path in ("/v1/proposals/nope", "/v1/proposals/nope/approve"):
        method = "GET" if path.endswith("nope") else "POST"
        response = api.client.request(method, path, headers=api.headers("admin"))
        assert response.status_code == 404


def test_a_proposal_the_book_has_since_made_invalid_fails_on_approval(api: Api) -> None:
    # A1's liability is 100.00: two write-offs of 60.00 each pass alone, not together
    first = api.post_commands("finance", [h.write_off("60.00")]).json()["proposal_id"]
    second = api.post_commands("finance2", [h.write_off("60.00")]).json()["proposal_id"]
    assert api.client.post(f"/v1/proposals/{first}/approve",
                           headers=api.headers("finance2")).status_code == 200
    failed = api.client.post(f"/v1/proposals/{second}/approve", headers=api.headers("finance"))
    assert failed.status_code == 422
    proposal = failed.json()["proposal"]
    assert proposal["status"] == "failed" and "amount" in proposal["reason"]
    assert failed.json()["report"]["rejections"][0]["command"] == "write_off"
    assert _liability(api, "A1") == "40.00"
