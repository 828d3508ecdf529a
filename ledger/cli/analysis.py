"""CLI commands of the auditors' toolkit for analysis: `explain`, `diff`, `opportunities`
(see ledger/audit/__init__.py). No `from __future__ import annotations` here: typer reads the
annotations, and the option types are defined inside `register`."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from ledger.cli.exports import ForceOption, OutOption, ReportFormat, ReportFormatOption

#: Event ids `explain` shows per step in its table form (JSON and CSV carry them all).
EVENTS_SHOWN = 6


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
    from ledger.cli.exports import check_out, check_request, deliver
    from ledger.cli.finance import KnownAtOption

    FormatOption = Annotated[  # noqa: N806 - a type alias, evaluated here
        Format, typer.Option("--format", help="table, json or csv")
    ]

    @app.command()
    def explain(
        agreement: Annotated[str, typer.Option("--agreement", help="the agreement to explain")],
        as_of: Annotated[str, typer.Option("--as-of", help="valid date D (YYYY-MM-DD)")],
        known_at: KnownAtOption = None,
        output: ReportFormatOption = ReportFormat.table,
        database: DatabaseOption = None,
        out: OutOption = None,
        force: ForceOption = False,
    ) -> None:
        """How one agreement's liability at D as known at K comes about, step by step: terms
        and the events they came from, eligible sales by month, tier, formula, cap, claims,
        settlements, write-offs."""
        from ledger.access import BadRequest, NotFound
        from ledger.audit.output import emit

        check_request(output, out)
        day, known = parse_as_of(as_of), parse_known_at(known_at)
        with open_service(database) as (service, principal):
            service.check_names(known_at=known, agreement=("--agreement", agreement))
            if out is not None:
                check_out(out, service.database_url, force)
            try:
                report = service.explain_report(principal, agreement, day, known)
            except NotFound as error:  # named as the option the user gave
                raise BadRequest("--agreement",
                                 str(error).removeprefix("agreement_id: ")) from None
        if deliver(report, output, out, name="explain"):
            return
        if output is ReportFormat.table:
            console.print(report.title, highlight=False, markup=False)
            for row in report.rows:
                console.print(f"{row['step']}. {row['title']}: {row['text']}",
                              highlight=False, markup=False)
                events, about = row["events"], row["events_about"]
                if events:
                    shown = ", ".join(f"{e} ({about[e]})" if e in about else e
                                      for e in events[:EVENTS_SHOWN])
                    more = (f" and {len(events) - EVENTS_SHOWN} more (--format json lists "
                            "them all)") if len(events) > EVENTS_SHOWN else ""
                    console.print(f"   events: {shown}{more}", highlight=False, markup=False)
            for note in report.notes:
                console.print(note, highlight=False, markup=False)
        else:
            emit(report, output.value, console)

    @app.command()
    def diff(
        as_of: Annotated[str, typer.Option("--as-of", help="valid date D (YYYY-MM-DD)")],
        known_at: Annotated[str, typer.Option(
            "--known-at", help="K1: the earlier moment of knowledge (e.g. the close)")],
        vs: Annotated[str | None, typer.Option(
            "--vs", help="K2: the later moment (default: everything recorded)")] = None,
        agreement: Annotated[str | None, typer.Option(
            "--agreement", help="only this agreement")] = None,
        detail: Annotated[bool, typer.Option(
            "--detail", help="one line per cause (every event recorded in between that "
            "moved the position) instead of one per agreement")] = False,
        output: ReportFormatOption = ReportFormat.table,
        database: DatabaseOption = None,
        out: OutOption = None,
        force: ForceOption = False,
    ) -> None:
        """What changed in the position at D between K1 and K2: a summary by cause (late
        sales, returns, amendments, memberships, claims ...), then agreement by agreement
        (--detail: every event that made each change)."""
        from ledger.access import BadRequest
        from ledger.audit.output import Report, count_figure, emit

        check_request(output, out)
        day = parse_as_of(as_of)
        k1 = parse_known_at(known_at)
        assert k1 is not None
        k2 = parse_known_at(vs)
        if k2 is not None and k2 < k1:
            raise BadRequest("--vs", f"must not be before --known-at: {vs} is before "
                             f"{known_at}; give a later --vs (or swap the two)")
        with open_service(database) as (service, principal):
            service.check_names(known_at=k1, agreement=("--agreement", agreement))
            if out is not None:
                check_out(out, service.database_url, force)
            elif output in (ReportFormat.json, ReportFormat.csv):
                # streamed, in bounded memory (issue 11)
                service.write_diff(principal, day, k1, k2, output.value, sys.stdout,
                                   agreement_id=agreement, detail=detail)
                return
            report = service.diff_report(principal, day, k1, k2, agreement_id=agreement,
                                         detail=detail, with_changes=out is not None)
        if deliver(report, output, out, name="diff"):
            return
        emit(Report("Changes by cause", ("cause", "events", "agreements", "post_close"),
                    report.extra["by_cause"],
                    figures=dict.fromkeys(("events", "agreements", "post_close"),
                                          count_figure())), "table", console)
        emit(report, output.value, console)

    @app.command()
    def opportunities(
        as_of: Annotated[str, typer.Option("--as-of", help="valid date D (YYYY-MM-DD)")],
        known_at: KnownAtOption = None,
        customer: Annotated[str | None, typer.Option(
            "--customer", help="only this customer")] = None,
        limit: Annotated[int | None, typer.Option(
            "--limit", min=1, help="the first N by extra rebate")] = None,
        agreement: Annotated[str | None, typer.Option(
            "--agreement", help="only this agreement")] = None,
        output: ReportFormatOption = ReportFormat.table,
        database: DatabaseOption = None,
        out: OutOption = None,
        force: ForceOption = False,
    ) -> None:
        """Per running agreement below a next tier: the basis still needed, the days left, the
        extra rebate it would unlock, and whether the run rate gets there; largest first."""
        from ledger.audit.output import emit

        check_request(output, out)
        day, known = parse_as_of(as_of), parse_known_at(known_at)
        with open_service(database) as (service, principal):
            service.check_names(known_at=known, customer=("--customer", customer),
                                agreement=("--agreement", agreement))
            if out is not None:
                check_out(out, service.database_url, force)
            report = service.opportunities_report(principal, day, known, customer_id=customer,
                                                  limit=limit, agreement_id=agreement)
        if not deliver(report, output, out, name="opportunities"):
            emit(report, output.value, console)

    @app.command()
    def positions(
        customer: Annotated[str, typer.Option("--customer", help="the customer")],
        as_of: Annotated[str | None, typer.Option(
            "--as-of", help="valid date D (YYYY-MM-DD; default: today)")] = None,
        known_at: KnownAtOption = None,
        output: FormatOption = Format.table,
        database: DatabaseOption = None,
    ) -> None:
        """Every agreement that covers a customer at D (its own and its buying groups'), with
        the program of each: basis, tier reached, next tier and what is still needed, the
        money, and the customer's own share of a group's basis."""
        from datetime import UTC, datetime

        from ledger.audit.output import emit

        day = parse_as_of(as_of) if as_of is not None else datetime.now(UTC).date()
        known = parse_known_at(known_at)
        with open_service(database) as (service, principal):
            service.check_names(known_at=known, customer=("--customer", customer))
            report = service.positions_report(principal, customer, day, known)
        emit(report, output.value, console)
        if output is not Format.table and not report.rows:
            err_console.print(report.notes[0], highlight=False, markup=False)

    @app.command()
    def programs(
        as_of: Annotated[str | None, typer.Option(
            "--as-of", help="valid date D (YYYY-MM-DD; default: today)")] = None,
        known_at: KnownAtOption = None,
        output: FormatOption = Format.table,
        database: DatabaseOption = None,
    ) -> None:
        """Programs (the standard deals agreements are made from) with their enrolled
        agreements and totals per currency at D."""
        from datetime import UTC, datetime

        from ledger.audit.output import emit

        day = parse_as_of(as_of) if as_of is not None else datetime.now(UTC).date()
        known = parse_known_at(known_at)
        with open_service(database) as (service, principal):
            service.check_names(known_at=known)
            report = service.programs_report(principal, day, known)
        emit(report, output.value, console)

    @app.command()
    def simulate(
        draft: Annotated[Path, typer.Option(
            "--draft", help="JSONL: a create_agreement and optional amend_agreement lines")],
        as_of: Annotated[str | None, typer.Option(
            "--as-of", help="stop at this date (default: the end of the draft's period)")] = None,
        output: FormatOption = Format.table,
        database: DatabaseOption = None,
    ) -> None:
        """What a draft agreement would have accrued, month by month, over the sales already
        recorded, next to the customer's existing agreements; nothing is stored."""
        from ledger.access import BadRequest
        from ledger.audit.output import emit
        from ledger.audit.simulate import read_draft
        from ledger.commands import lines_of
        from ledger.errors import InputUnreadable, Rejection

        day = parse_as_of(as_of) if as_of is not None else None
        try:
            lines = lines_of(draft.read_bytes())
        except OSError as error:
            raise InputUnreadable(f"--draft {draft}: {error.strerror or error}") from None
        try:
            plan = read_draft(lines)
        except Rejection as error:  # the draft is an option's file here: not usable, exit 2
            raise BadRequest(f"--draft {draft}", error.reason) from None
        with open_service(database) as (service, principal):
            service.check_names(
                customer=("the draft's customer_id", plan.created.customer_id),
                group=("the draft's group_id", plan.created.group_id))
            report = service.simulate_report(principal, lines, day)
        emit(report, output.value, console)
