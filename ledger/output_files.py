"""Files the CLI writes for the operator (`evidence --out`, `schema --out`): never over the
store, never over a file without `--force`, and never half written.

A path given to `--out` is a promise to write *that* file and nothing else. Three ways it could
destroy something are ruled out here, once, for every `--out`:

- it names the store or a file of it (the SQLite database, its `-wal`, `-shm` or `-journal`):
  refused, `--force` or not (issue 15: `evidence --out ledger.db` replaced the store with a
  zip and said "chain verified");
- it names an existing file: refused unless `--force`;
- the write stops half way (a full disk, Ctrl-C): the bytes go to a temporary file in the same
  directory, renamed over the target only once complete, so the target is the old file or the
  new one, never a mix.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

from ledger.errors import LedgerError

#: The files SQLite keeps beside a database file `X`: `X-wal`, `X-shm` (WAL mode) and
#: `X-journal` (rollback journal).
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


class OutputRefused(LedgerError):
    """An `--out` path the CLI will not write to; the message says why and what to do."""


def store_files(database_url: str | None) -> list[Path]:
    """The files of the store at `database_url` (none for PostgreSQL, or a URL that is not
    a SQLite file)."""
    if not database_url:
        return []
    try:
        url = make_url(database_url)
    except Exception:  # not a URL at all: opening the store will say so
        return []
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return []
    database = url.database
    if database.startswith("file:"):  # a SQLite URI filename: file:/path?mode=ro
        database = database[len("file:"):].split("?", 1)[0]
    base = Path(database)
    return [base.with_name(base.name + suffix) for suffix in SQLITE_COMPANIONS]


def _same_file(a: Path, b: Path) -> bool:
    """`a` and `b` are one file: by path once resolved (symlinks, `..`), or by inode (a
    hard link, or another spelling of a path that exists)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_target(target: Path, database_url: str | None, *, force: bool,
                 option: str = "--out", creates_folders: bool = False) -> None:
    """Raise `OutputRefused` if `target` is a file of the store at `database_url`, a
    directory, an existing file while `force` is false, or in a folder that does not exist
    (a mistyped path must not quietly become a new folder) unless `creates_folders`."""
    for store_file in store_files(database_url):
        if _same_file(target, store_file):
            raise OutputRefused(
                f"{option} {target} is a file of the ledger's store ({store_file}); writing "
                "there would destroy the store. Give another path"
            )
    if target.is_dir():
        raise OutputRefused(f"{option} {target} is a directory; give a file path")
    if not creates_folders and not target.parent.is_dir():
        raise OutputRefused(
            f"{option} {target}: the folder {target.parent} does not exist; create it first "
            "or give a path in an existing folder"
        )
    if (target.exists() or target.is_symlink()) and not force:
        raise OutputRefused(
            f"{option} {target} exists; give another path, or --force to replace it"
        )


@contextmanager
def replacing(target: Path) -> Iterator[IO[bytes]]:
    """A binary file to write `target`'s new content to: a temporary file in the same
    directory (so the rename stays on one file system), flushed to disk and renamed over
    `target` when the block ends without error, removed when it fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    try:
        # mkstemp makes the file 0600; the result gets the mode any new file gets here
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(descriptor, 0o666 & ~umask)
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_file(target: Path, data: bytes) -> None:
    """Write `data` to `target` through `replacing` (checks are the caller's)."""
    with replacing(target) as handle:
        handle.write(data)
