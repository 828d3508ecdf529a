"""ledger.importing: each parsing rule of a mapping (numbers, dates, delimiters, encodings,
choosing a row's command, tiers over columns and over rows), the rejections of rows that
cannot be mapped, and the errors of a mapping file itself. No store: commands only."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import commands as c
from ledger.importing import (
    NUMBER_FORMATS,
    CellError,
    DateFormat,
    ImportUnreadable,
    MappedRow,
    MappingError,
    NumberFormat,
    excel_day,
    parse_mapping,
    rows_of,
)

SALE = {
    "sale_id": "{Invoice}-{Item}",
    "customer_id": "Customer",
    "product_id": "Material",
    "quantity": "Qty",
    "amount": "Net",
    "currency": "Currency",
    "invoice_date": "Date",
}
HEADER = "Invoice,Item,Customer,Material,Qty,Net,Currency,Date"


def mapping(**tables: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"commands": {"record_sale": dict(SALE)}}
    document.update(tables)
    return document


def imported(tmp_path: Path, text: str | bytes, document: dict[str, Any], name: str = "f.csv",
             **options: Any) -> list[MappedRow]:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    sheet, _, rows = rows_of(path, parse_mapping(document), **options)
    try:
        return list(rows)
    finally:
        sheet.close()


def sales(rows: list[MappedRow]) -> list[c.RecordSale]:
    found = []
    for row in rows:
        assert row.problem is None, row.problem
        assert isinstance(row.command, c.RecordSale)
        found.append(row.command)
    return found


# numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("example", "text", "expected"), [
    ("1,234.56", "1,234.56", "1234.56"),
    ("1,234.56", "1234.56", "1234.56"),
    ("1,234.56", "1,234,567.5", "1234567.5"),
    ("1.234,56", "1.234,56", "1234.56"),
    ("1.234,56", "10,000", "10.000"),
    ("1.234,56", "1.234,56-", "-1234.56"),
    ("1 234,56", "1 234,56", "1234.56"),
    ("1 234,56", "1\u00a0234,56", "1234.56"),
    ("1 234,56", "1\u202f234\u202f567,01", "1234567.01"),
    ("1,234.56", "(1,234.56)", "-1234.56"),
    ("1,234.56", "-0.10", "-0.10"),
    ("1,234.56", "+7", "7"),
    ("1,234.56", "12.5%", "0.125"),
    ("1'234.56", "1'234.56", "1234.56"),
])
def test_a_number_in_the_mapped_format_is_read_exactly(example: str, text: str,
                                                      expected: str) -> None:
    value = NumberFormat.named(example).parse(text)
    assert value == Decimal(expected)
    assert str(value) == expected  # the digits as written: no float passed in between


@pytest.mark.parametrize(("example", "text"), [
    ("1,234.56", "1.234,56"),     # the other convention
    ("1.234,56", "1234.56"),      # a point where the decimal mark is a comma
    ("1,234.56", "1,23,456.00"),  # groups of three only
    ("1,234.56", "12a"),
    ("1,234.56", "(5-)"),         # two negative signs
    ("1,234.56", "-5-"),
    ("1,234.56", ""),
    ("1,234.56", "1e5"),
])
def test_a_number_not_in_the_mapped_format_is_refused_naming_the_format(example: str,
                                                                      text: str) -> None:
    with pytest.raises(CellError, match="number|negative"):
        NumberFormat.named(example).parse(text)


def test_an_unknown_number_format_names_the_key_and_the_forms_to_write() -> None:
    with pytest.raises(MappingError, match="numbers.format: '1.234.56' is not a number "
                       "format.*1,234.56"):
        parse_mapping(mapping(numbers={"format": "1.234.56"}))


def _written(value: Decimal, example: str, negative_style: str) -> str:
    group, mark = NUMBER_FORMATS[example]
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)).rjust(-exponent + 1, "0") if exponent < 0 else (
        "".join(map(str, digits)) + "0" * exponent)
    whole, fraction = (text[:len(text) + exponent], text[len(text) + exponent:]) \
        if exponent < 0 else (text, "")
    whole = whole.lstrip("0") or "0"
    if group:
        parts = []
        while len(whole) > 3:
            parts.insert(0, whole[-3:])
            whole = whole[:-3]
        whole = group.join([whole, *parts])
    body = whole + (mark + fraction if fraction else "")
    if not sign:
        return body
    return {"leading": "-" + body, "trailing": body + "-", "parentheses": f"({body})"}[
        negative_style]


@given(
    value=st.decimals(min_value=Decimal("-1e15"), max_value=Decimal("1e15"), places=4,
                      allow_nan=False, allow_infinity=False),
    example=st.sampled_from(sorted(NUMBER_FORMATS)),
    negative_style=st.sampled_from(["leading", "trailing", "parentheses"]),
)
def test_any_decimal_written_in_any_format_reads_back_equal(value: Decimal, example: str,
                                                           negative_style: str) -> None:
    text = _written(value, example, negative_style)
    assert NumberFormat.named(example).parse(text) == value, text


# dates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("form", "text", "expected"), [
    ("DD.MM.YYYY", "31.12.2025", dt.date(2025, 12, 31)),
    ("DD.MM.YYYY", "1.2.2025", dt.date(2025, 2, 1)),
    ("MM/DD/YYYY", "12/31/2025", dt.date(2025, 12, 31)),
    ("YYYY-MM-DD", "2025-12-31", dt.date(2025, 12, 31)),
    ("YYYYMMDD", "20251231", dt.date(2025, 12, 31)),
    ("excel", "46022", dt.date(2025, 12, 31)),
])
def test_a_date_in_a_mapped_form_is_read(form: str, text: str, expected: dt.date) -> None:
    assert DateFormat.named(form).parse(text) == expected


def test_excel_serial_days_count_from_1899_12_30() -> None:
    assert excel_day(45658) == dt.date(2025, 1, 1)
    assert excel_day(Decimal("45658.75")) == dt.date(2025, 1, 1)  # a time of day is dropped
    with pytest.raises(CellError, match="Excel serial day"):
        excel_day(60)  # Excel's 29 February 1900, a day that never was


def test_a_date_that_is_not_in_the_calendar_is_refused() -> None:
    with pytest.raises(CellError, match="not a day of the calendar"):
        DateFormat.named("DD.MM.YYYY").parse("31.02.2025")
    assert DateFormat.named("DD.MM.YYYY").parse("2025-02-01") is None  # not this form


def test_a_date_format_without_day_month_and_year_names_the_key() -> None:
    with pytest.raises(MappingError, match="dates.formats: 'DD.MM' is not a date format"):
        parse_mapping(mapping(dates={"formats": ["DD.MM"]}))


# whole files -----------------------------------------------------------------------------------


def test_a_semicolon_file_with_bom_crlf_and_quoted_fields_is_read(tmp_path: Path) -> None:
    text = ("\ufeffInvoice;Item;Customer;Material;Qty;Net;Currency;Date\r\n"
            '9001;10;C1;"Widget; large";3;1.234,50;EUR;31.01.2025\r\n'
            '9001;20;C1;"Say ""hi""";1;0,50-;EUR;31.01.2025\r\n')
    rows = imported(tmp_path, text, mapping(numbers={"format": "1.234,56"},
                                            dates={"formats": ["DD.MM.YYYY"]}))
    first, second = sales(rows)
    assert (first.sale_id, first.product_id, first.amount) == ("9001-10", "Widget; large",
                                                               Decimal("1234.50"))
    assert (second.product_id, second.amount) == ('Say "hi"', Decimal("-0.50"))
    assert first.invoice_date == dt.date(2025, 1, 31)
    assert [r.number for r in rows] == [2, 3]  # the header is row 1


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_sniffed_when_the_mapping_gives_none(tmp_path: Path,
                                                             delimiter: str) -> None:
    text = (HEADER.replace(",", delimiter) + "\n"
            + delimiter.join(["1", "1", "C1", "P1", "2", "20.00", "EUR", "2025-03-01"]) + "\n")
    (sale,) = sales(imported(tmp_path, text, mapping()))
    assert (sale.quantity, sale.amount) == (Decimal("2"), Decimal("20.00"))


