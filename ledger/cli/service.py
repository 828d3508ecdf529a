"""CLI commands of the service: `serve` and `users add|list|revoke|rotate`.

They run as the operator (whoever holds the database holds every right) through the
application service, like every other entrypoint. No `from __future__ import annotations`:
typer reads the annotations, and the option types are defined inside `register`."""

import getpass
import os
import secrets
import sys
from typing import Annotated

import typer

from ledger.access import BadRequest, Principal, Role, operator

users_app = typer.Typer(help="API users: add, list, revoke, rotate (tokens shown once).",
                        no_args_is_help=True)


def _operator_name() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def operator_principal(name: str | None = None) -> Principal:
    """The CLI's principal: `--as NAME`, else `cli:<OS user>`."""
    from ledger.accounts import check_name

    return operator(check_name(name) if name is not None else _operator_name())


def register(app: typer.Typer) -> None:
    """Add `serve` and the `users` group to `app`."""
    from ledger.cli import DatabaseOption, console
    from ledger.service import LedgerService

    def service(database: str | None) -> LedgerService:
        from ledger.bootstrap import build_service

        return build_service(database)

    @users_app.command("add")
    def users_add(
        name: Annotated[str, typer.Argument(help="the user's name (recorded on its changes)")],
        role: Annotated[Role, typer.Option("--role", help="admin, finance, commercial, sales, "
                                           "customer, auditor or ingest")],
        customer: Annotated[list[str] | None, typer.Option(
            "--customer", help="a customer a sales or customer user may see (repeat)")] = None,
        password_stdin: Annotated[bool, typer.Option(
            "--password-stdin", help="read a password for signing in to the web app from "
            "standard input (stored as an argon2 hash)")] = False,
        database: DatabaseOption = None,
    ) -> None:
        """Create a user; its API token is printed alone on the last line, once."""
        password = None
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise BadRequest("--password-stdin", "standard input held no password: "
                                 "pipe one line holding the password")
        book = service(database)
        try:
            token = book.add_user(operator(_operator_name()), name, role, customer or (),
                                  password)
        finally:
            book.close()
        console.print(f"user {name} ({role.value}) added; its token, shown once:",
                      highlight=False, markup=False)
        sys.stdout.write(token + "\n")

    @users_app.command("list")
    def users_list(database: DatabaseOption = None) -> None:
        """Every user, its role, customers and whether it is active (never a secret)."""
        import orjson

        book = service(database)
        try:
            found = book.users(operator(_operator_name()))
        finally:
            book.close()
        sys.stdout.write(orjson.dumps({"users": [u.to_dict() for u in found]}).decode() + "\n")

    @users_app.command("revoke")
    def users_revoke(name: str, database: DatabaseOption = None) -> None:
        """Stop the user's token and end its web sessions at once (`rotate` gives it a new
        token)."""
        book = service(database)
        try:
            book.revoke_user(operator(_operator_name()), name)
        finally:
            book.close()
        console.print(f"user {name} revoked", highlight=False, markup=False)

    @users_app.command("rotate")
    def users_rotate(name: str, database: DatabaseOption = None) -> None:
        """A new token for the user (the old one stops and its web sessions end at once),
        printed on the last line."""
        book = service(database)
        try:
            token = book.rotate_token(operator(_operator_name()), name)
        finally:
            book.close()
        console.print(f"user {name}: new token, shown once:", highlight=False, markup=False)
        sys.stdout.write(token + "\n")

    app.add_typer(users_app, name="users")

    @app.command()
    def serve(
        host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=0, max=65535, help="port")] = 8000,
        workers: Annotated[int, typer.Option(min=1, max=64, help="worker processes")] = 1,
        database: DatabaseOption = None,
    ) -> None:
        """Run the HTTP API (FastAPI on uvicorn) on the same store as every other command.
        Interactive docs at /docs, the OpenAPI document at /openapi.json."""
        import logging

        import uvicorn

        from ledger.config import Settings

        # every worker process builds its service from the environment (ledger.http.asgi)
        os.environ["LEDGER_DATABASE_URL"] = Settings().resolved_database_url(database)
        # one key for the web sessions of every worker (each worker builds its own app)
        os.environ.setdefault("LEDGER_WEB_SESSION_SECRET", secrets.token_urlsafe(32))
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        service(database).close()  # create the tables once, and fail early on a bad URL
        uvicorn.run("ledger.http.asgi:app", host=host, port=port, workers=workers,
                    access_log=False, log_level="info", server_header=False)
