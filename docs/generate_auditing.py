"""Regenerate (or check) the outputs shown in docs/auditing.md from the demo book.

Every fenced block of docs/auditing.md whose first line starts with `$ ` is a transcript: each
`$ command` line is run (with bash, in a scratch folder where `.rebate-ledger` is the demo's
home, LEDGER_DATABASE_URL the demo's store, COLUMNS=1000 so that no line is wrapped) and the
lines under it are replaced by what it prints on stdout, keeping the shape the doc chose:

- a `...` line after some output lines: only that many first lines are kept, then `...`;
- a `...` line first: only that many last lines are kept, after `...`;
- an output line ending in `,...` (a CSV row cut short): the new row is cut after as many
  fields.

Run after `./scripts/demo` (the book the doc is about):

    .venv/bin/python docs/generate_auditing.py              # rewrite docs/auditing.md
    .venv/bin/python docs/generate_auditing.py --check      # exit 1 if it is out of date

Timestamps of the moment a command runs, hashes, the random ids of sales batches, and the
number of stored events (intake's polls in the demo's Kafka part batch the fed sales as timing
allows) differ from run to run and are not compared by `--check` (`VOLATILE`).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

DOC = Path(__file__).resolve().parent / "auditing.md"
VENV_BIN = Path(sys.executable).parent
#: what differs between two runs of the demo on the same seed, not compared by --check: a
#: moment taken when a command ran (the book's own times are whole seconds), hashes (the stored
#: events carry the moment they were stored) and the random ids of sales batches
VOLATILE = (
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|\+00:00)?"), "<now>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<hash>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<id>"),
    # the demo's Kafka part: intake stores the 20,000 fed sales as its polls return them,
    # one SalesRecorded event per poll's run of sales, and how many records a poll returns
    # depends on timing; so the number of stored events (4,117 and 4,118 seen), the head
    # position and the read tables' row count differ between two runs on the same seed.
    # verify's verdicts and the differences it finds are compared
    (re.compile(r"\b\d+ stored events, \d+ chained; head position \d+"),
     "<events> stored events, <events> chained; head position <events>"),
    (re.compile(r"\bat position \d+: the log extends"), "at position <events>: the log extends"),
    (re.compile(r"\b\d+ rows of (\d+) tables re-derived from \d+ events"),
     r"<rows> rows of \1 tables re-derived from <events> events"),
    (re.compile(r"\b\d+ rows of (\d+) tables"), r"<rows> rows of \1 tables"),
)
#: `sqlite3 FILE "SQL"` without the sqlite3 program: Python's module
SQLITE_SHIM = """sqlite3() { "$LEDGER_DOC_PYTHON" -c '
import sqlite3, sys
with sqlite3.connect(sys.argv[1]) as c:
    for row in c.execute(sys.argv[2]):
        print("|".join("" if v is None else str(v) for v in row))
' "$@"; }
"""


def run(command: str, workdir: Path, env: dict[str, str]) -> list[str]:
    done = subprocess.run(["bash", "-c", SQLITE_SHIM + command], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    return done.stdout.rstrip("\n").splitlines() if done.stdout.strip() else []


def shaped(new: list[str], old: list[str]) -> list[str]:
    """`new` output in the shape `old` had in the doc (see the module's docstring)."""
    if old and old[0] == "...":
        kept = len(old) - 1
        return ["...", *new[-kept:]] if kept else ["..."]
    if "..." in old:
        head = old.index("...")
        new = new[:head] + ["..."]
        old = old[:head] + ["..."]
    out = []
    for index, line in enumerate(new):
        before = old[index] if index < len(old) else ""
        if before.endswith(",...") and line != "...":
            fields = before.count(",")
            line = ",".join(line.split(",")[:fields]) + ",..."
        out.append(line)
    return out


def regenerate(text: str, home: Path) -> str:
    """docs/auditing.md with every transcript block re-run on the demo store in `home`."""
    lines = text.splitlines()
    out: list[str] = []
    env = {**os.environ, "LEDGER_DATABASE_URL": f"sqlite:///{(home / 'demo.db').resolve()}",
           "COLUMNS": "1000", "NO_COLOR": "1", "LEDGER_DOC_PYTHON": sys.executable,
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("LEDGER_HOME", None)
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        (workdir / ".rebate-ledger").symlink_to(home.resolve(), target_is_directory=True)
        index = 0
        while index < len(lines):
            line = lines[index]
            out.append(line)
            index += 1
            if line != "```" or index >= len(lines) or not lines[index].startswith("$ "):
                continue
            end = lines.index("```", index)
            block = lines[index:end]
            starts = [n for n, b in enumerate(block) if b.startswith("$ ")]
            for n, start in enumerate(starts):
                stop = starts[n + 1] if n + 1 < len(starts) else len(block)
                out.append(block[start])
                out += shaped(run(block[start][2:], workdir, env), block[start + 1:stop])
            index = end
    return "\n".join(out) + "\n"


def comparable(text: str) -> str:
    for pattern, mask in VOLATILE:
        text = pattern.sub(mask, text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(".rebate-ledger"),
                        help="the demo's folder, holding demo.db (default .rebate-ledger)")
    parser.add_argument("--check", action="store_true",
                        help="do not write: exit 1 when the doc differs from the outputs")
    args = parser.parse_args()
    if not (args.home / "demo.db").is_file():
        print(f"error: no demo store at {args.home / 'demo.db'}; run ./scripts/demo first "
              "(or give --home)", file=sys.stderr)
        return 2
    text = DOC.read_text()
    fresh = regenerate(text, args.home)
    if args.check:
        if comparable(fresh) == comparable(text):
            print("docs/auditing.md is up to date with the demo book")
            return 0
        import difflib

        sys.stdout.writelines(difflib.unified_diff(
            comparable(text).splitlines(True), comparable(fresh).splitlines(True),
            "docs/auditing.md", "from the demo book"))
        return 1
    DOC.write_text(fresh)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
