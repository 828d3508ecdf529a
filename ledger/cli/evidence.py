"""CLI commands of the auditors' toolkit for evidence: `verify`, `digest` (see
ledger/audit/__init__.py). No `from __future__ import annotations`: typer reads the
annotations, and the option types are defined inside `register`."""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from ledger.cli.errors import EXIT_FAILED, EXIT_OK


def read_digest(text: str) -> tuple[int | None, str]:
    """`--digest`: what `rebate-ledger digest` printed in any format (table, csv, json), as a
    file or as text, or a bare store hash."""
    from ledger.audit.chain import parse_digest

    path = Path(text)
    try:
        raw = path.read_text("utf-8") if path.is_file() else text
    except (OSError, UnicodeDecodeError) as error:
        raise typer.BadParameter(f"{text}: cannot be read ({error})",
                                 param_hint="--digest") from None
    found = parse_digest(raw)
    if found is None:
        raise typer.BadParameter(
            f"{text!r} is neither a file nor what `rebate-ledger digest` prints (in table, "
            "csv or json format) nor a bare store hash of 64 hex digits",
            param_hint="--digest") from None
    return found


def register(app: typer.Typer,
             log_check: Callable[[Any], tuple[list[Any], int]] | None = None) -> None:
    """Add this module's commands to `app`. `log_check(ledger)` checks the Kafka events topic
    against the store for `verify --log` (given by the entrypoint that knows Kafka), giving
    the breaks and how many records it read."""
    from ledger.cli import DatabaseOption, Format, console, open_service

    FormatOption = Annotated[  # noqa: N806 - a type alias, evaluated here
        Format, typer.Option("--format", help="table, json or csv")
    ]

    @app.command()
    def event(
        reference: Annotated[str, typer.Argument(
            metavar="ID", help="an event id as reports print it (<aggregate id>/<version>) "
            "or a store position")],
        output: FormatOption = Format.table,
        database: DatabaseOption = None,
    ) -> None:
        """Show one stored event: type, valid and recorded times, who recorded it, the
        business ids it is about, its place in the hash chains and the payload as stored."""
        import csv

        with open_service(database) as (service, principal):
            found = service.event(principal, reference)  # an id it cannot find: exit 2
        chain = found.pop("chain") or {}
        payload = found.pop("payload")
        fields = {**found, **{f"chain_{k}": v for k, v in chain.items()}}
        if output is Format.json:
            console.file.write(orjson.dumps({**found, "chain": chain or None,
                                             "payload": payload}).decode() + "\n")
            return
        if output is Format.csv:
            writer = csv.writer(console.file, lineterminator="\n")
            writer.writerow(["field", "value"])
            writer.writerows([k, "" if v is None else v] for k, v in fields.items())
            writer.writerow(["payload", orjson.dumps(payload).decode()])
            return
        width = max(len(k) for k in fields)
        lines = [f"{k.replace('_', ' ').ljust(width)}  {'' if v is None else v}"
                 for k, v in fields.items()]
        if not chain:
            lines.append("chain".ljust(width) + "  not chained yet (the next write chains it)")
        lines.append("payload:")
        lines.append(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        console.file.write("\n".join(lines) + "\n")

    @app.command()
    def verify(
        digest_text: Annotated[str | None, typer.Option(
            "--digest", help="a digest taken earlier (file or JSON): prove the chain still "
            "passes through it")] = None,
        log: Annotated[bool, typer.Option(
            "--log", help="also check every record of the Kafka events topic against the "
            "store")] = False,
        output: FormatOption = Format.table,
        database: DatabaseOption = None,
    ) -> None:
        """Recompute the hash chains of every stored event (per stream and in store order)
        and name the first event that breaks them; re-derive the read tables from the events
        and name every row that differs; exit 1 on any break or difference."""
        from ledger.audit.output import Report, emit
        from ledger.audit.tables import verify_document

        wanted = read_digest(digest_text) if digest_text else None
        if log and log_check is None:
            raise typer.BadParameter("this program has no Kafka log check", param_hint="--log")
        # check_tables=False: verify opens a store whose read tables are missing, to name them
        with open_service(database, check_tables=False) as (service, principal):
            result, tables = service.verify_checks(principal, digest=wanted,
                                                   log_check=log_check if log else None)
        document = verify_document(result, tables)
        verdict = document["verdict"]
        if output is Format.json:
            console.file.write(orjson.dumps(document).decode() + "\n")
        elif output is Format.csv:
            # one CSV: a summary row, then a row per finding; every row carries the verdict
            summary = {
                "check": "summary",
                "position": result.head_position, "what": (
                    f"{result.events} events, {result.chained} chained, head hash "
                    f"{result.head_hash}; {sum(tables.rows.values())} read table rows "
                    f"re-derived, {tables.count} difference(s)")}
            findings = [summary, *({"check": "chain", **b.to_dict()} for b in result.breaks)]
            if result.digest_checked:
                findings.append({"check": "digest", "what": (
                    f"{'OK' if result.digest_ok else 'FAILED'}: {result.digest_detail}")})
            findings += [{"check": "read table", **d.to_dict(),
                          "key": orjson.dumps(d.key).decode(), "stored": _cell(d.stored),
                          "derived": _cell(d.derived)} for d in tables.differences]
            emit(Report("verify", ("verdict", "check", "position", "aggregate_id", "version",
                                   "type", "table", "key", "column", "stored", "derived",
                                   "what"),
                        [{"verdict": verdict, **f} for f in findings]), "csv", console)
        else:
            console.print(f"{result.events} stored events, {result.chained} chained; head "
                          f"position {result.head_position}, hash {result.head_hash}",
                          highlight=False, markup=False)
            if result.chained == 0 and result.events and not any(
                    "emptied" in b.what for b in result.breaks):
                console.print("no event of this store is chained: it predates tamper "
                              "evidence, or its chain was emptied behind the ledger; writes "
                              "are refused until it is chained explicitly with `rebate-ledger "
                              "rechain` (after checking it against a published digest or a "
                              "backup)", highlight=False, markup=False)
            if result.breaks:
                first = result.breaks[0]
                # what the break belongs to, when it belongs to an event (a watermark set back
                # or an emptied chain belongs to the store, not to one aggregate)
                kind = document["first_break"]["type"]
                of = ", ".join(part for part in (
                    f"aggregate {first.aggregate_id}" if first.aggregate_id not in ("", "?")
                    else "", f"version {first.version}" if first.version is not None else "",
                    kind or "") if part)
                console.print(
                    f"BROKEN at position {first.position}: {first.what}"
                    f"{f' ({of})' if of else ''}; {len(result.breaks)} break(s)",
                    highlight=False, markup=False)
            else:
                console.print("both chains verify: no event was altered, removed or "
                              "inserted behind the ledger", highlight=False, markup=False)
            if result.digest_checked:
                console.print(f"digest: {'OK' if result.digest_ok else 'FAILED'}: "
                              f"{result.digest_detail}", highlight=False, markup=False)
            if result.log_checked:
                console.print(f"Kafka log: {result.log_records} records checked against "
                              "the store", highlight=False, markup=False)
            compared = sum(tables.rows.values())
            if tables.ok:
                console.print(f"read tables: {compared} rows of {len(tables.rows)} tables "
                              f"re-derived from {tables.events} events, all equal",
                              highlight=False, markup=False)
            else:
                console.print(f"read tables DIFFER from the events: {tables.count} "
                              f"difference(s) in {compared} rows of {len(tables.rows)} tables",
                              highlight=False, markup=False)
                for position, why in tables.undecodable.items():
                    console.print(f"  event at position {position} does not decode ({why}): "
                                  "its rows could not be derived", highlight=False, markup=False)
                for difference in tables.differences:
                    console.print(f"  {difference.line()}", highlight=False, markup=False)
                if tables.count > len(tables.differences):
                    console.print(f"  ... and {tables.count - len(tables.differences)} more",
                                  highlight=False, markup=False)
        raise typer.Exit(EXIT_OK if result.ok and tables.ok else EXIT_FAILED)

    def _cell(value: Any) -> str:
        return "" if value is None else orjson.dumps(value).decode() \
            if isinstance(value, dict) else str(value)

    @app.command()
    def digest(
        output: FormatOption = Format.table,
        database: DatabaseOption = None,
    ) -> None:
        """The head of the store's hash chain (position and hash), to publish; `verify
        --digest` proves later that the store still extends it."""
        with open_service(database) as (service, principal):
            found, taken = service.digest(principal)
        document = {**found.to_dict(), "taken_at": taken.isoformat()}
        if output is Format.table:
            console.print(f"position {found.position}  store hash {found.hash}  "
                          f"({found.events} events, taken {taken.isoformat()})",
                          highlight=False, markup=False)
        elif output is Format.csv:
            console.file.write("position,store_hash,events,taken_at\n"
                               f"{found.position},{found.hash},{found.events},"
                               f"{taken.isoformat()}\n")
        else:
            console.file.write(orjson.dumps(document).decode() + "\n")

    @app.command()
    def rechain(
        yes: Annotated[bool, typer.Option(
            "--yes", help="chain the store's events as they are now")] = False,
        database: DatabaseOption = None,
    ) -> None:
        """Chain every event of a store that predates tamper evidence, once, explicitly (the
        ledger never does it on its own). Refused for a store that had a chain (an anchor or
        a chain entry): re-chaining would launder any edit made behind the ledger."""
        from ledger.access import BadRequest

        if not yes:
            raise BadRequest("", "rechain hashes the events exactly as they are now: "
                             "check the store against a published digest or a backup first, "
                             "then run `rebate-ledger rechain --yes`")
        with open_service(database) as (service, principal):
            count = service.rechain(principal)
        console.print(f"chained {count} events; publish the head: `rebate-ledger digest`",
                      highlight=False, markup=False)

    @app.command("rebuild-tables")
    def rebuild_tables(
        yes: Annotated[bool, typer.Option(
            "--yes", help="replace the store's core read tables by ones re-derived from "
            "its events")] = False,
        database: DatabaseOption = None,
    ) -> None:
        """Re-derive every core read table (core_agreements, core_basis, core_money, ...) from
        the stored events and put them in place of what the store has: the way back from a
        read table dropped or edited behind the ledger (which is refused, never recreated
        empty). Refused while the events' hash chain does not verify."""
        from ledger.access import BadRequest

        if not yes:
            raise BadRequest("", "rebuild-tables replaces every core read table by one "
                             "derived from the stored events: run `rebate-ledger verify` to "
                             "see what differs, then `rebate-ledger rebuild-tables --yes`")
        with open_service(database, check_tables=False) as (service, principal):
            missing, written = service.rebuild_tables(principal)  # StoreDamaged: exit 2
        console.print(f"rebuilt {len(written)} read tables ({sum(written.values())} rows) "
                      f"from the stored events" + (f"; were missing: {', '.join(missing)}"
                                                   if missing else ""),
                      highlight=False, markup=False)

    @app.command()
    def evidence(
        as_of: Annotated[str, typer.Option("--as-of", help="valid date D (YYYY-MM-DD)")],
        out: Annotated[Path, typer.Option(
            "--out", help="the zip file to write (never a file of the store; written to a "
            "temporary file beside it, then renamed)")],
        known_at: Annotated[str | None, typer.Option(
            "--known-at", help="as the books stood at K (default: everything recorded)")] = None,
        force: Annotated[bool, typer.Option(
            "--force", help="replace --out if it exists")] = False,
        database: DatabaseOption = None,
    ) -> None:
        """Write the evidence pack for the position at D as known at K: positions, journal,
        trial balance, reconcile, the diff against the last close, rejections, explain for
        every agreement, verify and digest, a README and a manifest of SHA-256 hashes."""
        from ledger.cli import parse_as_of, parse_known_at
        from ledger.output_files import OutputRefused

        day, known = parse_as_of(as_of), parse_known_at(known_at)
        try:
            with open_service(database) as (service, principal):
                pack = service.write_evidence(principal, day, known, out, force=force)
        except OSError as error:  # OutputRefused (a LedgerError) rises as it is
            raise OutputRefused(f"--out {out}: {error.strerror or error}") from None
        checked = "verified" if pack.verified else (
            f"{pack.table_differences} read table difference(s)" if pack.table_differences
            else "BROKEN")
        console.print(f"wrote {pack.path}: {len(pack.files)} files and manifest.json; chain "
                      f"and read tables {checked}, trial balance "
                      f"{'balanced' if pack.balanced else 'NOT balanced'}",
                      highlight=False, markup=False)
        raise typer.Exit(EXIT_OK if pack.verified and pack.balanced else EXIT_FAILED)
