"""verify reads the stored events a bounded number of bytes at a time (issue 11): a sales
batch is about 0.5 MB stored, and 200 events read at once held 100 MB on a book of a million
sales. The chain's verdict is the same however the reads are cut."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from ledger import Ledger
from ledger.audit import chain
from ledger.audit.chain import verify_store


def test_the_events_are_read_in_parts_of_bounded_bytes(book: Ledger,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with Session(book.engine) as session:
        whole = verify_store(session, book.app.recorder)
    assert whole.ok and whole.events > 5
    read: list[int] = []
    real_execute = Session.execute

    def counting(self: Session, statement: Any, *args: Any, **kwargs: Any) -> Any:
        result = real_execute(self, statement, *args, **kwargs)
        if "state" in [c.name for c in getattr(statement, "selected_columns", [])]:
            rows = result.all()
            read.append(len(rows))
            return iter(rows)
        return result

    monkeypatch.setattr(chain, "STORED_BYTES_PER_QUERY", 1)  # one event a query, at least
    monkeypatch.setattr(Session, "execute", counting)
    with Session(book.engine) as session:
        parted = verify_store(session, book.app.recorder)
    assert read == [1] * whole.events
    assert (parted.ok, parted.head_position, parted.head_hash, parted.chained) == (
        whole.ok, whole.head_position, whole.head_hash, whole.chained)
