"""The command line: `rebate-ledger apply | liability | rejections | demo` and the rest.

Thin by design: it parses options, calls the application service (`LedgerService`, built by
the composition root `build_cli_service` / `open_service`; the Kafka workers get the store from
the service too), and prints. Errors rise to `ledger.cli.errors`, which turns each into its exit
status and one line on stderr, for every command.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import signal
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.segment import Segment
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import DBAPIError

from ledger.cli.errors import EXIT_OK, EXIT_REJECTED, LedgerGroup, internal_error
from ledger.cli.exports import (
    ForceOption,
    OutOption,
    ReportFormat,
    ReportFormatOption,
    check_out,
    check_request,
    write_out,
)
from ledger.commands import (
    bounded_lines,
    day_out_of_range,
    moment_in_range,
    whole_input_shape,
)
from ledger.config import Settings
from ledger.core import ApplyReport, ApplyStopped, Ledger
from ledger.errors import ConfigurationError, InputUnreadable
from ledger.liability import LiabilityRow
from ledger.lookup import BeforeFirstRecord
from ledger.money import format_money
from ledger.text import csv_cell, printable, printable_lines

if TYPE_CHECKING:
    from ledger.access import Principal
    from ledger.service import LedgerService

app = typer.Typer(
    cls=LedgerGroup,  # every command's errors become an exit status there, in one place
    name="rebate-ledger",
    help="An event-sourced ledger for B2B customer rebates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"rebate-ledger {version('rebate-ledger')}")
        raise typer.Exit()


@app.callback()
def _top_level(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="print the version and exit",
        ),
    ] = False,
) -> None:
    """An event-sourced ledger for B2B customer rebates."""


def _width(stream: object) -> int | None:
    """Rich wraps at 80 columns when output is not a terminal; a table piped to a file or a
    pager should keep whole rows instead. COLUMNS, when set, still wins."""
    if os.environ.get("COLUMNS") or getattr(stream, "isatty", lambda: False)():
        return None
    return PIPED_WIDTH


class SafeConsole(Console):
    """A console that never hands the terminal a control character from data: every segment
    of text (not rich's own control segments: cursor moves, styles) has its control, bidi and
    surrogate characters written as escapes (`\x1b`) just before it is written out. Every
    table and message of the CLI goes through one of the two below; tables also escape their
    cells as they are built (`printable`), which keeps the columns aligned."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            segment if segment.control else Segment(
                printable_lines(segment.text), segment.style, segment.control)
            for segment in buffer
        )


PIPED_WIDTH = 200
#: How much of an input `apply` reads ahead to tell a CSV file or a JSON array from JSON Lines.
SNIFF_BYTES = 4096
console = SafeConsole(width=_width(sys.stdout))
err_console = SafeConsole(stderr=True, width=_width(sys.stderr))


DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        envvar="LEDGER_DATABASE_URL",
        help="SQLAlchemy URL of the store (SQLite file or PostgreSQL). "
        "Default: the embedded SQLite file .rebate-ledger/ledger.db in the current directory "
        "(or under LEDGER_HOME).",
        show_default=False,
    ),
]


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


#: The two forms of `--known-at` (README "Contract decisions"): a date, meaning the end of that
#: day UTC, or a full timestamp with its offset. Nothing else: `20250716` would otherwise be
#: read by `datetime.fromisoformat` as the start of that day, another answer for the same date.
DATE_FORM = re.compile(r"\d{4}-\d{2}-\d{2}")
TIMESTAMP_FORM = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:\d{2})")
KNOWN_AT_FORMS = ("a date YYYY-MM-DD (the end of that day, UTC) or a timestamp with its offset "
                  "(2025-07-16T09:00:00Z, 2025-07-16T11:00:00+02:00)")


def parse_known_at(value: str | None, option: str = "--known-at") -> datetime | None:
    """`--known-at`: a date YYYY-MM-DD meaning the end of that day, UTC (everything recorded on
    it is known), or a full timestamp with its offset; inside the ledger's range of dates and
    timestamps (the same as for commands)."""
    if value is None:
        return None
    text = value.strip()
    try:
        if DATE_FORM.fullmatch(text):
            day = date.fromisoformat(text)
            refused = day_out_of_range(day)
            if refused is not None:
                raise typer.BadParameter(refused, param_hint=option)
            return datetime.combine(day, time.max, tzinfo=UTC)
        if not TIMESTAMP_FORM.fullmatch(text):
            raise ValueError(text)
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither of the two accepted forms: {KNOWN_AT_FORMS}",
            param_hint=option,
        ) from None
    try:
        return moment_in_range(moment)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def parse_as_of(value: str, option: str = "--as-of") -> date:
    """A date option (`--as-of`, `--from`, `--to`): YYYY-MM-DD and nothing else (not
    `20251231`), inside the ledger's range of dates."""
    text = value.strip()
    try:
        if not DATE_FORM.fullmatch(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date YYYY-MM-DD", param_hint=option
        ) from None
    refused = day_out_of_range(day)
    if refused is not None:
        raise typer.BadParameter(refused, param_hint=option)
    return day


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for any other database)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - Ledger names a bad URL with what to do
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def store_name(url: str) -> str:
    """How the store is named to the user: a SQLite file's path, else the URL without its
    password."""
    from sqlalchemy.engine import make_url

    path = sqlite_file(url)
    if path is not None:
        return str(path)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url


