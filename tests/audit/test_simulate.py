"""`simulate` (issue 4, item 8) on the worked book of conftest.py, on SQLite and PostgreSQL,
and through the CLI: a draft deal over the recorded sales, nothing stored."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger import Ledger
from ledger.audit.simulate import DraftError, read_draft, simulate
from ledger.projections.core import metadata
from tests.contract import helpers as h
from tests.e2e.conftest import Runner

DRAFT = [h.agreement("D1", tiers=(("0", "0.5"), ("100", "1")))]
AMENDED = DRAFT + [h.amend("D1", "2025-03-01", tiers=h.tier_list((("0", "2"),)))]


def lines(commands: list[h.Command]) -> list[bytes]:
    return [orjson.dumps(command) for command in commands]


def counts(ledger: Ledger) -> dict[str, int]:
    with Session(ledger.engine) as session:
        tables = [*metadata.sorted_tables, ledger.app.recorder.tables[0]]  # type: ignore[attr-defined]
        return {t.name: session.execute(select(func.count()).select_from(t)).scalar_one()
                for t in tables}


def test_month_by_month_next_to_the_existing_agreement_and_nothing_stored(
    book: Ledger,
) -> None:
    before = counts(book)
    months = simulate(book, read_draft(lines(DRAFT)), date(2025, 4, 30))
    # C1's sales as known now: S1 60 (Jan), S2 50 (Feb), S3 5 (Mar, the late one)
    # draft 0.50 from 0, 1.00 from 100: Jan 60 x 0.50 = 30.00; Feb 110 x 1 = 110.00; Mar and
    # Apr 115.00. A1 (2.50 from 100 after its retroactive amendment): 90.00, 275.00, 287.50.
    assert [(m.end, m.basis, m.accrued) for m in months] == [
        (date(2025, 1, 31), Decimal("60"), Decimal("30.00")),
        (date(2025, 2, 28), Decimal("110"), Decimal("110.00")),
        (date(2025, 3, 31), Decimal("115"), Decimal("115.00")),
        (date(2025, 4, 30), Decimal("115"), Decimal("115.00")),
    ]
    assert [m.existing["A1"] for m in months[:3]] == [
        Decimal("90.00"), Decimal("275.00"), Decimal("287.50")]
    assert "A2" not in months[0].existing  # another customer's agreement
    assert counts(book) == before


def test_draft_amendments_apply_from_their_date(book: Ledger) -> None:
    # from 03-01 a flat 2.00 per unit (the amendment is retroactive to nothing before 03-01:
    # terms in force at D): Feb 110.00 as before, Mar 115 x 2 = 230.00
    months = simulate(book, read_draft(lines(AMENDED)), date(2025, 3, 31))
    assert [m.accrued for m in months] == [Decimal("30.00"), Decimal("110.00"),
                                           Decimal("230.00")]


def test_a_bad_draft_is_refused_with_the_line_and_the_field(book: Ledger) -> None:
    broken = [{**DRAFT[0], "tiers": []}]
    with pytest.raises(DraftError, match="line 1: tiers"):
        read_draft(lines(broken))
    with pytest.raises(DraftError, match="line 2: type: record_sale cannot be simulated"):
        read_draft(lines(DRAFT + [h.sale("S1", "1", "1")]))
    with pytest.raises(DraftError, match="line 2: agreement_id: 'A1' is not the draft's"):
        read_draft(lines(DRAFT + [h.amend("A1", "2025-03-01", cap="5")]))


def test_cli_simulate_as_a_user_types_it(cli: Runner) -> None:
    cli.write("draft.jsonl", DRAFT)
    done = cli("simulate", "--draft", "draft.jsonl", "--as-of", "2025-03-31", "--format", "json")
    assert done.code == 0, str(done)
    document = done.json()
    assert [r["draft_accrued"] for r in document["rows"]] == ["30.00", "110.00", "115.00"]
    assert document["final"]["existing"] == {"A1": "287.50"}
    table = cli("simulate", "--draft", "draft.jsonl")
    assert "nothing was stored" in table.stdout
    cli.write("bad.jsonl", ['{"type": "create_agreement"}'])
    done = cli("simulate", "--draft", "bad.jsonl")
    assert done.code == 2 and "line 1" in done.stderr and "agreement_id" in done.stderr
