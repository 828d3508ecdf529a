"""Where the Kafka-fed projections live, and which generation of each is live.

Each projection (`liability`, `claims`, `sales`) is stored as numbered *generations*: on
SQLite a database file of its own next to the store file (`<store>.<name>.g<N>.db`), on
PostgreSQL a schema of its own in the store's database (`proj_<name>_g<N>`). A projection
engine sees its tables unqualified (PostgreSQL: `search_path` set on connect), so the same
table definitions and SQL serve every generation and the store.

The `projection_registry` table of the STORE names the live generation of each projection
and where it is (`location`: the file or the schema): a
replay builds generation N+1 beside the live one, then swaps it in with one UPDATE of that
row (atomic), and only then drops generation N. A reader takes the pointer, opens that
generation read-only and falls back to the core if it has gone in between.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool

from ledger.errors import ConfigurationError
from ledger.store import SQLITE_BUSY_TIMEOUT_MS, ensure_tables, normalise_url

NAMES = ("liability", "claims", "sales")

#: PostgreSQL: how long one try to drop an old generation waits for its readers' locks.
LOCK_TIMEOUT = "500ms"
DROP_ATTEMPTS = 40

pointer_metadata = MetaData()

projection_registry = Table(
    "projection_registry",
    pointer_metadata,
    Column("name", String(64), primary_key=True),
    # the live generation; 0 = none yet
    Column("generation", Integer, nullable=False),
    # where it is: the SQLite file or the PostgreSQL schema ('' = none yet)
    Column("location", String(1000), nullable=False),
    # the highest generation ever made (a replay takes the next one)
    Column("latest", Integer, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)


def check_name(name: str) -> str:
    if name not in NAMES:
        raise ConfigurationError(
            f"projection {name!r} does not exist; choose one of {', '.join(NAMES)}"
        )
    return name


def _now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


@dataclass(frozen=True)
class Generation:
    """One generation of one projection, in the store at `store_url`."""

    store_url: str
    name: str
    number: int

    @property
    def is_sqlite(self) -> bool:
        return self.store_url.startswith("sqlite")

    @property
    def path(self) -> Path:
        """SQLite: the projection's database file, next to the store file."""
        database = make_url(self.store_url).database
        assert database, self.store_url
        store = Path(database)
        return store.with_name(f"{store.stem}.{self.name}.g{self.number}.db")

    @property
    def location(self) -> str:
        """The file (SQLite) or the schema (PostgreSQL) of this generation."""
        return str(self.path) if self.is_sqlite else self.schema

    @property
    def schema(self) -> str:
        """PostgreSQL: the projection's schema."""
        return f"proj_{self.name}_g{self.number}"

    def engine(self, *, read_only: bool = False) -> Engine:
        """An engine whose unqualified table names are this generation's."""
        if self.is_sqlite:
            if read_only:
                url = f"sqlite:///file:{self.path}?mode=ro&uri=true"
            else:
                url = f"sqlite:///{self.path}"
            engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_connection: Any, _: Any) -> None:
                cursor = dbapi_connection.cursor()
                if not read_only:
                    cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                cursor.execute("PRAGMA cache_size=-65536")
                cursor.close()

            return engine
        engine = create_engine(self.store_url, pool_pre_ping=True)
        schema = self.schema

        @event.listens_for(engine, "connect")
        def _search_path(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f'SET search_path TO "{schema}"')
            cursor.close()
            dbapi_connection.commit()

        return engine

    def exists(self, store: Engine) -> bool:
        if self.is_sqlite:
            return self.path.exists()
        with store.connect() as connection:
            found = connection.execute(
                text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"),
                {"s": self.schema},
            ).first()
        return found is not None

    def create(self, store: Engine) -> None:
        """Make the (empty) place of this generation, removing any leftover of a crash."""
        self.drop(store)
        if self.is_sqlite:
            import sqlite3

            sqlite3.connect(self.path).close()
        else:
            with store.begin() as connection:
                connection.execute(text(f'CREATE SCHEMA "{self.schema}"'))

    def drop(self, store: Engine) -> None:
        if self.is_sqlite:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return
        # A reader that took the pointer just before a swap may still be reading this schema:
        # DROP SCHEMA waits for its locks (and could deadlock with it, as it locks table
        # after table). Wait at most LOCK_TIMEOUT per try and try again: readers of a
        # generation that is no longer live finish within milliseconds.
        for attempt in range(DROP_ATTEMPTS):
            try:
                with store.begin() as connection:
                    connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                    connection.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
                return
            except OperationalError:  # lock_timeout, or chosen as a deadlock's victim
                if attempt == DROP_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))