def open_ledger(database: str | None, *, creates: bool = False, announce: bool = True,
                check_tables: bool = True) -> Ledger:
    """Open the store and say which one on stderr. Only a writing command (`creates`) may make
    a new SQLite store, and says so; a reading one refuses a file that does not exist, creating
    nothing, so that a misspelt --database or the wrong folder is not an empty answer."""
    settings = Settings()
    url = (settings.resolved_database_url(database) if creates  # makes LEDGER_HOME
           else database or settings.database_url
           or f"sqlite:///{(settings.home / 'ledger.db').resolve()}")
    path = sqlite_file(url)
    new = path is not None and not path.exists()
    if new and not creates:
        raise ConfigurationError(
            f"no store at {path} (the file does not exist); give the right --database (or "
            "LEDGER_DATABASE_URL / LEDGER_HOME), or create the store with `rebate-ledger "
            "apply FILE`")
    try:
        ledger = Ledger(url, check_tables=check_tables)
    except DBAPIError as exc:
        # a missing folder, a file that is not a database, a server refusing the connection
        cause = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(
            exc.orig).__name__
        raise ConfigurationError(
            f"cannot open the store {store_name(url)}: {cause}; check --database (or "
            "LEDGER_DATABASE_URL)") from None
    if not announce:  # the caller said which store it is (a dry run's scratch store)
        pass
    elif new:
        err_console.print(f"store: {store_name(url)} (created)", highlight=False, markup=False,
                          soft_wrap=True)
    else:
        err_console.print(f"store: {store_name(url)}", highlight=False, markup=False,
                          soft_wrap=True)
    return ledger


def build_cli_service(database: str | None, actor: str | None = None, *,
                      creates: bool = False, check_tables: bool = True, announce: bool = True,
                      ) -> tuple[LedgerService, Principal]:
    """The CLI's composition root: the application service over the store `open_ledger`
    opens, and the CLI's principal (`--as NAME`, else `cli:<OS user>`). Every command calls
    the service, as every entrypoint does (the Kafka workers too: the service hands them the
    store); its errors (LedgerError) become an exit status in one place, `main`. The caller
    closes the service (or uses `open_service`)."""
    from ledger.cli.service import operator_principal
    from ledger.service import LedgerService

    principal = operator_principal(actor)  # a bad --as is refused before a store is opened
    ledger = open_ledger(database, creates=creates, check_tables=check_tables,
                         announce=announce)
    try:
        return LedgerService(ledger), principal
    except BaseException:
        ledger.close()
        raise


@contextlib.contextmanager
def open_service(database: str | None, actor: str | None = None, *, creates: bool = False,
                 check_tables: bool = True, announce: bool = True,
                 ) -> Iterator[tuple[LedgerService, Principal]]:
    """`build_cli_service` for the length of a `with` block."""
    service, principal = build_cli_service(database, actor, creates=creates,
                                     check_tables=check_tables, announce=announce)
    with service:
        yield service, principal


def _open_input(path: str) -> tuple[BinaryIO, int | None]:
    if path == "-":
        return sys.stdin.buffer, None
    file = Path(path)
    try:
        if file.is_dir():
            raise InputUnreadable(f"cannot read input: {path} is a directory, not a JSONL "
                                  "file")
        handle = file.open("rb")
        return handle, file.stat().st_size
    except FileNotFoundError:
        raise InputUnreadable(f"cannot read input: {path}: no such file") from None
    except PermissionError:
        raise InputUnreadable(f"cannot read input: {path}: permission denied") from None
    except OSError as exc:
        raise InputUnreadable(f"cannot read input: {path}: {exc.strerror or exc}") from None


