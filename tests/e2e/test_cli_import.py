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

    as_json = run("import", "sap-billing.csv", "--mapping", "sap-billing.toml", "--dry-run",
                  "--format", "json")
    report = as_json.json()
    assert (report["accepted"], report["duplicates"], report["rejected"]) == (0, 9, 1)
    assert (report["dry_run"], report["rows_read"], report["skipped_rows"]) == (True, 11, 1)
    assert report["rejections"][0]["line"] == 10

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


def us_number(text: str) -> Decimal:
    negative = text.startswith("(") and text.endswith(")")
    value = Decimal(text.strip("()").replace(",", ""))
    return -value if negative else value


def dynamics_sales(path: Path) -> list[dict[str, object]]:
    """The Dynamics sample's lines, read here without the importer."""
    from datetime import datetime

    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [{"customer": row["Invoice account"], "product": row["Item number"],
                 "quantity": us_number(row["Quantity"]), "amount": us_number(row["Net amount"]),
                 "day": datetime.strptime(row["Invoice date"], "%m/%d/%Y").date()}
                for row in csv.DictReader(handle)]


def deals(path: Path) -> list[dict[str, object]]:
    """The deals spreadsheet's agreements, read here with openpyxl without the importer."""
    from datetime import date, datetime, timedelta

    from openpyxl import load_workbook

    def day(value: object) -> date:
        if isinstance(value, datetime):
            return value.date()
        assert isinstance(value, int)
        return date(1899, 12, 30) + timedelta(days=value)

    book = load_workbook(path, read_only=True, data_only=True)
    rows = list(book["Deals"].iter_rows(values_only=True))
    book.close()
    header = list(rows[0])
    found = []
    for values in rows[1:]:
        row = dict(zip(header, values, strict=True))
        tiers = [(Decimal(str(row[f"Tier {n} from"])), Decimal(str(row[f"Tier {n} rate"])))
                 for n in (1, 2, 3) if row[f"Tier {n} from"] is not None]
        products = ({p.strip() for p in str(row["Products"]).split(",")}
                    if row["Products"] else None)
        found.append({"id": row["Agreement"], "customer": row["Customer"],
                      "start": day(row["Start"]), "end": day(row["End"]),
                      "basis": "amount" if row["Basis"] == "Net sales" else "quantity",
                      "incremental": row["Method"] == "Stepped", "tiers": tiers,
                      "products": products,
                      "cap": Decimal(str(row["Cap"])) if row["Cap"] is not None else None})
    return found


def accrued(deal: dict[str, object], lines: list[dict[str, object]]) -> Decimal:
    """Contract section 2, earned method, for one deal: eligible lines, B, then the tiers."""
    eligible = [s for s in lines if s["customer"] == deal["customer"]
                and deal["start"] <= s["day"] <= deal["end"]
                and (deal["products"] is None or s["product"] in deal["products"])]
    quantity = sum((s["quantity"] for s in eligible), Decimal(0))
    amount = sum((s["amount"] for s in eligible), Decimal(0))
    basis = amount if deal["basis"] == "amount" else quantity
    tiers: list[tuple[Decimal, Decimal]] = deal["tiers"]
    if basis <= 0:
        value = Decimal(0)
    elif deal["incremental"]:
        bounds = [f for f, _ in tiers[1:]] + [basis]
        value = sum((rate * max(Decimal(0), min(basis, upper) - low)
                     for (low, rate), upper in zip(tiers, bounds, strict=True)), Decimal(0))
    else:
        rate = max((r for f, r in tiers if basis >= f), default=Decimal(0))
        value = rate * basis  # a percent deal's M is the amount, a per-unit deal's the units
    if deal["cap"] is not None:
        value = min(value, deal["cap"])
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def test_the_deals_spreadsheet_and_the_dynamics_export_give_the_liability_computed(
        run: Runner) -> None:
    for name in ("deals.xlsx", "deals-spreadsheet.toml", "dynamics-invoice-lines.csv",
                 "dynamics-invoice-lines.toml"):
        shutil.copy(EXAMPLES / name, run.cwd / name)
    agreements = run("import", "deals.xlsx", "--mapping", "deals-spreadsheet.toml",
                     "--sheet", "Deals")
    assert agreements.code == 0, str(agreements)
    assert agreements.counts() == (3, 0, 0)
    sold = run("import", "dynamics-invoice-lines.csv", "--mapping",
               "dynamics-invoice-lines.toml")
    assert sold.code == 0, str(sold)
    lines = dynamics_sales(run.cwd / "dynamics-invoice-lines.csv")
    assert sold.counts() == (len(lines), 0, 0)

    rows = rows_by_id(run("liability", "--as-of", AS_OF, "--format", "json").json())
    expected = {deal["id"]: accrued(deal, lines) for deal in deals(run.cwd / "deals.xlsx")}
    assert {k: rows[k]["accrued"] for k in expected} == {k: str(v) for k, v in
                                                          expected.items()}
    assert all(rows[k]["currency"] == "USD" for k in expected)  # the mapping's constant
    assert len(set(expected.values())) == 3  # the three deals differ: a real check


