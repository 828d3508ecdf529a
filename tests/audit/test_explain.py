"""`explain` (issue 4, item 2) on the worked book of conftest.py, on SQLite and PostgreSQL; a
hypothesis property that the explanation's liability is always the ledger's; the CLI."""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Ledger
from ledger.audit.explain import explain
from ledger.audit.facts import UnknownAgreement
from tests.e2e.conftest import Runner
from tests.test_ledger_properties import agreements, sales, stamped

END = date(2025, 12, 31)


def step(explanation: Any, title: str) -> Any:
    return next(s for s in explanation.steps if s.title.startswith(title))


def test_a1_at_year_end_every_figure_and_its_events(book: Ledger) -> None:
    e = explain(book, "A1", END)
    # the tiers come from the amendment recorded 2025-05-02, effective 2025-01-01
    terms = step(e, "Terms in force")
    assert terms.figures["tiers"] == "from 0: 1.5, from 100: 2.5"
    assert "recorded 2025-05-02T00:00:00Z, effective 2025-01-01" in terms.text
    assert len(terms.events) == 2  # created, amended
    # sales by invoice month: Jan S1 60, Feb S2 50, Mar S3 5 (the late one)
    months = step(e, "Eligible sales").figures
    assert {m: (f["quantity"], f["sales"]) for m, f in months.items()} == {
        "2025-01": (Decimal("60"), ["S1"]), "2025-02": (Decimal("50"), ["S2"]),
        "2025-03": (Decimal("5"), ["S3"])}
    assert all(f["events"] for f in months.values())
    # 115 units reach the 2.50 tier: 2.50 x 115 = 287.50
    assert step(e, "Tier reached").figures["tier_rate"] == Decimal("2.5")
    assert step(e, "Formula").figures["uncapped"] == Decimal("287.5")
    assert step(e, "Settlements").figures["total"] == Decimal("100.00")
    assert step(e, "Write-offs").figures["total"] == Decimal("10.00")
    # 287.50 - 100 - 10 = 177.50
    assert e.liability == Decimal("177.50") and e.matches_ledger
    assert "= 177.50 EUR" in e.lines()[-1]


def test_a1_as_reported_before_the_amendment_and_the_late_sale(book: Ledger) -> None:
    # as known at 2025-05-01 the tiers were 1.00 / 2.00; 110 units: 2.00 x 110 = 220.00
    e = explain(book, "A1", END, datetime(2025, 5, 1, 12, tzinfo=UTC))
    assert step(e, "Terms in force").figures["tiers"] == "from 0: 1, from 100: 2"
    assert step(e, "Formula").figures["uncapped"] == Decimal("220")
    assert e.liability == Decimal("110.00") and e.matches_ledger


def test_a2_forecast_method_names_the_revision(book: Ledger) -> None:
    # F = 500 (the revision), E = max(400, 500) = 500 < 1000: 2 % of 400 = 8.00
    e = explain(book, "A2", END)
    tier = step(e, "Tier reached")
    assert tier.figures["forecast_basis"] == Decimal("500")
    assert tier.figures["effective_basis"] == Decimal("500")
    assert len(tier.events) == 1 and tier.events[0].endswith("/2")
    assert e.liability == Decimal("8.00") and e.matches_ledger


def test_an_unknown_agreement_is_named(book: Ledger) -> None:
    with pytest.raises(UnknownAgreement, match="agreement_id: no agreement 'A9'"):
        explain(book, "A9", END)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(agreement=agreements(), book=st.integers(0, 8).flatmap(lambda n: sales("S", n)),
       as_of=st.dates(date(2025, 1, 1), date(2026, 1, 31)))
def test_the_explanation_always_ends_at_the_ledgers_liability(
    agreement: dict[str, Any], book: list[dict[str, Any]], as_of: date
) -> None:
    with tempfile.TemporaryDirectory() as folder, Ledger(
        f"sqlite:///{Path(folder) / 'ledger.db'}"
    ) as ledger:
        ledger.apply(stamped([agreement, *book], 0))
        e = explain(ledger, "A1", as_of)
        (row,) = ledger.liability(as_of)
        assert e.liability == row.liability and e.matches_ledger


def test_cli_explain_as_a_user_types_it(cli: Runner) -> None:
    done = cli("explain", "--agreement", "A1", "--as-of", "2025-12-31")
    assert done.code == 0, str(done)
    assert "2.5 per unit x measure 115 = 287.5" in done.stdout
    assert "equal to `rebate-ledger liability`" in done.stdout
    document = cli("explain", "--agreement", "A1", "--as-of", "2025-12-31",
                   "--format", "json").json()
    assert document["liability"] == "177.50" and document["matches_ledger"] is True
    done = cli("explain", "--agreement", "NOPE", "--as-of", "2025-12-31")
    assert done.code == 2 and "--agreement" in done.stderr and "NOPE" in done.stderr


def test_explain_names_the_business_ids_beside_the_event_ids(cli: Runner) -> None:
    """Issue 14, point 7: an event id alone says nothing to an auditor."""
    done = cli("explain", "--agreement", "A1", "--as-of", "2025-12-31")
    assert done.code == 0, str(done)
    events = [line.strip() for line in done.stdout.splitlines()
              if line.strip().startswith("events:")]
    assert re.fullmatch(r"events: \S+/1 \(agreement A1\), \S+/3 \(amendment of A1 from "
                        r"2025-01-01\)", events[0]), events
    for said in ("(claim K1 submitted)", "(claim K1 approved)", "(claim K1 settled)",
                 "(write-off of A1)"):
        assert any(line.endswith(said) for line in events), (said, events)
    document = cli("explain", "--agreement", "A1", "--as-of", "2025-12-31",
                   "--format", "json").json()
    terms = document["rows"][0]
    assert sorted(terms["events_about"].values()) == [
        "agreement A1", "amendment of A1 from 2025-01-01"]
    assert set(terms["events_about"]) == set(terms["events"])