@app.command()
def apply(
    file: Annotated[str, typer.Argument(help="JSONL file of commands, or - for standard input")],
    database: DatabaseOption = None,
    output: Annotated[
        Format, typer.Option("--format", help="table (for people), json (the report) or csv "
                             "(a row per duplicate or rejected line; the counts on stderr)")
    ] = Format.table,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    actor: Annotated[
        str | None,
        typer.Option("--as", help="who is recorded on the stored events (default "
                     "cli:<OS user>)"),
    ] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="store nothing: validate the whole file against the store as it "
        "stands and print what would be accepted, duplicated and rejected (exit 1 if "
        "something would be rejected)")] = False,
) -> None:
    """Apply a batch of commands, in order. Exit 0: all applied; 1: some rejected (the rest
    applied); 2: the input could not be read; 3: stopped by an internal error (the lines before
    the one named are applied, the rest are not). With --dry-run nothing is stored and the
    exit status says what apply would do."""
    handle, size = _open_input(file)
    head = handle.peek(SNIFF_BYTES)[:SNIFF_BYTES] if hasattr(handle, "peek") else b"?"
    shape = whole_input_shape(head)
    if shape is not None:
        todo = ("write each element on a line of its own, e.g. jq -c '.[]' FILE"
                if shape == "a JSON array" else
                'write each row as one JSON object per line, e.g. {"type": "record_sale", ...}')
        raise InputUnreadable(
            f"{file}: this is {shape}, not JSON Lines (one command object per line): {todo}; "
            "nothing was applied")
    if not head.strip():
        err_console.print(f"{escape(file)} is empty: no commands, nothing applied",
                          highlight=False, soft_wrap=True)
    scratch = None
    if dry_run:
        database, scratch = dry_run_store(database)
    try:
        service, principal = build_cli_service(database, actor, creates=True,
                                         announce=scratch is None)
    except BaseException:
        if scratch is not None:
            scratch.cleanup()
        raise
    try:
        show_progress = not quiet and size is not None and size > 1 << 20 and sys.stderr.isatty()
        if show_progress:
            with Progress(
                TextColumn("applying"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            ) as progress:
                task = progress.add_task("apply", total=size)
                report = service.load(
                    principal, bounded_lines(handle), source=file,
                    on_progress=lambda n: progress.advance(task, n), dry_run=dry_run,
                )
        else:
            report = service.load(principal, bounded_lines(handle), source=file,
                                  dry_run=dry_run)
    except ApplyStopped as stopped:  # the lines before it stand: their report, then exit 3
        _print_report(stopped.report, output)
        raise
    except OSError as exc:
        raise InputUnreadable(f"cannot read input: {exc}") from None
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
        service.close()
        if scratch is not None:
            scratch.cleanup()
    if dry_run:
        _print_dry_run_report(report, output)
    else:
        _print_report(report, output)
    raise typer.Exit(EXIT_REJECTED if report.rejected else EXIT_OK)


DRY_RUN_NOTE = "dry run, nothing stored: what apply would do against the store as it stands"


def _print_dry_run_report(report: ApplyReport, output: Format) -> None:
    """`apply --dry-run`: apply's report, said to be a preview (json: `"dry_run": true`)."""
    if output is Format.json:
        sys.stdout.write(orjson.dumps({**report.to_dict(), "dry_run": True}).decode() + "\n")
        return
    (err_console if output is Format.csv else console).print(
        DRY_RUN_NOTE, highlight=False, markup=False)
    _print_report(report, output)


def dry_run_store(database: str | None, what: str = "the file") -> tuple[str | None, Any]:
    """The store a dry run reads, and a temporary directory to clean up (or None). A SQLite
    store that does not exist yet is not created: the dry run previews `what` against an
    empty store in a temporary directory, thrown away after (apply and import)."""
    import tempfile

    url = database or Settings().default_database_url()
    path = sqlite_file(url)
    if path is None or path.exists():
        return database, None
    scratch = tempfile.TemporaryDirectory(prefix="ledger-dry-run-")
    err_console.print(f"no store at {path} yet: the dry run previews {what} into an empty "
                      "store, and creates nothing", highlight=False, markup=False,
                      soft_wrap=True)
    return f"sqlite:///{Path(scratch.name) / 'preview.db'}", scratch


def _print_report(report: ApplyReport, output: Format, unit: str = "line") -> None:
    """The report of `apply` (and of `import`, whose numbers are rows: `unit`)."""
    if output is Format.json:
        sys.stdout.write(orjson.dumps(report.to_dict()).decode() + "\n")
        return
    if output is Format.csv:
        # one row per line that was not simply accepted, in line order; the counts on stderr
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["line", "outcome", "command_type", "id", "field", "reason"])
        rows = [(number, "duplicate", kind, ident, "", "already recorded")
                for number, kind, ident in report.duplicates]
        rows += [(r.line, "rejected", r.command_type, "", r.field, r.reason)
                 for r in report.rejected]
        writer.writerows([csv_cell(str(v)) for v in row]
                         for row in sorted(rows, key=lambda row: int(row[0])))
        err_console.print(
            f"accepted: {report.accepted}  duplicate: {len(report.duplicates)}  "
            f"rejected: {len(report.rejected)}", highlight=False, markup=False)
        return
    console.print(
        f"accepted: {report.accepted}  duplicate: {len(report.duplicates)}  "
        f"rejected: {len(report.rejected)}",
        highlight=False,
    )
    for number, kind, ident in report.duplicates[:50]:
        console.print(
            f"  duplicate {unit} {number}: {kind} {printable(ident)} (already recorded)",
            highlight=False, markup=False,
        )
    if len(report.duplicates) > 50:
        console.print(f"  … and {len(report.duplicates) - 50} more duplicates", highlight=False)
    for rejection in report.rejected:
        console.print(
            f"  rejected {unit} {rejection.line}: "
            f"{printable(rejection.command_type) or '(no type)'}: {printable(rejection.reason)}",
            highlight=False,
            markup=False,
        )


