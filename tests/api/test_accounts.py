"""Users and credentials: tokens stored only as hashes, passwords as argon2, secrets never in
the logs, and one structured log line per request."""

from __future__ import annotations

import logging

import orjson
import pytest
from sqlalchemy import select

from ledger.access import BadRequest, Conflict, NotFound, Role, Unauthenticated, operator
from ledger.accounts import api_users
from tests.api.conftest import Api

ADMIN = operator("cli:tests")


def test_secrets_are_stored_as_hashes_only(api: Api) -> None:
    token = api.service.add_user(ADMIN, "pat", Role.finance, password="s3cret words")
    with api.service.engine.connect() as connection:
        row = connection.execute(select(api_users).where(api_users.c.name == "pat")).one()
    stored = " ".join(str(v) for v in row)
    assert token not in stored and "s3cret words" not in stored
    assert row.password_argon2.startswith("$argon2id$")
    assert api.service.sign_in("pat", "s3cret words").role is Role.finance
    for name, password in (("pat", "wrong"), ("nobody", "s3cret words")):
        with pytest.raises(Unauthenticated):
            api.service.sign_in(name, password)
    api.service.revoke_user(ADMIN, "pat")
    with pytest.raises(Unauthenticated):
        api.service.sign_in("pat", "s3cret words")


def test_user_management_refuses_what_cannot_work(api: Api) -> None:
    with pytest.raises(Conflict):
        api.service.add_user(ADMIN, "finance", Role.finance)
    with pytest.raises(BadRequest, match="customer"):
        api.service.add_user(ADMIN, "rep", Role.sales)
    with pytest.raises(BadRequest, match="customer"):
        api.service.add_user(ADMIN, "boss", Role.finance, ["C1"])
    with pytest.raises(NotFound):
        api.service.revoke_user(ADMIN, "nobody")
    from ledger.access import Forbidden
    from ledger.access import Principal as P

    with pytest.raises(Forbidden):
        api.service.add_user(P("finance", Role.finance), "x", Role.admin)


def test_one_log_line_per_request_without_secrets(api: Api,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ledger.http"):
        api.client.get("/v1/liability?as_of=2025-12-31", headers=api.headers("finance"))
        api.client.get("/v1/agreements/A1", headers={"Authorization": "Bearer rl_guess"})
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "ledger.http"]
    assert [(x["user"], x["route"], x["status"]) for x in lines] == [
        ("finance", "/v1/liability", 200), (None, "/v1/agreements/{agreement_id}", 401)]
    assert all(isinstance(x["ms"], float) for x in lines)
    assert api.tokens["finance"] not in caplog.text and "rl_guess" not in caplog.text