def test_latin1_is_read_when_told_and_refused_with_the_hint_when_not(tmp_path: Path) -> None:
    text = (HEADER + "\n" + "1,1,Müller GmbH,P1,2,20.00,EUR,2025-03-01\n").encode("latin-1")
    with pytest.raises(ImportUnreadable, match="not UTF-8.*--encoding latin-1"):
        imported(tmp_path, text, mapping())
    (sale,) = sales(imported(tmp_path, text, mapping(), encoding="latin-1"))
    assert sale.customer_id == "Müller GmbH"
    (sale,) = sales(imported(tmp_path, text, mapping(file={"encoding": "latin-1"})))
    assert sale.customer_id == "Müller GmbH"


def test_a_row_that_cannot_be_mapped_is_rejected_naming_row_column_and_value(
        tmp_path: Path) -> None:
    text = (HEADER + "\n"
            "1,1,C1,P1,2,20.00,EUR,2025-03-01\n"
            "2,1,C1,P1,2,2O.00,EUR,2025-03-01\n"    # a letter O in the amount
            "3,1,C1,P1,2,20.00,EUR,2025-02-30\n"    # no such day
            "4,1,,P1,2,20.00,EUR,2025-03-01\n"      # the customer is empty
            "5,1,C1,P1,2,20.00,EURO,2025-03-01\n"   # the contract refuses the currency
            "6,1,C1,P1,2,20.00,EUR,2025-03-02\n")
    rows = imported(tmp_path, text, mapping())
    assert [r.number for r in rows] == [2, 3, 4, 5, 6, 7]
    assert rows[0].command is not None and rows[5].command is not None
    reasons = [str(r.problem) for r in rows[1:5]]
    assert reasons[0].startswith("row 3, column Net = '2O.00': is not a number written as "
                                 "1234.56")
    assert reasons[1].startswith("row 4, column Date = '2025-02-30': is not a day of the "
                                 "calendar")
    assert reasons[2] == ("row 5, column Customer = '': is empty; customer_id is required "
                          "for record_sale")
    assert reasons[3].startswith("row 6, column Currency = 'EURO': currency:")
    assert [r.problem.field for r in rows[1:5] if r.problem] == [
        "amount", "invoice_date", "customer_id", "currency"]


