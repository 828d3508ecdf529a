"""`rebate-ledger evidence --as-of D [--known-at K] --out FILE.zip`: what an auditor takes away.

The zip holds, for the position at D as known at K: the positions (the contract's liability
rows), the journal and the trial balance, reconcile's flags, the diff against the last
closed period (`post_close`), the rejected commands, the explanation of every agreement, the
result of `verify` and the digest of the store's hash chain, each as JSON (and CSV where
tabular), README.txt for the recipient, and `manifest.json`: the question asked, the
ledger's version, the digest, and the SHA-256 and size of every other file, so that anyone
can check that nothing in the pack was changed.
"""

from __future__ import annotations

import csv
import hashlib
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson
from sqlalchemy.orm import Session

from ledger import __version__
from ledger.audit.chain import digest, verify_store
from ledger.audit.close import last_close_ending_by
from ledger.audit.diff import write_diff
from ledger.audit.explain import explain
from ledger.audit.journal import JOURNAL_COLUMNS, iter_postings, trial_balance_report
from ledger.audit.output import Report, _cell, plain
from ledger.audit.reconcile import reconcile_report
from ledger.audit.tables import verify_document, verify_tables
from ledger.core import Ledger
from ledger.liability import LiabilityRow
from ledger.output_files import check_target, replacing
from ledger.text import csv_cell

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Pack:
    path: Path
    files: dict[str, str]  # name -> sha256
    verified: bool  # the hash chain and the read tables
    balanced: bool
    table_differences: int = 0


def _positions_report(rows: list[LiabilityRow], as_of: date,
                      known_at: datetime | None) -> Report:
    columns = ("agreement_id", "customer_id", "currency", "basis", "accrued", "approved",
               "paid", "written_off", "liability")
    return Report(f"Positions at {as_of}", columns, [r.to_dict() for r in rows],
                  meta={"as_of": as_of, "known_at": known_at})


