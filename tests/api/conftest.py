"""Fixtures of the API tests: the service on a fresh database (SQLite, then PostgreSQL), one
user of every role (sales and customer users see customer C1 only), a small book of two
customers loaded by the operator, and an HTTP client on the app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from ledger import Ledger
from ledger.access import Role, operator
from ledger.http.app import create_app
from ledger.service import LedgerService
from tests.contract import helpers as h

#: Two customers: C1 (agreement A1) and C2 (agreement A2), each with a sale and a claim.
BOOK: list[dict[str, Any]] = [
    h.at("2025-01-01T00:00:00Z", h.agreement("A1", customer_id="C1")),
    h.at("2025-01-01T00:00:01Z", h.agreement("A2", customer_id="C2")),
    h.at("2025-02-01T00:00:00Z", h.sale("S1", "100", "1000.00", "2025-01-15")),
    h.at("2025-02-01T00:00:01Z", h.sale("S2", "40", "400.00", "2025-01-20", customer_id="C2")),
    h.at("2025-03-01T00:00:00Z", h.submit("K1", "50.00", submitted_on="2025-02-28")),
    h.at("2025-03-01T00:00:01Z", h.submit("K2", "20.00", agreement_id="A2",
                                          submitted_on="2025-02-28")),
]

ROLES = [r.value for r in Role]


@dataclass
class Api:
    """The app on one database, a token per user, and the service behind it."""

    service: LedgerService
    client: TestClient
    tokens: dict[str, str]

    def headers(self, user: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}", **extra}

    def post_commands(self, user: str, commands: list[dict[str, Any]],
                      **headers: str) -> Any:
        body = b"\n".join(orjson.dumps(c) for c in commands)
        return self.client.post("/v1/commands", content=body, headers=self.headers(
            user, **{"content-type": "application/x-ndjson"}, **headers))


def add_users(service: LedgerService) -> dict[str, str]:
    """One user per role, named after it, plus a second finance user `finance2`."""
    admin = operator("cli:tests")
    tokens = {}
    for role in Role:
        scope = ["C1"] if role in (Role.sales, Role.customer) else []
        tokens[role.value] = service.add_user(admin, role.value, role, scope)
    tokens["finance2"] = service.add_user(admin, "finance2", Role.finance)
    return tokens


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    service = LedgerService(Ledger(database_url))
    h.accepted_all(service.ledger, BOOK)
    tokens = add_users(service)
    with TestClient(create_app(service)) as client:
        yield Api(service, client, tokens)
    service.close()