def test_a_row_with_more_cells_than_the_header_is_rejected(tmp_path: Path) -> None:
    rows = imported(tmp_path, HEADER + "\n1,1,C1,P1,2,20.00,EUR,2025-03-01,extra\n", mapping())
    assert "the row has 9 cells, the header 8 columns" in str(rows[0].problem)


def test_a_column_the_mapping_reads_but_the_header_lacks_refuses_the_file(
        tmp_path: Path) -> None:
    with pytest.raises(ImportUnreadable, match="column 'Net', which the file's header does "
                       "not have \\(is 'Net' written 'Netto' in the file\\?\\)"):
        imported(tmp_path, HEADER.replace("Net", "Netto") + "\n", mapping())


def test_blank_rows_are_left_out_and_rows_keep_their_file_numbers(tmp_path: Path) -> None:
    text = HEADER + "\n\n,,,,,,,\n1,1,C1,P1,2,20.00,EUR,2025-03-01\n"
    rows = imported(tmp_path, text, mapping())
    assert [r.number for r in rows] == [4]


def test_constants_fill_fields_the_file_does_not_have(tmp_path: Path) -> None:
    document = mapping(constants={"currency": "USD", "recorded_at": "2025-04-01T00:00:00Z"})
    del document["commands"]["record_sale"]["currency"]
    (sale,) = sales(imported(tmp_path, HEADER + "\n1,1,C1,P1,2,20.00,EUR,2025-03-01\n",
                             document))
    assert sale.currency == "USD"
    assert sale.recorded_at == dt.datetime(2025, 4, 1, tzinfo=dt.UTC)


# choosing a row's command -------------------------------------------------------------------


