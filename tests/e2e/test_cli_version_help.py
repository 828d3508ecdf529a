"""`--version` and `-h` as a user types them (issue 14, point 10): both were "No such option"."""

from __future__ import annotations

from importlib.metadata import version

from tests.e2e.conftest import Runner


def test_version_prints_the_installed_version(run: Runner) -> None:
    result = run("--version")
    assert result.code == 0, result
    assert result.stdout.strip() == f"rebate-ledger {version('rebate-ledger')}"
    assert not list(run.cwd.iterdir()), "--version created a file"


def test_short_help_on_the_program_and_on_a_command(run: Runner) -> None:
    top = run("-h")
    assert top.code == 0, top
    assert "Usage: rebate-ledger" in top.stdout
    assert "liability" in top.stdout and "apply" in top.stdout
    assert run("-h").stdout == run("--help").stdout

    command = run("liability", "-h")
    assert command.code == 0, command
    assert "Usage: rebate-ledger liability" in command.stdout
    assert "--as-of" in command.stdout