class _Parts:
    """The pack's files while it is made: each in a temporary file (not in memory: a year's
    journal is tens of megabytes), copied into the zip at the end in name order, hashed as it
    is copied."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.paths: dict[str, Path] = {}

    def path(self, name: str) -> Path:
        assert name not in self.paths, name
        self.paths[name] = self.folder / f"{len(self.paths)}.part"
        return self.paths[name]

    def add(self, name: str, data: bytes) -> None:
        self.path(name).write_bytes(data)

    def add_report(self, stem: str, report: Report, csv: bool = True) -> None:
        self.add(f"{stem}.json", report.to_json())
        if csv:
            self.add(f"{stem}.csv", report.to_csv().encode())

    @contextmanager
    def text(self, name: str) -> Iterator[TextIO]:
        with self.path(name).open("w", encoding="utf-8", newline="") as out:
            yield out

    def drop_final_newline(self, name: str) -> None:
        with self.paths[name].open("r+b") as part:
            part.seek(-1, 2)
            assert part.read(1) == b"\n", name
            part.seek(-1, 2)
            part.truncate()

    def names(self) -> list[str]:
        return sorted(self.paths)

    def sha256(self, name: str) -> str:
        digest_ = hashlib.sha256()
        with self.paths[name].open("rb") as part:
            while block := part.read(COPY_BYTES):
                digest_.update(block)
        return digest_.hexdigest()

    def size(self, name: str) -> int:
        return self.paths[name].stat().st_size

    def copy_into(self, archive: zipfile.ZipFile, name: str) -> None:
        """As `ZipFile.writestr(name, data)` would store it, without the data in memory."""
        info = zipfile.ZipInfo(name, date_time=time.localtime(time.time())[:6])
        info.compress_type = archive.compression
        info.external_attr = 0o600 << 16
        size = self.size(name)
        info.file_size = size
        with self.paths[name].open("rb") as part, archive.open(
                info, "w", force_zip64=size > zipfile.ZIP64_LIMIT) as member:
            while block := part.read(COPY_BYTES):
                member.write(block)


#: bytes read at a time when a part is hashed or copied
COPY_BYTES = 1 << 20


def write_pack(ledger: Ledger, as_of: date, known_at: datetime | None, out: Path,
               *, force: bool = False) -> Pack:
    """Write the pack to `out` (never a file of the store; an existing file only with `force`;
    complete or not at all: `ledger.output_files`). Raises `OutputRefused` before any work.
    Memory stays bounded by one agreement's figures: the journal and the diff are streamed
    into temporary files, each agreement explained in turn (issue 11)."""
    check_target(out, ledger.database_url, force=force)
    with tempfile.TemporaryDirectory(prefix="ledger-evidence-") as folder:
        return _write_pack(ledger, as_of, known_at, out, _Parts(Path(folder)))


def _write_pack(ledger: Ledger, as_of: date, known_at: datetime | None, out: Path,
                files: _Parts) -> Pack:
    rows = ledger.liability(as_of, known_at)
    files.add_report("positions", _positions_report(rows, as_of, known_at))
    with files.text("journal.json") as json_out, files.text("journal.csv") as csv_out:
        _write_journal(ledger, as_of, known_at, json_out, csv_out)
    balance = trial_balance_report(ledger, as_of, known_at)
    files.add_report("trial_balance", balance)
    for row in rows:
        explanation = explain(ledger, row.agreement_id, as_of, known_at, ledger_row=row)
        name = f"explain/{_safe(row.agreement_id)}"
        files.add(f"{name}.json", orjson.dumps(explanation.to_dict()))
        files.add(f"{name}.txt", ("\n".join(explanation.lines()) + "\n").encode())
        del explanation
    files.add_report("reconcile", reconcile_report(ledger, as_of, known_at))
    close = last_close_ending_by(ledger, as_of, known_at)
    if close is not None:
        with files.text("post_close.json") as json_out:
            write_diff(ledger, close.end, close.closed_at, known_at, "json", json_out)
        files.drop_final_newline("post_close.json")  # as the report's JSON: none
        with files.text("post_close.csv") as csv_out:
            write_diff(ledger, close.end, close.closed_at, known_at, "csv", csv_out)
    files.add_report("rejections", _rejections_report(ledger, known_at))
    with Session(ledger.engine) as session:
        verified = verify_store(session, ledger.app.recorder)
        head = digest(session)
    tables = verify_tables(ledger)
    files.add("verify.json", orjson.dumps(verify_document(verified, tables)))
    files.add("digest.json", orjson.dumps(head.to_dict()))
    files.add("README.txt", _readme(as_of, known_at, close, verified.ok, tables.ok,
                                    bool(balance.extra["balanced"]), head.to_dict(),
                                    files.names()).encode())
    hashes = {name: files.sha256(name) for name in files.names()}
    manifest: dict[str, Any] = {
        "question": {"as_of": plain(as_of), "known_at": plain(known_at)},
        "created_at": plain(ledger.clock()),
        "ledger": {"name": "rebate-ledger", "version": __version__},
        "digest": head.to_dict(),
        "verified": verified.ok and tables.ok,
        "chain_verified": verified.ok,
        "read_tables_verified": tables.ok,
        "trial_balance_balanced": bool(balance.extra["balanced"]),
        "liability_matches_contract": bool(balance.extra["liability_matches"]),
        "files": {name: {"sha256": hashes[name], "bytes": files.size(name)}
                  for name in files.names()},
    }
    with replacing(out) as handle, zipfile.ZipFile(
        handle, "w", compression=zipfile.ZIP_DEFLATED
    ) as archive:
        for name in files.names():
            files.copy_into(archive, name)
        archive.writestr(MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return Pack(out, hashes, verified.ok and tables.ok, bool(balance.extra["balanced"]),
                tables.count)


def _write_journal(ledger: Ledger, as_of: date, known_at: datetime | None,
                   json_out: TextIO, csv_out: TextIO) -> None:
    """The journal as `journal_report(...).to_json()` and `.to_csv()` write it, from one pass
    over the postings, row by row."""
    head = orjson.dumps(plain({"as_of": as_of, "known_at": known_at}))
    json_out.write(head[:-1].decode() + ',"rows":[')
    writer = csv.writer(csv_out, lineterminator="\n")
    writer.writerow(JOURNAL_COLUMNS)
    entries = 0
    for n, line in enumerate(iter_postings(ledger, as_of, known_at)):
        row = plain(line.to_row())  # once for both files (it was a third of this loop)
        entries = max(entries, line.entry)  # numbered 1.. without gaps: the count
        json_out.write(("," if n else "") + orjson.dumps(row).decode())
        # as csv.DictWriter(fieldnames=JOURNAL_COLUMNS, extrasaction="ignore") writes it
        writer.writerow([csv_cell(_cell(row[k])) if k in row else "" for k in JOURNAL_COLUMNS])
    json_out.write("]," + orjson.dumps({"entries": entries}).decode()[1:])


def _rejections_report(ledger: Ledger, known_at: datetime | None) -> Report:
    """Every command the ledger refused (as known at K), with its reason: what did not get
    into the figures."""
    rows = [{"line": r.line, "source": r.source, "command_type": r.command_type,
             "field": r.field, "reason": r.reason,
             "rejected_at": r.rejected_at, "command": r.command}
            for r in ledger.rejections()
            if known_at is None or r.rejected_at is None or r.rejected_at <= known_at]
    return Report("Rejected commands", ("line", "source", "command_type", "field", "reason",
                                        "rejected_at", "command"), rows)


#: what each file of the pack is, for README.txt
CONTENTS = {
    "positions": "the liability of every agreement at D as known at K (the contract's rows)",
    "journal": "the accrual postings behind the positions",
    "trial_balance": "the accounts, Dr/Cr, balanced, and checked against the positions",
    "reconcile": "finance's flags per agreement: claims above earned, unclaimed accruals "
                 "past grace, negative liabilities, approved but unpaid, post-close "
                 "adjustments",
    "post_close": "the position at the end of the last closed period as reported at its "
                  "close against as known at K, agreement by agreement, with the causes",
    "rejections": "every command the ledger refused, with its reason (not in the figures)",
    "explain/": "per agreement, the derivation of its figures down to the events",
    "verify.json": "the hash chains of every stored event and the read tables re-derived "
                   "from the events",
    "digest.json": "the head of the store's hash chain, to compare with a published digest",
}


def _readme(as_of: date, known_at: datetime | None, close: Any, chain_ok: bool,
            tables_ok: bool, balanced: bool, head: dict[str, Any], names: list[str]) -> str:
    known = plain(known_at) if known_at is not None else "everything recorded when packed"
    lines = [
        "rebate-ledger evidence pack",
        "",
        f"Question: the rebate liability at {as_of} as the books stood at {known}.",
        f"Hash chains: {'verified' if chain_ok else 'BROKEN (see verify.json)'}; read tables: "
        f"{'equal to the events' if tables_ok else 'DIFFER from the events (see verify.json)'}"
        f"; trial balance: {'balanced' if balanced else 'NOT balanced'}.",
        f"Store head: position {head['position']}, hash {head['store_hash']}.",
        ("Last close: " + (f"{close.period} ({close.start} to {close.end}), closed "
                           f"{plain(close.closed_at)}; post_close.* compares it with K."
                           if close is not None else "none of a period ending by "
                           f"{as_of}, so there is no post_close file.")),
        "",
        "Files (each as .json and, where tabular, .csv):",
    ]
    for stem, what in CONTENTS.items():
        if any(n == stem or n.startswith(f"{stem}.") or (stem.endswith("/") and
                                                         n.startswith(stem)) for n in names):
            lines.append(f"  {stem:<14} {what}")
    lines += [
        "",
        "manifest.json lists the SHA-256 and size of every other file (this one included).",
        "To check the pack: unzip it and compare `sha256sum` of each file with the manifest,",
        "or run `rebate-ledger verify --digest digest.json` against the store to prove that",
        "the store still extends the chain this pack was taken from.",
    ]
    return "\n".join(lines) + "\n"


def check_pack(path: Path) -> list[str]:
    """Problems found in a pack: files whose hash or size differ from the manifest, files
    missing or not listed. Empty: the pack is as written."""
    problems = []
    with zipfile.ZipFile(path) as archive:
        manifest = orjson.loads(archive.read(MANIFEST))
        names = set(archive.namelist()) - {MANIFEST}
        for name, entry in manifest["files"].items():
            if name not in names:
                problems.append(f"{name}: missing")
                continue
            data = archive.read(name)
            if hashlib.sha256(data).hexdigest() != entry["sha256"] or len(data) != entry["bytes"]:
                problems.append(f"{name}: differs from the manifest")
        problems += [f"{name}: not in the manifest" for name in sorted(
            names - set(manifest["files"]))]
    return problems


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
