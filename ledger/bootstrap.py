"""The composition root: builds the application service once per process, from settings.

Entrypoints ask here for the service instead of opening a `Ledger` themselves, so that what a
process is made of (store, proposal set, limits) is decided in one place.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.access import DEFAULT_PROPOSAL_COMMANDS
from ledger.config import Settings as LedgerSettings
from ledger.core import Ledger
from ledger.service import LedgerService


class ApiSettings(BaseSettings):
    """Settings of the HTTP API, from `LEDGER_API_*` environment variables
    (docs/configuration.md)."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_API_", extra="ignore")

    proposal_commands: str = Field(
        default=",".join(sorted(DEFAULT_PROPOSAL_COMMANDS)),
        description="comma-separated command types that become proposals (four eyes)")
    body_bytes_max: int = Field(default=64 << 20, ge=1024, le=1 << 30,
                                description="largest request body; larger gets 413")
    failed_auth_max: int = Field(default=20, ge=1, le=100_000,
                                 description="failed sign-ins per client address per window")
    failed_auth_window_s: float = Field(default=60.0, gt=0, le=86_400,
                                        description="the window of failed_auth_max, seconds")
    threads: int = Field(default=8, ge=1, le=256, description="request threads per worker "
                         "process (the blocking calls of the service run on them; the store "
                         "keeps as many connections open)")
    cors_origins: str = Field(default="", description="comma-separated origins allowed by "
                              "CORS; empty (default): no CORS")

    def proposal_set(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.proposal_commands.split(",") if t.strip())


def build_service(database_url: str | None = None,
                  settings: ApiSettings | None = None, *,
                  server: bool = False) -> LedgerService:
    """The service over the store at `database_url` (default: LEDGER_DATABASE_URL, else the
    embedded SQLite file). A `server` (many request threads in one process) never pauses the
    garbage collector around a batch (ledger.gcpause)."""
    settings = settings or ApiSettings()
    ledger_settings = LedgerSettings()
    if server:
        ledger_settings = ledger_settings.model_copy(update={
            "pause_gc_in_batches": False, "pool_connections": settings.threads})
    return LedgerService(Ledger(database_url, settings=ledger_settings),
                         proposal_commands=settings.proposal_set())
