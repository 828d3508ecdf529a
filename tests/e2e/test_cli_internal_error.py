"""A bug in a command, run as a user runs it (the console script in its own process): one
line naming it on stderr and exit status 3, never a traceback; `LEDGER_DEBUG=1` shows the
traceback. The bug is planted by replacing one application-service method before `main`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLANTED = """
import sys
from ledger import service
def broken(self, *args, **kwargs):
    raise KeyError("planted-bug")
service.LedgerService.liability_rows = broken
from ledger.cli import main
sys.argv = ["rebate-ledger", "liability", "--as-of", "2025-12-31"]
main()
"""


AGREEMENT = ('{"type": "create_agreement", "agreement_id": "A1", "customer_id": "C1", '
             '"currency": "EUR", "period_start": "2025-01-01", "period_end": "2025-12-31", '
             '"basis": "quantity", "tier_method": "retroactive", "rate_kind": "per_unit", '
             '"tiers": [{"from": "0", "rate": "1"}]}')


def made_store(tmp_path: Path) -> dict[str, str]:
    """The default store in `tmp_path` with one agreement; the environment to use it."""
    clean = {name: value for name, value in os.environ.items()
             if name not in ("LEDGER_DATABASE_URL", "LEDGER_HOME", "LEDGER_DEBUG")}
    (tmp_path / "book.jsonl").write_text(AGREEMENT + "\n")
    made = subprocess.run([sys.executable, "-m", "ledger.cli", "apply", "book.jsonl", "-q"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False, env=clean)
    assert made.returncode == 0, made.stderr
    return clean


def run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The planted bug run in `tmp_path`, on the default store there (made first)."""
    clean = made_store(tmp_path)
    return subprocess.run([sys.executable, "-c", PLANTED], cwd=tmp_path, text=True,
                          capture_output=True, timeout=120, check=False,
                          env={**clean, "COLUMNS": "1000", **env})


def test_a_bug_is_one_line_and_exit_3(tmp_path: Path) -> None:
    done = run(tmp_path)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = [text for text in done.stderr.splitlines() if text.startswith("error:")]
    assert line.startswith("error: internal error (KeyError: 'planted-bug'); this is a bug"), line
    assert "LEDGER_DEBUG=1" in line


def test_ledger_debug_shows_the_traceback(tmp_path: Path) -> None:
    done = run(tmp_path, LEDGER_DEBUG="1")
    assert done.returncode == 1, done.stderr  # Python's own status for an uncaught exception
    assert "Traceback" in done.stderr and "planted-bug" in done.stderr


SLOW_EVIDENCE = """
import sys, time
from ledger.audit import evidence
def slow(*args, **kwargs):
    print("writing the journal", file=sys.stderr, flush=True)
    time.sleep(120)
evidence._write_journal = slow
from ledger.cli import main
sys.argv = ["rebate-ledger", "evidence", "--as-of", "2025-12-31", "--out", "pack.zip"]
main()
"""


def test_sigterm_ends_a_command_through_its_cleanup(tmp_path: Path) -> None:
    """A command stopped with SIGTERM (a scheduler's stop, `kill`) removes what it made on
    the way: `evidence` killed while it writes leaves no temporary folder (4 GB were left
    behind at 10M) and no half pack; the exit status says the signal (128 + 15)."""
    import signal
    import time

    clean = made_store(tmp_path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen([sys.executable, "-c", SLOW_EVIDENCE], cwd=tmp_path,
                               env={**clean, "TMPDIR": str(scratch)}, text=True,
                               stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stderr is not None
    said = [process.stderr.readline() for _ in range(2)]  # the store's line, then ours
    assert "writing the journal" in said[-1], said
    (folder,) = scratch.iterdir()
    assert folder.name.startswith("ledger-evidence-")
    time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert list(scratch.iterdir()) == []
    assert not (tmp_path / "pack.zip").exists()