@app.command()
def liability(
    as_of: Annotated[str, typer.Option("--as-of", help="valid date D (YYYY-MM-DD)")],
    known_at: Annotated[
        str | None,
        typer.Option(
            "--known-at",
            help="as the books stood at K (ISO timestamp, or a date = end of that day UTC); "
            "default: everything recorded",
        ),
    ] = None,
    agreement: Annotated[
        str | None, typer.Option("--agreement", help="only this agreement")
    ] = None,
    customer: Annotated[
        str | None,
        typer.Option(
            "--customer",
            help="only this customer's own agreements and those of the groups it is a member "
            "of at D, as known at K",
        ),
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="only this buying group's agreements")
    ] = None,
    program: Annotated[
        str | None, typer.Option("--program", help="only the agreements of this program")
    ] = None,
    output: ReportFormatOption = ReportFormat.table,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="say on stderr what answered: the store's core tables or a "
        "caught-up projection (and its generation)")] = False,
    database: DatabaseOption = None,
    out: OutOption = None,
    force: ForceOption = False,
) -> None:
    """The rebate liability per agreement at valid date D, as known at K."""
    check_request(output, out)
    as_of_date = parse_as_of(as_of)
    known = parse_known_at(known_at)
    with open_service(database) as (service, principal):
        service.check_names(agreement=("--agreement", agreement),
                            customer=("--customer", customer), group=("--group", group),
                            program=("--program", program))
        if out is not None:
            check_out(out, service.database_url, force)
        try:
            service.check_names(known_at=known)
        except BeforeFirstRecord as early:
            # the contract's answer stands (no agreement existed as known at K: no rows), but
            # it is never a silent empty: say why on stderr
            err_console.print(f"note: {early}".replace("; give a later --known-at",
                                                         "; no agreement existed yet"),
                              highlight=False, markup=False, soft_wrap=True)
        # read your writes: a projection answers only once it has caught up with the store
        rows, source, answered_at = service.liability_rows(
            principal, as_of_date, known, agreement_id=agreement, customer_id=customer,
            group_id=group, program_id=program,
        )
    if verbose:
        err_console.print(f"answered from {source}", highlight=False, markup=False)
    known_text = format_timestamp(known if known is not None else answered_at)
    if out is not None:
        write_liability_out(rows, as_of_date, known_text, output, out)
    elif output is ReportFormat.json:
        document = {
            "as_of": as_of_date.isoformat(),
            "known_at": known_text,
            "rows": [row.to_dict() for row in rows],
        }
        sys.stdout.write(orjson.dumps(document).decode() + "\n")
    elif output is ReportFormat.csv:
        sys.stdout.write(rows_to_csv(rows))
    else:
        console.print(liability_table(rows, as_of_date, known_text, console.width))


def write_liability_out(rows: list[LiabilityRow], as_of: date, known_text: str,
                        output: ReportFormat, out: Path) -> None:
    """`liability --out FILE`: the same JSON or CSV as printed, or a workbook (a sheet per
    currency, money as number cells)."""
    if output is ReportFormat.json:
        document = {"as_of": as_of.isoformat(), "known_at": known_text,
                    "rows": [row.to_dict() for row in rows]}
        write_out(out, lambda handle: handle.write(orjson.dumps(document) + b"\n"),
                  f"{len(rows)} rows, JSON")
    elif output is ReportFormat.csv:
        write_out(out, lambda handle: handle.write(rows_to_csv(rows).encode()),
                  f"{len(rows)} rows, CSV")
    else:
        from ledger.audit.output import Report
        from ledger.audit.xlsx import write_report

        report = Report(f"Rebate liability as of {as_of}, as known at {known_text}",
                        LIABILITY_COLUMNS, [row.to_dict() for row in rows],
                        meta={"as_of": as_of, "known_at": known_text})
        write_out(out, lambda handle: write_report(report, handle, name="liability"),
                  f"{len(rows)} rows, Excel workbook")


LIABILITY_COLUMNS = (
    "agreement_id", "customer_id", "group_id", "program_id", "currency", "basis", "accrued",
    "approved", "paid", "written_off", "liability",
)
#: The table shows who the agreement is with in one column: a customer, or "group G".
TABLE_COLUMNS = (
    "agreement_id", "with", "program_id", "currency", "basis", "accrued", "approved", "paid",
    "written_off", "liability",
)


def rows_to_csv(rows: list[LiabilityRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LIABILITY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: csv_cell(value) for name, value in row.to_dict().items()})
    return buffer.getvalue()


#: Money columns of the liability table: never cut (issue 14), shown with thousands separators.
MONEY_COLUMNS = ("accrued", "approved", "paid", "written_off", "liability")
NUMERIC = ("basis", *MONEY_COLUMNS)
#: Left out, in this order, when the terminal cannot show every column with its figures whole.
DROPPED_FIRST = ("program_id", "with", "currency")
#: A descriptive column folds down to this many characters.
DESCRIPTIVE_MIN = 8


