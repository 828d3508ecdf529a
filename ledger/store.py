"""The store: one SQLAlchemy engine shared by the event store (eventsourcing-sqlalchemy) and the
ledger's own tables, so that events and what is derived from them commit in one transaction."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import get_topic
from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
from eventsourcing_sqlalchemy.factory import SQLAlchemyFactory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from ledger.errors import ConfigurationError

_ENGINES: dict[str, Engine] = {}
_ENGINE_KEYS = itertools.count(1)
_ENGINES_LOCK = threading.Lock()

ENGINE_KEY = "LEDGER_ENGINE_KEY"

#: How long a writer waits for another writer's transaction before giving up (SQLite).
SQLITE_BUSY_TIMEOUT_MS = 60_000
#: SQLite page cache per connection, in KiB.
SQLITE_CACHE_KIB = 65_536
#: Advisory lock id that serialises the ledger's writers on PostgreSQL ("rebate" in ASCII).
PG_WRITER_LOCK = 0x726562617465


class LedgerInfrastructureFactory(SQLAlchemyFactory):
    """eventsourcing-sqlalchemy on an engine the ledger made, found by key in the environment."""

    def __init__(self, env: Any) -> None:
        InfrastructureFactory.__init__(self, env)
        self._schema_name = None
        key = self.env.get(ENGINE_KEY)
        assert key in _ENGINES, f"no engine registered under {key!r}"
        self.datastore = SQLAlchemyDatastore(
            session_maker=sessionmaker(bind=_ENGINES[key], autoflush=True)
        )


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given without a driver."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigurationError(
            f"database URL {url!r} is not a SQLAlchemy URL; use e.g. sqlite:///ledger.db or "
            "postgresql://user@host/db"
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"database URL {url!r}: only SQLite and PostgreSQL are supported"
        )
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        if ":memory:" in url or url.rstrip("/") == "sqlite:":
            raise ConfigurationError(
                "an in-memory SQLite database does not outlive the command; give a file URL "
                "such as sqlite:///ledger.db"
            )
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            # Index inserts land all over the basis table (it is clustered by customer), so a
            # page cache of 64 MiB instead of 2 MiB keeps millions of sales off the disk.
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cursor.close()

    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def register_engine(engine: Engine) -> str:
    with _ENGINES_LOCK:
        key = str(next(_ENGINE_KEYS))
        _ENGINES[key] = engine
    return key


def unregister_engine(key: str) -> None:
    with _ENGINES_LOCK:
        _ENGINES.pop(key, None)


def factory_topic() -> str:
    return get_topic(LedgerInfrastructureFactory)


def lock_writer(session: Session) -> None:
    """Serialise writers: the ledger's checks (duplicate sales, available amounts) read what
    earlier commands wrote, so two writers must not interleave."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_WRITER_LOCK})
    else:
        # A write as the first statement takes SQLite's write lock now (waiting up to the busy
        # timeout), instead of failing later when a read transaction tries to upgrade.
        session.execute(text("UPDATE ledger_state SET writes = writes + 1 WHERE id = 1"))


@contextmanager
def no_op() -> Iterator[None]:
    yield
