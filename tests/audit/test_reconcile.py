"""`reconcile` (issue 4, item 4) on the worked book of conftest.py, on SQLite and PostgreSQL,
and through the CLI."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger import Ledger
from ledger.audit.reconcile import FLAG_CODES, reconcile
from tests.audit.conftest import BOOK
from tests.contract import helpers as h
from tests.e2e.conftest import Runner


def by_id(book: Ledger, as_of: date, **options: int) -> dict[str, Any]:
    return {x.agreement_id: x for x in reconcile(book, as_of, **options)}


def test_figures_per_agreement_and_no_flag_while_all_is_in_order(book: Ledger) -> None:
    # at 2025-06-30: A1 accrued 287.50 (115 x 2.50), claimed, approved and paid 100.00,
    # written off 10.00: liability 177.50; A2 8.00, nothing claimed, its period still open.
    lines = by_id(book, date(2025, 6, 30))
    a1, a2 = lines["A1"], lines["A2"]
    assert (a1.accrued, a1.claimed, a1.approved, a1.paid, a1.written_off, a1.liability) == (
        Decimal("287.50"), Decimal("100.00"), Decimal("100.00"), Decimal("100.00"),
        Decimal("10.00"), Decimal("177.50"))
    assert a2.accrued == Decimal("8.00") and a2.claimed == 0
    assert a1.flags == [] and a2.flags == []


def test_unclaimed_accrual_after_the_period_and_the_grace(book: Ledger) -> None:
    # the period ends 2025-12-31; with 60 days' grace A2 (8.00, never claimed) is flagged on
    # 2026-03-02 but not on 2026-03-01; A1 had a claim.
    assert by_id(book, date(2026, 3, 1))["A2"].flags == []
    flags = by_id(book, date(2026, 3, 2))["A2"].flags
    assert len(flags) == 1 and flags[0].startswith("unclaimed accrual")
    assert by_id(book, date(2026, 3, 2))["A1"].flags == []


def test_claims_above_earned_negative_liability_and_approved_unpaid(database_url: str) -> None:
    # A3: 1.00 per unit; S20 100 units earns 100.00; claim K3 for 100.00 approved in full on
    # 02-02 and 90.00 paid on 02-03; then S20 is returned (reversed 02-10): accrued 0.00. At
    # 2025-03-10: approved 100.00 > accrued 0.00, liability 0 - 90 = -90.00, and 10.00 still
    # unpaid 36 days after approval (> 30).
    book = [
        h.at("2025-01-01T00:00:00Z", h.agreement("A3", customer_id="C3")),
        h.at("2025-02-01T00:00:00Z", h.sale("S20", "100", "1000.00", "2025-01-20",
                                            customer_id="C3")),
        h.at("2025-02-02T00:00:00Z", h.submit("K3", "100.00", submitted_on="2025-02-02",
                                              agreement_id="A3")),
        h.at("2025-02-02T00:00:01Z", h.approve("K3", approved_on="2025-02-02")),
        h.at("2025-02-03T00:00:00Z", h.settle("K3", paid_on="2025-02-03", paid_amount="90.00",
                                              payment_ref="PAY-3")),
        h.at("2025-02-10T00:00:00Z", h.reversal("S20", "2025-02-10")),
    ]
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, book)
        flags = by_id(ledger, date(2025, 3, 10))["A3"].flags
        assert [f.split(":")[0] for f in flags] == [
            "claims above earned", "negative liability", "approved unpaid"]
        assert by_id(ledger, date(2025, 3, 10))["A3"].codes == [
            "claims_above_earned", "negative_liability", "approved_unpaid"]
        assert "approved 100.00 > accrued 0.00" in flags[0]
        assert "-90.00" in flags[1]
        assert "claim K3 approved 100.00 on 2025-02-02, paid 90.00, 36 days > 30" in flags[2]
        # 30 days after approval is within the limit
        assert [f.split(":")[0] for f in by_id(ledger, date(2025, 3, 4))["A3"].flags] == [
            "claims above earned", "negative liability"]
        assert by_id(ledger, date(2025, 3, 10), unpaid_days=36)["A3"].flags[-1].startswith(
            "negative liability")
        # before the return nothing is wrong but the unpaid 10.00 (not yet 30 days)
        assert by_id(ledger, date(2025, 2, 9))["A3"].flags == []


def test_cli_reconcile_as_a_user_types_it(cli: Runner) -> None:
    done = cli("reconcile", "--as-of", "2026-03-02", "--flagged", "--format", "json")
    assert done.code == 0, str(done)
    document = done.json()
    assert [r["agreement_id"] for r in document["rows"]] == ["A2"]
    assert document["agreements"] == 2 and document["flagged"] == 1
    assert document["totals"]["EUR"]["liability"] == "185.50"  # 177.50 + 8.00
    done = cli("reconcile", "--as-of", "2026-03-02", "--format", "csv")
    header, *rows = done.stdout.splitlines()
    assert header == ("customer_id,agreement_id,currency,accrued,claimed,approved,paid,"
                      "written_off,liability,flags,flag_claims_above_earned,"
                      "flag_unclaimed_accrual,flag_negative_liability,flag_approved_unpaid,"
                      "flag_post_close_adjustment")
    assert len(rows) == 2 and rows[0].startswith("C1,A1,EUR,287.50,100.00,100.00,100.00,10.00,")
    import csv

    a1, a2 = csv.DictReader(done.stdout.splitlines())
    assert all(a1[f"flag_{code}"] == "" for code in FLAG_CODES)
    assert a2["flag_unclaimed_accrual"].startswith("unclaimed accrual: period ended 2025-12-31")
    assert [a2[f"flag_{code}"] for code in FLAG_CODES if code != "unclaimed_accrual"] == [
        ""] * 4
    document = cli("reconcile", "--as-of", "2026-03-02", "--format", "json").json()
    assert [r["flag_codes"] for r in document["rows"]] == [[], ["unclaimed_accrual"]]
    assert not any(k.startswith("flag_") and k != "flag_codes" for k in document["rows"][0])
    only = cli("reconcile", "--as-of", "2026-03-02", "--agreement", "A2", "--format", "json")
    assert [r["agreement_id"] for r in only.json()["rows"]] == ["A2"]
    assert only.json()["rows"][0] == document["rows"][1]
    unknown = cli("reconcile", "--as-of", "2026-03-02", "--agreement", "a2")
    assert unknown.code == 2 and "A2" in unknown.stderr, str(unknown)


def test_cli_reconcile_limits_and_a_post_close_adjustment(tmp_path: Path) -> None:
    # the worked book up to the settlement (BOOK[:9]), Q1 closed on 2025-04-10, then the rest
    cli = Runner(tmp_path)
    cli.write("first.jsonl", BOOK[:9])
    cli.write("rest.jsonl", BOOK[9:])
    assert cli("apply", "first.jsonl").code == 0
    done = cli("close-period", "--yes", "--period", "2025-Q1",
               "--recorded-at", "2025-04-10T00:00:00Z")
    assert done.code == 0, str(done)
    # at 03-31 as known on 04-10: A1 110 units x 2.00 = 220.00 (paid on 04-02, after Q1), A2
    # 8.00: reported 228.00
    assert "2 agreements reported, liability 228.00 EUR" in done.stdout
    assert cli("apply", "rest.jsonl").code == 0
    done = cli("reconcile", "--as-of", "2025-06-30", "--flagged", "--format", "json")
    assert done.code == 0, str(done)
    (a1,) = done.json()["rows"]
    # the amendment (2.50 from 100) and the late S3 make A1 at 03-31 115 x 2.50 = 287.50
    assert a1["agreement_id"] == "A1" and a1["flags"] == [
        "post-close adjustment to 2025-Q1: liability at 2025-03-31 reported 220.00 at the "
        "close 2025-04-10T00:00:00+00:00, now 287.50 (+67.50)"]
    # A2's period ends 2025-12-31: unclaimed on 2026-03-02 with 60 days' grace, not with 90
    done = cli("reconcile", "--as-of", "2026-03-02", "--grace-days", "90", "--unpaid-days",
               "10", "--flagged", "--format", "csv")
    assert done.code == 0, str(done)
    header, *rows = done.stdout.splitlines()
    # A1 is flagged only for its post-close adjustment (its claim was paid in full)
    assert [row.split(",")[1] for row in rows] == ["A1"]
    done = cli("reconcile", "--as-of", "2026-03-02", "--grace-days", "-1")
    assert done.code == 2 and "--grace-days" in done.stderr


def test_a_rejected_claim_is_no_longer_claimed(database_url: str) -> None:
    # A4: 1.00 per unit; S40 30 units earns 30.00. K4 claims 50.00 on 02-01 and is rejected
    # on 02-05 (recorded the same days).
    book = [
        h.at("2025-01-01T00:00:00Z", h.agreement("A4", customer_id="C4")),
        h.at("2025-01-11T00:00:00Z", h.sale("S40", "30", "300.00", "2025-01-10",
                                            customer_id="C4")),
        h.at("2025-02-01T00:00:00Z", h.submit("K4", "50.00", submitted_on="2025-02-01",
                                              agreement_id="A4")),
        h.at("2025-02-05T00:00:00Z", h.reject("K4", rejected_on="2025-02-05")),
    ]
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, book)
        # before the rejection: claimed 50.00 > accrued 30.00
        a4 = by_id(ledger, date(2025, 2, 3))["A4"]
        assert (a4.accrued, a4.claimed) == (Decimal("30.00"), Decimal("50.00"))
        assert a4.flags == ["claims above earned: claimed 50.00 > accrued 30.00"]
        # after it: nothing claimed, nothing flagged
        a4 = by_id(ledger, date(2025, 2, 10))["A4"]
        assert (a4.claimed, a4.flags) == (Decimal("0"), [])
        # valid 02-10 but as known on 02-04, before the rejection was recorded: still claimed
        (a4,) = [x for x in reconcile(ledger, date(2025, 2, 10),
                                       h.moment("2025-02-04T00:00:00Z")) if x.agreement_id == "A4"]
        assert a4.claimed == Decimal("50.00") and a4.flags[0].startswith("claims above earned")
        # the period ends 2025-12-31; 60 days later the 30.00 is an unclaimed accrual: the only
        # claim was rejected
        (flag,) = by_id(ledger, date(2026, 3, 2))["A4"].flags
        assert flag.startswith("unclaimed accrual")


def test_a_claim_approved_for_less_counts_at_its_approved_amount(database_url: str) -> None:
    # A6: 1.00 per unit; S60 30 units earns 30.00. K6 claims 50.00 (02-01) and is approved
    # for 25.00 (02-02); K7 claims 10.00 (02-03), still pending.
    book = [
        h.at("2025-01-01T00:00:00Z", h.agreement("A6", customer_id="C6")),
        h.at("2025-01-11T00:00:00Z", h.sale("S60", "30", "300.00", "2025-01-10",
                                            customer_id="C6")),
        h.at("2025-02-01T00:00:00Z", h.submit("K6", "50.00", submitted_on="2025-02-01",
                                              agreement_id="A6")),
        h.at("2025-02-02T00:00:00Z", h.approve("K6", approved_on="2025-02-02",
                                               approved_amount="25.00")),
        h.at("2025-02-03T00:00:00Z", h.submit("K7", "10.00", submitted_on="2025-02-03",
                                              agreement_id="A6")),
    ]
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, book)
        # on 02-02: claimed 50.00 > accrued 30.00, but approved 25.00 <= 30.00: no flag
        a6 = by_id(ledger, date(2025, 2, 2))["A6"]
        assert (a6.claimed, a6.approved, a6.flags) == (Decimal("50.00"), Decimal("25.00"), [])
        # on 02-03: approved 25.00 + pending 10.00 = 35.00 > 30.00
        a6 = by_id(ledger, date(2025, 2, 3))["A6"]
        assert a6.claimed == Decimal("60.00")
        assert a6.flags == [
            "claims above earned: approved 25.00 + pending 10.00 > accrued 30.00"]
