"""A customer's statement as PDF (fpdf2: pure Python, from PyPI, nothing at run time beyond it).

The same rows as the statement page and its CSV (`LedgerService.positions`), laid out for
print: a heading, one table of every agreement covering the customer, the totals per currency
and a note on what the figures mean. The text is set in DejaVu Sans (vendored from the npm
package `dejavu-fonts-ttf` with its licence, embedded as a subset of the glyphs used), so ids
and names in Latin scripts with diacritics, Greek and Cyrillic print as they are (`Łódź`, not
`?ód?`); a character the font has no glyph for (CJK, for example) is shown as `?` (the CSV keeps
every id exactly).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from ledger.web import format as fmt

#: The vendored font files (scripts/vendor-web-assets).
FONT_DIR = Path(__file__).parent / "static" / "vendor" / "dejavu-fonts-ttf-2.37.3"
FONT = "DejaVuSans"

#: Columns of the table: (heading, width in mm, alignment). A4 landscape holds 277 mm.
COLUMNS = [("Agreement", 30, "LEFT"), ("Through", 24, "LEFT"), ("Program", 24, "LEFT"),
           ("Basis", 34, "RIGHT"), ("Tier reached", 24, "LEFT"), ("Next tier", 45, "LEFT"),
           ("Earned", 24, "RIGHT"), ("Claimed", 24, "RIGHT"), ("Paid", 24, "RIGHT"),
           ("Outstanding", 24, "RIGHT")]
MONEY = [("accrued", "Earned"), ("claimed", "Claimed"), ("paid", "Paid"),
         ("liability", "Outstanding")]
#: Longest cell text written (an id of the ledger is at most a few dozen characters).
CELL_CHARS_MAX = 60


@cache
def _glyphs() -> frozenset[int]:
    """The code points both faces of the font can draw (read once a process)."""
    from fpdf import FPDF
    from fpdf.fonts import TTFFont

    pdf = FPDF()
    _add_fonts(pdf)
    found = None
    for style in ("", "B"):
        pdf.set_font(FONT, style=style)
        font = pdf.current_font
        assert isinstance(font, TTFFont)
        points = set(font.cmap)
        found = points if found is None else found & points
    return frozenset(found or ())


def _add_fonts(pdf: Any) -> None:
    pdf.add_font(FONT, "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))


def printable(text: object, chars_max: int = 400) -> str:
    """`text` as the font can draw it: a character without a glyph as `?`, bounded."""
    glyphs = _glyphs()
    return "".join(c if ord(c) in glyphs else "?" for c in str(text)[:chars_max])


def _cells(row: dict[str, Any], customer: str) -> list[str]:
    basis = f"{fmt.quantity(row.get('basis'))} {row.get('basis_kind') or ''}".strip()
    if row.get("customer_share") is not None:
        basis += f" ({customer}: {fmt.quantity(row['customer_share'])})"
    reached = (f"from {fmt.quantity(row['tier_reached'])} at {row.get('rate')}"
               if row.get("tier_reached") is not None else "below the first tier")
    following = (f"from {fmt.quantity(row['next_tier'])} at {row.get('next_rate')}: "
                 f"{fmt.quantity(row.get('still_needed'))} to go"
                 if row.get("next_tier") is not None else "top tier")
    via = row.get("via") or ""
    return [row["agreement_id"], "own agreement" if via == "own" else via,
            row.get("program_id") or "", basis, reached, following,
            *(fmt.money(row.get(key), row.get("currency")) for key, _ in MONEY)]


def statement_pdf(customer: str, as_of: date, known_at: str | None,
                  rows: list[dict[str, Any]], produced_by: str) -> bytes:
    """The statement of `customer` at `as_of` (as known at `known_at`, or now) as PDF bytes."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF(orientation="landscape", format="A4")
    _add_fonts(pdf)
    pdf.set_title(printable(f"Rebate statement of customer {customer}"))
    pdf.set_author("rebate-ledger")
    pdf.set_creator("rebate-ledger")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font(FONT, style="B", size=15)
    pdf.cell(0, 9, printable(f"Rebate statement of customer {customer}"),
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=9)
    known = f", as known at {known_at}" if known_at else ", as known now"
    produced = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    pdf.cell(0, 6, printable(f"At {as_of.isoformat()}{known}. Produced {produced} for "
                          f"{produced_by}."), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    if not rows:
        pdf.cell(0, 6, "No agreement covers this customer at this date.",
                 new_x="LMARGIN", new_y="NEXT")
    else:
        pdf.set_font(FONT, size=8)
        with pdf.table(col_widths=tuple(w for _, w, _ in COLUMNS),
                       text_align=tuple(a for _, _, a in COLUMNS),
                       headings_style=FontFace(emphasis="BOLD"),
                       line_height=5) as table:
            heading = table.row()
            for name, _, _ in COLUMNS:
                heading.cell(name)
            for row in rows:
                line = table.row()
                for text in _cells(row, customer):
                    line.cell(printable(text, CELL_CHARS_MAX))
        totals: dict[str, dict[str, Decimal]] = {}
        for row in rows:
            sums = totals.setdefault(row["currency"], {k: Decimal(0) for k, _ in MONEY})
            for key, _ in MONEY:
                sums[key] += fmt.decimal(row.get(key)) or Decimal(0)
        pdf.ln(2)
        pdf.set_font(FONT, style="B", size=9)
        for currency, sums in sorted(totals.items()):
            pdf.cell(0, 6, printable(f"Total in {currency}: " + "; ".join(
                f"{label.lower()} {fmt.money(sums[key], currency)}" for key, label in MONEY)),
                new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font(FONT, size=8)
    pdf.multi_cell(0, 4, "Earned is the rebate accrued under the agreement's terms; "
                   "outstanding is what was earned less what was paid and written off. A buying "
                   "group's agreement shows the group's figures; the customer's own share of the "
                   "group's basis is given in brackets.")
    return bytes(pdf.output())