def table_money(value: Decimal) -> str:
    """A figure for people: to the cent with thousands separators (`178,838.87`); json and csv
    keep the plain exact text."""
    return f"{Decimal(format_money(value)):,.2f}"


def liability_table(rows: list[LiabilityRow], as_of: date, known_text: str,
                    width: int | None = None) -> Table:
    """Every figure in full on a terminal `width` columns wide: the money and basis columns
    keep the width of their longest figure (no_wrap); the descriptive columns fold, and on a
    terminal too narrow for all of them, `program_id`, `with` and `currency` are left out (json
    and csv have them all)."""
    table = Table(title=f"Rebate liability as of {as_of}, as known at {known_text}")
    programs = any(r.program_id is not None for r in rows)
    columns = [c for c in TABLE_COLUMNS if programs or c != "program_id"]
    body: list[list[str]] = []
    for row in rows:
        values = row.to_dict()
        values["with"] = row.customer_id if row.group_id is None else f"group {row.group_id}"
        for column in MONEY_COLUMNS:
            values[column] = table_money(getattr(row, column))
        values["basis"] = f"{Decimal(values['basis'] or '0'):,}"
        body.append([printable(values[c] or "") for c in columns])
    totals: list[list[str]] = []
    for currency in sorted({r.currency for r in rows}):
        mine = [r for r in rows if r.currency == currency]
        totals.append([
            f"total {currency}", f"{len(mine)} agreements", *([""] if programs else []),
            currency, "",
            *(table_money(sum((getattr(r, c) for r in mine), start=Decimal(0)))
              for c in MONEY_COLUMNS),
        ])
    widths = {
        column: max(len(column) if column in NUMERIC else 0,
                    max((len(line[i]) for line in body + totals), default=0))
        for i, column in enumerate(columns)
    }
    for column in columns:  # descriptive columns fold, down to a few characters
        if column not in NUMERIC:
            widths[column] = min(widths[column], DESCRIPTIVE_MIN)
    shown = list(columns)
    for column in DROPPED_FIRST:  # too narrow: descriptive columns go before a figure is cut
        if width is None or sum(widths[c] + 3 for c in shown) + 1 <= width:
            break
        if column in shown:
            shown.remove(column)
    if width is not None and sum(widths[c] + 3 for c in shown) + 1 > width:
        table.show_edge = False  # the outer border goes before a figure does
    for column in shown:
        if column in NUMERIC:
            table.add_column(column, justify="right", no_wrap=True, min_width=widths[column])
        else:
            table.add_column(column, justify="left", overflow="fold",
                             min_width=widths[column])
    keep = [columns.index(c) for c in shown]
    body = [[line[i] for i in keep] for line in body]
    totals = [[line[i] for i in keep] for line in totals]
    for line in body:
        table.add_row(*(Text(cell) for cell in line))
    for line in totals:
        table.add_row(*(Text(cell) for cell in line), style="bold")
    return table


@app.command()
def rejections(
    output: Annotated[Format, typer.Option("--format", help="table, json or csv")] = Format.table,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="at most this many")] = None,
    database: DatabaseOption = None,
) -> None:
    """Every rejected command, with its source, line, command type and reason."""
    with open_service(database) as (service, principal):
        items = service.rejections(principal, limit=limit)["rejections"]
    if output is Format.json:
        sys.stdout.write(orjson.dumps({"rejections": items}).decode() + "\n")
    elif output is Format.csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=list(items[0]) if items else ["rejected_at", "source", "line",
                                                             "command", "field", "reason",
                                                             "text"],
            lineterminator="\n",
        )
        writer.writeheader()
        writer.writerows({name: csv_cell(value) for name, value in item.items()}
                         for item in items)
        sys.stdout.write(buffer.getvalue())
    else:
        table = Table(title=f"{len(items)} rejected commands")
        for column in ("rejected_at", "source", "line", "command", "reason"):
            table.add_column(column)
        for item in items:
            table.add_row(*(  # Text: a reason holding [word] is not rich markup
                Text(printable("" if value is None else str(value))) for value in (
                    item["rejected_at"], item["source"], item["line"], item["command"],
                    item["reason"],
                )
            ))
        console.print(table)


CLAIM_COLUMNS = ["claim_id", "agreement_id", "customer_id", "status", "claimed", "approved",
                 "paid", "submitted_on", "approved_on", "rejected_on", "paid_on", "reason",
                 "payment_ref"]


