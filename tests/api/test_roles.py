"""The role matrix of docs/security.md, exhaustively: every endpoint for every role, every
command type for every role, and the credentials that get 401. The expected sets are written
out here, not read from ledger.access, so that a change there that breaks the matrix fails."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.api.conftest import ROLES, Api
from tests.contract import helpers as h

ALL_BUT_INGEST = {"admin", "finance", "commercial", "sales", "customer", "auditor"}
BOOKS = {"admin", "finance", "commercial", "auditor"}
APPROVERS = {"admin", "finance"}

DRAFT = orjson.dumps(h.agreement("D1", customer_id="C1")).decode()

#: (method, path, body, the roles that may) for every route that needs a token.
READS: list[tuple[str, str, str | None, set[str]]] = [
    ("GET", "/v1/liability?as_of=2025-12-31", None, ALL_BUT_INGEST),
    ("GET", "/v1/agreements/A1", None, ALL_BUT_INGEST),
    ("GET", "/v1/explain?agreement=A1&as_of=2025-12-31", None, ALL_BUT_INGEST),
    ("GET", "/v1/opportunities?as_of=2025-06-30", None, ALL_BUT_INGEST),
    ("GET", "/v1/positions?customer=C1&as_of=2025-06-30", None, ALL_BUT_INGEST),
    ("GET", "/v1/claims?customer=C1", None, ALL_BUT_INGEST),
    ("GET", "/v1/programs?as_of=2025-06-30", None, BOOKS),
    ("GET", "/v1/journal?as_of=2025-12-31", None, BOOKS),
    ("GET", "/v1/trial-balance?as_of=2025-12-31", None, BOOKS),
    ("GET", "/v1/reconcile?as_of=2025-12-31", None, BOOKS),
    ("GET", "/v1/diff?as_of=2025-12-31&known_at=2025-02-01", None, BOOKS),
    ("GET", "/v1/rejections", None, BOOKS),
    ("GET", "/v1/periods", None, BOOKS),
    ("GET", "/v1/events?after=0&limit=5", None, BOOKS),
    ("GET", "/v1/events/1", None, BOOKS),
    ("POST", "/v1/simulate", DRAFT, BOOKS),
    ("GET", "/v1/verify", None, BOOKS),
    ("GET", "/v1/evidence?as_of=2025-12-31", None, BOOKS),
    ("GET", "/v1/proposals", None, BOOKS),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), READS,
                         ids=[f"{m} {p.split('?')[0]}" for m, p, _, _ in READS])
def test_every_role_on_every_read(api: Api, method: str, path: str, body: str | None,
                                  allowed: set[str]) -> None:
    found = {}
    for role in ROLES:
        response = api.client.request(method, path, content=body, headers=api.headers(role))
        found[role] = response.status_code
        if response.status_code == 403:
            assert response.headers["content-type"] == "application/problem+json"
            assert f"role {role}" in response.json()["detail"]
    assert found == {r: 200 if r in allowed else 403 for r in ROLES}


@pytest.mark.parametrize(("method", "path", "body", "allowed"), READS[:3],
                         ids=["liability", "agreement", "explain"])
def test_no_revoked_or_wrong_token_reads_anything(api: Api, method: str, path: str,
                                                  body: str | None, allowed: set[str]) -> None:
    from ledger.access import operator

    assert api.client.request(method, path).status_code == 401
    wrong = api.client.request(method, path, headers={"Authorization": "Bearer rl_nonsense"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    basic = api.client.request(method, path, headers={"Authorization": "Basic YTpi"})
    assert basic.status_code == 401
    api.service.revoke_user(operator("cli:tests"), "finance")
    assert api.client.request(method, path, headers=api.headers("finance")).status_code == 401
    token = api.service.rotate_token(operator("cli:tests"), "finance")
    assert api.client.request(method, path, headers={
        "Authorization": f"Bearer {token}"}).status_code == 200


def _command(api: Api, kind: str, role: str) -> dict[str, Any]:
    """A valid command of `kind` with ids of its own for `role` (state prepared by the
    operator where the command needs it)."""
    tag = f"{kind}-{role}"
    if kind == "create_agreement":
        return h.agreement(f"A-{tag}", customer_id="C1")
    if kind == "amend_agreement":
        return h.amend("A1", "2025-06-01", cap="900")
    if kind == "revise_forecast":
        return h.forecast("A1", "500", "2025-06-01")
    if kind == "record_sale":
        return h.sale(f"S-{tag}", "1", "10.00", "2025-03-01")
    if kind == "reverse_sale":
        h.accepted_all(api.service.ledger, [h.sale(f"S-{tag}", "1", "10.00", "2025-03-01")])
        return {"type": "reverse_sale", "sale_id": f"S-{tag}", "reversed_on": "2025-03-02"}
    if kind == "submit_claim":
        return h.submit(f"K-{tag}", "1.00", submitted_on="2025-03-01")
    if kind in ("approve_claim", "reject_claim", "settle_claim"):
        h.accepted_all(api.service.ledger, [h.submit(f"K-{tag}", "1.00",
                                                     submitted_on="2025-03-01")])
        if kind == "approve_claim":
            return h.approve(f"K-{tag}", approved_on="2025-03-02")
        if kind == "reject_claim":
            return {"type": "reject_claim", "claim_id": f"K-{tag}",
                    "rejected_on": "2025-03-02", "reason": "no proof"}
        h.accepted_all(api.service.ledger, [h.approve(f"K-{tag}", approved_on="2025-03-02")])
        return h.settle(f"K-{tag}", paid_on="2025-03-03", payment_ref=f"P-{tag}")
    assert kind == "write_off", kind
    return h.write_off("1.00", effective_date="2025-12-31")


#: command type → (roles that may send it, the status when one does: 202 for proposals)
COMMANDS: dict[str, tuple[set[str], int]] = {
    "create_agreement": ({"admin", "commercial"}, 202),
    "amend_agreement": ({"admin", "commercial"}, 202),
    "revise_forecast": ({"admin", "commercial"}, 200),
    "record_sale": ({"admin", "ingest"}, 200),
    "reverse_sale": ({"admin", "ingest"}, 200),
    "submit_claim": ({"admin", "customer"}, 200),
    "approve_claim": ({"admin", "finance"}, 200),
    "reject_claim": ({"admin", "finance"}, 200),
    "settle_claim": ({"admin", "finance"}, 200),
    "write_off": ({"admin", "finance"}, 202),
}


@pytest.mark.parametrize("kind", list(COMMANDS))
def test_every_role_for_every_command_type(api: Api, kind: str) -> None:
    allowed, status = COMMANDS[kind]
    found = {}
    for role in ROLES:
        command = _command(api, kind, role)
        before = api.service.ledger.state()["accepted"]
        response = api.post_commands(role, [command])
        found[role] = response.status_code
        if response.status_code == 403:
            assert f"line 1: {kind}" in response.json()["detail"]
            assert api.service.ledger.state()["accepted"] == before  # nothing applied
    assert found == {r: status if r in allowed else 403 for r in ROLES}


def test_a_batch_holding_one_forbidden_command_applies_nothing(api: Api) -> None:
    before = api.service.ledger.state()
    response = api.post_commands("ingest", [h.sale("S9", "1", "1.00"),
                                            h.submit("K9", "1.00")])
    assert response.status_code == 403
    assert "line 2: submit_claim" in response.json()["detail"]
    assert api.service.ledger.state() == before


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_only_finance_and_admin_decide_proposals(api: Api, action: str) -> None:
    found = {}
    for role in ROLES:
        proposal = api.post_commands("commercial", [h.amend("A1", "2025-06-01", cap="800")])
        assert proposal.status_code == 202, proposal.text
        pid = proposal.json()["proposal_id"]
        body = orjson.dumps({"reason": "not agreed"}) if action == "reject" else None
        response = api.client.post(f"/v1/proposals/{pid}/{action}", content=body,
                                   headers=api.headers(role))
        found[role] = response.status_code
    # commercial is the proposer as well as a role that may not decide
    assert found == {r: 200 if r in APPROVERS else 403 for r in ROLES}


def test_only_finance_and_admin_close_periods(api: Api) -> None:
    found = {}
    for month, role in enumerate(ROLES, start=1):
        response = api.client.post("/v1/periods/close", headers=api.headers(role),
                                   content=orjson.dumps({"period": f"2024-{month:02d}"}))
        found[role] = response.status_code
    assert found == {r: 200 if r in APPROVERS else 403 for r in ROLES}


def test_health_needs_no_token(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["store"] == "ok"
