"""The service's own tables: users and their credentials, idempotency keys, four-eyes
proposals, and who recorded each stored event.

Credentials: an API token is 256 random bits, shown once and stored as its SHA-256 (a slow hash
adds nothing to a secret that cannot be guessed, and a fast one lets every request find its user
with one indexed lookup instead of trying every hash); a password, which people choose and can
be guessed, is stored with argon2 (salted, slow, memory-hard). Neither is ever logged.

Actors: every transaction the service commits records who made it, as one row spanning the
store positions of the events it stored (writers are serialised, so the span holds exactly that
transaction's events). Events stored before this table existed, or by a writer that does not
record an actor, read as `unknown`: nothing stored is rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger.access import Conflict, NotFound, Principal, Role, Unauthenticated

UNKNOWN_ACTOR = "unknown"
TOKEN_PREFIX = "rl_"
NAME_LENGTH_MAX = 100

accounts_metadata = MetaData()

api_users = Table(
    "api_users",
    accounts_metadata,
    Column("name", String(NAME_LENGTH_MAX), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("customers", Text, nullable=False),  # JSON list of customer ids
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("password_argon2", Text, nullable=True),
    Column("active", Boolean, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("changed_us", BigInteger, nullable=False),
)

api_idempotency = Table(
    "api_idempotency",
    accounts_metadata,
    Column("user_name", String(NAME_LENGTH_MAX), nullable=False),
    Column("key", String(200), nullable=False),
    Column("request_sha256", String(64), nullable=False),
    Column("status", Integer, nullable=True),  # NULL until the response is kept
    Column("body", Text, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_name", "key"),
)

api_proposals = Table(
    "api_proposals",
    accounts_metadata,
    Column("proposal_id", String(36), primary_key=True),
    Column("command_type", String(32), nullable=False),
    Column("agreement_id", String(200), nullable=True),
    Column("customer_id", String(200), nullable=True),
    Column("command", Text, nullable=False),
    Column("proposer", String(NAME_LENGTH_MAX), nullable=False),
    Column("proposer_role", String(16), nullable=False),
    Column("proposed_us", BigInteger, nullable=False),
    Column("what_if", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | approved | rejected | failed
    Column("decided_by", String(NAME_LENGTH_MAX), nullable=True),
    Column("decided_us", BigInteger, nullable=True),
    Column("reason", Text, nullable=True),
    Index("api_proposals_by_status", "status", "proposed_us"),
)

event_actors = Table(
    "event_actors",
    accounts_metadata,
    Column("first_position", BigInteger, primary_key=True),
    Column("last_position", BigInteger, nullable=False),
    Column("actor", String(NAME_LENGTH_MAX), nullable=False),
    Column("role", String(16), nullable=False),
    Column("approved_by", String(NAME_LENGTH_MAX), nullable=True),
    Column("proposal_id", String(36), nullable=True),
    Column("recorded_us", BigInteger, nullable=False),
)


# Web sessions: one row per sign-in, found by the SHA-256 of its random id (the cookie holds
# the id, the store only its hash, as for tokens), so that signing out, `users revoke` and
# `users rotate` end sessions on the server at once: a copied cookie is refused from then on.
web_sessions = Table(
    "web_sessions",
    accounts_metadata,
    Column("session_sha256", String(64), primary_key=True),
    Column("user_name", String(NAME_LENGTH_MAX), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger, nullable=True),  # NULL while the session is open
    Index("web_sessions_by_user", "user_name"),
    Index("web_sessions_by_expiry", "expires_us"),
)


def create_tables(engine: Engine) -> None:
    """The service's tables, made as the store's are (`ensure_tables`: safe when several
    processes open a store at once; only read when they exist, so a read-only store opens).
    A store made before a table existed gets it when it is next opened (`web_sessions`,
    issue 9); opened read-only, it is left without it: every reading command still answers,
    and signing in to the web app (which writes a session) needs write access anyway."""
    from ledger.errors import StoreReadOnly
    from ledger.store import ensure_tables

    ensure_tables(engine, [t for t in accounts_metadata.sorted_tables if t is not web_sessions])
    with contextlib.suppress(StoreReadOnly):
        ensure_tables(engine, [web_sessions])


def now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


# Users ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    customers: tuple[str, ...]
    active: bool
    has_password: bool
    created_at: datetime

    def principal(self) -> Principal:
        return Principal(self.name, self.role, frozenset(self.customers))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role.value, "customers": list(self.customers),
                "active": self.active, "password": self.has_password,
                "created_at": self.created_at.isoformat().replace("+00:00", "Z")}


def _hasher() -> PasswordHasher:
    return PasswordHasher()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _user(row: Any) -> User:
    return User(name=row.name, role=Role(row.role), customers=tuple(orjson.loads(row.customers)),
                active=bool(row.active), has_password=row.password_argon2 is not None,
                created_at=datetime.fromtimestamp(row.created_us / 1_000_000, UTC))


def check_name(name: str) -> str:
    if not (0 < len(name) <= NAME_LENGTH_MAX) or not name.isprintable() or name != name.strip():
        from ledger.access import BadRequest

        raise BadRequest("name", f"{name!r}: a user name is 1 to {NAME_LENGTH_MAX} printable "
                         "characters without leading or trailing spaces")
    return name


def add_user(engine: Engine, name: str, role: Role, customers: Iterable[str] = (),
             password: str | None = None) -> str:
    """Create a user; returns its API token (the only time it is seen)."""
    from ledger.access import SCOPED, BadRequest

    check_name(name)
    scope = sorted(set(customers))
    if role in SCOPED and not scope:
        raise BadRequest("customer", f"a {role.value} user needs at least one --customer")
    if role not in SCOPED and scope:
        raise BadRequest("customer", f"a {role.value} user sees every customer; --customer "
                         "is for sales and customer users")
    token = new_token()
    moment = now_us()
    try:
        with engine.begin() as connection:
            connection.execute(insert(api_users).values(
                name=name, role=role.value, customers=orjson.dumps(scope).decode(),
                token_sha256=token_digest(token),
                password_argon2=_hasher().hash(password) if password else None,
                active=True, created_us=moment, changed_us=moment))
    except IntegrityError:
        raise Conflict(f"name: a user {name!r} exists already; use `users rotate` for a new "
                       "token") from None
    return token


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as connection:
        return [_user(r) for r in connection.execute(select(api_users).order_by(api_users.c.name))]


def revoke_user(engine: Engine, name: str) -> None:
    """Stop the user's token and end its web sessions, at once and together."""
    moment = now_us()
    with engine.begin() as connection:
        done = connection.execute(update(api_users).where(api_users.c.name == name)
                                  .values(active=False, changed_us=moment)).rowcount
        if done:
            _end_sessions_of(connection, name, moment)
    if not done:
        raise NotFound(f"name: no user {name!r}; `rebate-ledger users list` names the users")


