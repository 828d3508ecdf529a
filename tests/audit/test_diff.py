"""`diff` (issue 4, item 3) on the worked book of conftest.py, on SQLite and PostgreSQL, and
through the CLI."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from ledger import Ledger
from ledger.audit.diff import diff
from tests.e2e.conftest import Runner

Q1_END = date(2025, 3, 31)
CLOSE = datetime(2025, 4, 10, tzinfo=UTC)  # Q1 "closed" on 10 April


def test_q1_as_reported_at_close_vs_now(book: Ledger) -> None:
    # A1 at 2025-03-31 as known at the close: 110 units x 2.00 = 220.00 (nothing paid by D:
    # the payment is dated 04-02, the write-off 04-30). Now: the amendment (2.50, retroactive
    # to 01-01) and the late S3 (5 units invoiced 03-20): 115 x 2.50 = 287.50, +67.50.
    (a1,) = [c for c in diff(book, Q1_END, CLOSE) if c.agreement_id == "A1"]
    assert (a1.before["liability"], a1.after["liability"]) == (Decimal("220.00"),
                                                                Decimal("287.50"))
    assert a1.delta["liability"] == Decimal("67.50")
    assert [(c.kind, c.event) for c in a1.causes] == [
        ("retroactive amendment", a1.causes[0].event), ("late sale", "S3")]
    assert a1.causes[0].event.endswith("/3")
    assert "invoiced 2025-03-20" in a1.causes[1].detail
    # A2 did not change after the close: it is not listed
    assert [c.agreement_id for c in diff(book, Q1_END, CLOSE)] == ["A1"]


def test_between_two_past_moments_only_what_was_recorded_in_between(book: Ledger) -> None:
    # between 03-01 and 04-05, at 2025-04-30: A2's forecast revision (2000 -> 500: 20.00 ->
    # 8.00) and A1's claim submitted, approved and paid (100.00 on 04-02): 220 -> 120.
    changes = {c.agreement_id: c for c in diff(
        book, date(2025, 4, 30), datetime(2025, 3, 1, 12, tzinfo=UTC),
        datetime(2025, 4, 5, tzinfo=UTC))}
    assert changes["A2"].delta["liability"] == Decimal("-12.00")
    assert [c.kind for c in changes["A2"].causes] == ["forecast revision"]
    assert changes["A1"].delta["liability"] == Decimal("-100.00")
    assert [c.kind for c in changes["A1"].causes] == [
        "claim submitted", "claim approved", "settlement"]


def test_cli_diff_as_a_user_types_it(cli: Runner) -> None:
    done = cli("diff", "--as-of", "2025-03-31", "--known-at", "2025-04-10",
               "--format", "json")
    assert done.code == 0, str(done)
    document = done.json()
    assert document["total_change"] == {"EUR": "67.50"}
    (change,) = document["changes"]
    assert change["before"]["liability"] == "220.00"
    assert change["after"]["liability"] == "287.50"
    done = cli("diff", "--as-of", "2025-03-31", "--known-at", "2025-04-10",
               "--vs", "2025-04-01")
    assert done.code == 2 and "--vs" in done.stderr


def test_cli_diff_summarises_by_cause_and_lists_every_cause_with_detail(cli: Runner) -> None:
    """Issue 14, point 8: a summary by cause before the detail; --detail for every line;
    --agreement for one agreement."""
    args = ("diff", "--as-of", "2025-03-31", "--known-at", "2025-04-10")
    document = cli(*args, "--format", "json").json()
    assert document["by_cause"] == [
        {"cause": "late sale", "events": 1, "agreements": 1, "post_close": 0},
        {"cause": "retroactive amendment", "events": 1, "agreements": 1, "post_close": 0}]
    (row,) = document["rows"]
    assert row["causes"] == "1 late sale; 1 retroactive amendment"
    table = cli(*args)
    assert table.code == 0
    assert table.stdout.index("Changes by cause") < table.stdout.index("Position at 2025-03-31")
    detail = cli(*args, "--detail", "--format", "json").json()
    assert [(r["agreement_id"], r["cause"], r["event"].split("/")[-1]) for r in
            detail["rows"]] == [("A1", "retroactive amendment", "3"), ("A1", "late sale", "S3")]
    assert detail["rows"][1]["detail"] == "invoiced 2025-03-20, product P1"
    csv = cli(*args, "--detail", "--format", "csv").stdout.splitlines()
    assert csv[0] == "agreement_id,customer_id,currency,cause,post_close,recorded_at,event,detail"
    assert len(csv) == 3
    # one agreement: A2 did not change in (K1, K2]; A1 alone is the whole diff
    only = cli(*args, "--agreement", "A1", "--format", "json").json()
    assert only["rows"] == document["rows"] and only["agreement_id"] == "A1"
    none = cli(*args, "--agreement", "A2", "--format", "json").json()
    assert none["rows"] == [] and none["by_cause"] == []
    unknown = cli(*args, "--agreement", "A9")
    assert unknown.code == 2 and "A9" in unknown.stderr