def test_a_document_type_column_chooses_the_command_and_a_credit_memo_is_a_return(
        tmp_path: Path) -> None:
    credit = dict(SALE, quantity={"column": "Qty", "negate": True},
                  amount={"column": "Net", "negate": True})
    document = {
        "choose": {"column": "Type", "values": {"F2": "invoice", "G2": "credit",
                                                "S1": "cancel"}, "skip": ["F5"]},
        "commands": {
            "invoice": {"type": "record_sale", **SALE},
            "credit": {"type": "record_sale", **credit},
            "cancel": {"type": "reverse_sale", "sale_id": "{Ref}-{Item}",
                       "reversed_on": "Date"},
        },
    }
    text = (HEADER + ",Type,Ref\n"
            "1,1,C1,P1,2,20.00,EUR,2025-03-01,F2,\n"
            "2,1,C1,P1,1,10.00,EUR,2025-03-02,G2,\n"
            "3,1,C1,P1,1,10.00,EUR,2025-03-02,F5,\n"
            "4,1,C1,P1,2,20.00,EUR,2025-03-03,S1,1\n"
            "5,1,C1,P1,2,20.00,EUR,2025-03-03,ZZ,\n")
    rows = imported(tmp_path, text, document)
    assert [r.number for r in rows] == [2, 3, 5, 6]  # row 4 (F5) skipped
    invoice, credit_memo, cancel, unknown = rows
    assert isinstance(credit_memo.command, c.RecordSale)
    assert (credit_memo.command.quantity, credit_memo.command.amount) == (Decimal("-1"),
                                                                         Decimal("-10.00"))
    assert isinstance(cancel.command, c.ReverseSale)
    assert (cancel.command.sale_id, cancel.command.reversed_on) == ("1-1",
                                                                    dt.date(2025, 3, 3))
    assert str(unknown.problem).startswith("row 6, column Type = 'ZZ': is not a value the "
                                           "mapping knows")


# tiers ----------------------------------------------------------------------------------------

AGREEMENT = {
    "agreement_id": "Agreement",
    "customer_id": "Customer",
    "currency": {"value": "EUR"},
    "period_start": "Start",
    "period_end": "End",
    "basis": {"value": "amount"},
    "tier_method": {"column": "Method", "map": {"Retro": "retroactive",
                                                "Stufen": "incremental"}},
    "rate_kind": {"value": "percent"},
    "products": {"column": "Products", "split": ","},
    "cap": "Cap",
}


def test_tiers_spread_over_columns_become_the_tier_list(tmp_path: Path) -> None:
    document = {"numbers": {"format": "1,234.56"}, "commands": {"create_agreement": dict(
        AGREEMENT, tiers={"from": "tier{n}_from", "rate": "tier{n}_rate", "percent": True})}}
    text = ("Agreement,Customer,Start,End,Method,Products,Cap,tier1_from,tier1_rate,"
            "tier2_from,tier2_rate,tier3_from,tier3_rate\n"
            'A1,C1,2025-01-01,2025-12-31,Retro,"P1, P2",,0,1,"10,000",2.5,,\n'
            "A2,C2,2025-01-01,2025-12-31,Stufen,,5000,0,2%,,,,\n"
            "A3,C3,2025-01-01,2025-12-31,Retro,,,0,1,,,50000,3\n")
    first, second, third = imported(tmp_path, text, document)
    assert isinstance(first.command, c.CreateAgreement)
    assert [(t.threshold, t.rate) for t in first.command.tiers] == [
        (Decimal("0"), Decimal("0.01")), (Decimal("10000"), Decimal("0.025"))]
    assert first.command.products == ["P1", "P2"] and first.command.cap is None
    assert isinstance(second.command, c.CreateAgreement)
    assert second.command.tier_method == "incremental" and second.command.cap == Decimal(5000)
    assert second.command.tiers[0].rate == Decimal("0.02")  # "2%" is 2 % whatever percent says
    assert str(third.problem).startswith("row 4, column tier3_from = '50000': a tier after "
                                         "the empty tier2_from")


