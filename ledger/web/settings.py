"""Settings of the web app, from `LEDGER_WEB_*` environment variables."""

from __future__ import annotations

import secrets

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_WEB_", extra="ignore")

    session_secret: str = Field(
        default_factory=lambda: secrets.token_urlsafe(32),
        description="the key that signs session cookies and CSRF tokens; default a random one "
        "per process (`serve` makes one for all its workers), so sessions end with a restart")
    session_max_age_s: int = Field(default=8 * 3600, ge=60, le=30 * 86_400,
                                   description="a session ends this long after sign-in")
    page_rows: int = Field(default=100, ge=10, le=10_000,
                           description="rows per page of the liability table")
    upload_bytes_max: int = Field(default=50 * 1024 * 1024, ge=1024, le=1024 ** 3,
                                  description="largest file the import page takes")
    upload_dir: str | None = Field(
        default=None, description="where uploaded files wait between the import's preview and "
        "its apply (at most an hour); default: rebate-ledger-web-uploads in the system's "
        "temporary folder, shared by the server's workers")