@app.command()
def claims(
    agreement: Annotated[str | None, typer.Option("--agreement", help="one agreement")] = None,
    customer: Annotated[str | None, typer.Option("--customer", help="one customer")] = None,
    status: Annotated[str | None, typer.Option(
        "--status", help="submitted, approved, rejected or settled")] = None,
    output: Annotated[Format, typer.Option("--format", help="table, json or csv")] = Format.table,
    database: DatabaseOption = None,
) -> None:
    """The claims register: each claim with its status, claimed, approved and paid amounts."""
    with open_service(database) as (service, principal):
        answer = service.claims(principal, agreement_id=agreement, customer_id=customer,
                                status=status)
    items = answer["claims"]
    if output is Format.json:
        sys.stdout.write(orjson.dumps(answer).decode() + "\n")
    elif output is Format.csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CLAIM_COLUMNS, extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows({name: csv_cell(value) for name, value in item.items()}
                         for item in items)
        sys.stdout.write(buffer.getvalue())
    else:
        table = Table(title=f"{len(items)} claims")
        for column in CLAIM_COLUMNS[:7]:
            table.add_column(column)
        for item in items:
            table.add_row(*(Text(printable("" if item[column] is None else str(item[column])))
                            for column in CLAIM_COLUMNS[:7]))
        console.print(table)


@app.command()
def demo(
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="store for the demo book (default: a fresh .rebate-ledger/demo.db)",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed of the synthetic book")] = 2025,
    kafka: Annotated[
        bool,
        typer.Option(
            "--kafka/--no-kafka",
            help="after the book, run the whole pipeline through Kafka (an ERP feed to the "
            "sales topic, intake, relay, the liability projection)",
        ),
    ] = True,
    feed: Annotated[
        int, typer.Option(min=1, max=10_000_000, help="sales the ERP feed sends through Kafka")
    ] = 20_000,
) -> None:
    """Generate a realistic synthetic book, apply it, and show the liability over the year;
    then send late invoices through the Kafka pipeline and read the liability from the
    projection (the embedded broker unless LEDGER_KAFKA_BOOTSTRAP is set)."""
    from ledger.demo import YEAR_END, run_demo

    result = run_demo(database=database, seed=seed, console=console)
    if not kafka:
        return
    from consumers.pipeline import run_pipeline_demo
    from ledger.config import Settings
    from ledger.demo import print_pipeline
    from ledger.kafka.broker import broker_bootstrap
    from ledger.kafka.settings import KafkaSettings

    settings = KafkaSettings()
    with broker_bootstrap(settings.bootstrap, Settings().home) as bootstrap, \
            open_service(result.database_url, announce=False) as (service, principal):
        outcome = service.run_pipeline(principal, run_pipeline_demo, console, result.plan,
                                       bootstrap, settings, feed=feed, as_of=YEAR_END,
                                       seed=seed)
    print_pipeline(console, outcome, YEAR_END)


@app.command()
def relay(
    database: DatabaseOption = None,
    once: Annotated[
        bool, typer.Option("--once", help="publish what is new, then exit")
    ] = False,
    from_position: Annotated[
        int | None, typer.Option(
            "--from-position", min=1,
            help="first re-send every event from this store position on (heals a gap a "
            "projection or subscriber names; they skip what they have)")
    ] = None,
) -> None:
    """Publish every stored event, in store order, to the events topic (until Ctrl-C).

    Kafka: LEDGER_KAFKA_BOOTSTRAP if set, else a running `rebate-ledger broker`, else an
    embedded broker of its own for its lifetime, refilled from the store."""
    from consumers.relay import main_relay
    from ledger.config import Settings
    from ledger.kafka.settings import KafkaSettings

    with open_service(database) as (service, principal):
        status = service.run_relay(
            principal, main_relay, KafkaSettings(), Settings().home, once=once,
            echo=lambda text: console.print(text, highlight=False),
            from_position=from_position,
        )
    raise typer.Exit(status)


@app.command()
def broker(
    port: Annotated[
        int | None, typer.Option(help="loopback port (default: a free one)")
    ] = None,
) -> None:
    """Run the embedded Kafka-protocol broker in the foreground until Ctrl-C; other commands
    use it while it runs. Its log is in memory: the relay refills it from the store."""
    from ledger.config import Settings
    from ledger.kafka.broker import main_broker

    status = main_broker(Settings().home, port=port)
    raise typer.Exit(status)


@app.command()
def schema(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="directory for one file per schema and index.json "
                     "(default: one JSON object on standard output)"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="replace schema files already in --out")
    ] = False,
) -> None:
    """The JSON Schema of the events topic: the envelope, the watermark, every event type."""
    from ledger.config import Settings
    from ledger.events.schema import schema_files, schemas
    from ledger.output_files import OutputRefused, check_target, write_file

    if out is None:
        sys.stdout.buffer.write(orjson.dumps(schemas(), option=orjson.OPT_INDENT_2) + b"\n")
        return
    files = schema_files(out)
    try:
        store_url = Settings().default_database_url()
        for path in files:  # every file checked before any is written
            check_target(path, store_url, force=force, creates_folders=True)
        for path, data in files.items():
            write_file(path, data)
    except OSError as exc:
        raise OutputRefused(f"--out {out}: {exc.strerror or exc}") from None
    for path in files:
        console.print(str(path), highlight=False, markup=False)


class ProjectionName(StrEnum):
    liability = "liability"
    claims = "claims"
    sales = "sales"