def test_tiers_over_consecutive_rows_of_one_agreement_become_one_command(
        tmp_path: Path) -> None:
    document = {"commands": {"create_agreement": dict(
        AGREEMENT, tiers={"from": "From", "rate": "Rate"})}}
    text = ("Agreement,Customer,Start,End,Method,Products,Cap,From,Rate\n"
            "A1,C1,2025-01-01,2025-12-31,Retro,,,0,0.01\n"
            "A1,,,,,,,10000,0.02\n"
            "A1,,,,,,,50000,0.03\n"
            "A2,C2,2025-01-01,2025-12-31,Retro,,,0,0.05\n"
            "A3,C3,2025-01-01,2025-12-31,Retro,,,0,0.01\n"
            "A3,C9,,,,,,100,0.02\n")
    first, second, third = imported(tmp_path, text, document)
    assert first.number == 2 and second.number == 5 and third.number == 6
    assert isinstance(first.command, c.CreateAgreement)
    assert [t.rate for t in first.command.tiers] == [Decimal("0.01"), Decimal("0.02"),
                                                     Decimal("0.03")]
    assert isinstance(second.command, c.CreateAgreement) and len(second.command.tiers) == 1
    assert str(third.problem).startswith("rows 6-7, column Customer = 'C9': differs from row 6")


# the mapping file -------------------------------------------------------------------------------


@pytest.mark.parametrize(("document", "message"), [
    ({"commands": {"record_sale": dict(SALE, amount_net="Net")}},
     "commands.record_sale.amount_net: is not a field of record_sale"),
    ({"commands": {"record_sale": {k: v for k, v in SALE.items() if k != "amount"}}},
     "commands.record_sale: record_sale needs amount"),
    ({"commands": {"sale": dict(SALE)}},
     "commands.sale: 'sale' is not a contract command"),
    ({"commands": {"record_sale": dict(SALE, amount={"column": "Net", "value": "1"})}},
     "commands.record_sale.amount: give exactly one of column"),
    ({"commands": {"record_sale": dict(SALE, customer_id={"column": "C", "negate": True})}},
     "commands.record_sale.customer_id.negate: only for numbers"),
    ({"file": {"delimiter": ";;"}, "commands": {"record_sale": dict(SALE)}},
     "file.delimiter: one character"),
    ({"commands": {"a": {"type": "record_sale", **SALE},
                   "b": {"type": "record_sale", **SALE}}},
     "choose: 2 commands are mapped"),
    ({"choose": {"column": "T", "values": {"F2": "invoice"}},
      "commands": {"record_sale": dict(SALE)}},
     "choose.values.F2: names 'invoice', which is not a"),
    ({"constants": {"claim_id": "X"}, "commands": {"record_sale": dict(SALE)}},
     "constants.claim_id: is not a field of any mapped command"),
    ({"dates": {"timezone": "Mars/Olympus"}, "commands": {"record_sale": dict(SALE)}},
     "dates.timezone: 'Mars/Olympus' is not a time zone"),
    ({"sheets": {}, "commands": {"record_sale": dict(SALE)}},
     "sheets: is not a key of this table"),
])
def test_a_mapping_error_names_the_key_and_what_to_write(document: dict[str, Any],
                                                        message: str) -> None:
    with pytest.raises(MappingError) as raised:
        parse_mapping(document)
    assert str(raised.value).startswith(message), str(raised.value)


# workbooks ------------------------------------------------------------------------------------


