"""Web sessions kept on the server (issue 9): signing out, `users revoke` and `users rotate` end
a session at once, so a copy of its cookie is refused from then on; an expired one too. Through
the app over HTTP (the test client, as the other web tests), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from ledger import Ledger, accounts
from ledger.access import operator
from ledger.service import LedgerService
from ledger.web.sessions import SESSION_COOKIE, Signer
from tests.api.conftest import BOOK
from tests.contract import helpers as h
from tests.e2e.conftest import run_cli
from tests.web.conftest import Web, add_web_users, csrf_of, web_app

PAGE = "/liability?as_of=2025-03-31"
ADMIN = operator("cli:tests")


@pytest.fixture
def web(database_url: str) -> Iterator[Web]:
    service = LedgerService(Ledger(database_url))
    h.accepted_all(service.ledger, BOOK)
    add_web_users(service)
    with web_app(service) as client:
        yield Web(service, client)
    service.close()


def copied(web: Web) -> TestClient:
    """A second client holding a copy of the first one's session cookie (a stolen or kept
    cookie, replayed)."""
    other = TestClient(web.client.app)
    other.cookies.set(SESSION_COOKIE, web.client.cookies[SESSION_COOKIE])
    return other


def refused(client: TestClient) -> bool:
    """The page sends the browser to /login, and deletes the cookie."""
    answer = client.get(PAGE, follow_redirects=False)
    return (answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")
            and f'{SESSION_COOKIE}=""' in answer.headers.get("set-cookie", ""))


def test_sign_out_ends_the_session_on_the_server(web: Web) -> None:
    client = web.sign_in("finance")
    page = client.get(PAGE)
    assert page.status_code == 200
    replay = copied(web)
    assert replay.get(PAGE).status_code == 200
    out = client.post("/logout", data={"csrf_token": csrf_of(page.text)},
                      follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert refused(replay)
    # signing in again opens a new session; the old cookie stays refused
    assert web.sign_in("finance").get(PAGE).status_code == 200
    assert refused(replay)


@pytest.mark.parametrize("how", ["revoke", "rotate"])
def test_revoking_or_rotating_a_user_ends_all_its_sessions_at_once(web: Web, how: str) -> None:
    first = web.sign_in("auditor")
    second = Web(web.service, TestClient(web.client.app)).sign_in("auditor")
    other = Web(web.service, TestClient(web.client.app)).sign_in("finance")
    for client in (first, second, other):
        assert client.get(PAGE).status_code == 200
    if how == "revoke":
        web.service.revoke_user(ADMIN, "auditor")
    else:
        web.service.rotate_token(ADMIN, "auditor")
    assert refused(first) and refused(second)
    assert other.get(PAGE).status_code == 200  # another user's session is untouched
    if how == "rotate":  # still a user: signing in again works, with a new session
        assert Web(web.service, TestClient(web.client.app)).sign_in("auditor").get(
            PAGE).status_code == 200


def test_the_cli_revoke_ends_the_sessions_of_a_running_server(
        web: Web, database_url: str, tmp_path: Path) -> None:
    client = web.sign_in("commercial")
    assert client.get(PAGE).status_code == 200
    done = run_cli("users", "revoke", "commercial", "--database", database_url, cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert refused(client)


def test_an_expired_session_is_refused_by_the_server(web: Web) -> None:
    client = web.sign_in("finance")
    assert client.get(PAGE).status_code == 200
    # the cookie still says it is valid; the server's row says it has ended
    with web.service.engine.begin() as connection:
        connection.execute(sa.update(accounts.web_sessions).values(
            expires_us=accounts.now_us() - 1))
    assert refused(client)


def test_the_store_keeps_a_hash_of_the_session_id_never_the_id(web: Web) -> None:
    web.sign_in("finance")
    cookie = web.client.cookies[SESSION_COOKIE]
    with web.service.engine.connect() as connection:
        rows = connection.execute(sa.select(accounts.web_sessions)).all()
    assert len(rows) == 1
    row = rows[0]
    assert row.user_name == "finance" and row.revoked_us is None
    assert row.expires_us - row.created_us == 8 * 3600 * 1_000_000  # the default max age
    session = Signer("tests", 3600).session(cookie)
    assert session is not None and len(session.nonce) >= 43  # 256 random bits
    assert row.session_sha256 == accounts.session_digest(session.nonce)
    assert session.nonce not in row.session_sha256
    assert row.session_sha256 != hashlib.sha256(session.nonce.encode()).hexdigest()  # salted


def test_ended_sessions_are_deleted_when_someone_signs_in(web: Web) -> None:
    web.sign_in("finance")
    with web.service.engine.begin() as connection:
        connection.execute(sa.update(accounts.web_sessions).values(
            expires_us=accounts.now_us() - 1))
    Web(web.service, TestClient(web.client.app)).sign_in("auditor")
    with web.service.engine.connect() as connection:
        users = connection.execute(sa.select(accounts.web_sessions.c.user_name)).scalars()
        assert list(users) == ["auditor"]


def test_a_store_made_before_sessions_were_kept_gets_the_table_on_open(
        database_url: str) -> None:
    with LedgerService(Ledger(database_url)) as service:
        add_web_users(service)
        with service.engine.begin() as connection:
            accounts.web_sessions.drop(connection)
    with LedgerService(Ledger(database_url)) as service:
        assert accounts.web_sessions.name in sa.inspect(service.engine).get_table_names()
        with web_app(service) as client:
            assert Web(service, client).sign_in("finance").get(PAGE).status_code == 200


def test_a_store_that_cannot_be_written_says_so_at_sign_in_and_sign_out(
        web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger.errors import StoreReadOnly

    client = web.sign_in("finance")
    page = client.get(PAGE)

    def read_only(*_: object) -> None:
        raise StoreReadOnly("the store x is read-only: signing in needs write access")

    monkeypatch.setattr(web.service, "end_session", read_only)
    out = client.post("/logout", data={"csrf_token": csrf_of(page.text)},
                      follow_redirects=False)
    assert out.status_code == 400 and "could not be ended on the server" in out.text
    assert f'{SESSION_COOKIE}=""' in out.headers["set-cookie"]  # deleted in the browser
    monkeypatch.setattr(web.service, "start_session", read_only)
    form = client.get("/login")
    answer = client.post("/login", data={"username": "finance", "password": "finance-secret-pw",
                                         "csrf_token": csrf_of(form.text)},
                         follow_redirects=False)
    assert answer.status_code == 400 and "Cannot sign in now" in answer.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