def rotate_token(engine: Engine, name: str) -> str:
    """A new token for `name` (active again); the old one stops working at once, and every
    web session of the user ends with it (signing in again starts a new one)."""
    token = new_token()
    moment = now_us()
    with engine.begin() as connection:
        done = connection.execute(update(api_users).where(api_users.c.name == name).values(
            token_sha256=token_digest(token), active=True, changed_us=moment)).rowcount
        if done:
            _end_sessions_of(connection, name, moment)
    if not done:
        raise NotFound(f"name: no user {name!r}; `rebate-ledger users list` names the users")
    return token


def _end_sessions_of(connection: Connection, name: str, moment: int) -> int:
    """End every open web session of `name`; how many were open."""
    return connection.execute(
        update(web_sessions).where(web_sessions.c.user_name == name)
        .where(web_sessions.c.revoked_us.is_(None)).values(revoked_us=moment)).rowcount


#: Built once: building a statement and its cache key on every request cost more than the
#: indexed lookup itself (about 150 of 240 microseconds on SQLite).
_BY_TOKEN = select(api_users).where(api_users.c.token_sha256 == bindparam("digest"))


def principal_for_token(engine: Engine, token: str) -> Principal:
    with engine.connect() as connection:
        row = connection.execute(_BY_TOKEN, {"digest": token_digest(token)}).first()
    if row is None or not row.active:
        raise Unauthenticated("the bearer token matches no active user")
    return _user(row).principal()


#: Longest session id taken (the web app makes 43 characters); anything longer is not ours.
SESSION_ID_CHARS_MAX = 128