def workbook(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def test_a_workbook_gives_numbers_dates_and_serial_days_from_its_cells(tmp_path: Path) -> None:
    path = workbook(tmp_path / "sales.xlsx", {
        "Cover": [["not this sheet"]],
        "Sales": [
            HEADER.split(","),
            [9001, 10, 100001, "P1", 3, 1234.56, "EUR", dt.datetime(2025, 1, 31)],
            [9001, 20, 100001, "P2", 1.5, "1.234,50", "EUR", 45688],  # 2025-01-31 as a serial
            [None, None, None, None, None, None, None, None],
            [9002, 10, 100002, "P1", 2, 0.1, "EUR", "28.02.2025"],
        ],
    })
    document = mapping(numbers={"format": "1.234,56"},
                       dates={"formats": ["DD.MM.YYYY", "excel"]})
    rows = imported(tmp_path, path.read_bytes(), document, name="sales.xlsx", sheet="Sales")
    first, second, third = sales(rows)
    assert [r.number for r in rows] == [2, 3, 5]
    assert (first.sale_id, first.customer_id, first.amount) == ("9001-10", "100001",
                                                                Decimal("1234.56"))
    assert first.invoice_date == dt.date(2025, 1, 31) == second.invoice_date
    assert (second.quantity, second.amount) == (Decimal("1.5"), Decimal("1234.50"))
    assert third.amount == Decimal("0.1")  # the cell's double read as the number it shows
    assert third.invoice_date == dt.date(2025, 2, 28)


def test_a_serial_day_in_a_workbook_needs_excel_among_the_date_formats(tmp_path: Path) -> None:
    path = workbook(tmp_path / "s.xlsx", {"S": [HEADER.split(","),
                                                [1, 1, "C1", "P1", 1, 1, "EUR", 45688]]})
    (row,) = imported(tmp_path, path.read_bytes(), mapping(), name="s.xlsx")
    assert str(row.problem).startswith("row 2, column Date = '45688': is a number, not a date; "
                                       "if it is an Excel serial day")


def test_the_first_sheet_is_read_without_sheet_and_an_unknown_sheet_is_named(
        tmp_path: Path) -> None:
    path = workbook(tmp_path / "s.xlsx", {
        "First": [HEADER.split(","), [1, 1, "C1", "P1", 1, 1, "EUR", dt.date(2025, 1, 2)]],
        "Second": [["x"]]})
    (sale,) = sales(imported(tmp_path, path.read_bytes(), mapping(), name="s.xlsx"))
    assert sale.invoice_date == dt.date(2025, 1, 2)
    with pytest.raises(ImportUnreadable, match="--sheet Third: .* its sheets: First, Second"):
        imported(tmp_path, path.read_bytes(), mapping(), name="s.xlsx", sheet="Third")


def test_a_file_that_is_not_a_workbook_is_unreadable_as_a_whole(tmp_path: Path) -> None:
    with pytest.raises(ImportUnreadable, match="not a readable .xlsx workbook"):
        imported(tmp_path, b"Invoice,Item\n1,2\n", mapping(), name="s.xlsx")


def test_a_row_the_csv_reader_refuses_is_rejected_alone(tmp_path: Path) -> None:
    text = (HEADER + "\n1,1,C1,P1,2,20.00,EUR,2025-03-01\n"
            f"2,1,C1,{'P' * 200_000},2,20.00,EUR,2025-03-01\n"  # over the field size bound
            "3,1,C1,P\x001,2,20.00,EUR,2025-03-01\n4,1,C1,P1,2,20.00,EUR,2025-03-01\n")
    first, refused, nul, last = imported(tmp_path, text, mapping())
    assert first.command is not None and last.command is not None
    assert (refused.number, nul.number, last.number) == (3, 4, 5)
    assert str(refused.problem).startswith("row 3: the CSV reader refused it: field larger")
    assert str(nul.problem).startswith("row 4, column Material = 'P\\x001': product_id: its "
                                       "value holds a NUL character")


def test_bytes_that_are_not_utf8_past_the_start_reject_their_row_with_the_hint(
        tmp_path: Path) -> None:
    good = "1,1,C1,P1,2,20.00,EUR,2025-03-01\n"
    text = (HEADER + "\n" + good * 5000).encode() + "2,1,Müller,P1,2,2,EUR,2025-03-01\n".encode(
        "latin-1") + good.encode()
    rows = imported(tmp_path, text, mapping())
    assert len(rows) == 5002
    bad = [r for r in rows if r.problem is not None]
    assert [r.number for r in bad] == [5002]
    assert "column Customer" in str(bad[0].problem)
    assert "--encoding latin-1" in str(bad[0].problem)


def test_rows_above_the_header_row_are_left_out(tmp_path: Path) -> None:
    text = "Sales export\nprinted 2025-04-01\n" + HEADER + "\n1,1,C1,P1,2,20.00,EUR,2025-03-01\n"
    rows = imported(tmp_path, text, mapping(file={"header_row": 3}))
    assert [r.number for r in rows] == [4] and rows[0].command is not None


def test_the_minimal_mapping_import_help_shows_is_a_valid_mapping(tmp_path: Path) -> None:
    import tomllib

    from ledger.cli.importing import MINIMAL_MAPPING

    document = tomllib.loads(MINIMAL_MAPPING)
    text = ("Invoice;Item;Customer;Material;Qty;Net;Date\n"
            "9001;10;C1;M1;2;1.234,50;31.12.2025\n")
    (sale,) = sales(imported(tmp_path, text, document))
    assert (sale.sale_id, sale.amount, sale.currency) == ("9001-10", Decimal("1234.50"), "EUR")


def test_encoding_is_refused_for_a_workbook(tmp_path: Path) -> None:
    path = workbook(tmp_path / "s.xlsx", {"S": [HEADER.split(",")]})
    with pytest.raises(ImportUnreadable, match="--encoding latin-1: only for CSV files"):
        imported(tmp_path, path.read_bytes(), mapping(), name="s.xlsx", encoding="latin-1")


_CELL = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "-", "()", "1.234,56-", "(5)", "31.02.2025", "1e9", "NaN",
                     "\u00a0", "12%", "EUR", "2025-01-01", "99999999999999999999999"]),
)


