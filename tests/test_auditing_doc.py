"""docs/auditing.md stays true to the CLI: every `rebate-ledger` command line it shows names a
command that exists, with options that command takes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import typer.main

from ledger.cli import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "auditing.md"


def command_lines() -> list[list[str]]:
    found = []
    for line in DOC.read_text().splitlines():
        match = re.search(r"rebate-ledger (.+?)(?:`|$)", line)
        if match and not match.group(1).startswith("demo"):
            words = shlex.split(match.group(1).split(" > ")[0])
            if words and re.fullmatch(r"[a-z-]+", words[0]):
                found.append(words)
    return found


def test_the_doc_shows_every_tool_of_the_toolkit() -> None:
    shown = {words[0] for words in command_lines()}
    assert {"liability", "diff", "explain", "journal", "trial-balance", "reconcile", "verify",
            "digest", "evidence", "opportunities", "simulate", "close-period"} <= shown


def test_every_command_and_option_in_the_doc_exists() -> None:
    group = typer.main.get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    for words in command_lines():
        assert words[0] in commands, words
        options = {o for p in commands[words[0]].params for o in p.opts}
        for word in words[1:]:
            if word.startswith("--"):
                assert word.split("=")[0] in options, (words, word)
