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


def test_help_groups_commands_in_panels_and_keeps_sentences_whole(run: Runner) -> None:
    """Issue 14, point 10: the top-level help mixed the Kafka plumbing with the finance
    commands and broke sentences where the source's docstrings broke their lines."""
    from ledger.cli import HELP_PANELS

    done = run("--help", env={"COLUMNS": "220"})
    assert done.code == 0, done
    lines = done.stdout.splitlines()
    titles = [line.strip("╭─╮ ").strip() for line in lines if line.startswith("╭─")]
    assert titles == ["Options", "Finance", "Audit", "Service", "Kafka operations"]
    listed: dict[str, str] = {}
    panel = ""
    for line in lines:
        if line.startswith("╭─"):
            panel = line.strip("╭─╮ ").strip()
        elif line.startswith("│ ") and not line.startswith("│  "):
            listed[line.split()[1]] = panel
    for name, where in listed.items():
        if where != "Options":
            assert name in HELP_PANELS[where], (name, where)
    assert {"relay", "broker", "intake", "produce"} <= {
        n for n, p in listed.items() if p == "Kafka operations"}
    # lines wrap at the terminal's width, not where the docstring's source lines ended
    apply = next(line for line in lines if line.startswith("│ apply "))
    assert "some rejected (the rest applied); 2: the input could not be read" in apply


def test_no_flag_shows_a_type_as_if_it_took_a_value() -> None:
    """typer's help showed `--detail <bool>`, `--force <bool>`, `--help <bool>`, so a user
    typed `--detail true` and was refused; a flag shows no type, an option with a value does."""
    import typer
    from typer.testing import CliRunner

    from ledger.cli import app

    def paths(command: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        found = [prefix]
        for name, sub in getattr(command, "commands", {}).items():
            found += paths(sub, (*prefix, name))
        return found

    every = paths(typer.main.get_command(app))
    assert len(every) > 30 and ("users", "add") in every
    runner = CliRunner()
    for path in every:
        done = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert done.exit_code == 0, (path, done.output)
        assert "<bool>" not in done.output, path
    diff = runner.invoke(app, ["diff", "--help"], env={"COLUMNS": "200"}).output
    assert "<str>" in next(line for line in diff.splitlines() if "--as-of" in line)
