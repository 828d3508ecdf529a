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
    Engine,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
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


def create_tables(engine: Engine) -> None:
    """The service's tables, made as the store's are (`ensure_tables`: safe when several
    processes open a store at once; only read when they exist, so a read-only store opens)."""
    from ledger.store import ensure_tables

    ensure_tables(engine, accounts_metadata.sorted_tables)


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
    with engine.begin() as connection:
        done = connection.execute(update(api_users).where(api_users.c.name == name)
                                  .values(active=False, changed_us=now_us())).rowcount
    if not done:
        raise NotFound(f"name: no user {name!r}; `rebate-ledger users list` names the users")


def rotate_token(engine: Engine, name: str) -> str:
    """A new token for `name` (active again); the old one stops working at once."""
    token = new_token()
    with engine.begin() as connection:
        done = connection.execute(update(api_users).where(api_users.c.name == name).values(
            token_sha256=token_digest(token), active=True, changed_us=now_us())).rowcount
    if not done:
        raise NotFound(f"name: no user {name!r}; `rebate-ledger users list` names the users")
    return token


def principal_for_token(engine: Engine, token: str) -> Principal:
    with engine.connect() as connection:
        row = connection.execute(select(api_users).where(
            api_users.c.token_sha256 == token_digest(token))).first()
    if row is None or not row.active:
        raise Unauthenticated("the bearer token matches no active user")
    return _user(row).principal()


def principal_for_session(engine: Engine, name: str) -> Principal:
    """The principal of a web session signed in earlier as `name`, if the user is still
    active (a revoked user's sessions end at its next request)."""
    with engine.connect() as connection:
        row = connection.execute(select(api_users).where(api_users.c.name == name)).first()
    if row is None or not row.active:
        raise Unauthenticated("the session's user is no longer active; sign in again")
    return _user(row).principal()


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