def memory_engine() -> Engine:
    """An in-memory SQLite database shared by every session of the engine (audit views)."""
    return create_engine(
        "sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool
    )


def scratch_engine(path: Path) -> Engine:
    """A throwaway SQLite file at `path` for a view rebuilt from the log (audit views): on
    disk, so the rebuilt book is not held in memory (the in-memory database grew with it:
    250 MiB of SQLite heap for 1,000,000 sales), with the page cache bounded as the store's
    and no sync (the caller deletes the file after use)."""
    engine = create_engine(
        f"sqlite:///{path}", connect_args={"check_same_thread": False}, poolclass=StaticPool
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    return engine


def store_url_of(engine: Engine) -> str:
    return normalise_url(engine.url.render_as_string(hide_password=False))


def _ensure_pointer(store: Engine, name: str) -> None:
    def seeded(connection: Connection) -> bool:
        return connection.execute(
            select(projection_registry.c.name).where(projection_registry.c.name == name)
        ).first() is not None

    def seed(connection: Connection) -> None:
        connection.execute(
            insert(projection_registry).values(
                name=name, generation=0, location="", latest=0, updated_us=_now_us()
            )
        )

    ensure_tables(store, [projection_registry], seeded=seeded, seed=seed)


def live_generation(store: Engine, name: str) -> Generation | None:
    """The live generation of `name`, or None if there is none (or no pointer table)."""
    check_name(name)
    url = store_url_of(store)
    with store.connect() as connection:
        if not store.dialect.has_table(connection, projection_registry.name):
            return None
        number = connection.execute(
            select(projection_registry.c.generation).where(projection_registry.c.name == name)
        ).scalar()
    if not number:
        return None
    return Generation(url, name, int(number))


def new_generation(store: Engine, name: str) -> Generation:
    """Reserve the next generation of `name` (not live yet) and create its empty place."""
    check_name(name)
    _ensure_pointer(store, name)
    with store.begin() as connection:
        latest = connection.execute(
            select(projection_registry.c.latest)
            .where(projection_registry.c.name == name)
            .with_for_update()
        ).scalar_one()
        number = int(latest) + 1
        connection.execute(
            update(projection_registry)
            .where(projection_registry.c.name == name)
            .values(latest=number, updated_us=_now_us())
        )
    generation = Generation(store_url_of(store), name, number)
    generation.create(store)
    return generation


def swap_in(store: Engine, generation: Generation) -> Generation | None:
    """Make `generation` live in one UPDATE; return the one it replaced (to be dropped)."""
    with store.begin() as connection:
        old = connection.execute(
            select(projection_registry.c.generation)
            .where(projection_registry.c.name == generation.name)
            .with_for_update()
        ).scalar_one()
        connection.execute(
            update(projection_registry)
            .where(projection_registry.c.name == generation.name)
            .values(generation=generation.number, location=generation.location,
                    updated_us=_now_us())
        )
    if not old or int(old) == generation.number:
        return None
    return Generation(generation.store_url, generation.name, int(old))


def live_or_new(store: Engine, name: str) -> Generation:
    """The live generation of `name`; a new one made live at once if there is none."""
    live = live_generation(store, name)
    if live is not None and live.exists(store):
        return live
    generation = new_generation(store, name)
    swap_in(store, generation)
    return generation

