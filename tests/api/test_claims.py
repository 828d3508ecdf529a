"""`GET /v1/claims` and `rebate-ledger claims`: one service method, the same answer, every
role, scoped to a sales or customer user's own customers, garbage never a 500."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from ledger.cli import app as cli_app
from tests.api.conftest import ROLES, Api
from tests.contract import helpers as h

SCOPED = {"sales", "customer"}


def _cli(url: str, *args: str) -> Any:
    done = CliRunner().invoke(cli_app, ["claims", *args, "--format", "json", "--database", url])
    assert done.exit_code == 0, done.output
    return orjson.loads(done.stdout)


def _decide(api: Api) -> None:
    """K1 approved for less and settled in two payments; K2 rejected: every status kind."""
    h.accepted_all(api.service.ledger, [
        h.at("2025-04-01T00:00:00Z", h.approve("K1", approved_on="2025-03-31",
                                               approved_amount="45.00")),
        h.at("2025-04-02T00:00:00Z", h.settle("K1", paid_on="2025-04-01", payment_ref="P1",
                                              paid_amount="30.00")),
        h.at("2025-04-03T00:00:00Z", h.settle("K1", paid_on="2025-04-02", payment_ref="P2",
                                              paid_amount="15.00")),
        h.at("2025-04-04T00:00:00Z", {"type": "reject_claim", "claim_id": "K2",
                                      "rejected_on": "2025-04-03", "reason": "no proof"}),
    ])


def test_the_register_folds_every_claim_event(api: Api) -> None:
    _decide(api)
    rows = api.client.get("/v1/claims", headers=api.headers("finance")).json()["claims"]
    k1, k2 = rows
    assert (k1["claim_id"], k1["customer_id"], k1["status"]) == ("K1", "C1", "settled")
    assert Decimal(k1["claimed"]) == Decimal("50.00")
    assert Decimal(k1["approved"]) == Decimal("45.00")
    assert Decimal(k1["paid"]) == Decimal("30.00") + Decimal("15.00")
    assert (k1["paid_on"], k1["payment_ref"]) == ("2025-04-02", "P2")
    assert len(k1["settled_events"]) == 2 and k1["approved_event"] is not None
    assert (k2["claim_id"], k2["customer_id"], k2["status"]) == ("K2", "C2", "rejected")
    assert (k2["reason"], k2["rejected_on"], k2["approved"]) == ("no proof", "2025-04-03", None)
    events = {e["event_id"] for e in api.client.get(
        "/v1/events?after=0&limit=100", headers=api.headers("auditor")).json()["events"]}
    assert {k1["submitted_event"], k1["approved_event"], *k1["settled_events"],
            k2["rejected_event"]} <= events


def test_the_api_answers_what_the_cli_prints(api: Api, database_url: str) -> None:
    _decide(api)
    for query, args in [("", []), ("?agreement=A2", ["--agreement", "A2"]),
                        ("?customer=C1", ["--customer", "C1"]),
                        ("?status=rejected", ["--status", "rejected"]),
                        ("?customer=C1&status=submitted", ["--customer", "C1", "--status",
                                                           "submitted"])]:
        answer = api.client.get(f"/v1/claims{query}", headers=api.headers("admin"))
        assert answer.status_code == 200
        assert answer.json() == _cli(database_url, *args), query
    assert [r["claim_id"] for r in _cli(database_url, "--status", "rejected")["claims"]] == ["K2"]
    assert _cli(database_url, "--customer", "C1", "--status", "submitted") == {"claims": []}


def test_every_role(api: Api) -> None:
    found = {}
    for role in ROLES:
        response = api.client.get("/v1/claims", headers=api.headers(role))
        found[role] = response.status_code
        if response.status_code == 200:
            ids = [r["claim_id"] for r in response.json()["claims"]]
            assert ids == (["K1"] if role in SCOPED else ["K1", "K2"]), role
        else:
            assert response.headers["content-type"] == "application/problem+json"
            assert f"role {role}" in response.json()["detail"]
    assert found == {r: 403 if r == "ingest" else 200 for r in ROLES}
    assert api.client.get("/v1/claims").status_code == 401


@pytest.mark.parametrize("role", sorted(SCOPED))
def test_other_customers_ids_are_404_and_never_their_rows(api: Api, role: str) -> None:
    for query in ("customer=C2", "agreement=A2", "customer=C2&status=submitted",
                  "agreement=A2&customer=C1", "customer=NOPE", "agreement=NOPE"):
        response = api.client.get(f"/v1/claims?{query}", headers=api.headers(role))
        assert response.status_code == 404, query
        assert "K2" not in response.text and "C2" not in response.json()["detail"].replace(
            "'C2'", "")
    own = api.client.get("/v1/claims?customer=C1&agreement=A1", headers=api.headers(role))
    assert [r["claim_id"] for r in own.json()["claims"]] == ["K1"]
    # their own agreement filtered by another customer: nothing of C2 leaks
    mixed = api.client.get("/v1/claims?agreement=A1&customer=C1&status=settled",
                           headers=api.headers(role))
    assert mixed.status_code == 200 and mixed.json() == {"claims": []}


@pytest.mark.parametrize("query", [
    "status=paid", "status=", "status=%00", "agreement=%00", "customer=" + "x" * 5000,
    "agreement=A1%27%20OR%201=1--", "status=SUBMITTED", "customer=%F0%9F%92%A5",
])
def test_garbage_parameters_never_500(api: Api, query: str) -> None:
    response = api.client.get(f"/v1/claims?{query}", headers=api.headers("admin"))
    assert response.status_code in (200, 404, 422), response.text
    if response.status_code == 200:
        assert response.json() == {"claims": []}
    else:
        assert response.headers["content-type"] == "application/problem+json"
    if query.startswith("status="):
        assert response.status_code == 422 and "status" in response.json()["detail"]


def test_the_fold_equals_the_claims_projection(api: Api) -> None:
    """The register folded from the store's events (before the projection catches up) is the
    one ClaimsModel keeps from the same events (ledger.projections.read_models)."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from ledger.events.claims import ClaimApproved, ClaimRejected, ClaimSettled, ClaimSubmitted
    from ledger.events.codec import decode_event
    from ledger.events.envelope import event_id_of
    from ledger.projections.read_models import ClaimsModel, Delivered, claim_rows
    from ledger.service import LedgerService

    _decide(api)
    h.accepted_all(api.service.ledger, [h.at("2025-05-01T00:00:00Z", h.submit(
        "K3", "5.00", submitted_on="2025-04-30"))])
    customer_of = {"A1": "C1", "A2": "C2"}
    items = []
    for n in api.service.ledger.app.recorder.select_notifications(start=1, limit=10_000):
        event = decode_event(n.topic, n.state)
        if isinstance(event, ClaimSubmitted | ClaimApproved | ClaimRejected | ClaimSettled):
            items.append(Delivered(n.id, 0, customer_of[event.agreement_id],
                                   event_id_of(event.originator_id, event.originator_version),
                                   event))
    engine = create_engine("sqlite://")
    model = ClaimsModel()
    model.create(engine)
    with Session(engine) as session, session.begin():
        model.apply(session, items)
        projected = [row.to_dict() for row in claim_rows(session)]
    assert [r["status"] for r in projected] == ["settled", "rejected", "submitted"]
    service: LedgerService = api.service
    folded = [row.to_dict() for row in service._claims_from_events(None, None)]  # noqa: SLF001
    assert folded == projected
    answer = api.client.get("/v1/claims", headers=api.headers("auditor")).json()["claims"]
    assert answer == projected


def test_the_cli_command_tells_a_bad_status_and_prints_csv_and_a_table(
        api: Api, database_url: str) -> None:
    _decide(api)
    runner = CliRunner()
    bad = runner.invoke(cli_app, ["claims", "--status", "paid", "--database", database_url])
    # raised to the one mapping (ledger.cli.errors), which prints one line and exits 2
    assert bad.exit_code == 2 and bad.stdout == ""
    said = bad.stderr.splitlines()
    assert said[0].startswith("store: ") and len(said) == 2
    assert said[1].startswith("error: status: 'paid': ") and "settled" in said[1]
    listed = runner.invoke(cli_app, ["claims", "--format", "csv", "--database", database_url])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("claim_id,agreement_id,customer_id,status,claimed")
    assert [line.split(",")[:4] for line in lines[1:]] == [
        ["K1", "A1", "C1", "settled"], ["K2", "A2", "C2", "rejected"]]
    table = runner.invoke(cli_app, ["claims", "--customer", "C2", "--database", database_url])
    assert table.exit_code == 0 and "K2" in table.stdout and "K1" not in table.stdout
