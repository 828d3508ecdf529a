"""Fixtures of the end-to-end tests: run the installed `rebate-ledger` console script the way a
user types it, as a separate process, in a temporary working directory, with a clean
environment (no `LEDGER_*` variable leaks in from the machine running the tests)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

#: The console script installed next to the interpreter running the tests (any checkout's .venv).
CLI = Path(sys.executable).parent / "rebate-ledger"

#: Wide enough that rich neither wraps a rejection nor truncates a table cell when stdout is a
#: pipe (rich falls back to 80 columns without a terminal).
COLUMNS = "250"

#: Every process gets this long; far more than any of these runs needs.
TIMEOUT_S = 120


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment minus every `LEDGER_*` variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["COLUMNS"] = COLUMNS
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Run:
    """What one CLI process did."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return orjson.loads(self.stdout)

    def counts(self) -> tuple[int, int, int]:
        """(accepted, duplicated, rejected) read from the summary that `apply` prints."""
        found = []
        for label in ("accepted", "duplicate", "rejected"):
            match = re.search(rf"\b{label}\w*:\s*(\d+)", self.stdout)
            assert match, f"no {label!r} count in apply output:\n{self.stdout}"
            found.append(int(match.group(1)))
        return found[0], found[1], found[2]

    def __str__(self) -> str:
        command = " ".join(self.args)
        return f"$ rebate-ledger {command}\nexit {self.code}\n{self.stdout}{self.stderr}"


def run_cli(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
) -> Run:
    """Run `rebate-ledger ARGS` in `cwd` with a clean environment plus `env`."""
    assert CLI.exists(), f"console script not installed at {CLI}"
    done = subprocess.run(
        [str(CLI), *args],
        cwd=cwd,
        env=clean_env(env),
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    return Run(
        args=args,
        code=done.returncode,
        stdout=done.stdout.decode(),
        stderr=done.stderr.decode(),
    )


class Runner:
    """`run("apply", "book.jsonl")` in one working directory; `write` puts a JSONL file there."""

    def __init__(self, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        self.cwd = cwd
        self.env = dict(env or {})

    def __call__(
        self, *args: str, env: Mapping[str, str] | None = None, stdin: bytes | None = None
    ) -> Run:
        return run_cli(*args, cwd=self.cwd, env={**self.env, **(env or {})}, stdin=stdin)

    def write(self, name: str, commands: Iterable[dict[str, Any] | str]) -> Path:
        path = self.cwd / name
        path.write_bytes(jsonl(commands))
        return path


def jsonl(commands: Iterable[dict[str, Any] | str]) -> bytes:
    """JSON Lines; a `str` item is written as it is (for deliberately broken lines)."""
    return b"".join(
        (item.encode() if isinstance(item, str) else orjson.dumps(item)) + b"\n"
        for item in commands
    )


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    """The CLI in a fresh working directory, on the embedded default database there."""
    return Runner(tmp_path)


def agreement(agreement_id: str, customer_id: str, **fields: Any) -> dict[str, Any]:
    """A `create_agreement` for 2025: EUR, quantity basis, retroactive, 1.00 per unit from 0."""
    return {
        "type": "create_agreement", "agreement_id": agreement_id, "customer_id": customer_id,
        "currency": "EUR", "period_start": "2025-01-01", "period_end": "2025-12-31",
        "basis": "quantity", "tier_method": "retroactive", "rate_kind": "per_unit",
        "tiers": [{"from": "0", "rate": "1.00"}],
        **fields,
    }


def sale(
    sale_id: str, customer_id: str, quantity: Any, amount: Any, invoice_date: str, **fields: Any
) -> dict[str, Any]:
    """A `record_sale` in EUR of product P1."""
    return {
        "type": "record_sale", "sale_id": sale_id, "customer_id": customer_id,
        "product_id": "P1", "quantity": quantity, "amount": amount, "currency": "EUR",
        "invoice_date": invoice_date,
        **fields,
    }


def rows_by_id(document: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The `rows` of a `liability --format json` document, keyed by agreement id."""
    return {row["agreement_id"]: row for row in document["rows"]}