@app.command()
def replay(
    projection: Annotated[ProjectionName, typer.Argument(help="liability, claims or sales")],
    database: DatabaseOption = None,
) -> None:
    """Rebuild a projection from the start of the events topic into a fresh generation, then
    swap it in atomically and drop the old one."""
    from ledger.config import Settings
    from ledger.kafka.settings import KafkaSettings
    from replay.commands import main_replay

    with open_service(database) as (service, principal):
        status = service.replay_projection(
            principal, main_replay, projection.value, KafkaSettings(), Settings().home, console
        )
    raise typer.Exit(status)


@app.command("audit-view")
def audit_view(
    as_of: Annotated[str, typer.Option("--as-of", help="valid date D (YYYY-MM-DD)")],
    known_at: Annotated[
        str | None,
        typer.Option("--known-at", help="as the books stood at K (default: everything)"),
    ] = None,
    output: Annotated[
        Format, typer.Option("--format", help="table, json or csv (csv: the differences)")
    ] = Format.table,
    database: DatabaseOption = None,
) -> None:
    """Rebuild the liability at (D, K) purely from the events topic and compare it with the
    core's answer and with the live liability projection's, printing every difference; exit 0
    when none, 1 when any."""
    from ledger.config import Settings
    from ledger.kafka.settings import KafkaSettings
    from replay.commands import main_audit_view

    as_of_date = parse_as_of(as_of)
    known = parse_known_at(known_at)
    with open_service(database) as (service, principal):
        status = service.audit_view(
            principal, main_audit_view, as_of_date, known, KafkaSettings(), Settings().home,
            output=output.value, console=console, err_console=err_console,
        )
    raise typer.Exit(status)


@app.command()
def project(
    database: DatabaseOption = None,
    until_idle: Annotated[
        float | None,
        typer.Option("--until-idle", help="exit after S seconds with nothing new"),
    ] = None,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=100_000,
                          help="records polled and applied per transaction")
    ] = 20_000,
) -> None:
    """Feed the liability, claims and sales projections from the events topic (until
    Ctrl-C)."""
    from ledger.config import Settings
    from ledger.kafka.settings import KafkaSettings
    from replay.commands import main_project

    with open_service(database) as (service, principal):
        status = service.run_projection(
            principal, main_project, KafkaSettings(), Settings().home,
            until_idle_s=until_idle, poll_records=batch, console=console,
        )
    raise typer.Exit(status)



class ProduceTopic(StrEnum):
    sales = "sales"
    commands = "commands"


@app.command()
def intake(
    database: DatabaseOption = None,
    group: Annotated[
        str | None,
        typer.Option("--group", help="Kafka consumer group of the intake workers "
                     "(default: <topic prefix>intake, e.g. rebate.intake)"),
    ] = None,
    until_idle: Annotated[
        float | None,
        typer.Option("--until-idle", help="exit after S seconds with nothing new and no "
                     "record waiting; exit 3 if records wait while no position moves for "
                     "60 s (a stalled group)"),
    ] = None,
) -> None:
    """Apply the sales and commands topics to the store, exactly once in effect (until Ctrl-C).
    Bad records go to the rejected topic and the rejections table; intake goes on.

    Run several in one --group to share the partitions. Kafka: LEDGER_KAFKA_BOOTSTRAP if set,
    else a running `rebate-ledger broker`, else an embedded broker of its own."""
    from consumers.intake import main_intake
    from ledger.config import Settings
    from ledger.kafka.settings import KafkaSettings

    with open_service(database, creates=True) as (service, principal):
        status = service.run_intake(
            principal, main_intake, KafkaSettings(), Settings().home, group_id=group,
            until_idle_s=until_idle, echo=lambda text: console.print(text, highlight=False),
        )
    raise typer.Exit(status)



def _record_key(line: bytes, field: str | None, constant: bytes | None) -> bytes | None:
    """The partition key of one JSONL record: its `field` (None if absent or not JSON),
    else `constant`."""
    if field is None:
        return constant
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    value = obj.get(field) if isinstance(obj, dict) else None
    return None if value is None else str(value).encode()


