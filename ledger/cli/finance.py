"""CLI commands of the auditors' toolkit for finance: `journal`, `trial-balance`,
`reconcile` (see ledger/audit/__init__.py)."""


import sys
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from ledger.cli.errors import EXIT_FAILED
from ledger.cli.exports import ForceOption, OutOption, ReportFormat, ReportFormatOption

AgreementOption = Annotated[str | None, typer.Option("--agreement", help="only this agreement")]
CustomerOption = Annotated[str | None, typer.Option("--customer", help="only this customer")]
FromOption = Annotated[str | None, typer.Option(
    "--from", help="first day of a period (YYYY-MM-DD), with --to: the postings dated in it")]
ToOption = Annotated[str | None, typer.Option(
    "--to", help="last day of the period (YYYY-MM-DD), with --from")]
KnownAtOption = Annotated[
    str | None,
    typer.Option("--known-at", help="as the books stood at K (ISO timestamp, or a date = end of "
                 "that day UTC); default: everything recorded"),
]


#: above this many rows `journal --format table` prints a plain aligned table (rich takes
#: about 1 ms a row: the demo book's 140,000 postings would take two minutes)
PLAIN_TABLE_ROWS = 2000


def _plain_table(report: Any, out: TextIO) -> None:
    """`report` as a plain text table: a header, a rule, numbers right-aligned."""
    cells = [[report._shown(c, row) for c in report.columns] for row in report.rows]
    numeric = {i for i, c in enumerate(report.columns)
               if c in report.figures
               or any(isinstance(r.get(c), (Decimal, int)) for r in report.rows[:50])}
    widths = [max([len(c)] + [len(line[i]) for line in cells])
              for i, c in enumerate(report.columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if i in numeric else v.ljust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True))).rstrip()

    out.write(report.title + "\n")
    out.write(line(list(report.columns)) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    out.write("\n".join(line(values) for values in cells) + "\n")
    for note in report.notes:
        out.write(note + "\n")


def confirm_close(label: str, first: Any, last: Any, yes: bool) -> None:
    """A close is permanent: go on with `--yes`, ask on a terminal, refuse elsewhere."""
    from ledger.access import BadRequest
    from ledger.cli import err_console

    if yes:
        return
    if not sys.stdin.isatty():
        raise BadRequest("", f"closing {label} ({first} to {last}) is permanent and "
                         "there is no terminal to ask: add --yes to confirm")
    if not typer.confirm(f"Close {label} ({first} to {last})? A close is permanent: it "
                         "freezes the reported position", default=False, err=True):
        err_console.print(f"{label} not closed: nothing recorded", highlight=False,
                          markup=False)
        raise typer.Exit(EXIT_FAILED)  # the user said no: an outcome, not an error


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    from ledger.cli import (
        DatabaseOption,
        Format,
        console,
        err_console,
        open_service,
        parse_as_of,
        parse_known_at,
    )
    from ledger.cli.exports import (
        check_out,
        check_request,
        deliver,
        write_journal_out,
        write_out,
    )

    FormatOption = Annotated[  # noqa: N806 - a type alias, evaluated here (no __future__)
        Format, typer.Option("--format", help="table, json or csv")
    ]

    @app.command()
    def journal(
        start: FromOption = None,
        end: ToOption = None,
        as_of: Annotated[str | None, typer.Option(
            "--as-of", help="valid date D (YYYY-MM-DD); default: today (UTC)")] = None,
        known_at: KnownAtOption = None,
        agreement: AgreementOption = None,
        customer: CustomerOption = None,
        output: ReportFormatOption = ReportFormat.table,
        database: DatabaseOption = None,
        out: OutOption = None,
        force: ForceOption = False,
    ) -> None:
        """The double-entry journal behind the position at D as known at K: accruals and
        true-ups, settlements, write-offs, each with the events it came from. With --from and
        --to: the postings dated in that period, with each account's opening and closing
        balance."""
        if start is not None or end is not None:  # issue 10 point 6
            _period(start, end, as_of, known_at, agreement, customer, output.value, database,
                    trial=False)
            return
        check_request(output, out)
        day = parse_as_of(as_of) if as_of is not None else None
        known = parse_known_at(known_at)
        with open_service(database) as (service, principal):
            service.check_names(known_at=known, agreement=("--agreement", agreement),
                                customer=("--customer", customer))
            if day is None:
                day = service.now().astimezone(UTC).date()
            if out is not None:
                write_journal_out(service, principal, day, known, output, out, force,
                                  agreement_id=agreement, customer_id=customer)
                return
            # streamed as computed, in bounded memory; above PLAIN_TABLE_ROWS a table is
            # plain text (rich needs minutes for a year of postings)
            service.write_journal(principal, day, known, output.value, sys.stdout, console,
                                  agreement_id=agreement, customer_id=customer,
                                  plain_above=PLAIN_TABLE_ROWS)

    @app.command("trial-balance")
    def trial_balance(
        start: FromOption = None,
        end: ToOption = None,
        as_of: Annotated[str | None, typer.Option(
            "--as-of", help="valid date D (YYYY-MM-DD); or give --from and --to")] = None,
        known_at: KnownAtOption = None,
        agreement: AgreementOption = None,
        customer: CustomerOption = None,
        output: ReportFormatOption = ReportFormat.table,
        database: DatabaseOption = None,
        out: OutOption = None,
        force: ForceOption = False,
    ) -> None:
        """Debits, credits and balance per currency and account at D as known at K; checks
        that it balances and that the liability account equals the contract's liability.
        With --from and --to: opening balance, the period's debits and credits, closing
        balance. Exit 1 if a check fails."""
        if start is not None or end is not None or as_of is None:  # issue 10 point 6
            _period(start, end, as_of, known_at, agreement, customer, output.value, database,
                    trial=True)
            return
        from ledger.audit.journal import trial_balance_table
        from ledger.audit.output import emit

        check_request(output, out)
        day, known = parse_as_of(as_of), parse_known_at(known_at)
        with open_service(database) as (service, principal):
            service.check_names(known_at=known, agreement=("--agreement", agreement),
                                customer=("--customer", customer))
            if out is not None:
                check_out(out, service.database_url, force)
            report = service.trial_balance_report(principal, day, known,
                                                  agreement_id=agreement,
                                                  customer_id=customer)
        if not deliver(report, output, out, name="trial balance"):
            emit(trial_balance_table(report) if output is ReportFormat.table else report,
                 output.value, console)
        if not (report.extra["balanced"] and report.extra["liability_matches"]):
            raise typer.Exit(EXIT_FAILED)

    def _period(start: str | None, end: str | None, as_of: str | None, known_at: str | None,
                agreement: str | None, customer: str | None, output: str,
                database: str | None, *, trial: bool) -> None:
        """`journal` / `trial-balance` of a period (ledger.audit.period)."""
        from ledger.access import BadRequest
        from ledger.audit.output import emit
        from ledger.audit.period import check_period, period_trial_balance_table
        from ledger.errors import RuleViolation

        def usage(message: str) -> BadRequest:
            return BadRequest("", message)

        if as_of is not None:
            raise usage("--as-of is a position at one date; --from and --to are a period: "
                        "give one or the other")
        if start is None or end is None:
            raise usage("give the period with both --from D1 and --to D2 (YYYY-MM-DD)"
                        + ("; or --as-of D for the balances at one date" if trial else ""))
        if output not in ("table", "json", "csv"):
            raise usage(f"--format {output} is not available for a period yet; use table, "
                        "json or csv")
        first, last = parse_as_of(start, "--from"), parse_as_of(end, "--to")
        try:
            check_period(first, last)
        except RuleViolation as exc:
            raise usage(str(exc)) from None
        known = parse_known_at(known_at)
        with open_service(database) as (service, principal):
            service.check_names(known_at=known, agreement=("--agreement", agreement),
                                customer=("--customer", customer))
            report = service.period_report(principal, first, last, known, trial=trial,
                                           agreement_id=agreement, customer_id=customer)
            if not trial:
                if output == "table" and len(report.rows) > PLAIN_TABLE_ROWS:
                    _plain_table(report, sys.stdout)  # rich needs about 1 ms a row
                else:
                    emit(report, output, console)
                return
        emit(period_trial_balance_table(report) if output == "table" else report, output,
             console)
        if not (report.extra["balanced"] and report.extra["liability_matches"]):
            raise typer.Exit(EXIT_FAILED)

    @app.command()
    def reconcile(
        as_of: Annotated[str, typer.Option("--as-of", help="valid date D (YYYY-MM-DD)")],
        known_at: KnownAtOption = None,
        customer: CustomerOption = None,
        grace_days: Annotated[int, typer.Option(
            "--grace-days", min=0, max=36_500,
            help="days after a period's end to wait for a claim")] = 60,
        unpaid_days: Annotated[int, typer.Option(
            "--unpaid-days", min=0, help="days an approved claim may stay unpaid")] = 30,
        flagged: Annotated[bool, typer.Option(
            "--flagged", help="only the agreements with a flag")] = False,
        agreement: AgreementOption = None,
        output: ReportFormatOption = ReportFormat.table,
        database: DatabaseOption = None,
        out: OutOption = None,
        force: ForceOption = False,
    ) -> None:
        """Accrued, claimed, approved, paid, written off per customer and agreement, with
        flags: claims above earned, unclaimed accruals, negative liabilities, approved claims
        unpaid past the limit."""
        from ledger.audit.output import emit

        check_request(output, out)
        day, known = parse_as_of(as_of), parse_known_at(known_at)
        with open_service(database) as (service, principal):
            service.check_names(known_at=known, customer=("--customer", customer),
                                agreement=("--agreement", agreement))
            if out is not None:
                check_out(out, service.database_url, force)
            report = service.reconcile_report(principal, day, known, grace_days=grace_days,
                                              unpaid_days=unpaid_days, customer_id=customer,
                                              flagged_only=flagged, agreement_id=agreement)
        if not deliver(report, output, out, name="reconcile"):
            emit(report, output.value, console)

    @app.command("close-period")
    def close_period(
        period: Annotated[str | None, typer.Option(
            "--period", help="2025 (year), 2025-Q4 (quarter) or 2025-11 (month)")] = None,
        start: Annotated[str | None, typer.Option(
            "--from", help="first day of any other range (with --to)")] = None,
        end: Annotated[str | None, typer.Option("--to", help="last day of the range")] = None,
        recorded_at: Annotated[str | None, typer.Option(
            "--recorded-at", help="when the close happened, for loading history (ISO "
            "timestamp; the same rules as a command's recorded_at); default now")] = None,
        yes: Annotated[bool, typer.Option(
            "--yes", "-y", help="confirm the close without being asked (a close is "
            "permanent; without --yes it asks on a terminal and refuses elsewhere)")] = False,
        output: FormatOption = Format.table,
        database: DatabaseOption = None,
    ) -> None:
        """Close a period: freeze the liability at its end as known now (the reported
        position). Later changes show as post-close adjustments in diff and reconcile."""
        from ledger.audit.close import parse_period
        from ledger.audit.output import money_text
        first = parse_as_of(start) if start else None
        last = parse_as_of(end) if end else None
        moment = parse_known_at(recorded_at) if recorded_at else None
        # a rule refusing the close (RuleViolation: a period closed already) exits 1
        label, first_day, last_day = parse_period(period, first, last)
        confirm_close(label, first_day, last_day, yes)
        with open_service(database, creates=True) as (service, principal):
            event_id, position, closed_at, rows = service.close_books(
                principal, label, first_day, last_day, moment)
        totals: dict[str, Decimal] = {}
        for row in rows:
            totals[row.currency] = totals.get(row.currency, Decimal(0)) + row.liability
        summary = (
            f"closed {label} ({first_day} to {last_day}) at {closed_at.isoformat()}: "
            f"{len(rows)} agreements reported, liability "
            + (", ".join(money_text(v, k) for k, v in sorted(totals.items())) or "none")
            + f"; event {event_id} at position {position}")
        if output is Format.table:
            console.print(summary, highlight=False, markup=False)
            return
        from ledger.audit.output import Report, emit

        emit(Report(summary, ("agreement_id", "customer_id", "currency", "accrued",
                              "approved", "paid", "written_off", "liability"),
                    [r.to_dict() for r in rows],
                    meta={"period": label, "period_start": first_day, "period_end": last_day,
                          "closed_at": closed_at, "event_id": event_id,
                          "position": position}), output.value, console)

    @app.command("gl-export")
    def gl_export(
        start: Annotated[str, typer.Option(
            "--from", help="the period's first day (YYYY-MM-DD)")],
        end: Annotated[str, typer.Option("--to", help="the period's last day (YYYY-MM-DD)")],
        accounts: Annotated[Path, typer.Option(
            "--accounts", help="the TOML file mapping the ledger's accounts to your chart of "
            "accounts (see examples/gl/accounts.toml)")],
        known_at: KnownAtOption = None,
        reverses: Annotated[str | None, typer.Option(
            "--reverses", help="the known_at of the export of this period uploaded before: "
            "reverse its documents that changed and add the new ones (a re-export after a "
            "late change)")] = None,
        output: Annotated[ReportFormat, typer.Option(
            "--format", help="csv (the upload file), xlsx (with --out), json or table")
        ] = ReportFormat.csv,
        database: DatabaseOption = None,
        out: OutOption = None,
        force: ForceOption = False,
    ) -> None:
        """The journal's postings of the period as the lines of an ERP journal-entry upload:
        your GL accounts (and cost centre, customer), one balanced document per currency and
        posting date, each with a stable reference. Exit 1 if a document does not balance."""
        from ledger.audit.gl import (
            MAPPING_CHARS_MAX,
            GLMappingError,
            export_report,
            to_csv,
            unbalanced,
        )
        from ledger.audit.output import emit
        from ledger.errors import InputUnreadable

        check_request(output, out)
        first, last = parse_as_of(start, "--from"), parse_as_of(end, "--to")
        if last < first:
            raise typer.BadParameter(f"{last} is before --from {first}", param_hint="--to")
        known, earlier = parse_known_at(known_at), parse_known_at(reverses, "--reverses")
        try:
            if accounts.is_file() and accounts.stat().st_size > 4 * MAPPING_CHARS_MAX:
                raise OSError(f"{accounts.stat().st_size:,} bytes: far more than an accounts "
                              "mapping has; is it the right file?")
            text = accounts.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            reason = (f"not UTF-8 text (byte {error.start + 1}): save it as UTF-8"
                      if isinstance(error, UnicodeDecodeError)
                      else getattr(error, "strerror", None) or str(error))
            raise InputUnreadable(f"--accounts {accounts}: {reason}") from None
        with open_service(database) as (service, principal):
            if out is not None:
                check_out(out, service.database_url, force)
            try:
                export, mapping = service.gl_export(principal, first, last, text, known,
                                                    earlier)
            except GLMappingError as error:  # a key of the file: named with the file
                raise GLMappingError("", f"{accounts}: {error}") from None
        wrong = unbalanced(export)
        if wrong:  # never written: an upload that does not balance is refused by the ERP
            for sentence in wrong:
                err_console.print(f"error: {sentence}; nothing written", highlight=False,
                                  markup=False)
            raise typer.Exit(EXIT_FAILED)  # a check failed (a bug if it ever does)
        report = export_report(export, mapping)
        if output is ReportFormat.csv:
            if out is None:
                sys.stdout.write(to_csv(report, mapping))
            else:
                write_out(out, lambda handle: handle.write(to_csv(report, mapping).encode()),
                          f"{len(report.rows)} lines, CSV")
        elif output is ReportFormat.xlsx and out is not None:
            from ledger.audit.xlsx import write_report

            write_out(out, lambda handle: write_report(report, handle, name="lines",
                                                       by_currency=False),
                      f"{len(report.rows)} lines, Excel workbook")
        elif not deliver(report, output, out, name="lines"):
            emit(report, output.value, console)
        moment = export.known_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        err_console.print(
            f"{report.notes[0]}; as known at {moment}. After a late change, re-export this "
            f"period with --reverses {moment}", highlight=False, markup=False, soft_wrap=True)
