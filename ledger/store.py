"""The store: one SQLAlchemy engine shared by the event store (eventsourcing-sqlalchemy) and the
ledger's own tables, so that events and what is derived from them commit in one transaction."""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eventsourcing.persistence import InfrastructureFactory, PersistenceError
from eventsourcing.utils import get_topic
from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
from eventsourcing_sqlalchemy.factory import SQLAlchemyFactory
from sqlalchemy import Connection, Engine, Table, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from ledger.errors import ConfigurationError, StoreReadOnly

_ENGINES: dict[str, Engine] = {}
_ENGINE_KEYS = itertools.count(1)
_ENGINES_LOCK = threading.Lock()

ENGINE_KEY = "LEDGER_ENGINE_KEY"

#: How long a writer waits for another writer's transaction before giving up (SQLite).
SQLITE_BUSY_TIMEOUT_MS = 60_000
#: SQLite page cache of a connection that writes, in KiB (from its first write on).
SQLITE_CACHE_KIB = 65_536
#: SQLite page cache of a connection until it writes, in KiB: the reading commands stream
#: the book once and gain nothing from a larger one, whose filling grew their peak memory
#: with the store (issue 11).
SQLITE_READ_CACHE_KIB = 8_192
#: Advisory lock id that serialises the ledger's writers on PostgreSQL ("rebate" in ASCII).
PG_WRITER_LOCK = 0x726562617465
#: Advisory lock id that serialises schema creation on PostgreSQL ("schema" in ASCII).
PG_SCHEMA_LOCK = 0x736368656D61


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


def sqlite_read_only_url(url: str) -> str | None:
    """For a SQLite store file we may not write (no write permission, an immutable file), the
    URL that opens it read-only; None when it is writable, absent, or already a URI.

    SQLite reads a WAL database read-only only if its `-shm` file exists or can be created
    beside it; otherwise (a read-only directory) only as `immutable=1`, which is exact when no
    `-wal` file holds changes: nobody is writing then. A `-wal` without a `-shm` cannot be
    read safely and is refused."""
    parsed = make_url(url)
    database = parsed.database or ""
    if database.startswith("file:") or not database:
        return None
    path = Path(database)
    if not path.is_file() or os.access(path, os.W_OK):
        return None
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    if shm.exists() or os.access(path.parent, os.W_OK):
        mode = "mode=ro"
    elif not wal.exists():
        mode = "immutable=1"
    else:
        raise ConfigurationError(
            f"the store {path} is read-only and its {wal.name} holds changes that cannot be "
            f"read without a {shm.name} file, which cannot be made in {path.parent}; open it "
            "once with write access (that folds the changes in), or copy the three files"
        )
    return f"sqlite:///file:{path.resolve()}?{mode}&uri=true"


def _read_only_uri(url: str) -> bool:
    query = make_url(url).query
    return query.get("mode") == "ro" or query.get("immutable") == "1"


def make_engine(url: str, pool_size: int = 5) -> Engine:
    """An engine on the store; `pool_size` connections are kept open between uses (a SQLite
    connection opened anew costs its pragmas and an empty page cache)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        if ":memory:" in url or url.rstrip("/") == "sqlite:":
            raise ConfigurationError(
                "an in-memory SQLite database does not outlive the command; give a file URL "
                "such as sqlite:///ledger.db"
            )
        url = sqlite_read_only_url(url) or url
        read_only = _read_only_uri(url)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                               pool_size=pool_size)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if not read_only:  # both write; a read-only store keeps the mode it has
                _wal_mode(cursor)
                cursor.execute("PRAGMA synchronous=FULL")
            # A reader's page cache; `lock_writer` enlarges it for a writer.
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_READ_CACHE_KIB}")
            cursor.close()

    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size)
    return engine


def _wal_mode(cursor: Any) -> None:
    """Put the store in WAL mode (persistent in the file, so usually already done). Switching
    needs SQLite's exclusive lock, and SQLite answers "database is locked" at once, without its
    busy handler, when another process holds the file then: 1 of 16 processes opening a
    brand-new store at once failed so under load. Retry until the busy timeout instead."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()
            if not (mode and str(mode[0]).lower() == "wal"):
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error).lower() or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


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
        # Index inserts land all over the basis table (it is clustered by customer), so a
        # page cache of 64 MiB instead of 2 MiB keeps millions of sales off the disk (the
        # connection keeps it while pooled: the next write finds it warm).
        session.execute(text(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}"))


@contextmanager
def no_op() -> Iterator[None]:
    yield


#: How the databases say a write was refused because the store is read-only.
READ_ONLY_SIGNS = (
    "readonly database",  # SQLite: no write permission, mode=ro, immutable=1
    "read-only transaction",  # PostgreSQL: default_transaction_read_only, a standby
    "permission denied for",  # PostgreSQL: a user without INSERT/CREATE
)


@contextmanager
def refusing_read_only(engine: Engine, what: str) -> Iterator[None]:
    """Turn the database's refusal to write into `StoreReadOnly`, one line naming the store
    and what needed the write (a traceback before, issue 15)."""
    try:
        yield
    except (DBAPIError, PersistenceError) as error:
        said = str(error).lower()
        if not any(sign in said for sign in READ_ONLY_SIGNS):
            raise
        url = engine.url
        store = (url.database or "").removeprefix("file:").split("?")[0] \
            if url.get_backend_name() == "sqlite" else url.render_as_string(hide_password=True)
        raise StoreReadOnly(
            f"the store {store} is read-only: {what} needs write access (liability, "
            "rejections, verify and the other reading commands still answer)"
        ) from None


def missing_tables(engine: Engine, tables: Sequence[Table]) -> list[Table]:
    """The tables of `tables` the store does not have (one catalogue query, no write)."""
    with engine.connect() as connection:
        existing = set(inspect(connection).get_table_names())
    return [table for table in tables if table.name not in existing]


@contextmanager
def schema_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction that holds the store's schema lock: PostgreSQL's advisory lock
    `PG_SCHEMA_LOCK` (DDL is transactional there, so waiters see the finished tables), SQLite's
    write lock taken up front (`BEGIN IMMEDIATE`). Without it, processes opening a brand-new
    store at once each saw a table missing and created it: "table … already exists" (SQLite)
    or a `UniqueViolation` on the catalogue (PostgreSQL) (issue 15)."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            with connection.begin():
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": PG_SCHEMA_LOCK})
                yield connection
            return
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.rollback()
            raise
        connection.commit()


def ensure_tables(
    engine: Engine,
    tables: Sequence[Table],
    *,
    seeded: Callable[[Connection], bool] | None = None,
    seed: Callable[[Connection], None] | None = None,
) -> None:
    """Create the tables of `tables` the store lacks, safely when several processes open a new
    store at once; `seed(connection)` then writes first rows unless `seeded(connection)` says
    they are there. A store that has everything is only read (a read-only store opens)."""
    if not missing_tables(engine, tables) and (seeded is None or _is_seeded(engine, seeded)):
        return
    with refusing_read_only(engine, "making its tables"), \
            schema_transaction(engine) as connection:
        for table in tables:
            table.create(connection, checkfirst=True)
        if seed is not None and (seeded is None or not seeded(connection)):
            seed(connection)


def _is_seeded(engine: Engine, seeded: Callable[[Connection], bool]) -> bool:
    with engine.connect() as connection:
        return seeded(connection)
