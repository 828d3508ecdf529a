"""Configuration in one place: pydantic settings read from environment variables `LEDGER_*`.

| variable | default | meaning |
|---|---|---|
| `LEDGER_DATABASE_URL` | `sqlite:///<LEDGER_HOME>/ledger.db` | SQLAlchemy URL of the store |
| `LEDGER_HOME` | `./.rebate-ledger` (in the current directory) | where the embedded default lives |
| `LEDGER_CHUNK_LINES` | `5000` | commands applied per database transaction |
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOME = Path(".rebate-ledger")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file ledger.db in home"
    )
    home: Path = Field(default=DEFAULT_HOME, description="directory of the embedded default")
    chunk_lines: int = Field(default=5000, ge=1, le=100_000)
    pool_connections: int = Field(
        default=5, ge=1, le=256, description="database connections a process keeps open "
        "(SQLAlchemy's pool_size; up to 10 more are opened and closed under load); the HTTP "
        "server sets it to its request threads (LEDGER_API_THREADS)")
    pause_gc_in_batches: bool = Field(
        default=True, description="pause Python's cyclic garbage collector while a batch of "
        "lines or records is applied (faster; off in the HTTP server, where it would reach "
        "every request's thread)")

    def resolved_database_url(self, override: str | None = None) -> str:
        if override:
            return override
        if self.database_url:
            return self.database_url
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.home / 'ledger.db').resolve()}"

    def default_database_url(self) -> str:
        """The store commands use when given none, without creating `home` (for checks that
        must not write anything, such as whether an `--out` path is a file of the store)."""
        return self.database_url or f"sqlite:///{(self.home / 'ledger.db').resolve()}"