def test_an_unknown_sheet_is_named_with_the_sheets_the_workbook_has(run: Runner) -> None:
    for name in ("deals.xlsx", "deals-spreadsheet.toml"):
        shutil.copy(EXAMPLES / name, run.cwd / name)
    done = run("import", "deals.xlsx", "--mapping", "deals-spreadsheet.toml", "--sheet", "Q3")
    assert done.code == 2
    assert "--sheet Q3" in done.stderr and "Deals, Notes" in done.stderr


def test_the_committed_deals_workbook_is_the_one_its_script_writes(tmp_path: Path) -> None:
    import runpy

    from openpyxl import load_workbook

    script = runpy.run_path(str(EXAMPLES / "make_deals_xlsx.py"))
    script["write"](tmp_path / "deals.xlsx")

    def cells(path: Path) -> list[tuple[object, ...]]:
        book = load_workbook(path, read_only=True, data_only=True)
        try:
            return list(book["Deals"].iter_rows(values_only=True))
        finally:
            book.close()

    assert cells(tmp_path / "deals.xlsx") == cells(EXAMPLES / "deals.xlsx")


def test_import_help_shows_a_minimal_mapping(run: Runner) -> None:
    done = run("import", "--help")
    assert done.code == 0
    for line in ("[numbers]", 'format = "1.234,56"', "[commands.record_sale]",
                 'sale_id = "{Invoice}-{Item}"'):
        assert line in done.stdout, done.stdout


def test_a_dry_run_before_the_first_import_previews_against_an_empty_store_and_creates_none(
        run: Runner) -> None:
    for name in ("deals.xlsx", "deals-spreadsheet.toml"):
        shutil.copy(EXAMPLES / name, run.cwd / name)
    preview = run("import", "deals.xlsx", "--mapping", "deals-spreadsheet.toml", "--dry-run")
    assert preview.code == 0, str(preview)
    assert preview.counts() == (3, 0, 0)
    assert "previews the import into an empty store" in preview.stderr
    assert not (run.cwd / ".rebate-ledger" / "ledger.db").exists()


def test_a_latin1_export_is_refused_whole_until_its_encoding_is_given(run: Runner) -> None:
    (run.cwd / "m.toml").write_text(
        '[file]\ndelimiter = ";"\n[numbers]\nformat = "1.234,56"\n[dates]\n'
        'formats = ["DD.MM.YYYY"]\n[commands.record_sale]\nsale_id = "Beleg"\n'
        'customer_id = "Kunde"\nproduct_id = "Artikel"\nquantity = "Menge"\n'
        'amount = "Betrag"\ncurrency = "Währung"\ninvoice_date = "Datum"\n', encoding="utf-8")
    (run.cwd / "export.csv").write_bytes(
        "Beleg;Kunde;Artikel;Menge;Betrag;Währung;Datum\r\n"
        "1;Müller KG;Schraube M4;1.000;1.234,50;EUR;31.12.2025\r\n".encode("latin-1"))
    refused = run("import", "export.csv", "--mapping", "m.toml")
    assert refused.code == 2
    assert "--encoding latin-1" in refused.stderr and "nothing was imported" in refused.stderr
    done = run("import", "export.csv", "--mapping", "m.toml", "--encoding", "latin-1")
    assert done.code == 0, str(done)
    assert done.counts() == (1, 0, 0)


def test_a_mapping_that_is_not_toml_is_named_once_with_the_place(run: Runner) -> None:
    (run.cwd / "m.toml").write_text('[commands.record_sale\nsale_id = "A"\n')
    (run.cwd / "f.csv").write_text("A\n1\n")
    done = run("import", "f.csv", "--mapping", "m.toml")
    assert done.code == 2
    assert done.stderr.count("m.toml") == 1 and "is not valid TOML" in done.stderr
    assert "line 1" in done.stderr