def session_digest(session_id: str) -> str:
    return hashlib.sha256(b"web session:" + session_id.encode()).hexdigest()


def start_session(engine: Engine, name: str, session_id: str, max_age_s: int) -> int:
    """Store a new web session of `name` (by the hash of its id), ending `max_age_s` from now;
    returns when it ends (µs). Sessions that have ended are deleted on the way, so the table
    holds at most the sessions of the last `max_age_s`."""
    assert 0 < len(session_id) <= SESSION_ID_CHARS_MAX and max_age_s > 0
    moment = now_us()
    expires = moment + max_age_s * 1_000_000
    with engine.begin() as connection:
        connection.execute(delete(web_sessions).where(web_sessions.c.expires_us <= moment))
        connection.execute(insert(web_sessions).values(
            session_sha256=session_digest(session_id), user_name=name, created_us=moment,
            expires_us=expires, revoked_us=None))
    return expires


def principal_for_session(engine: Engine, name: str, session_id: str) -> Principal:
    """The principal of the web session `session_id` of `name`, while it is open on the
    server (not signed out, not ended by `users revoke` or `users rotate`, not expired) and
    its user active."""
    ended = Unauthenticated("the session has ended (signed out, revoked or expired); sign in "
                            "again")
    if not 0 < len(session_id) <= SESSION_ID_CHARS_MAX:
        raise ended
    with engine.connect() as connection:
        row = connection.execute(
            select(api_users, web_sessions.c.expires_us, web_sessions.c.revoked_us)
            .join(web_sessions, web_sessions.c.user_name == api_users.c.name)
            .where(web_sessions.c.session_sha256 == session_digest(session_id))
            .where(api_users.c.name == name)).first()
    if row is None or row.revoked_us is not None or row.expires_us <= now_us() \
            or not row.active:
        raise ended
    return _user(row).principal()


def end_session(engine: Engine, session_id: str) -> None:
    """Sign-out: the session ends on the server (its cookie, copied or not, is refused)."""
    if not 0 < len(session_id) <= SESSION_ID_CHARS_MAX:
        return
    with engine.begin() as connection:
        connection.execute(
            update(web_sessions).where(web_sessions.c.session_sha256 == session_digest(session_id))
            .where(web_sessions.c.revoked_us.is_(None)).values(revoked_us=now_us()))


def principal_for_password(engine: Engine, name: str, password: str) -> Principal:
    """Sign-in with a password (for the web app)."""
    with engine.connect() as connection:
        row = connection.execute(select(api_users).where(api_users.c.name == name)).first()
    failed = Unauthenticated("wrong user name or password")
    if row is None or not row.active or row.password_argon2 is None:
        raise failed
    try:
        _hasher().verify(row.password_argon2, password)
    except (VerificationError, InvalidHashError):
        raise failed from None
    return _user(row).principal()


# Actors ---------------------------------------------------------------------------------


def record_actor(session: Session, first: int, last: int, principal: Principal, *,
                 approved_by: str | None = None, proposal_id: str | None = None) -> None:
    """Record `principal` on the events stored at positions first..last (this transaction)."""
    if last < first:
        return
    session.execute(insert(event_actors).values(
        first_position=first, last_position=last, actor=principal.actor,
        role=principal.role.value, approved_by=approved_by, proposal_id=proposal_id,
        recorded_us=now_us()))


@dataclass(frozen=True)
class Actor:
    actor: str
    role: str | None
    approved_by: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"actor": self.actor, "role": self.role, "approved_by": self.approved_by}


UNKNOWN = Actor(UNKNOWN_ACTOR, None, None)


def actors_at(session: Session, positions: Iterable[int]) -> dict[int, Actor]:
    """Who recorded the event at each position (`unknown` when nobody was recorded)."""
    wanted = sorted(set(positions))
    found: dict[int, Actor] = {p: UNKNOWN for p in wanted}
    if not wanted:
        return found
    rows = session.execute(select(event_actors).where(
        event_actors.c.last_position >= wanted[0],
        event_actors.c.first_position <= wanted[-1]).order_by(event_actors.c.first_position))
    for row in rows:
        for position in wanted:
            if row.first_position <= position <= row.last_position:
                found[position] = Actor(row.actor, row.role, row.approved_by)
    return found
