"""Issue 10, point 6: `journal --from D1 --to D2` lists the postings dated in the period with
each account's opening and closing balance, and `trial-balance --from D1 --to D2` shows
opening, movements and closing, so that "Q2 rebate expense" is read off directly. A worked
example in two currencies, its figures computed here from the agreements' terms; the period's
balances agree with the cumulative trial balance at the day before D1 and at D2."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from .conftest import Runner, agreement, sale

D = Decimal
CENT = D("0.01")
EXPENSE, LIABILITY, CASH = ("rebate expense (contra-revenue)", "accrued rebate liability",
                            "cash / credit notes")


def at(day: str, hour: int = 9) -> str:
    return f"{day}T{hour:02d}:00:00Z"


def book() -> list[dict[str, Any]]:
    """A1 (C1, EUR): 1.00 per unit, 1.50 from 100 units, retroactive. A2 (C2, USD): 5 % of
    the amount. Q2 holds a settlement on A1, a write-off on A2 and a sale of C1 invoiced on
    25 June but recorded on 1 August, after the books were read on 10 July."""
    usd = {"currency": "USD"}
    return [
        agreement("A1", "C1", tiers=[{"from": "0", "rate": "1.00"},
                                     {"from": "100", "rate": "1.50"}],
                  recorded_at=at("2025-01-02")),
        agreement("A2", "C2", basis="amount", rate_kind="percent",
                  tiers=[{"from": "0", "rate": "0.05"}], recorded_at=at("2025-01-02", 10),
                  **usd),
        sale("S1", "C1", "60", "600.00", "2025-02-10", recorded_at=at("2025-02-11")),
        sale("T1", "C2", "1", "1000.00", "2025-03-01", recorded_at=at("2025-03-02"), **usd),
        sale("T2", "C2", "1", "2000.00", "2025-04-15", recorded_at=at("2025-04-16"), **usd),
        sale("S2", "C1", "50", "500.00", "2025-05-05", recorded_at=at("2025-05-06")),
        {"type": "submit_claim", "claim_id": "K1", "agreement_id": "A1", "amount": "100.00",
         "submitted_on": "2025-05-20", "recorded_at": at("2025-05-20")},
        {"type": "approve_claim", "claim_id": "K1", "approved_on": "2025-05-25",
         "recorded_at": at("2025-05-25")},
        {"type": "settle_claim", "claim_id": "K1", "paid_on": "2025-06-10",
         "payment_ref": "PAY-1", "recorded_at": at("2025-06-10")},
        sale("S3", "C1", "-10", "-100.00", "2025-06-20", recorded_at=at("2025-06-21")),
        {"type": "write_off", "agreement_id": "A2", "write_off_id": "W1", "amount": "10.00",
         "effective_date": "2025-06-30", "reason": "small balance",
         "recorded_at": at("2025-06-30")},
        sale("S4", "C1", "30", "300.00", "2025-07-03", recorded_at=at("2025-07-04")),
        sale("S5", "C1", "20", "200.00", "2025-06-25", recorded_at=at("2025-08-01")),
    ]


def a1(units: int) -> Decimal:
    rate = D("1.50") if units >= 100 else D("1.00")
    return (units * rate).quantize(CENT, ROUND_HALF_UP)


def a2(amount: str) -> Decimal:
    return (D(amount) * D("0.05")).quantize(CENT, ROUND_HALF_UP)


@pytest.fixture
def books(run: Runner) -> Runner:
    run.write("book.jsonl", book())
    applied = run("apply", "book.jsonl")
    assert applied.counts() == (len(book()), 0, 0), str(applied)
    return run


def balances(rows: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, Decimal]]:
    return {(r["currency"], r["account"]): {k: D(v) for k, v in r.items()
                                             if k not in ("currency", "account")}
            for r in rows}


def test_q2_trial_balance_reads_off_opening_movements_and_closing(books: Runner) -> None:
    answer = books("trial-balance", "--from", "2025-04-01", "--to", "2025-06-30",
                   "--format", "json")
    assert answer.code == 0, str(answer)
    got = balances(answer.json()["rows"])

    eur_open, eur_close = a1(60), a1(60 + 50 - 10 + 20)  # S5 invoiced in Q2 counts, known now
    usd_open, usd_close = a2("1000.00"), a2("3000.00")
    paid, written_off = D("100.00"), D("10.00")
    assert got[("EUR", EXPENSE)] == {"opening": eur_open, "debit": eur_close - eur_open,
                                     "credit": 0, "closing": eur_close}
    assert got[("EUR", LIABILITY)] == {"opening": -eur_open, "debit": paid,
                                       "credit": eur_close - eur_open,
                                       "closing": -(eur_close - paid)}
    assert got[("EUR", CASH)] == {"opening": 0, "debit": 0, "credit": paid, "closing": -paid}
    assert got[("USD", EXPENSE)] == {"opening": usd_open, "debit": usd_close - usd_open,
                                     "credit": written_off,
                                     "closing": usd_close - written_off}
    assert got[("USD", LIABILITY)]["closing"] == -(usd_close - written_off)
    assert answer.json()["balanced"] and answer.json()["liability_matches"]


def test_the_period_agrees_with_the_cumulative_trial_balance_at_both_ends(
        books: Runner) -> None:
    period = balances(books("trial-balance", "--from", "2025-04-01", "--to", "2025-06-30",
                            "--format", "json").json()["rows"])
    for day, column in (("2025-03-31", "opening"), ("2025-06-30", "closing")):
        cumulative = books("trial-balance", "--as-of", day, "--format", "json").json()["rows"]
        assert {(r["currency"], r["account"]): D(r["balance"]) for r in cumulative
                if D(r["balance"])} == {
            key: row[column] for key, row in period.items() if row[column]}, day


def test_as_known_at_10_july_the_late_sale_is_not_in_q2_yet(books: Runner) -> None:
    answer = books("trial-balance", "--from", "2025-04-01", "--to", "2025-06-30",
                   "--known-at", "2025-07-10", "--format", "json")
    got = balances(answer.json()["rows"])
    assert got[("EUR", EXPENSE)]["debit"] == a1(60 + 50 - 10) - a1(60)


def test_q2_journal_lists_the_postings_dated_in_the_period(books: Runner) -> None:
    answer = books("journal", "--from", "2025-04-01", "--to", "2025-06-30", "--format", "json")
    assert answer.code == 0, str(answer)
    document = answer.json()
    postings = [(r["entry"], r["valid_date"], r["agreement_id"], r["kind"], r["account"],
                 D(r["debit"]), D(r["credit"])) for r in document["rows"]]
    eur_move, usd_move = a1(120) - a1(60), a2("3000.00") - a2("1000.00")
    assert postings == [
        (1, "2025-06-10", "A1", "settlement", LIABILITY, D("100.00"), 0),
        (1, "2025-06-10", "A1", "settlement", CASH, 0, D("100.00")),
        (2, "2025-06-30", "A1", "accrual", EXPENSE, eur_move, 0),
        (2, "2025-06-30", "A1", "accrual", LIABILITY, 0, eur_move),
        (3, "2025-06-30", "A2", "accrual", EXPENSE, usd_move, 0),
        (3, "2025-06-30", "A2", "accrual", LIABILITY, 0, usd_move),
        (4, "2025-06-30", "A2", "write-off", LIABILITY, D("10.00"), 0),
        (4, "2025-06-30", "A2", "write-off", EXPENSE, 0, D("10.00")),
    ]
    accrual = next(r for r in document["rows"] if r["agreement_id"] == "A1"
                   and r["kind"] == "accrual")
    assert accrual["events"] and "3 sales invoiced in the period" in accrual["about"]
    assert accrual["recorded_at"] == "2025-08-01T09:00:00Z"  # the late sale's
    assert document["entries"] == 4
    # opening + the postings = closing, account by account
    for row in document["balances"]:
        mine = [p for p in postings if p[4] == row["account"]
                and (p[2] == "A1") == (row["currency"] == "EUR")]
        assert D(row["opening"]) + sum(p[5] for p in mine) - sum(p[6] for p in mine) == D(
            row["closing"]), row


def test_the_table_shows_opening_and_closing(books: Runner) -> None:
    table = books("journal", "--from", "2025-04-01", "--to", "2025-06-30")
    assert table.code == 0, str(table)
    assert "4 entries, 8 postings dated 2025-04-01 to 2025-06-30" in table.stdout
    assert (f"EUR {EXPENSE}: opening {a1(60):,.2f} Dr, debits {a1(120) - a1(60):,.2f}, "
            f"credits 0.00, closing {a1(120):,.2f} Dr") in table.stdout
    trial = books("trial-balance", "--from", "2025-04-01", "--to", "2025-06-30")
    assert trial.code == 0 and "balanced" in trial.stdout and "equal" in trial.stdout


@pytest.mark.parametrize("args, words", [
    (("--from", "2025-04-01"), "both --from D1 and --to D2"),
    (("--from", "2025-07-01", "--to", "2025-06-30"), "is before --from"),
    (("--from", "2025-04-01", "--to", "2025-06-30", "--as-of", "2025-06-30"),
     "give one or the other"),
    (("--from", "2025-04-31", "--to", "2025-06-30"), "--from"),
])
def test_a_period_that_is_not_one_is_a_usage_error(books: Runner, args: tuple[str, ...],
                                                   words: str) -> None:
    for command in ("journal", "trial-balance"):
        answer = books(command, *args)
        assert answer.code == 2, str(answer)
        assert words in answer.stderr, str(answer)
