"""The cache of liability answers by store position (ledger.answers): an answer kept for one
position is never served at another, so a write by any process or worker shows at once; what it
keeps is below the role scoping, so a scoped caller never gets rows of another customer; a
revoked token is refused at once by every worker."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import httpx
import orjson

from ledger import Ledger
from ledger.answers import AnswerCache
from tests.api.conftest import Api
from tests.api.test_server import add_user, cli, server
from tests.contract import helpers as h

AS_OF = "2025-09-30"


def test_an_answer_is_kept_for_its_position_only() -> None:
    cache = AnswerCache(rows_max=3)
    cache.put((5, 0), "a", (1,), "core")
    assert cache.get((5, 0), "a") == ((1,), "core")
    assert cache.get((6, 0), "a") is None  # a write since: never the old answer
    assert cache.get((4, 0), "a") is None
    cache.put((4, 0), "b", (2,))  # computed before a write another reader saw: not kept
    assert cache.get((5, 0), "b") is None and cache.get((4, 0), "b") is None
    cache.put((6, 0), "b", (2,))  # the first answer at a new position drops the older ones
    assert cache.get((5, 0), "a") is None and cache.get((6, 0), "a") is None
    assert cache.get((6, 0), "b") == ((2,), None)


def test_the_cache_is_bounded_by_rows_least_recently_used_first() -> None:
    cache = AnswerCache(rows_max=3)
    cache.put((1, 0), "a", (1,))
    cache.put((1, 0), "b", (1, 2))
    assert cache.get((1, 0), "a") is not None  # a is now the most recently used
    cache.put((1, 0), "c", (3,))  # 4 rows: b goes
    assert cache.get((1, 0), "b") is None
    assert cache.get((1, 0), "a") is not None and cache.get((1, 0), "c") is not None
    cache.put((1, 0), "d", (1, 2, 3, 4))  # larger than the whole cache: not kept, nothing dropped
    assert cache.get((1, 0), "d") is None and len(cache) == 2


def liability(api: Api, user: str, **params: str) -> Any:
    response = api.client.get("/v1/liability", params={"as_of": AS_OF, **params},
                              headers=api.headers(user))
    assert response.status_code == 200, response.text
    return response.json()


def test_a_kept_answer_never_leaks_across_roles_or_customers(api: Api) -> None:
    # finance reads everything first: the answers for "all", for A2 and for C2 are kept
    everything = liability(api, "finance")
    assert {row["agreement_id"] for row in everything["rows"]} == {"A1", "A2"}
    assert [r["agreement_id"] for r in liability(api, "finance", agreement="A2")["rows"]] \
        == ["A2"]
    assert [r["agreement_id"] for r in liability(api, "finance", customer="C2")["rows"]] \
        == ["A2"]
    hits = api.service.answers.hits
    assert liability(api, "finance")["rows"] == everything["rows"]
    assert api.service.answers.hits > hits  # the cache answers the repeated question
    for user in ("sales", "customer"):  # both see customer C1 only
        assert [r["agreement_id"] for r in liability(api, user)["rows"]] == ["A1"]
        assert liability(api, user, agreement="A2")["rows"] == []
        assert liability(api, user, customer="C2")["rows"] == []
        assert [r["agreement_id"] for r in liability(api, user, customer="C1")["rows"]] \
            == ["A1"]
    # and the scoped answers kept since do not widen finance's
    assert {r["agreement_id"] for r in liability(api, "finance")["rows"]} == {"A1", "A2"}


def test_a_write_through_the_service_shows_at_once(api: Api) -> None:
    before = liability(api, "finance", agreement="A1")["rows"][0]
    assert liability(api, "finance", agreement="A1")["rows"][0] == before  # kept
    response = api.post_commands("ingest", [h.sale("S9", "1000", "10000.00", "2025-03-01")])
    assert response.status_code == 200, response.text
    after = liability(api, "finance", agreement="A1")["rows"][0]
    with Ledger(api.service.ledger.engine.url.render_as_string(hide_password=False)) as fresh:
        (row,) = fresh.liability(date.fromisoformat(AS_OF), agreement_id="A1")
    assert after == row.to_dict() != before


def test_two_workers_show_a_write_and_a_revocation_by_another_process_at_once(
        database_url: str, tmp_path: Path) -> None:
    """Two worker processes keep answers; a sale applied by the CLI (a third process) and a
    token revoked by it show on the very next request, whichever worker takes it."""
    book = tmp_path / "book.jsonl"
    book.write_bytes(b"\n".join(orjson.dumps(c) for c in (
        h.agreement("A1", customer_id="C1"),
        h.sale("S1", "100", "1000.00", "2025-01-15"))) + b"\n")
    assert cli(tmp_path, "apply", str(book), "--database", database_url).returncode == 0
    reader = add_user(tmp_path, database_url, "reader", "--role", "auditor")
    with server(database_url, tmp_path, workers=2) as base, \
            httpx.Client(base_url=base, timeout=30) as client:

        def basis() -> set[str]:
            # fresh connections spread the requests over both workers
            found = set()
            for _ in range(12):
                response = client.get("/v1/liability", params={
                    "as_of": AS_OF, "agreement": "A1"}, headers={**reader, "connection": "close"})
                assert response.status_code == 200, response.text
                found.add(response.json()["rows"][0]["basis"])
            return found

        (first,) = basis()
        more = tmp_path / "more.jsonl"
        more.write_bytes(orjson.dumps(h.sale("S2", "50", "500.00", "2025-02-15")) + b"\n")
        assert cli(tmp_path, "apply", str(more), "--database", database_url).returncode == 0
        (second,) = basis()
        with Ledger(database_url) as fresh:  # what a process that kept nothing computes
            (row,) = fresh.liability(date.fromisoformat(AS_OF), agreement_id="A1")
        assert second == row.to_dict()["basis"] != first

        done = cli(tmp_path, "users", "revoke", "reader", "--database", database_url)
        assert done.returncode == 0, done.stderr
        for _ in range(12):
            response = client.get("/v1/liability", params={"as_of": AS_OF, "agreement": "A1"},
                                  headers={**reader, "connection": "close"})
            assert response.status_code == 401, response.text


def test_the_kept_answer_is_served_only_for_the_current_position(api: Api) -> None:
    """`liability_kept` (what the HTTP API answers on its event loop) gives a kept answer only:
    none before the question was computed, none after a write, and a scoped caller's own."""
    from ledger.access import Principal, Role

    service, day = api.service, date.fromisoformat(AS_OF)

    def same(kept: dict[str, Any] | None, computed: dict[str, Any]) -> bool:
        """The same answer (known_at is the moment of asking when no K is given)."""
        return kept is not None and {**kept, "known_at": None} == {**computed, "known_at": None}

    finance = service.authenticate(api.tokens["finance"])
    assert service.liability_kept(finance, day, agreement_id="A1") is None  # nothing kept yet
    computed = service.liability(finance, day, agreement_id="A1")
    assert same(service.liability_kept(finance, day, agreement_id="A1"), computed)
    everything = service.liability(finance, day)  # kept: A1 and A2
    customer = Principal("someone", Role.customer, frozenset({"C1"}))
    assert service.liability_kept(customer, day) is None  # C1's question was never computed
    mine = service.liability(customer, day)
    assert [r["agreement_id"] for r in mine["rows"]] == ["A1"]
    assert same(service.liability_kept(customer, day), mine)
    assert service.liability_kept(customer, day, agreement_id="A2") is None
    other = service.liability(customer, day, agreement_id="A2")
    assert other["rows"] == [] and same(service.liability_kept(customer, day,
                                                               agreement_id="A2"), other)
    assert service.liability(customer, day, customer_id="C2")["rows"] == []
    assert service.liability_kept(customer, day, customer_id="C2") is not None  # nothing asked
    response = api.post_commands("ingest", [h.sale("S9", "1000", "10000.00", "2025-03-01")])
    assert response.status_code == 200, response.text
    assert service.liability_kept(finance, day) is None  # a write since
    assert service.liability(finance, day)["rows"] != everything["rows"]


def test_rebuild_tables_ends_the_kept_answers(api: Api) -> None:
    """`rebuild-tables` stores no event, so the position alone would not move: it raises the
    read-table count of the stamp, and the next request computes from the rebuilt tables."""
    from ledger.access import operator

    service, day = api.service, date.fromisoformat(AS_OF)
    finance = service.authenticate(api.tokens["finance"])
    before = service.liability(finance, day, agreement_id="A1")
    assert service.liability_kept(finance, day, agreement_id="A1") is not None
    missing, written = service.rebuild_tables(operator("cli:tests"))
    assert missing == [] and written["core_basis"] > 0
    assert service.liability_kept(finance, day, agreement_id="A1") is None  # stamp moved
    again = service.liability(finance, day, agreement_id="A1")
    assert {**again, "known_at": None} == {**before, "known_at": None}
    assert service.liability_kept(finance, day, agreement_id="A1") is not None
