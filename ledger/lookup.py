"""What the store has seen: agreement, customer, group and program ids, and the moment of the
first recorded command. A report filtered on a name the store has never seen, or asked as known
at a moment before anything was recorded, would answer with an empty table that reads like
"nothing is owed"; the reports check their filters here first and refuse instead, naming the
closest known ids when one is near (a mistyped case or one character off)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Engine, Select, func, select, union
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import CompoundSelect

from ledger.errors import LedgerError
from ledger.projections.core import agreements, closes, from_us, groups, memberships, sales, to_us

#: At most this many suggestions are named.
SUGGESTIONS = 3


class UnknownName(LedgerError):
    """A filter names an id the store has never seen."""

    def __init__(self, option: str, kind: str, value: str, near: list[str]) -> None:
        hint = (f"did you mean {' or '.join(repr(n) for n in near)}?" if near else
                "check the spelling (ids are case-sensitive) or the --database")
        super().__init__(f"{option}: no {kind} {value!r} in this store; {hint}")
        self.option, self.kind, self.value, self.near = option, kind, value, near


class BeforeFirstRecord(LedgerError):
    """`--known-at` is before the first recorded command: nothing was known then."""

    def __init__(self, known_at: datetime, first: datetime) -> None:
        super().__init__(
            f"--known-at {_stamp(known_at)} is before the first recorded command "
            f"({_stamp(first)}): nothing was known then; give a later --known-at")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def one_off(a: str, b: str) -> bool:
    """True when `b` is `a` with one character replaced, inserted, deleted, or two neighbours
    swapped."""
    if a == b:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    if abs(len(a) - len(b)) != 1:
        return False
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1:]


def near_names(value: str, known: Iterable[str]) -> list[str]:
    """The known ids equal to `value` but for case, then those one character off (either
    case), sorted, at most `SUGGESTIONS`."""
    folded = value.casefold()
    same_case = sorted(k for k in known if k.casefold() == folded and k != value)
    if same_case:
        return same_case[:SUGGESTIONS]
    return sorted(k for k in known if one_off(folded, k.casefold()))[:SUGGESTIONS]


def _ids(kind: str) -> Select[tuple[str]] | CompoundSelect:
    """A query of every id of `kind` the store has seen."""
    if kind == "agreement":
        return select(agreements.c.agreement_id)
    if kind == "group":
        return select(groups.c.group_id)
    if kind == "program":
        return select(agreements.c.program_id).where(agreements.c.program_id.is_not(None))
    return union(
        select(agreements.c.customer_id.label("id")).where(agreements.c.customer_id.is_not(None)),
        select(memberships.c.customer_id.label("id")),
        select(sales.c.customer_id.label("id")),
    )


def _seen(session: Session, kind: str, value: str) -> bool:
    query = _ids(kind).subquery()
    column = next(iter(query.c))
    return session.execute(select(column).where(column == value).limit(1)).first() is not None


def check_names(engine: Engine, *, known_at: datetime | None = None,
                **names: tuple[str, str | None]) -> None:
    """Raise `UnknownName` for the first of `names` (kind -> (option, value)) the store has
    never seen, and `BeforeFirstRecord` when `known_at` is before its first recorded command.
    A value of None is no filter."""
    with Session(engine) as session:
        for kind, (option, value) in names.items():
            if value is None or _seen(session, kind, value):
                continue
            query = _ids(kind).subquery()
            known = {row[0] for row in session.execute(select(next(iter(query.c))))}
            raise UnknownName(option, kind, value, near_names(value, known))
        if known_at is not None:
            first = first_recorded_us(session)
            if first is not None and to_us(known_at) < first:
                raise BeforeFirstRecord(known_at, from_us(first))


def first_recorded_us(session: Session) -> int | None:
    """When the first command the store accepted was recorded (µs), or None for an empty store.
    Every book starts with an agreement, a group, a membership, a sale or a close."""
    firsts = [session.execute(select(func.min(table.c.recorded_us))).scalar()
              for table in (agreements, groups, memberships, sales, closes)]
    found = [f for f in firsts if f is not None]
    return min(found) if found else None
