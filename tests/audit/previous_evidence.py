"""The evidence pack as it was before it streamed (ledger/audit/evidence.py at 286d473, verbatim
below this docstring but for this note and the diff it imports, the previous one too): the
reference that tests/audit/test_evidence_stream.py compares the streamed pack with. It held
every file of the pack in memory, the whole journal among them."""
from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.orm import Session

from ledger import __version__
from ledger.audit.chain import digest, verify_store
from ledger.audit.close import last_close_ending_by
from ledger.audit.explain import explain
from ledger.audit.journal import journal_report, trial_balance_report
from ledger.audit.output import Report, plain
from ledger.audit.reconcile import reconcile_report
from ledger.audit.tables import verify_document, verify_tables
from ledger.core import Ledger
from ledger.liability import LiabilityRow
from ledger.output_files import check_target, replacing
from tests.audit.previous_diff import diff_report

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


def write_pack(ledger: Ledger, as_of: date, known_at: datetime | None, out: Path,
               *, force: bool = False) -> Pack:
    """Write the pack to `out` (never a file of the store; an existing file only with `force`;
    complete or not at all: `ledger.output_files`). Raises `OutputRefused` before any work."""
    check_target(out, ledger.database_url, force=force)
    files: dict[str, bytes] = {}

    def add_report(stem: str, report: Report, csv: bool = True) -> None:
        files[f"{stem}.json"] = report.to_json()
        if csv:
            files[f"{stem}.csv"] = report.to_csv().encode()

    rows = ledger.liability(as_of, known_at)
    add_report("positions", _positions_report(rows, as_of, known_at))
    add_report("journal", journal_report(ledger, as_of, known_at))
    balance = trial_balance_report(ledger, as_of, known_at)
    add_report("trial_balance", balance)
    for row in rows:
        explanation = explain(ledger, row.agreement_id, as_of, known_at)
        name = f"explain/{_safe(row.agreement_id)}"
        files[f"{name}.json"] = orjson.dumps(explanation.to_dict())
        files[f"{name}.txt"] = ("\n".join(explanation.lines()) + "\n").encode()
    add_report("reconcile", reconcile_report(ledger, as_of, known_at))
    close = last_close_ending_by(ledger, as_of, known_at)
    if close is not None:
        add_report("post_close", diff_report(ledger, close.end, close.closed_at, known_at))
    add_report("rejections", _rejections_report(ledger, known_at))
    with Session(ledger.engine) as session:
        verified = verify_store(session, ledger.app.recorder)
        head = digest(session)
    tables = verify_tables(ledger)
    files["verify.json"] = orjson.dumps(verify_document(verified, tables))
    files["digest.json"] = orjson.dumps(head.to_dict())
    files["README.txt"] = _readme(as_of, known_at, close, verified.ok, tables.ok,
                                  bool(balance.extra["balanced"]), head.to_dict(),
                                  sorted(files)).encode()
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())}
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
        "files": {name: {"sha256": hashes[name], "bytes": len(files[name])}
                  for name in sorted(files)},
    }
    with replacing(out) as handle, zipfile.ZipFile(
        handle, "w", compression=zipfile.ZIP_DEFLATED
    ) as archive:
        for name in sorted(files):
            archive.writestr(name, files[name])
        archive.writestr(MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return Pack(out, hashes, verified.ok and tables.ok, bool(balance.extra["balanced"]),
                tables.count)


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