@given(cells=st.lists(st.lists(_CELL, min_size=0, max_size=10), min_size=1, max_size=5))
def test_any_cells_become_a_command_or_a_named_rejection_never_an_error(
        tmp_path_factory: pytest.TempPathFactory, cells: list[list[str]]) -> None:
    import csv as csv_module
    import io

    out = io.StringIO()
    writer = csv_module.writer(out, delimiter=";")
    writer.writerow(HEADER.split(","))
    writer.writerows(cells)
    document = mapping(file={"delimiter": ";"}, numbers={"format": "1.234,56"},
                       dates={"formats": ["DD.MM.YYYY", "excel"]})
    rows = imported(tmp_path_factory.mktemp("any"), out.getvalue(), document)
    for row in rows:
        assert (row.command is None) != (row.problem is None), row
        if row.problem is not None:
            assert str(row.problem).startswith(f"row {row.number}"), row.problem


def test_tier_rows_may_leave_the_choosing_column_empty(tmp_path: Path) -> None:
    document = {
        "choose": {"column": "Kind", "values": {"Deal": "deal", "Sale": "sale"}},
        "commands": {
            "deal": {"type": "create_agreement", **AGREEMENT,
                     "tiers": {"from": "From", "rate": "Rate"}},
            "sale": {"type": "record_sale", "sale_id": "Agreement", "customer_id": "Customer",
                     "product_id": {"value": "P1"}, "quantity": {"value": "1"},
                     "amount": "From", "currency": {"value": "EUR"}, "invoice_date": "Start"},
        },
    }
    text = ("Kind,Agreement,Customer,Start,End,Method,Products,Cap,From,Rate\n"
            "Deal,A1,C1,2025-01-01,2025-12-31,Retro,,,0,0.01\n"
            ",A1,,,,,,,10000,0.02\n"
            "Sale,S1,C1,2025-02-01,,,,,100,\n"
            ",S1,,,,,,,,\n")
    deal, sale, unknown = imported(tmp_path, text, document)
    assert isinstance(deal.command, c.CreateAgreement) and len(deal.command.tiers) == 2
    assert isinstance(sale.command, c.RecordSale)
    assert str(unknown.problem).startswith("row 5, column Kind = '': is not a value")


def test_strip_zeros_reads_a_padded_numeric_id_as_the_number(tmp_path: Path) -> None:
    document = mapping()
    document["commands"]["record_sale"]["customer_id"] = {"column": "Customer",
                                                          "strip_zeros": True}
    text = (HEADER + "\n1,1,0000100001,P1,2,20.00,EUR,2025-03-01\n"
            "2,1,0000,P1,2,20.00,EUR,2025-03-01\n3,1,00A1,P1,2,20.00,EUR,2025-03-01\n")
    assert [s.customer_id for s in sales(imported(tmp_path, text, document))] == [
        "100001", "0000", "00A1"]  # only digits lose their padding, and never to nothing
    document["commands"]["record_sale"]["amount"] = {"column": "Net", "strip_zeros": True}
    with pytest.raises(MappingError, match="amount.strip_zeros: only for ids and text"):
        parse_mapping(document)
