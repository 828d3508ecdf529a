"""The toolkit routes answer what the CLI commands print with `--format json` for the same
arguments (the worked book of the audit tests, on SQLite and PostgreSQL); explain, diff and the
journal also say who recorded each event they name."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ledger import Ledger
from ledger.cli import app as cli_app
from ledger.http.app import create_app
from ledger.service import LedgerService
from tests.api.conftest import Api, add_users
from tests.audit.conftest import BOOK
from tests.contract import helpers as h

#: (route, the same question as CLI arguments)
SAME: list[tuple[str, list[str]]] = [
    ("/v1/explain?agreement=A1&as_of=2025-06-30&known_at=2025-05-01",
     ["explain", "--agreement", "A1", "--as-of", "2025-06-30", "--known-at", "2025-05-01"]),
    ("/v1/journal?as_of=2025-06-30", ["journal", "--as-of", "2025-06-30"]),
    ("/v1/trial-balance?as_of=2025-06-30&customer=C1",
     ["trial-balance", "--as-of", "2025-06-30", "--customer", "C1"]),
    ("/v1/reconcile?as_of=2025-12-31&grace_days=10",
     ["reconcile", "--as-of", "2025-12-31", "--grace-days", "10"]),
    ("/v1/diff?as_of=2025-06-30&known_at=2025-04-30&vs=2025-07-31",
     ["diff", "--as-of", "2025-06-30", "--known-at", "2025-04-30", "--vs", "2025-07-31"]),
    ("/v1/opportunities?as_of=2025-03-31", ["opportunities", "--as-of", "2025-03-31"]),
    ("/v1/rejections", ["rejections"]),
    ("/v1/positions?customer=C1&as_of=2025-06-30",
     ["positions", "--customer", "C1", "--as-of", "2025-06-30"]),
    ("/v1/programs?as_of=2025-06-30", ["programs", "--as-of", "2025-06-30"]),
    ("/v1/verify", ["verify"]),
    ("/v1/liability?as_of=2025-06-30&known_at=2025-05-01",
     ["liability", "--as-of", "2025-06-30", "--known-at", "2025-05-01"]),
]


@pytest.fixture
def book_api(database_url: str) -> Iterator[tuple[Api, str]]:
    service = LedgerService(Ledger(database_url))
    h.accepted_all(service.ledger, BOOK)
    service.ledger.apply([{"type": "bogus"}])  # one rejection to list
    tokens = add_users(service)
    with TestClient(create_app(service)) as client:
        yield Api(service, client, tokens), database_url
    service.close()


def cli_json(database_url: str, args: list[str]) -> Any:
    done = CliRunner().invoke(cli_app, [*args, "--format", "json", "--database", database_url])
    assert done.exit_code in (0, 1), done.output
    return orjson.loads(done.stdout)


def test_every_tool_answers_as_its_cli_command(book_api: tuple[Api, str]) -> None:
    api, url = book_api
    for route, args in SAME:
        response = api.client.get(route, headers=api.headers("auditor"))
        assert response.status_code == 200, (route, response.text)
        answer = response.json()
        answer.pop("recorded_by", None)
        assert answer == cli_json(url, args), route


def test_periods_closed_through_the_api_read_as_the_cli_closed_them(
        book_api: tuple[Api, str]) -> None:
    api, url = book_api
    closed = api.client.post("/v1/periods/close", headers=api.headers("finance"),
                             content=orjson.dumps({"period": "2025-Q1"}))
    assert closed.status_code == 200
    periods = api.client.get("/v1/periods", headers=api.headers("auditor")).json()["periods"]
    assert [(p["period"], p["event_id"]) for p in periods] == [
        ("2025-Q1", closed.json()["event_id"])]
    assert closed.json()["rows"] == cli_json(url, [
        "liability", "--as-of", "2025-03-31", "--known-at", closed.json()["closed_at"]])["rows"]
    events = api.client.get("/v1/events?after=0&limit=10000",
                            headers=api.headers("auditor")).json()["events"]
    assert (events[-1]["type"], events[-1]["actor"]) == ("PeriodClosed", "finance")


def test_simulate_answers_as_the_cli(book_api: tuple[Api, str], tmp_path: object) -> None:
    api, url = book_api
    draft = orjson.dumps(h.agreement("D1", tiers=(("0", "3"),)))
    path = f"{tmp_path}/draft.jsonl"
    with open(path, "wb") as handle:
        handle.write(draft + b"\n")
    response = api.client.post("/v1/simulate?as_of=2025-06-30", content=draft,
                               headers=api.headers("commercial"))
    assert response.json() == cli_json(url, ["simulate", "--draft", path,
                                             "--as-of", "2025-06-30"])
    bad = api.client.post("/v1/simulate", content=b'{"type": "record_sale"}',
                          headers=api.headers("commercial"))
    assert bad.status_code == 422 and "line 1" in bad.json()["detail"]


def test_explain_says_who_recorded_each_event(book_api: tuple[Api, str]) -> None:
    api, _ = book_api
    api.post_commands("ingest", [h.sale("S99", "10", "100.00", "2025-06-01")])
    answer = api.client.get("/v1/explain?agreement=A1&as_of=2025-06-30",
                            headers=api.headers("sales")).json()
    recorded = answer["recorded_by"]
    events = {e for row in answer["rows"] for e in row["events"]}
    assert events == set(recorded)
    assert sorted({r["actor"] for r in recorded.values()}) == ["ingest", "unknown"]


def test_the_event_log_pages_by_cursor_without_gaps(book_api: tuple[Api, str]) -> None:
    api, _ = book_api
    seen, cursor = [], 0
    while True:
        page = api.client.get(f"/v1/events?after={cursor}&limit=5",
                              headers=api.headers("auditor")).json()
        if not page["events"]:
            break
        seen += [e["position"] for e in page["events"]]
        cursor = page["next"]
    everything = api.client.get("/v1/events?limit=10000", headers=api.headers("auditor"))
    assert seen == [e["position"] for e in everything.json()["events"]] and len(seen) > 5


def test_the_evidence_pack_is_a_zip_with_its_manifest(book_api: tuple[Api, str],
                                                      tmp_path: object) -> None:
    import io
    import zipfile

    api, _ = book_api
    response = api.client.get("/v1/evidence?as_of=2025-06-30", headers=api.headers("auditor"))
    assert response.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert "manifest.json" in names and "journal.json" in names


def test_the_journal_pages_by_entry(book_api: tuple[Api, str]) -> None:
    api, _ = book_api
    whole = api.client.get("/v1/journal?as_of=2025-12-31", headers=api.headers("finance"))
    rows, cursor = [], 0
    while cursor is not None:
        page = api.client.get(f"/v1/journal?as_of=2025-12-31&after={cursor}&limit=2",
                              headers=api.headers("finance")).json()
        assert len({r["entry"] for r in page["rows"]}) <= 2
        rows += page["rows"]
        cursor = page["next"]
    assert rows == whole.json()["rows"] and whole.json()["entries"] > 2


def test_a_period_that_has_not_ended_is_refused_through_the_api(
        book_api: tuple[Api, str]) -> None:
    api, _ = book_api
    future = f"{datetime.now(UTC).year + 1}-Q1"
    refused = api.client.post("/v1/periods/close", headers=api.headers("finance"),
                              content=orjson.dumps({"period": future}))
    assert 400 <= refused.status_code < 500, refused.text
    assert "before it has ended" in refused.text and "period" in refused.text
    assert api.client.get("/v1/periods", headers=api.headers("auditor")).json()["periods"] == []
