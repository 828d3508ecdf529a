"""Contract v2, section 4: membership laid in recorded order (`ledger.membership`), against a
naive re-evaluation day by day."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ledger.membership import JOIN, LEAVE, MembershipChange, is_member, member_days, member_spans

BASE = date(2025, 1, 1)


def naive(changes: list[MembershipChange], on: date) -> bool:
    """The contract's words: among the changes effective by X, the one recorded last is a
    join (the list is in recorded order)."""
    effective = [c for c in changes if c.effective_from <= on]
    return bool(effective) and max(effective, key=lambda c: c.seq).kind == JOIN


def spans_hold(spans: list[tuple[date, date | None]], on: date) -> bool:
    return any(start <= on and (end is None or on < end) for start, end in spans)


changes_strategy = st.lists(
    st.tuples(st.sampled_from([JOIN, LEAVE]), st.integers(0, 60)), max_size=12
).map(lambda made: [MembershipChange(seq, kind, BASE + timedelta(days=offset))
                    for seq, (kind, offset) in enumerate(made, start=1)])


@given(changes_strategy)
def test_spans_and_is_member_equal_the_naive_rule_on_every_day(
    changes: list[MembershipChange],
) -> None:
    spans = member_spans(changes)
    for offset in range(-2, 64):
        on = BASE + timedelta(days=offset)
        assert is_member(changes, on) == naive(changes, on) == spans_hold(spans, on), (on, spans)


@given(changes_strategy)
def test_spans_are_maximal_ordered_and_disjoint(changes: list[MembershipChange]) -> None:
    spans = member_spans(changes)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end is not None and end < start  # a gap between two spans: they are maximal


@given(changes_strategy, st.integers(0, 13))
def test_changes_recorded_after_k_do_not_count_as_known_at_k(
    changes: list[MembershipChange], cut: int
) -> None:
    """As known at K only the changes recorded by K count: the first `cut` of them."""
    known = changes[:cut]
    for offset in range(0, 62):
        on = BASE + timedelta(days=offset)
        assert is_member(known, on) == naive(known, on)


def test_a_late_join_and_a_corrected_leave_worked_by_hand() -> None:
    joined = MembershipChange(1, JOIN, date(2025, 1, 1))
    left = MembershipChange(2, LEAVE, date(2025, 6, 1))
    corrected = MembershipChange(3, JOIN, date(2025, 6, 1))
    assert member_spans([joined, left]) == [(date(2025, 1, 1), date(2025, 6, 1))]
    assert member_spans([joined, left, corrected]) == [(date(2025, 1, 1), None)]
    # a join effective before a leave but recorded after it overrides the leave
    earlier = MembershipChange(3, JOIN, date(2025, 3, 1))
    assert member_spans([joined, left, earlier]) == [(date(2025, 1, 1), None)]
    # a leave recorded last but effective before a join recorded earlier: out from then on
    late_leave = MembershipChange(3, LEAVE, date(2025, 2, 1))
    assert member_spans([joined, MembershipChange(2, JOIN, date(2025, 5, 1)), late_leave]) == [
        (date(2025, 1, 1), date(2025, 2, 1))]


@given(st.dictionaries(st.sampled_from(["C1", "C2", "C3"]), changes_strategy, max_size=3),
       st.integers(-2, 62), st.integers(-2, 62))
def test_member_days_are_the_days_a_member_buys_inside_the_range(
    changes: dict[str, list[MembershipChange]], first_offset: int, last_offset: int,
) -> None:
    """`member_days` cut to [first, last]: a customer's day is in exactly one of its windows
    when it is a member that day and the day is in the range; in none otherwise."""
    first, last = (BASE + timedelta(days=first_offset)).toordinal(), (
        BASE + timedelta(days=last_offset)).toordinal()
    days = member_days(changes, first, last)
    for customer, made in changes.items():
        for offset in range(-3, 64):
            on = BASE + timedelta(days=offset)
            inside = [w for w in days if w[0] == customer and w[1] <= on.toordinal() <= w[2]]
            expected = naive(made, on) and first <= on.toordinal() <= last
            assert len(inside) == (1 if expected else 0), (customer, on, days)
    assert all(start <= end for _, start, end in days)