@app.command()
def produce(
    file: Annotated[str, typer.Argument(help="JSONL file of commands, or - for standard input")],
    topic: Annotated[
        ProduceTopic, typer.Option("--topic", help="sales (record_sale/reverse_sale) or commands")
    ] = ProduceTopic.sales,
    key_field: Annotated[
        str | None,
        typer.Option(
            "--key-field",
            help="key each record by this field of the command. Default: sale_id on sales "
            "(a sale and its reverse_sale share a key, so a reversal never overtakes its "
            "sale); on commands one constant key `history`, so that every command lands on "
            "ONE partition and intake applies them in file order (a history with recorded_at, "
            "an agreement before its sales, a claim before its approval: order across "
            "partitions is not kept)",
        ),
    ] = None,
) -> None:
    """Send a JSONL file to the ledger's sales or commands topic, one record per line (an ERP
    stand-in). Kafka: as for `intake`."""
    from consumers.transport import transport
    from ledger.config import Settings
    from ledger.kafka.broker import broker_bootstrap, find_running_broker
    from ledger.kafka.settings import KafkaSettings

    handle, size = _open_input(file)
    settings = KafkaSettings()
    name = settings.topic(topic.value)
    field = key_field or ("sale_id" if topic is ProduceTopic.sales else None)
    constant = b"history" if field is None else None
    if not settings.bootstrap and find_running_broker(Settings().home) is None:
        # a private embedded broker would vanish with this command, and the records with it
        raise ConfigurationError(
            "no Kafka to produce to: LEDGER_KAFKA_BOOTSTRAP is not set and no `rebate-ledger "
            f"broker` is running for {Settings().home}; start one (`rebate-ledger broker &`) "
            "or set LEDGER_KAFKA_BOOTSTRAP, then produce again")
    try:
        with broker_bootstrap(settings.bootstrap, Settings().home) as bootstrap:
            producer = transport(settings, bootstrap).producer()
            try:
                with Progress(
                    TextColumn(f"producing to {name}"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    TimeRemainingColumn(),
                    console=err_console,
                    transient=True,
                    disable=size is None or not sys.stderr.isatty(),
                ) as progress:
                    task = progress.add_task("produce", total=size)
                    count = 0
                    for line in handle:
                        progress.advance(task, len(line))
                        value = line.rstrip(b"\r\n")
                        if not value.strip():
                            continue
                        producer.send(name, _record_key(value, field, constant), value)
                        count += 1
                    producer.flush(max(60.0, settings.send_timeout_ms / 1000))
            finally:
                producer.close()
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
    console.print(f"produced {count} records to {name}", highlight=False)


# The auditors' toolkit: imported last, as its modules use the helpers above.
from ledger.cli import analysis as cli_analysis  # noqa: E402
from ledger.cli import evidence as cli_evidence  # noqa: E402
from ledger.cli import finance as cli_finance  # noqa: E402
from ledger.cli import importing as cli_import  # noqa: E402
from ledger.cli import service as cli_service  # noqa: E402


def _check_events_log(ledger: Ledger) -> tuple[list[Any], int]:
    from consumers.relay import check_events_log

    return check_events_log(ledger)


for _module in (cli_finance, cli_analysis, cli_service, cli_import):
    _module.register(app)
cli_evidence.register(app, log_check=_check_events_log)  # the CLI knows Kafka; audit does not

#: the help's panels: what finance uses, what auditors use, running the service, and the Kafka
#: plumbing that operators run (a command not named here shows under "Commands")
HELP_PANELS = {
    "Finance": ("apply", "import", "liability", "rejections", "journal", "trial-balance",
                "reconcile", "claims", "gl-export", "close-period", "opportunities",
                "positions", "programs", "simulate"),
    "Audit": ("explain", "diff", "event", "verify", "digest", "rechain", "rebuild-tables",
              "evidence"),
    "Service": ("demo", "serve", "users"),
    "Kafka operations": ("broker", "relay", "intake", "produce", "project", "replay",
                         "audit-view", "schema"),
}


def _arrange_help(typer_app: typer.Typer) -> None:
    """Group the commands in panels, and let each help text flow: a docstring's line breaks
    are the source's, not sentences' ("rest\napplied" in the listing)."""
    import inspect

    panel_of = {name: panel for panel, names in HELP_PANELS.items() for name in names}
    for info in typer_app.registered_commands:
        callback = info.callback
        name = info.name or (callback.__name__.replace("_", "-") if callback else "")
        text = info.help or (inspect.getdoc(callback) if callback else None) or ""
        info.help = "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))
        info.rich_help_panel = info.rich_help_panel or panel_of.get(name)
    for group in typer_app.registered_groups:
        group.rich_help_panel = group.rich_help_panel or panel_of.get(group.name or "")
    order = {panel: n for n, panel in enumerate(HELP_PANELS)}
    typer_app.registered_commands.sort(key=lambda i: order.get(i.rich_help_panel or "", 99))


_arrange_help(app)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    """The console script: every error of a command becomes its exit status in
    `LedgerGroup` (ledger.cli.errors), the one mapping. Anything else that escapes a command
    is a bug: one line naming it and exit 3 (`LEDGER_DEBUG=1` shows the traceback instead)."""
    # SIGTERM (a scheduler stopping the job, `kill`) ends a command as Ctrl-C does, through its
    # `finally` blocks: open transactions roll back, temporary folders (evidence's, a dry
    # run's copy) are removed. Without this Python dies at once and leaves them behind. The
    # Kafka workers and `serve` put their own handlers in place while they run.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        app()
    except Exception as error:  # not a LedgerError: LedgerGroup maps those
        if os.environ.get("LEDGER_DEBUG", "").strip() not in ("", "0"):
            raise
        raise SystemExit(internal_error(error)) from None


if __name__ == "__main__":  # pragma: no cover
    main()
