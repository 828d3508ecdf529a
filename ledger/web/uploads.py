"""Files uploaded on the import page, kept between the preview and the apply.

The preview imports the file into nothing (a dry run); the apply must import exactly the file
that was previewed, so the file and its mapping wait here under a random token, for the user who
uploaded them only, at most `KEEP_S`. One folder on disk (shared by the server's workers, which
may answer the preview and the apply in different processes), bounded in count and age.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

#: How long an upload waits for its apply.
KEEP_S = 3600
#: An apply that reported no progress for this long stopped with its server (a chunk is
#: reported as soon as it is stored; none takes minutes).
STALE_S = 600
#: Most uploads waiting at once (the oldest go first).
WAITING_MAX = 50
#: How much of an upload is copied at a time.
CHUNK_BYTES = 1 << 20
#: A token as `Uploads.keep` makes it (nothing else names a folder here).
TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")
#: File endings kept (the importer tells a workbook from a CSV file by its ending).
SUFFIXES = {".csv", ".txt", ".tsv", ".xlsx", ".xlsm", ".xls", ".jsonl", ".ndjson"}
#: File endings of JSON Lines (contract commands, one a line: imported without a mapping).
LINES_SUFFIXES = {".jsonl", ".ndjson"}


class UploadTooLarge(Exception):
    """The file is larger than the bound; nothing of it is kept."""


@dataclass(frozen=True)
class Upload:
    token: str
    owner: str
    filename: str  # as the browser named it (shown, never used as a path)
    data: Path
    mapping: Path
    sheet: str | None
    encoding: str | None
    sha256: str
    size: int


class Uploads:
    def __init__(self, folder: str | Path | None, bytes_max: int) -> None:
        self.folder = Path(folder) if folder else (
            Path(tempfile.gettempdir()) / "rebate-ledger-web-uploads")
        self.bytes_max = bytes_max

    def keep(self, owner: str, filename: str, data: BinaryIO, mapping: bytes,
             sheet: str | None, encoding: str | None) -> Upload:
        """Copy the upload (bounded by `bytes_max`) and its mapping under a new token."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._sweep()
        token = secrets.token_urlsafe(24)
        place = self.folder / token
        place.mkdir(mode=0o700)
        suffix = Path(filename).suffix.lower()
        target = place / f"upload{suffix if suffix in SUFFIXES else '.csv'}"
        digest = hashlib.sha256()
        size = 0
        try:
            with target.open("wb") as out:
                while chunk := data.read(CHUNK_BYTES):
                    size += len(chunk)
                    if size > self.bytes_max:
                        raise UploadTooLarge(f"file: larger than {self.bytes_max:,} bytes; "
                                             "split it, or import it with the command line")
                    digest.update(chunk)
                    out.write(chunk)
            (place / "mapping.toml").write_bytes(mapping)
            meta = {"owner": owner, "filename": filename[:200], "data": target.name,
                    "sheet": sheet, "encoding": encoding, "sha256": digest.hexdigest(),
                    "size": size, "kept": time.time()}
            (place / "meta.json").write_bytes(orjson.dumps(meta))
        except BaseException:
            shutil.rmtree(place, ignore_errors=True)
            raise
        found = self.get(owner, token)
        assert found is not None
        return found

    def get(self, owner: str, token: str) -> Upload | None:
        """The upload of `owner` under `token`; None when there is none (or not theirs, or
        it waited too long)."""
        if not TOKEN.fullmatch(token):
            return None
        place = self.folder / token
        try:
            meta = orjson.loads((place / "meta.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        if meta.get("owner") != owner or time.time() - float(meta.get("kept", 0)) > KEEP_S:
            return None
        return Upload(token, owner, str(meta["filename"]), place / str(meta["data"]),
                      place / "mapping.toml", meta.get("sheet"), meta.get("encoding"),
                      str(meta["sha256"]), int(meta["size"]))

    def start(self, token: str) -> bool:
        """Mark the upload's apply as started; False when it was already (apply once)."""
        try:
            os.close(os.open(self.folder / token / "started", os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return False
        return True

    def report(self, token: str, state: dict[str, object]) -> None:
        """Keep the apply's progress or outcome (read by `state`, from any worker)."""
        place = self.folder / token
        partial = place / f"state.{os.getpid()}.tmp"
        partial.write_bytes(orjson.dumps({**state, "at": time.time()}, default=str))
        os.replace(partial, place / "state.json")

    def state(self, token: str) -> dict[str, object] | None:
        try:
            found: dict[str, object] = orjson.loads((self.folder / token / "state.json")
                                                    .read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return found

    def drop(self, token: str) -> None:
        if TOKEN.fullmatch(token):
            shutil.rmtree(self.folder / token, ignore_errors=True)

    def _sweep(self) -> None:
        """Forget uploads past `KEEP_S`, and the oldest beyond `WAITING_MAX`."""
        waiting = []
        for place in self.folder.iterdir():
            try:
                waiting.append((place.stat().st_mtime, place))
            except OSError:
                continue
        waiting.sort()
        now = time.time()
        for number, (mtime, place) in enumerate(waiting):
            if now - mtime > KEEP_S or len(waiting) - number >= WAITING_MAX:
                shutil.rmtree(place, ignore_errors=True)
