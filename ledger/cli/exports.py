"""`--format xlsx` and `--out FILE` of the report commands (`liability`, `reconcile`,
`journal`, `trial-balance`, `explain`, `diff`, `opportunities`, `gl-export`).

A workbook is a file: `--format xlsx` needs `--out`. `--out` also takes json and csv (the
same bytes as printed); the table is for the terminal only. Every `--out` goes through
`ledger.output_files`: never a file of the store, an existing file only with `--force`, never
half written. No `from __future__ import annotations`: typer reads the annotations."""

import io
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any, TextIO

import typer

from ledger.audit.output import Report


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


FORMAT_HELP = "table, json, csv or xlsx (an Excel workbook: with --out)"
ReportFormatOption = Annotated[ReportFormat, typer.Option("--format", help=FORMAT_HELP)]
OutOption = Annotated[Path | None, typer.Option(
    "--out", help="write the report to this file instead of the terminal (needed by --format "
    "xlsx; json and csv too); never a file of the store; written to a temporary file beside "
    "it, then renamed", show_default=False)]
ForceOption = Annotated[bool, typer.Option("--force", help="replace --out if it exists")]


def check_request(output: ReportFormat, out: Path | None) -> None:
    """Refuse, before any work, a workbook for the terminal and a table for a file."""
    if output is ReportFormat.xlsx and out is None:
        raise typer.BadParameter(
            "--format xlsx writes an Excel workbook, which a terminal cannot show: add --out "
            "FILE.xlsx", param_hint="--out")
    if out is not None and output is ReportFormat.table:
        raise typer.BadParameter(
            "--out writes a file: give --format xlsx, json or csv with it (the table is for "
            "the terminal)", param_hint="--out")


def check_out(out: Path, database_url: str | None, force: bool) -> None:
    """Refuse `--out` where it would destroy something (`ledger.output_files.check_target`
    raises OutputRefused naming the reason: exit 2)."""
    from ledger.output_files import check_target

    check_target(out, database_url, force=force)


def write_out(out: Path, write: Callable[[IO[bytes]], Any],
              what: str | Callable[[], str]) -> None:
    """Write `out` through `write(handle)` (atomically) and say so on stderr; a failing
    write (a full disk, no permission) is exit 2 with the reason, and leaves no file."""
    from ledger.cli import err_console
    from ledger.output_files import OutputRefused, replacing

    try:
        with replacing(out) as handle:
            write(handle)
    except OSError as error:
        raise OutputRefused(f"--out {out}: {error.strerror or error}") from None
    said = what if isinstance(what, str) else what()
    err_console.print(f"wrote {out}: {said}", highlight=False, markup=False, soft_wrap=True)


def text_to(write: Callable[[TextIO], Any]) -> Callable[[IO[bytes]], Any]:
    """A writer of text (`write(stream)`) as a writer of UTF-8 bytes on a handle."""
    def to_bytes(handle: IO[bytes]) -> None:
        stream = io.TextIOWrapper(handle, encoding="utf-8", newline="")  # type: ignore[arg-type]
        try:
            write(stream)
            stream.flush()
        finally:
            stream.detach()
    return to_bytes


def deliver(report: Report, output: ReportFormat, out: Path | None, *,
            name: str = "report") -> bool:
    """Write `report` to `out` as `output` (xlsx, json or csv) and return True; False when
    there is no `--out` (the caller prints to the terminal as before)."""
    if out is None:
        return False
    if output is ReportFormat.xlsx:
        from ledger.audit.xlsx import write_report

        write_out(out, lambda handle: write_report(report, handle, name=name),
                  f"{len(report.rows)} rows, Excel workbook")
    elif output is ReportFormat.json:
        write_out(out, lambda handle: handle.write(report.to_json() + b"\n"),
                  f"{len(report.rows)} rows, JSON")
    else:
        write_out(out, lambda handle: handle.write(report.to_csv().encode()),
                  f"{len(report.rows)} rows, CSV")
    return True


def write_journal_out(service: Any, principal: Any, as_of: Any, known_at: Any,
                      output: ReportFormat, out: Path, force: bool, *,
                      agreement_id: str | None, customer_id: str | None) -> None:
    """`journal --out FILE`: streamed into the file as computed, in bounded memory, as a
    workbook (`--format xlsx`) or the same JSON or CSV as printed (through the service)."""
    check_out(out, service.database_url, force)
    if output is ReportFormat.xlsx:
        counts: list[int] = []
        write_out(out, lambda handle: counts.append(service.write_journal_workbook(
            principal, as_of, known_at, handle, agreement_id=agreement_id,
            customer_id=customer_id)), lambda: f"{counts[0]} postings, Excel workbook")
        return
    from ledger.cli import console

    write_out(out, text_to(lambda stream: service.write_journal(
        principal, as_of, known_at, output.value, stream, console, agreement_id=agreement_id,
        customer_id=customer_id)), f"journal, {output.value.upper()}")
