"""What `rebate-ledger replay | audit-view | project | claims` run (ledger/cli/ parses)."""

from __future__ import annotations

import csv
import io
import signal
import threading
from datetime import date, datetime
from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from consumers.transport import transport
from ledger.core import Ledger
from ledger.kafka.broker import broker_bootstrap, find_running_broker
from ledger.kafka.settings import KafkaSettings
from ledger.projections.generations import check_name
from ledger.projections.reader import quarantine_of
from ledger.projections.runner import ProjectionRunner
from ledger.text import csv_cell
from replay.rebuild import (
    AuditResult,
    Difference,
    audit_view,
    publish_store,
    replay_projection,
    run_projections,
)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("store positions · {task.fields[events]} events"), TimeElapsedColumn(),
        console=console, transient=False,
    )


def main_replay(
    ledger: Ledger, name: str, settings: KafkaSettings, home: Path, console: Console
) -> int:
    check_name(name)
    with broker_bootstrap(settings.bootstrap, home) as bootstrap, _progress(console) as bar:
        task = bar.add_task(f"replay {name}", total=None, events=0)

        def progress(runner: ProjectionRunner, position: int) -> None:
            bar.update(task, total=position, completed=min(runner.max_position(), position),
                       events=runner.applied)

        generation = replay_projection(
            ledger, name, transport(settings, bootstrap), settings, on_progress=progress
        )
        bar.update(task, completed=bar.tasks[0].total or 0)
    console.print(f"replay: {name} generation {generation.number} is live", highlight=False)
    quarantine = quarantine_of(ledger, name)
    if quarantine is not None and quarantine[1]:
        console.print(
            f"replay: {name} generation {generation.number} is INCOMPLETE: the log lacks "
            f"stored events, and {len(quarantine[1])} record(s) it could not read are "
            "quarantined (see audit-view)", highlight=False,
        )
        return 1
    return 0


def main_audit_view(
    ledger: Ledger,
    as_of: date,
    known_at: datetime | None,
    settings: KafkaSettings,
    home: Path,
    *,
    output: str = "table",
    console: Console,
    err_console: Console,
) -> int:
    """`rebate-ledger audit-view`: `output` is "table", "json" or "csv" (CSV: one line per
    agreement and field that differs anywhere, `AUDIT_CSV_COLUMNS`; just the header when
    nothing does). Exit 0 when the log, the core and the live projection agree, else 1."""
    with broker_bootstrap(settings.bootstrap, home) as bootstrap, _progress(err_console) as bar:
        task = bar.add_task("audit view from the log", total=None, events=0)

        def progress(runner: ProjectionRunner, position: int) -> None:
            bar.update(task, total=position,
                       completed=min(runner.max_position(), position),
                       events=runner.applied)

        result = audit_view(
            ledger, transport(settings, bootstrap), settings, as_of, known_at,
            on_progress=progress,
        )
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(AUDIT_CSV_COLUMNS)
        for row in result.table():
            writer.writerow(
                tuple(csv_cell(row.get(column) or "") for column in AUDIT_CSV_COLUMNS)
            )
        console.file.write(buffer.getvalue())
    elif output == "json":
        console.file.write(orjson.dumps({
            "as_of": as_of.isoformat(),
            "known_at": None if known_at is None else known_at.isoformat(),
            "store_position": result.position,
            "rows": len(result.core_rows),
            "differences": [d.to_dict() for d in result.differences],
            "incomplete": {
                source: [{"topic": r.topic, "partition": r.partition, "offset": r.offset,
                          "reason": r.reason} for r in records]
                for source, records in result.incomplete.items()
            },
            "projection": {
                "source": result.projection_source,
                "rows": None if result.projection_rows is None else len(result.projection_rows),
                "differences": [d.to_dict("projection") for d in result.projection_differences],
            },
        }).decode() + "\n")
    else:
        console.print(
            f"audit view at {as_of}, known at {known_at or 'everything recorded'}: "
            f"{len(result.log_rows)} rows from the log (store position {result.position}), "
            f"{len(result.core_rows)} from the core",
            highlight=False,
        )
        _print_differences(console, result.differences, "core", "the core")
        if result.projection_source is None:
            console.print(
                "live projection: none has caught up with the store, so liability queries "
                "answer from the core", highlight=False,
            )
        else:
            _print_differences(console, result.projection_differences, "projection",
                               f"the live {result.projection_source}")
        _print_incomplete(console, result)
    return 0 if result.clean else 1


def _print_incomplete(console: Console, result: AuditResult) -> None:
    for source, records in result.incomplete.items():
        what = ("the view rebuilt from the log" if source == "log" else source)
        console.print(
            f"INCOMPLETE: {what} quarantined {len(records)} record(s) it could not read; "
            "figures from it may lack events"
            + ("" if source == "log" else
               f" (rebuild: rebate-ledger replay {source.split()[1]})"),
            highlight=False,
        )
        for record in records[:20]:
            console.print(f"  {record.describe()}", highlight=False)
        if len(records) > 20:
            console.print(f"  ... and {len(records) - 20} more", highlight=False)


#: `audit-view --format csv`: one line per agreement and field that differs anywhere
#: (projection empty when no live projection has caught up)
AUDIT_CSV_COLUMNS = ("agreement_id", "field", "log", "core", "projection")


def _print_differences(
    console: Console, differences: list[Difference], column: str, name: str
) -> None:
    if not differences:
        console.print(f"log against {name}: no difference", highlight=False)
        return
    table = Table(title=f"log against {name}: {len(differences)} differences")
    for heading in ("agreement_id", "field", "log", column):
        table.add_column(heading)
    for d in differences:
        table.add_row(d.agreement_id, d.field, str(d.log), str(d.core))
    console.print(table)


def main_project(
    ledger: Ledger,
    settings: KafkaSettings,
    home: Path,
    *,
    until_idle_s: float | None,
    poll_records: int = 20_000,
    console: Console,
) -> int:
    # neither a configured cluster nor a running `rebate-ledger broker`: a broker of our own,
    # empty, that nobody else publishes to; the relay fills it from the store first
    private = not settings.bootstrap and find_running_broker(home) is None
    with broker_bootstrap(settings.bootstrap, home) as bootstrap:
        kafka = transport(settings, bootstrap)
        stop = threading.Event()
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        console.print(
            f"project: liability, claims, sales from {settings.topic('events')} at {bootstrap}",
            highlight=False,
        )
        if private:
            position = publish_store(ledger, kafka, settings)
            console.print(
                f"project: a broker of its own, filled from the store up to position {position}",
                highlight=False,
            )
        try:
            counters = run_projections(
                ledger, kafka, settings, stop, until_idle_s=until_idle_s,
                poll_records=poll_records,
            )
        except KeyboardInterrupt:
            counters = {}
        finally:
            signal.signal(signal.SIGTERM, previous)
        for name, counter in counters.items():
            console.print(
                f"project: {name}: applied {counter['applied']}, skipped {counter['skipped']}, "
                f"watermark {counter['watermark']}",
                highlight=False,
            )
            if counter.get("gaps"):
                console.print(
                    f"project: {name}: WAITING on {counter['gaps']} gap(s) on the log (records "
                    "held until the missing ones arrive; the relay re-sends after a failed "
                    "delivery, else run the `rebate-ledger relay --from-position` the "
                    "projection's log names)",
                    highlight=False,
                )
            if counter.get("quarantined"):
                console.print(
                    f"project: {name}: INCOMPLETE, {counter['quarantined']} malformed "
                    f"record(s) quarantined (see audit-view); rebuild: rebate-ledger replay "
                    f"{name}",
                    highlight=False,
                )
    return 0
