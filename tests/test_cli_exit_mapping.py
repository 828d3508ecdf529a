"""Issue 8 point 1: CLI errors become exit codes in ONE place (`ledger.cli.errors`, with the
table `ledger.access.EXIT_CODE`).

Read from the source of ledger/cli: no command chooses an exit status for an error itself.
An `except` clause may turn an exception into a `LedgerError` (naming the option or file) and
raise it, or print a partial report and re-raise, but never raise `typer.Exit`, call
`sys.exit` or look up `exit_code` there; and `typer.Exit` is raised only with a command's
outcome (`EXIT_OK`, `EXIT_FAILED`, apply's `EXIT_REJECTED`, or the `status` a worker
returned), never with a literal number or an error's status (2, 3).
"""

from __future__ import annotations

import ast
from pathlib import Path

from ledger.access import EXIT_CODE, BadRequest, Conflict, NotFound, exit_code
from ledger.errors import (
    ConfigurationError,
    InputUnreadable,
    LedgerError,
    RuleViolation,
    Stopped,
    StoreDamaged,
)

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "ledger" / "cli"
#: The one module that maps errors to exit statuses.
MAPPING = CLI / "errors.py"
#: What `typer.Exit(...)` may carry outside the mapping: a command's outcome, not an error's.
OUTCOMES = {"EXIT_OK", "EXIT_FAILED", "EXIT_REJECTED", "status"}


def _is_exit(node: ast.AST) -> bool:
    """`typer.Exit(...)`, `Exit(...)`, `sys.exit(...)` or `exit_code(...)`."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else (
        func.id if isinstance(func, ast.Name) else "")
    return name in ("Exit", "exit", "exit_code")


def _outcome(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in OUTCOMES
    if isinstance(node, ast.IfExp):
        return _outcome(node.body) and _outcome(node.orelse)
    return False


def exit_choices(source: str, where: str) -> list[str]:
    """Every place in `source` that picks an exit status for an error."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ExceptHandler):
            for inner in ast.walk(node):
                if _is_exit(inner):
                    found.append(f"{where}:{inner.lineno}: an except clause picks an exit "
                                 "status (raise a LedgerError instead)")
        if _is_exit(node):
            assert isinstance(node, ast.Call)
            arguments = [*node.args, *(k.value for k in node.keywords)]
            if any(not _outcome(a) for a in arguments):
                found.append(f"{where}:{node.lineno}: exits with "
                             f"{ast.unparse(arguments[0])}, not an outcome")
    return sorted(set(found))


def test_no_command_picks_an_exit_status_for_an_error() -> None:
    choices = [choice for path in sorted(CLI.glob("*.py")) if path != MAPPING
               for choice in exit_choices(path.read_text(), str(path.relative_to(ROOT)))]
    assert choices == []


def test_the_check_sees_a_command_choosing_its_exit_status() -> None:
    planted = '''
def liability():
    try:
        answer()
    except LedgerError as error:
        print(error)
        raise typer.Exit(code=2) from None
    if wrong:
        raise typer.Exit(2)
    if other:
        sys.exit(EXIT_UNREADABLE)
    raise typer.Exit(EXIT_REJECTED if rejected else EXIT_OK)
def users():
    try:
        add()
    except Conflict as error:
        raise typer.Exit(exit_code(error))
'''
    found = exit_choices(planted, "m")
    lines = {int(line.split(":")[1]) for line in found}
    assert lines == {7, 9, 11, 17}  # not 12: apply's outcome
    assert {int(line.split(":")[1]) for line in found if "except clause" in line} == {7, 17}


def test_the_mapping_is_the_contracts() -> None:
    """apply's exits are the contract's (1 rejected, 2 unreadable); an unknown id is 2 as
    README says; a bug that stopped a run is 3."""
    assert exit_code(RuleViolation("period", "closed already")) == 1
    assert exit_code(Conflict("name: a user 'ann' exists already")) == 1
    for error in (InputUnreadable("x"), NotFound("agreement_id: no agreement 'X'"),
                  BadRequest("--yes", "add --yes"), ConfigurationError("no store"),
                  StoreDamaged("chain broken"), LedgerError("anything else")):
        assert exit_code(error) == 2, error
    assert exit_code(Stopped("a bug")) == 3
    # the first matching class wins: no entry is hidden behind an earlier, wider one
    kinds = [kind for kind, _ in EXIT_CODE]
    for i, kind in enumerate(kinds):
        assert not any(issubclass(kind, earlier) for earlier in kinds[:i]), kind

