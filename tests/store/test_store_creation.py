"""Opening a store (issue 15): several processes making a brand-new store at once all succeed
and apply every line exactly once, on SQLite and PostgreSQL; a store that cannot be written
answers the read-only commands and refuses `apply` with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger import Ledger
from ledger.store import normalise_url
from tests.contract import helpers as h

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "rebate-ledger"
PROCESSES = 16
SALES_PER_PROCESS = 5
YEAR_END = date(2025, 12, 31)

#: One process: import everything first, wait for the start file, then open the new store and
#: apply its own lines (an agreement and its sales), printing the report as JSON.
WORKER = """
import os, sys, time
from pathlib import Path
import orjson
from ledger import Ledger
url, lines, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.005)
with Ledger(url) as ledger:
    report = ledger.apply_lines(lines.read_bytes().splitlines())
print(orjson.dumps(report.to_dict()).decode())
"""


def book_of(worker: int) -> list[bytes]:
    customer = f"C{worker}"
    commands = [h.agreement(f"A{worker}", customer_id=customer)]
    commands += [
        h.sale(f"S{worker}-{n}", "2", "10.00", customer_id=customer)
        for n in range(SALES_PER_PROCESS)
    ]
    return [orjson.dumps(c) for c in commands]


def test_processes_opening_a_new_store_at_once_all_succeed(
    database_url: str, tmp_path: Path
) -> None:
    """The reproducer: 38 of 128 processes failed with "table … already exists" on SQLite, 7 of
    40 with UniqueViolation on PostgreSQL, applying nothing."""
    go = tmp_path / "go"
    processes = []
    for worker in range(PROCESSES):
        lines = tmp_path / f"book{worker}.jsonl"
        lines.write_bytes(b"\n".join(book_of(worker)) + b"\n")
        processes.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, database_url, str(lines), str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        ))
    time.sleep(2.0)  # let every process finish its imports (they wait for `go`)
    go.touch()
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()[-3000:]
        reports.append(orjson.loads(out.splitlines()[-1]))
    assert [r["accepted"] for r in reports] == [1 + SALES_PER_PROCESS] * PROCESSES
    assert all(r["rejected"] == 0 and r["duplicates"] == 0 for r in reports)
    with Ledger(database_url) as ledger:
        assert ledger.state()["accepted"] == PROCESSES * (1 + SALES_PER_PROCESS)
        assert ledger.rejections() == []
        rows = ledger.liability(YEAR_END)
    with Ledger(f"sqlite:///{tmp_path / 'reference.db'}") as reference:
        for worker in range(PROCESSES):
            assert not reference.apply_lines(book_of(worker)).rejected
        assert rows == reference.liability(YEAR_END) and len(rows) == PROCESSES


# --- a store that cannot be written -----------------------------------------------------------

BOOK = [h.agreement("A1"), h.sale("S1", "2", "5.00"), {"type": "record_sale"}]
READING = (("liability", "--as-of", "2025-12-31", "--format", "json"),
           ("rejections", "--format", "json"), ("verify", "--format", "json"),
           ("digest", "--format", "json"))


#: The field of a reading command's JSON that is the time it answered.
CLOCKED = {"liability": "known_at", "digest": "taken_at"}


def cli_as_user(args: tuple[str, ...], cwd: Path, *,
                files: bool = True) -> subprocess.CompletedProcess[bytes]:
    """The CLI as a user without root's power over files (`files`): root ignores permissions,
    so as root the process runs without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (setpriv)."""
    command = [str(CLI), *args]
    if files and os.geteuid() == 0:
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", *command]
    return subprocess.run(command, cwd=cwd, capture_output=True, timeout=120,
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith("LEDGER_")})


def written_store(folder: Path) -> tuple[str, dict[tuple[str, ...], Any]]:
    """A store in `folder` holding BOOK, and what each reading command says of it."""
    folder.mkdir()
    url = f"sqlite:///{folder / 'ledger.db'}"
    with Ledger(url) as ledger:
        ledger.apply_lines([orjson.dumps(c) for c in BOOK])
    answers = {}
    for args in READING:
        done = subprocess.run([str(CLI), *args, "--database", url], capture_output=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        answers[args] = orjson.loads(done.stdout)
    return url, answers


def assert_reads_and_refuses_apply(url: str, expected: dict[tuple[str, ...], Any],
                                   cwd: Path, *, files: bool = True) -> None:
    for args in READING:
        done = cli_as_user((*args, "--database", url), cwd, files=files)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        answer = orjson.loads(done.stdout)
        clocked = CLOCKED.get(args[0])  # when it was answered: differs between two runs
        assert {k: v for k, v in answer.items() if k != clocked} == {
            k: v for k, v in expected[args].items() if k != clocked}
    (cwd / "more.jsonl").write_bytes(orjson.dumps(h.sale("S2", "1", "1.00")) + b"\n")
    done = cli_as_user(("apply", str(cwd / "more.jsonl"), "--database", url), cwd,
                       files=files)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    # one line of error (beside the `store: PATH` line every command prints)
    lines = [line for line in err.strip().splitlines() if not line.startswith("store: ")]
    assert "Traceback" not in err and len(lines) == 1, err
    assert "is read-only" in err and "apply" not in err.split("read-only")[0], err


def test_a_store_without_write_permission_answers_reading_commands(tmp_path: Path) -> None:
    """A store file without write permission in a folder without it either (so SQLite cannot
    make the -shm it needs to read a WAL store): every command failed with "attempt to write a
    readonly database"; now the reading commands answer as on the writable store and `apply`
    says in one line that the store is read-only (exit 2)."""
    url, expected = written_store(tmp_path / "store")
    folder = tmp_path / "store"
    (folder / "ledger.db").chmod(0o444)
    folder.chmod(0o555)
    try:
        assert_reads_and_refuses_apply(url, expected, tmp_path)
        assert sorted(p.name for p in folder.iterdir()) == ["ledger.db"]
    finally:
        folder.chmod(0o755)


def test_an_immutable_store_answers_reading_commands(tmp_path: Path) -> None:
    """A file made immutable (chattr +i: not even root may write it): `apply` crashed with a
    traceback. Without root, a file without write permission stands in for it."""
    url, expected = written_store(tmp_path / "store")
    store = tmp_path / "store" / "ledger.db"
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(store)], check=True)
    else:
        store.chmod(0o444)
    try:
        assert_reads_and_refuses_apply(url, expected, tmp_path)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(store)], check=True)


@pytest.mark.postgres
def test_a_read_only_postgresql_database_answers_reading_commands(
    pg_server: str, tmp_path: Path
) -> None:
    """The same on PostgreSQL: a database whose transactions are read-only (as on a standby,
    or set by its owner) answers the reading commands; `apply` says so in one line."""
    import sqlalchemy as sa

    admin = sa.create_engine(normalise_url(pg_server), isolation_level="AUTOCOMMIT")
    name = f"ledger_read_only_{os.getpid()}_{time.monotonic_ns()}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(normalise_url(pg_server)).set(database=name).render_as_string(
        hide_password=False)
    with Ledger(url) as ledger:
        ledger.apply_lines([orjson.dumps(c) for c in BOOK])
    expected = {}
    for args in READING:
        done = subprocess.run([str(CLI), *args, "--database", url], capture_output=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        expected[args] = orjson.loads(done.stdout)
    with admin.connect() as connection:
        connection.execute(sa.text(f'ALTER DATABASE "{name}" SET '
                                   "default_transaction_read_only = on"))
    admin.dispose()
    assert_reads_and_refuses_apply(url, expected, tmp_path, files=False)
