"""Who is a member of a buying group on a date, as known at a moment (contract v2, section 4).

Customer C is a member of group G on day X, as known at K, when among the `join_group` and
`leave_group` commands for (G, C) recorded at or before K with `effective_from` ≤ X, the one
recorded last is a join. The caller passes the changes recorded at or before K; these pure
functions lay them in recorded order, as amendments are laid over terms.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

JOIN = "join"
LEAVE = "leave"


@dataclass(frozen=True, slots=True)
class MembershipChange:
    seq: int  # recording order (the event's store position)
    kind: str  # JOIN or LEAVE
    effective_from: date


def is_member(changes: Iterable[MembershipChange], on: date) -> bool:
    """Contract 4: the last recorded change effective by `on` is a join."""
    last: MembershipChange | None = None
    for change in changes:
        if change.effective_from <= on and (last is None or change.seq > last.seq):
            last = change
    return last is not None and last.kind == JOIN


#: A span of membership: first day, and the first day after it (None: still a member).
Span = tuple[date, date | None]


def member_spans(changes: Iterable[MembershipChange]) -> list[Span]:
    """The maximal spans of days on which `is_member` holds, in date order.

    Membership can only change on an `effective_from` day; on each such day it is the kind of
    the change recorded last among those effective by then, so one sweep over the days in
    order (keeping the latest recorded change seen so far) finds every span.
    """
    latest_at: dict[date, MembershipChange] = {}
    for change in changes:
        known = latest_at.get(change.effective_from)
        if known is None or change.seq > known.seq:
            latest_at[change.effective_from] = change
    spans: list[Span] = []
    latest: MembershipChange | None = None
    start: date | None = None
    for when in sorted(latest_at):
        change = latest_at[when]
        if latest is not None and change.seq < latest.seq:
            continue  # recorded before a change effective earlier: overridden from then on
        was_member = latest is not None and latest.kind == JOIN
        latest = change
        member = change.kind == JOIN
        if member and not was_member:
            start = when
        elif was_member and not member:
            assert start is not None
            spans.append((start, when))
    if latest is not None and latest.kind == JOIN:
        assert start is not None
        spans.append((start, None))
    return spans


def member_days(
    changes: dict[str, list[MembershipChange]], first: int, last: int
) -> list[tuple[str, int, int]]:
    """(customer, first day, last day), as day ordinals, of every span of membership in
    `changes` (each customer's changes, as known at K), cut to the days `first` to `last`: the
    invoice days whose sales an agreement of the group counts (contract 4). In the order of
    `changes`, each customer's spans in date order."""
    days = []
    for customer, made in changes.items():
        for start, end in member_spans(made):
            window_first = max(start.toordinal(), first)
            window_last = last if end is None else min(end.toordinal() - 1, last)
            if window_first <= window_last:
                days.append((customer, window_first, window_last))
    return days
