"""`rebate-ledger import FILE --mapping MAPPING` as a user types it, on the sample files of
examples/mappings/: the liability that results equals the one computed here from the sample,
a dry run stores nothing, a bad row is rejected, kept and named while the others apply."""

from __future__ import annotations

import csv
import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from .conftest import Runner, rows_by_id

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mappings"
AS_OF = "2025-12-31"
#: The agreement the SAP sample's sales count toward: 1 % from 0, 2 % from 50,000 and 3 % from
#: 100,000 of the net amount, retroactive.
SAP_TIERS = [("0", "0.01"), ("50000", "0.02"), ("100000", "0.03")]


def sap_agreement(agreement_id: str, customer_id: str) -> dict[str, object]:
    return {"type": "create_agreement", "agreement_id": agreement_id,
            "customer_id": customer_id, "currency": "EUR", "period_start": "2025-01-01",
            "period_end": "2025-12-31", "basis": "amount", "tier_method": "retroactive",
            "rate_kind": "percent", "tiers": [{"from": f, "rate": r} for f, r in SAP_TIERS]}


def german(text: str) -> Decimal:
    negative = text.endswith("-")
    value = Decimal(text.rstrip("-").replace(".", "").replace(",", "."))
    return -value if negative else value


def sap_basis(path: Path, customer: str) -> Decimal:
    """The customer's net amount in the SAP sample, read here without the importer: F2 adds,
    G2 (credit memo) subtracts, S1 cancels the item it names, other types move nothing."""
    lines: dict[str, Decimal] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle, delimiter=";"):
            if row["KUNAG"] != customer:
                continue
            key = f"{row['VBELN']}-{row['POSNR']}"
            if row["FKART"] == "F2":
                lines[key] = german(row["NETWR"])
            elif row["FKART"] == "G2":
                lines[key] = -german(row["NETWR"])
            elif row["FKART"] == "S1":
                del lines[f"{row['SFAKN']}-{row['POSNR']}"]
    return sum(lines.values(), Decimal(0))


def retroactive(basis: Decimal, tiers: list[tuple[str, str]]) -> Decimal:
    rate = max((Decimal(r) for f, r in tiers if basis >= Decimal(f)), default=Decimal(0))
    return (rate * basis).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def test_the_sap_billing_sample_imports_and_its_liability_is_the_one_computed(
        run: Runner) -> None:
    for name in ("sap-billing.csv", "sap-billing.toml"):
        shutil.copy(EXAMPLES / name, run.cwd / name)
    run.write("agreements.jsonl", [sap_agreement("A-100001", "0000100001"),
                                   sap_agreement("A-100002", "0000100002")])
    assert run("apply", "agreements.jsonl").code == 0

    preview = run("import", "sap-billing.csv", "--mapping", "sap-billing.toml", "--dry-run")
    assert preview.code == 0, str(preview)
    assert "dry run, nothing stored" in preview.stdout
    assert preview.counts() == (10, 0, 0)
    before = rows_by_id(run("liability", "--as-of", AS_OF, "--format", "json").json())
    assert before["A-100001"]["accrued"] == "0.00"  # the dry run stored nothing

    imported = run("import", "sap-billing.csv", "--mapping", "sap-billing.toml")
    assert imported.code == 0, str(imported)
    assert imported.counts() == (10, 0, 0)
    assert "1 skipped by the mapping" in imported.stdout  # the F5 pro forma

    rows = rows_by_id(run("liability", "--as-of", AS_OF, "--format", "json").json())
    for agreement_id, customer in (("A-100001", "0000100001"), ("A-100002", "0000100002")):
        basis = sap_basis(EXAMPLES / "sap-billing.csv", customer)
        assert Decimal(rows[agreement_id]["basis"]) == basis
        assert rows[agreement_id]["accrued"] == str(retroactive(basis, SAP_TIERS))

    again = run("import", "sap-billing.csv", "--mapping", "sap-billing.toml")
    assert again.code == 1  # the same file twice moves no money: duplicates, and the
    assert again.counts() == (0, 9, 1)  # cancellation of an already reversed sale is refused
    assert "rejected row 10: reverse_sale: sale_id:" in again.stdout


def test_a_bad_row_is_rejected_with_its_row_column_and_value_and_kept(run: Runner) -> None:
    shutil.copy(EXAMPLES / "sap-billing.toml", run.cwd / "sap-billing.toml")
    (run.cwd / "bad.csv").write_bytes(
        b"VBELN;POSNR;FKDAT;KUNAG;MATNR;FKIMG;NETWR;WAERK;FKART;SFAKN\r\n"
        b"1;10;15.01.2025;C1;M1;1,000;10,00;EUR;F2;\r\n"
        b"2;10;31.02.2025;C1;M1;1,000;10,00;EUR;F2;\r\n"
        b"3;10;15.01.2025;C1;M1;1,000;10,00;EUR;F2;\r\n")
    done = run("import", "bad.csv", "--mapping", "sap-billing.toml")
    assert done.code == 1, str(done)
    assert done.counts() == (2, 0, 1)
    assert ("rejected row 3: record_sale: row 3, column FKDAT = '31.02.2025': is not a day of "
            "the calendar") in done.stdout
    kept = run("rejections", "--format", "json")
    assert kept.code == 0, str(kept)
    (rejection,) = kept.json()["rejections"]
    assert rejection["line"] == 3 and rejection["field"] == "invoice_date"
    assert "31.02.2025" in rejection["reason"]


def test_a_mapping_error_is_one_line_naming_the_key_and_nothing_is_stored(
        run: Runner) -> None:
    (run.cwd / "m.toml").write_text('[numbers]\nformat = "1.234.56"\n'
                                    '[commands.record_sale]\nsale_id = "A"\n')
    (run.cwd / "f.csv").write_text("A\n1\n")
    done = run("import", "f.csv", "--mapping", "m.toml")
    assert done.code == 2
    assert "numbers.format: '1.234.56' is not a number format" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (run.cwd / ".rebate-ledger").exists()
