"""`import` throughput against `apply` of the same sales, measured in one run (issue 10).

    .venv/bin/python -m bench.import_bench                  # 1,000,000 sales, 1,000 agreements
    .venv/bin/python -m bench.import_bench --sales 100000   # any size; --quick: 2,000 sales

The book of `bench/generate.py` is written once as JSON Lines (what `apply` reads) and once as
the CSV export an ERP would give of the same sales (what `import` reads): semicolon-separated,
German number format (`1.234,56`, a minus at the end for returns), dates `DD.MM.YYYY`, a
byte-order mark and Windows line endings, with the SAP-style mapping written beside it. Each
contender runs in a fresh interpreter on a fresh SQLite file (WAL, synchronous=FULL), after the
agreements were applied (not timed), through the application service as the CLI calls it:
`LedgerService.load` for apply, `LedgerService.import_rows` (parsing the CSV and mapping every
row included) for import. Both must accept every sale. The ratio is import sales/s over apply
sales/s; target >= 0.5. With `--repeats R` the pair runs R times, alternating, and the best
rate of each counts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from bench.generate import SEED, write_book

REPO = Path(__file__).resolve().parent.parent
RATIO_MIN = 0.5

MAPPING = """\
[file]
delimiter = ";"
[numbers]
format = "1.234,56"
[dates]
formats = ["DD.MM.YYYY"]
[commands.record_sale]
sale_id = "Beleg"
customer_id = "Kunde"
product_id = "Material"
quantity = "Menge"
amount = "Netto"
currency = "Waehrung"
invoice_date = "Datum"
"""


def german(value: str) -> str:
    """"-1234.50" as an SAP list writes it: "1.234,50-"."""
    negative = value.startswith("-")
    whole, _, fraction = value.lstrip("-").partition(".")
    grouped = f"{int(whole):,}".replace(",", ".")
    return f"{grouped},{fraction}" + ("-" if negative else "")


def write_csv(sales: Path, out: Path) -> None:
    """The sales of the JSONL book as an ERP's CSV export."""
    with sales.open("rb") as source, out.open("w", encoding="utf-8-sig", newline="") as target:
        target.write("Beleg;Kunde;Material;Menge;Netto;Waehrung;Datum\r\n")
        for line in source:
            sale = orjson.loads(line)
            day = date.fromisoformat(sale["invoice_date"])
            target.write(f"{sale['sale_id']};{sale['customer_id']};{sale['product_id']};"
                         f"{german(sale['quantity'])};{german(sale['amount'])};"
                         f"{sale['currency']};{day:%d.%m.%Y}\r\n")


def child(kind: str, database: Path, agreements: Path, sales: Path, mapping: Path
          ) -> dict[str, Any]:
    """In a fresh interpreter: apply the agreements, then time `kind` over the sales."""
    from ledger import Ledger
    from ledger.access import operator
    from ledger.importing import load_mapping, rows_of
    from ledger.service import LedgerService

    principal = operator("bench")
    with LedgerService(Ledger(f"sqlite:///{database}")) as service:
        with agreements.open("rb") as handle:
            created = service.load(principal, handle, source="bench-agreements")
        assert not created.rejected, created.rejected[:3]
        started = time.perf_counter()
        if kind == "apply":
            with sales.open("rb") as handle:
                report = service.load(principal, handle, source="bench-sales")
        else:
            sheet, _, rows = rows_of(sales, load_mapping(mapping))
            try:
                report = service.import_rows(principal, rows, source="bench-sales")
            finally:
                sheet.close()
        seconds = time.perf_counter() - started
    assert not report.rejected, report.rejected[:3]
    return {"kind": kind, "sales": report.accepted, "seconds": seconds,
            "sales_per_s": report.accepted / seconds}


def run_child(kind: str, database: Path, agreements: Path, sales: Path, mapping: Path
              ) -> dict[str, Any]:
    for path in database.parent.glob(database.name + "*"):
        path.unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench.import_bench", "--child", kind, "--database",
         str(database), "--agreements-file", str(agreements), "--sales-file", str(sales),
         "--mapping-file", str(mapping)],
        cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.import_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=1_000_000)
    parser.add_argument("--agreements", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2,000 sales, 20 agreements")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--child", choices=["apply", "import"], help=argparse.SUPPRESS)
    parser.add_argument("--database", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--agreements-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sales-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mapping-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(orjson.dumps(child(args.child, args.database, args.agreements_file,
                                 args.sales_file, args.mapping_file)).decode())
        return
    if args.quick:
        args.sales, args.agreements = 2000, 20
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    book = write_book(out, sales=args.sales, agreements=args.agreements, seed=args.seed,
                      name=f"import-{args.sales}")
    csv_path = out / f"import-{args.sales}-sales.csv"
    write_csv(book.sales_path, csv_path)
    mapping = out / "import-bench-mapping.toml"
    mapping.write_text(MAPPING)
    database = out / "import-bench.db"
    best: dict[str, dict[str, Any]] = {}
    for _ in range(max(1, args.repeats)):
        for kind, sales in (("apply", book.sales_path), ("import", csv_path)):
            result = run_child(kind, database, book.agreements_path, sales, mapping)
            assert result["sales"] == args.sales, result
            if kind not in best or result["sales_per_s"] > best[kind]["sales_per_s"]:
                best[kind] = result
            print(f"{kind:6} {args.sales:,} sales: {result['seconds']:.1f} s, "
                  f"{result['sales_per_s']:,.0f} sales/s", flush=True)
    for path in database.parent.glob(database.name + "*"):
        path.unlink()
    ratio = best["import"]["sales_per_s"] / best["apply"]["sales_per_s"]
    verdict = "PASS" if ratio >= RATIO_MIN else "MISS"
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(f"ratio import/apply = {ratio:.2f} (target >= {RATIO_MIN}): {verdict}")


if __name__ == "__main__":
    main()
