"""Period close (issue 4, item 7) on the worked book of conftest.py, on SQLite and
PostgreSQL: the close freezes the reported position; later changes show as post-close
adjustments in diff and reconcile; the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from ledger import Ledger
from ledger.audit.close import close_covering, parse_period, period_closes
from ledger.audit.diff import diff
from ledger.audit.reconcile import reconcile
from ledger.errors import RuleViolation
from tests.audit.conftest import BOOK
from tests.contract import helpers as h
from tests.e2e.conftest import Runner

CLOSED_AT = datetime(2025, 4, 10, tzinfo=UTC)
Q1_END = date(2025, 3, 31)


@pytest.fixture
def closed(database_url: str) -> Iterator[Ledger]:
    """The worked book with Q1 closed on 10 April, after the claim (04-01 to 04-03) and
    before the write-off, the retroactive amendment and the late sale."""
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, BOOK[:9])
        ledger.close_period("2025-Q1", date(2025, 1, 1), Q1_END, CLOSED_AT)
        h.accepted_all(ledger, BOOK[9:])
        yield ledger


def test_the_close_freezes_the_position_reported_at_it(closed: Ledger) -> None:
    (close,) = period_closes(closed)
    assert (close.period, close.start, close.end, close.closed_at) == (
        "2025-Q1", date(2025, 1, 1), Q1_END, CLOSED_AT)
    # at 03-31 as known on 04-10: A1 110 units x 2.00 = 220.00 (the payment is dated 04-02),
    # A2 8.00 (its forecast revised to 500 on 03-05)
    assert close.reported_liability("A1") == Decimal("220.00")
    assert close.reported_liability("A2") == Decimal("8.00")
    # now A1 is 115 x 2.50 = 287.50 at 03-31, yet the reported figure stays
    (a1,) = closed.liability(Q1_END, agreement_id="A1")
    assert a1.liability == Decimal("287.50")
    assert close_covering(closed, date(2025, 2, 1)) == close
    assert close_covering(closed, date(2025, 4, 1)) is None
    assert period_closes(closed, datetime(2025, 4, 9, tzinfo=UTC)) == []  # not yet known


def test_later_changes_are_post_close_adjustments_in_diff(closed: Ledger) -> None:
    (a1,) = [c for c in diff(closed, Q1_END, CLOSED_AT) if c.agreement_id == "A1"]
    assert a1.delta["liability"] == Decimal("67.50")  # 287.50 - 220.00
    assert [(c.kind, c.post_close) for c in a1.causes] == [
        ("retroactive amendment", True), ("late sale", True)]


def test_later_changes_are_post_close_adjustments_in_reconcile(closed: Ledger) -> None:
    lines = {x.agreement_id: x for x in reconcile(closed, date(2025, 6, 30))}
    (flag,) = lines["A1"].flags
    assert flag.startswith("post-close adjustment to 2025-Q1: liability at 2025-03-31 "
                           "reported 220.00 at the close")
    assert flag.endswith("now 287.50 (+67.50)")
    assert lines["A2"].flags == []  # unchanged since the close


def test_a_period_closes_once_and_not_before_what_is_recorded(closed: Ledger) -> None:
    with pytest.raises(RuleViolation, match="period: period '2025-Q1' is already closed"):
        closed.close_period("2025-Q1", date(2025, 1, 1), Q1_END)
    with pytest.raises(RuleViolation, match="recorded_at: .* is earlier than"):
        closed.close_period("2025-Q2", date(2025, 4, 1), date(2025, 6, 30), CLOSED_AT)


def test_period_labels() -> None:
    assert parse_period("2025-Q4") == ("2025-Q4", date(2025, 10, 1), date(2025, 12, 31))
    assert parse_period("2024-02") == ("2024-02", date(2024, 2, 1), date(2024, 2, 29))
    assert parse_period("2025") == ("2025", date(2025, 1, 1), date(2025, 12, 31))
    assert parse_period(None, date(2025, 1, 15), date(2025, 2, 14))[0] == \
        "2025-01-15..2025-02-14"
    # a range that is exactly a year, quarter or month is that period (closed once, whatever
    # it is called)
    assert parse_period(None, date(2025, 10, 1), date(2025, 12, 31))[0] == "2025-Q4"
    assert parse_period(None, date(2024, 2, 1), date(2024, 2, 29))[0] == "2024-02"
    assert parse_period(None, date(2025, 1, 1), date(2025, 12, 31))[0] == "2025"
    assert parse_period(None, date(2025, 2, 1), date(2025, 4, 30))[0] == \
        "2025-02-01..2025-04-30"  # three months, not a quarter
    with pytest.raises(RuleViolation, match="period: '2025-Q5' is not"):
        parse_period("2025-Q5")


def test_cli_close_period_as_a_user_types_it(cli: Runner) -> None:
    done = cli("close-period", "--yes", "--period", "2025-Q3")
    assert done.code == 0, str(done)
    # at 09-30 as known now: A1 287.50 - 100 - 10 = 177.50, A2 8.00: 185.50
    assert "closed 2025-Q3 (2025-07-01 to 2025-09-30)" in done.stdout
    assert "2 agreements reported, liability 185.50 EUR" in done.stdout
    done = cli("close-period", "--yes", "--period", "2025-Q3")
    assert done.code == 1 and "already closed" in done.stderr
    done = cli("close-period", "--yes", "--from", "2025-01-01", "--to", "2025-02-28",
               "--format", "json")
    assert done.code == 0, str(done)
    document = done.json()
    assert document["period"] == "2025-01-01..2025-02-28"
    # at 02-28 as known now: A1 110 x 2.50 = 275.00; A2's revision takes effect 03-01, so its
    # forecast is still 2000: 5 % of 400 = 20.00
    assert [(r["agreement_id"], r["liability"]) for r in document["rows"]] == [
        ("A1", "275.00"), ("A2", "20.00")]
    # the same quarter as a date range is the same period: refused
    done = cli("close-period", "--yes", "--from", "2025-07-01", "--to", "2025-09-30")
    assert done.code == 1 and "period '2025-Q3' is already closed" in done.stderr
    done = cli("close-period", "--yes", "--period", "Q3")
    assert done.code == 1 and "period: 'Q3' is not" in done.stderr
    assert cli("verify").code == 0  # the close is chained like every event


def test_reconcile_flags_every_closed_period_that_changed(database_url: str) -> None:
    # Q1 closed on 04-10 (after the claim), Q2 on 07-10 (after the write-off and the
    # retroactive amendment, before the late S3 recorded 07-15).
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, BOOK[:9])
        ledger.close_period("2025-Q1", date(2025, 1, 1), Q1_END, CLOSED_AT)
        h.accepted_all(ledger, BOOK[9:11])
        q2_closed_at = datetime(2025, 7, 10, tzinfo=UTC)
        ledger.close_period("2025-Q2", date(2025, 4, 1), date(2025, 6, 30), q2_closed_at)
        h.accepted_all(ledger, BOOK[11:])
        # reported at the Q2 close: A1 110 x 2.50 = 275.00 - 100.00 paid - 10.00 written off
        # = 165.00. Now: at 03-31 115 x 2.50 = 287.50 (reported 220.00: +67.50); at 06-30
        # 287.50 - 110.00 = 177.50 (reported 165.00: +12.50). A2 stays 8.00 at both.
        lines = {x.agreement_id: x for x in reconcile(ledger, date(2025, 6, 30))}
        assert [f.split(", now ")[1] for f in lines["A1"].flags] == [
            "287.50 (+67.50)", "177.50 (+12.50)"]
        assert lines["A1"].flags[1].startswith("post-close adjustment to 2025-Q2: liability at "
                                               "2025-06-30 reported 165.00")
        assert lines["A2"].flags == []
        # on 05-15 only Q1 has ended
        (flag,) = {x.agreement_id: x for x in reconcile(ledger, date(2025, 5, 15))}["A1"].flags
        assert flag.startswith("post-close adjustment to 2025-Q1")
        # as known on 07-12 (S3 not yet recorded): Q1 now 110 x 2.50 = 275.00 (+55.00); Q2 as
        # reported
        known = datetime(2025, 7, 12, tzinfo=UTC)
        (flag,) = {x.agreement_id: x for x in reconcile(ledger, date(2025, 6, 30), known)}[
            "A1"].flags
        assert flag.endswith("now 275.00 (+55.00)") and "2025-Q1" in flag


def test_a_period_that_has_not_ended_cannot_be_closed(cli: Runner) -> None:
    """Issue 14, point 6: `close-period --period 2027-Q1` closed a future period, finally.
    The ledger's clock (or --recorded-at) must be after the period's last day (UTC)."""
    today = datetime.now(UTC).date()
    future = f"{today.year + 1}-Q1"
    done = cli("close-period", "--yes", "--period", future)
    assert done.code == 1, str(done)
    assert f"period: '{future}' ends {today.year + 1}-03-31" in done.stderr
    assert f"on or after {today.year + 1}-04-01" in done.stderr
    # a close recorded on the period's last day is refused too; the day after is accepted
    # (the book's last command was recorded on 2025-07-15)
    done = cli("close-period", "--yes", "--period", "2025-Q3",
               "--recorded-at", "2025-09-30T23:59:59Z")
    assert done.code == 1 and "before it has ended" in done.stderr, str(done)
    done = cli("close-period", "--yes", "--period", "2025-Q3",
               "--recorded-at", "2025-10-01T00:00:00Z")
    assert done.code == 0, str(done)
    # nothing of the refused closes was stored: one close, chained
    listed = cli("close-period", "--yes", "--period", "2025-Q3",
                 "--recorded-at", "2025-10-02T00:00:00Z")
    assert listed.code == 1 and "already closed" in listed.stderr
    assert cli("verify").code == 0


def test_the_domain_refuses_a_close_inside_its_period(closed: Ledger) -> None:
    with pytest.raises(RuleViolation, match="before it has ended"):
        closed.close_period("2025-Q3", date(2025, 7, 1), date(2025, 9, 30),
                            datetime(2025, 9, 30, 12, tzinfo=UTC))


def closes_in(cli: Runner) -> int:
    store = cli.cwd / ".rebate-ledger" / "ledger.db"
    assert store.is_file()
    with Ledger(f"sqlite:///{store}") as ledger:
        return len(period_closes(ledger))


def test_a_close_without_yes_and_without_a_terminal_is_refused(cli: Runner) -> None:
    """Issue 14, point 6: a close is permanent, so it takes --yes or asks on a terminal."""
    done = cli("close-period", "--period", "2025-Q1")
    assert done.code == 2, str(done)
    assert done.stderr.strip() == (
        "error: closing 2025-Q1 (2025-01-01 to 2025-03-31) is permanent and there is no "
        "terminal to ask: add --yes to confirm")
    assert closes_in(cli) == 0
    assert cli("close-period", "-y", "--period", "2025-Q1").code == 0
    assert closes_in(cli) == 1


def on_a_terminal(cli: Runner, answer: bytes, *args: str) -> tuple[int, str]:
    """Run the CLI with its stdin on a pseudo-terminal, typing `answer`."""
    import os
    import pty
    import subprocess

    from tests.e2e.conftest import CLI, clean_env

    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen([str(CLI), *args], cwd=cli.cwd, env=clean_env(cli.env),
                                   stdin=secondary, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        os.write(primary, answer)
        out, err = process.communicate(timeout=60)
    finally:
        os.close(primary)
        os.close(secondary)
    return process.returncode, (out + err).decode()


def test_on_a_terminal_the_close_asks_and_a_no_records_nothing(cli: Runner) -> None:
    code, said = on_a_terminal(cli, b"n\n", "close-period", "--period", "2025-Q1")
    assert code == 1, said
    assert "Close 2025-Q1 (2025-01-01 to 2025-03-31)? A close is permanent" in said
    assert "2025-Q1 not closed: nothing recorded" in said
    assert closes_in(cli) == 0
    code, said = on_a_terminal(cli, b"y\n", "close-period", "--period", "2025-Q1")
    assert code == 0, said
    assert "closed 2025-Q1 (2025-01-01 to 2025-03-31)" in said
    assert closes_in(cli) == 1
