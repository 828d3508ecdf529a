"""Answers of read use cases kept for the store position they were computed at.

An answer of the ledger for given arguments (the liability at D as known at K, for an
agreement, a customer, a group, a program) is a function of the stored events: while the store's
position (the highest notification id) is unchanged, nothing was written and the answer cannot
change. Writers are serialised (`ledger.store.lock_writer`; eventsourcing also locks the events
table on PostgreSQL), so every commit that stores an event raises the position, whichever
process or worker made it. A reader therefore reads the position first (one indexed query), and
uses an answer only if it was computed at that same position; the first answer for a new
position drops every older one.

Reading the position *before* computing keeps the cache safe against a write that commits while
the answer is computed: the answer then holds at least what the position says, and every later
reader sees the new position and recomputes.

The cache sits under the role scoping of the service (`LedgerService.liability_rows` asks for
the customers a scoped caller may see, each by its own key), so what it keeps is the same for
every caller asking the same question. Bounded: at most `rows_max` rows over all answers kept,
least recently used dropped first; an answer larger than that is not kept.

What the position does not see, `rebate-ledger rebuild-tables` replacing the read tables without
storing an event, the stamp does: an answer is kept for the pair (position, `ledger_state.writes`),
and the rebuild raises that count in its transaction, so a running server's next request
recomputes from the rebuilt tables. (A store swapped under a running server for another with the
same stamp is not seen: restart the server after swapping stores.)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

#: What an answer is kept for: (store position, read-table writes count); see the docstring.
Stamp = tuple[int, int]

#: Rows of all kept answers together, at most (one agreement's answer is one row; a kept row
#: with its terms and accrual is about 3 KB, so about 60 MB a process at most).
ROWS_MAX = 20_000


class AnswerCache:
    """Answers by key, all for one store position (see the module docstring)."""

    def __init__(self, rows_max: int = ROWS_MAX) -> None:
        assert rows_max >= 0
        self.rows_max = rows_max
        self._position: Stamp = (-1, -1)
        self._answers: OrderedDict[Hashable, tuple[Sequence[Any], Any]] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, position: Stamp, key: Hashable) -> tuple[Sequence[Any], Any] | None:
        """The answer kept for `key` at stamp `position`, or None."""
        with self._lock:
            if position != self._position:
                self.misses += 1
                return None
            found = self._answers.get(key)
            if found is None:
                self.misses += 1
                return None
            self._answers.move_to_end(key)
            self.hits += 1
            return found

    def put(self, position: Stamp, key: Hashable, rows: Sequence[Any], extra: Any = None) -> None:
        """Keep `rows` (and `extra`, e.g. where they came from) as the answer for `key` at
        `position`, computed after the position was read."""
        if len(rows) > self.rows_max:
            return
        with self._lock:
            if position < self._position:
                return  # computed before a write another reader has already seen
            if position > self._position:
                self._answers.clear()
                self._rows = 0
                self._position = position
            old = self._answers.pop(key, None)
            if old is not None:
                self._rows -= len(old[0])
            self._answers[key] = (rows, extra)
            self._rows += len(rows)
            while self._rows > self.rows_max:
                _, (dropped, _) = self._answers.popitem(last=False)
                self._rows -= len(dropped)

    def __len__(self) -> int:
        return len(self._answers)
