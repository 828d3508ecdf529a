"""Fixtures of the web app's tests: the API and the pages on one service over the API tests'
small book (customers C1 and C2), one user of every role with a password (sales and customer
users see C1 only), and a helper that signs a client in through the form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from ledger import Ledger
from ledger.access import Role, operator
from ledger.http.app import create_app
from ledger.service import LedgerService
from ledger.web.app import add_web
from ledger.web.settings import WebSettings
from tests.api.conftest import BOOK
from tests.contract import helpers as h

ROLES = [r.value for r in Role]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
RANDOM_VALUES = re.compile(r'(name="(?:csrf_token|upload)" value=")[^"]*"')


def shown(page: str | bytes) -> str:
    """The page without its random values (the CSRF and upload tokens): a test that says an id
    such as "C2" is absent must not fail because a token happened to contain those letters."""
    text = page.decode() if isinstance(page, bytes) else page
    return RANDOM_VALUES.sub(r'\1"', text)


def password(user: str) -> str:
    return f"{user}-secret-pw"


def add_web_users(service: LedgerService) -> None:
    """One user per role, named after it, with a password; `finance2` a second finance user."""
    admin = operator("cli:tests")
    for role in Role:
        scope = ["C1"] if role in (Role.sales, Role.customer) else []
        service.add_user(admin, role.value, role, scope, password(role.value))
    service.add_user(admin, "finance2", Role.finance, [], password("finance2"))


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has a form with a csrf_token"
    return found.group(1)


@dataclass
class Web:
    service: LedgerService
    client: TestClient

    def sign_in(self, user: str, secret: str | None = None) -> TestClient:
        form = self.client.get("/login")
        assert form.status_code == 200
        answer = self.client.post("/login", data={
            "username": user, "password": password(user) if secret is None else secret,
            "csrf_token": csrf_of(form.text)}, follow_redirects=False)
        assert answer.status_code == 303, answer.text
        return self.client


def web_app(service: LedgerService, settings: WebSettings | None = None) -> TestClient:
    app = create_app(service)
    add_web(app, service, settings or WebSettings(session_secret="tests", page_rows=10))
    return TestClient(app)


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its smallest cost: the tests sign in hundreds of times; what is checked is
    that a password is verified, not how slowly."""
    from argon2 import PasswordHasher

    from ledger import accounts

    monkeypatch.setattr(accounts, "_hasher",
                        lambda: PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def web(sqlite_url: str) -> Iterator[Web]:
    service = LedgerService(Ledger(sqlite_url))
    h.accepted_all(service.ledger, BOOK)
    add_web_users(service)
    with web_app(service) as client:
        yield Web(service, client)
    service.close()
