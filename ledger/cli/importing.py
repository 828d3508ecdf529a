"""CLI command `import`: a CSV file or an .xlsx workbook through a mapping (ledger.importing),
applied through the application service like `apply`. No `from __future__ import
annotations`: typer reads the annotations."""

import sys
from typing import Annotated

import typer

#: Files above these sizes get a progress bar (on a terminal, without --quiet).
PROGRESS_BYTES_MIN = 1 << 20
PROGRESS_ROWS_MIN = 20_000

MINIMAL_MAPPING = """\
[numbers]
format = "1.234,56"            # how the file writes 1234.56
[dates]
formats = ["DD.MM.YYYY"]       # or MM/DD/YYYY, YYYY-MM-DD, "excel"
[constants]
currency = "EUR"
[commands.record_sale]
sale_id = "{Invoice}-{Item}"   # a template of columns
customer_id = "Customer"       # a column
product_id = "Material"
quantity = "Qty"
amount = "Net"
invoice_date = "Date"
"""


def register(app: typer.Typer) -> None:
    """Add `import` to `app`."""
    from rich.markup import escape

    from ledger.cli import (
        DatabaseOption,
        Format,
        _print_report,
        build_cli_service,
        console,
        err_console,
    )

    @app.command("import", epilog="A minimal mapping (docs/importing.md has the rest):\n\n"
                 + escape(MINIMAL_MAPPING))
    def import_file(
        file: Annotated[str, typer.Argument(help="a CSV file or an .xlsx workbook")],
        mapping: Annotated[str, typer.Option(
            "--mapping", help="the TOML mapping: which column feeds which field")],
        sheet: Annotated[str | None, typer.Option(
            "--sheet", help="the workbook's sheet (default: the mapping's, else the first)")
        ] = None,
        encoding: Annotated[str | None, typer.Option(
            "--encoding", help="the CSV file's encoding, e.g. latin-1 (default: the "
            "mapping's, else UTF-8)")] = None,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="store nothing: print what would be accepted, duplicated and "
            "rejected")] = False,
        database: DatabaseOption = None,
        output: Annotated[Format, typer.Option(
            "--format", help="table (for people) or json (the report)")] = Format.table,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
        actor: Annotated[str | None, typer.Option(
            "--as", help="who is recorded on the stored events (default cli:<OS user>)")
        ] = None,
    ) -> None:
        """Import a CSV export or an Excel sheet through a mapping: every row becomes a
        contract command, applied as `apply` applies lines (a row that cannot be mapped is
        rejected with its row, column and value, and kept; the rows around it apply).
        Exit 0: all applied; 1: some rejected; 2: the file or mapping cannot be used (nothing
        applied); 3: stopped by an internal error."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        from ledger.cli.errors import EXIT_OK, EXIT_REJECTED
        from ledger.core import ApplyStopped
        from ledger.importing import ImportUnreadable, MappingError, load_mapping, rows_of

        # the file or the mapping cannot be used: exit 2 (ledger.cli.errors), each error
        # named with the file it is about
        try:
            plan = load_mapping(mapping)
        except MappingError as exc:
            # a key's error names the file here; a file's own error (not TOML) names it already
            if exc.key:
                raise MappingError("", f"mapping {mapping}: {exc}") from None
            raise
        try:
            sheet_read, importer, rows = rows_of(file, plan, sheet=sheet, encoding=encoding)
        except (ImportUnreadable, MappingError) as exc:
            if str(exc).startswith(file):
                raise
            if isinstance(exc, MappingError):
                raise MappingError("", f"{file}: {exc}") from None
            raise ImportUnreadable(f"{file}: {exc}") from None
        scratch = None
        if dry_run:  # a preview of the first import: against an empty store thrown away
            from ledger.cli import dry_run_store

            database, scratch = dry_run_store(database, "the import")
        try:
            service, principal = build_cli_service(
                database, actor, creates=not dry_run or scratch is not None,
                announce=scratch is None)
        except BaseException:  # the store cannot be opened (build_cli_service said why)
            sheet_read.close()
            if scratch is not None:
                scratch.cleanup()
            raise
        source = f"import:{file}"
        total = sheet_read.total
        large = PROGRESS_ROWS_MIN if sheet_read.unit == "rows" else PROGRESS_BYTES_MIN
        try:
            if not quiet and total is not None and total > large and sys.stderr.isatty():
                with Progress(TextColumn("importing"), BarColumn(), TimeRemainingColumn(),
                              console=err_console, transient=True) as progress:
                    task = progress.add_task("import", total=total)
                    report = service.import_rows(
                        principal, rows, source=source, dry_run=dry_run,
                        on_chunk=lambda: progress.update(task, completed=sheet_read.done()))
            else:
                report = service.import_rows(principal, rows, source=source, dry_run=dry_run)
        except ApplyStopped as stopped:  # the rows before it stand: their report, then exit 3
            _print_report(stopped.report, output, unit="row")
            raise
        finally:
            sheet_read.close()
            service.close()
            if scratch is not None:
                scratch.cleanup()
        counts = importer.counts
        if output is Format.json:  # apply's report, and what the import read
            import orjson

            sys.stdout.write(orjson.dumps({
                **report.to_dict(), "dry_run": dry_run, "rows_read": counts.rows,
                "blank_rows": counts.blank, "skipped_rows": counts.skipped}).decode() + "\n")
        else:
            head = "dry run, nothing stored: " if dry_run else ""
            console.print(f"{head}{counts.rows} rows read ({counts.blank} blank, "
                          f"{counts.skipped} skipped by the mapping)", highlight=False,
                          markup=False)
            _print_report(report, output, unit="row")
        raise typer.Exit(EXIT_REJECTED if report.rejected else EXIT_OK)
