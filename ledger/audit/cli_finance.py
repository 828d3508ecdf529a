"""CLI commands of the auditors' toolkit (see ledger/audit/__init__.py)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
