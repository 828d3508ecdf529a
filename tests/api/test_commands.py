"""POST /v1/commands: the same validation, duplicates, rejections and report as `apply`; the
statuses 200 / 202 / 422; Idempotency-Key, also across a restart of the app."""

from __future__ import annotations

import orjson
from fastapi.testclient import TestClient

from ledger import Ledger
from ledger.http.app import create_app
from ledger.service import LedgerService
from tests.api.conftest import Api
from tests.contract import helpers as h

SALES = [
    h.sale("S10", "5", "50.00", "2025-04-01"),
    {"type": "record_sale", "sale_id": "S11"},  # missing fields
    h.sale("S1", "100", "1000.00", "2025-01-15"),  # a duplicate of the book's S1
    h.sale("S12", "-2", "3.00", "2025-04-02"),  # signs differ: a broken rule
    h.sale("S13", "1", "10.00", "2025-04-03"),
]


def test_a_batch_answers_the_report_apply_prints(api: Api, tmp_path: object) -> None:
    response = api.post_commands("ingest", SALES)
    assert response.status_code == 422
    report = response.json()
    with Ledger(f"sqlite:///{tmp_path}/cli.db") as other:  # the same lines through `apply`
        h.accepted_all(other, h_book())
        expected = other.apply(SALES).to_dict()
    assert {k: v for k, v in report.items() if k != "proposals"} == expected
    assert report["accepted"] == 2 and report["duplicates"] == 1 and report["rejected"] == 2
    assert [r["line"] for r in report["rejections"]] == [2, 4]
    assert report["rejections"][0]["field"] == "customer_id"
    # the rest applied: S10 and S13 count in the liability (A1: 100 + 5 + 1 units at 1.00)
    rows = api.client.get("/v1/liability?as_of=2025-12-31&agreement=A1",
                          headers=api.headers("finance")).json()["rows"]
    assert rows[0]["basis"] == "106"
    kept = api.service.ledger.rejections()
    assert [(r.line, r.source) for r in kept] == [(2, "api:ingest"), (4, "api:ingest")]


def h_book() -> list[dict[str, object]]:
    from tests.api.conftest import BOOK

    return BOOK


def test_one_json_object_is_one_command(api: Api) -> None:
    response = api.client.post("/v1/commands", content=orjson.dumps(h.sale("S20", "1", "1")),
                               headers=api.headers("ingest"))
    assert response.status_code == 200
    assert response.json()["accepted"] == 1 and response.json()["rejections"] == []


def test_a_retry_with_the_same_key_applies_nothing_twice(api: Api) -> None:
    batch = [h.sale("S30", "1", "10.00"), {"type": "bogus"}]
    first = api.post_commands("ingest", batch, **{"Idempotency-Key": "batch-30"})
    accepted = api.service.ledger.state()["accepted"]
    again = api.post_commands("ingest", batch, **{"Idempotency-Key": "batch-30"})
    assert first.status_code == again.status_code == 422
    assert again.json() == first.json()
    assert api.service.ledger.state()["accepted"] == accepted
    assert len(api.service.ledger.rejections()) == 1
    # the key is the caller's: another user's same key is another request
    other = api.post_commands("admin", [h.sale("S31", "1", "1.00")],
                              **{"Idempotency-Key": "batch-30"})
    assert other.status_code == 200 and other.json()["accepted"] == 1


def test_a_key_reused_for_another_request_is_a_conflict(api: Api) -> None:
    api.post_commands("ingest", [h.sale("S40", "1", "1.00")], **{"Idempotency-Key": "k"})
    response = api.post_commands("ingest", [h.sale("S41", "1", "1.00")],
                                 **{"Idempotency-Key": "k"})
    assert response.status_code == 409
    assert "different request" in response.json()["detail"]
    assert api.service.ledger.apply([h.sale("S41", "1", "1.00")]).accepted == 1  # not applied


def test_the_key_holds_across_a_restart(database_url: str) -> None:
    from tests.api.conftest import BOOK, add_users

    service = LedgerService(Ledger(database_url))
    h.accepted_all(service.ledger, BOOK)
    tokens = add_users(service)
    headers = {"Authorization": f"Bearer {tokens['ingest']}",
               "content-type": "application/x-ndjson", "Idempotency-Key": "restart-1"}
    body = orjson.dumps(h.sale("S50", "2", "20.00"))
    with TestClient(create_app(service)) as client:
        first = client.post("/v1/commands", content=body, headers=headers)
    service.close()
    restarted = LedgerService(Ledger(database_url))
    with TestClient(create_app(restarted)) as client:
        again = client.post("/v1/commands", content=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert restarted.ledger.state()["accepted"] == len(BOOK) + 1
    restarted.close()


def test_events_name_who_recorded_them_and_older_ones_read_unknown(api: Api) -> None:
    """The book was loaded before any actor was recorded (as a store from before this change):
    its events read `unknown`; what the API stores names its user."""
    api.post_commands("ingest", [h.sale("S60", "1", "1.00")])
    events = api.client.get("/v1/events?after=0", headers=api.headers("auditor")).json()
    actors = [e["actor"] for e in events["events"]]
    assert actors[:-1] == ["unknown"] * (len(actors) - 1)
    assert actors[-1] == "ingest" and events["events"][-1]["role"] == "ingest"
    page = api.client.get(f"/v1/events?after={events['next'] - 1}&limit=1",
                          headers=api.headers("auditor")).json()
    assert [e["position"] for e in page["events"]] == [events["next"]]


def test_a_key_whose_answer_was_lost_says_so_and_applies_nothing(api: Api) -> None:
    """The server stopped between committing a batch (with its key) and keeping the answer."""
    import hashlib

    from sqlalchemy import insert

    from ledger.accounts import api_idempotency

    body = orjson.dumps(h.sale("S70", "1", "1.00"))
    with api.service.engine.begin() as connection:
        connection.execute(insert(api_idempotency).values(
            user_name="ingest", key="lost", request_sha256=hashlib.sha256(body).hexdigest(),
            created_us=0))
    response = api.client.post("/v1/commands", content=body,
                               headers=api.headers("ingest", **{"Idempotency-Key": "lost"}))
    assert response.status_code == 409 and "was applied" in response.json()["detail"]
    assert api.service.ledger.apply([h.sale("S70", "1", "1.00")]).accepted == 1  # not before


def test_json_lines_are_split_as_apply_splits_a_file(api: Api) -> None:
    # a byte-order mark before line 1 and \r\n endings, as from Excel or a Windows editor:
    # read as `rebate-ledger apply` reads a file (the mark dropped, lines split at \n)
    body = (b"\xef\xbb\xbf" + orjson.dumps(h.sale("S40", "1", "1.00", "2025-04-01")) + b"\r\n"
            + orjson.dumps(h.sale("S41", "2", "2.00", "2025-04-01")) + b"\r\n")
    response = api.client.post("/v1/commands", content=body, headers=api.headers(
        "ingest", **{"content-type": "application/x-ndjson"}))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 2 and response.json()["rejections"] == []
