"""The one place where an error of a command becomes its exit status and its message.

Every command lets its errors rise: a `LedgerError` (whose message names the field or rule,
the value, and what to do) or a `Stopped` run. The command group below catches them for every
command, `main` and the test runner alike, prints one line `error: ...` on stderr, and exits
with `ledger.access.exit_code` (the table `EXIT_CODE`):

- 0: done; nothing rejected, every check passed.
- 1: done, and something was refused or found wrong: apply or import lines rejected (the
  rest applied), a command refused by a rule (closing a closed period) or by the state (a
  user that exists already), a check that failed (verify, trial-balance, audit-view, ...).
- 2: the request cannot be used as given, nothing done: input that cannot be read, an option
  or id that names nothing, a store that cannot be opened, is read-only or damaged (usage
  errors of the options are click's, also 2).
- 3: stopped part way by an internal error (a bug): what came before stands (`intake
  --until-idle` also exits 3 on a stalled group).

A command never picks an exit status for an error itself (tests/test_cli_exit_mapping.py reads
the source to keep it so); it raises `typer.Exit` only with its outcome, `EXIT_OK` or
`EXIT_FAILED`, or the status a worker returned.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from ledger.access import exit_code
from ledger.errors import LedgerError, Stopped

#: The outcomes of a command that ran (not errors): 0, and 1 when something was rejected or a
#: check failed. EXIT_REJECTED is apply's name for 1 (contract section 3).
EXIT_OK, EXIT_FAILED = 0, 1
EXIT_REJECTED = EXIT_FAILED
#: The statuses errors get (`ledger.access.EXIT_CODE`), named for the help texts and tests.
EXIT_UNREADABLE, EXIT_STOPPED = 2, 3


def error_line(error: BaseException) -> str:
    """The one line printed for `error`: its message, which names the field or rule, the
    value and what to do."""
    text = " ".join(str(error).split()) or type(error).__name__
    return f"error: {text}"


def fail(error: LedgerError | Stopped) -> typer.Exit:
    """Print `error` on stderr as one line and give the `typer.Exit` of its exit status."""
    from ledger.cli import err_console

    err_console.print(error_line(error), highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(exit_code(error))


def internal_error(error: Exception) -> int:
    """Print an error that is not the ledger's (a bug) as one line on stderr, without a
    traceback (`LEDGER_DEBUG=1` shows it), and give exit status 3: stopped by an internal
    error. What the command finished before it stands, as for a stopped apply."""
    from ledger.cli import err_console

    # the message without the statement and parameters a database error appends (they may
    # hold values a log must not see)
    text = " ".join(str(error).split("[SQL:")[0].split())[:300]
    err_console.print(
        f"error: internal error ({type(error).__name__}{': ' + text if text else ''}); this is "
        "a bug in rebate-ledger: run the command again with LEDGER_DEBUG=1 to see where, and "
        "report it", highlight=False, markup=False, soft_wrap=True)
    return EXIT_STOPPED


class LedgerGroup(TyperGroup):
    """The command group of `rebate-ledger`: every command runs inside `invoke`, so every
    error it raises is mapped here, once."""

    def invoke(self, ctx: Any) -> Any:  # typer's own click.Context
        try:
            return super().invoke(ctx)
        except (LedgerError, Stopped) as error:
            raise fail(error) from None

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _flags_take_no_value(command, ctx)
        return command

    def get_params(self, ctx: Any) -> Any:
        _flags_take_no_value(self, ctx, deep=False)
        return super().get_params(ctx)


def _flags_take_no_value(command: Any, ctx: Any, *, deep: bool = True) -> None:
    """typer's help shows a flag with a type (`--detail <bool>`), as if it took a value
    (`--detail true` is then refused): a flag shows none. For `command`, its help option and,
    with `deep`, the commands of a group under it."""
    params = list(command.params)
    help_option = command.get_help_option(ctx)
    if help_option is not None:
        params.append(help_option)
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    if deep:
        for sub in getattr(command, "commands", {}).values():
            _flags_take_no_value(sub, ctx)
