"""The worked book of the auditors' toolkit tests, and the CLI runner.

All EUR, period 2025. Figures the tests assert are computed by hand from this book in the
comments of each test.

A1 (customer C1): quantity basis, retroactive, per unit: 1.00 from 0, 2.00 from 100.
  S1  60 units (600.00), invoiced 2025-01-15, recorded 2025-02-01
  S2  50 units (500.00), invoiced 2025-02-15, recorded 2025-03-01
  K1  claim 100.00 submitted 2025-03-31, approved 2025-04-01, paid 100.00 on 2025-04-02
      (recorded 04-01, 04-02, 04-03)
  write-off 10.00 effective 2025-04-30, recorded 2025-05-01
  amendment recorded 2025-05-02, effective 2025-01-01 (retroactive): 1.50 from 0, 2.50 from 100
  S3  5 units (50.00), invoiced 2025-03-20, recorded late on 2025-07-15
A2 (customer C2): amount basis, retroactive, percent: 0.02 from 0, 0.05 from 1000; forecast
   method, forecast basis 2000.
  S10 400.00 (4 units), invoiced 2025-02-10, recorded 2025-02-11
  forecast revised to 500, effective 2025-03-01, recorded 2025-03-05
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import Ledger
from tests.contract import helpers as h
from tests.e2e.conftest import Runner

BOOK: list[h.Command] = [
    h.at("2025-01-01T00:00:00Z", h.agreement("A1", tiers=(("0", "1"), ("100", "2")))),
    h.at("2025-01-01T00:00:01Z", h.agreement(
        "A2", customer_id="C2", basis="amount", rate_kind="percent",
        tiers=(("0", "0.02"), ("1000", "0.05")), accrual_method="forecast",
        forecast_basis="2000")),
    h.at("2025-02-01T00:00:00Z", h.sale("S1", "60", "600.00", "2025-01-15")),
    h.at("2025-02-11T00:00:00Z", h.sale("S10", "4", "400.00", "2025-02-10", customer_id="C2")),
    h.at("2025-03-01T00:00:00Z", h.sale("S2", "50", "500.00", "2025-02-15")),
    h.at("2025-03-05T00:00:00Z", h.forecast("A2", "500", "2025-03-01")),
    h.at("2025-04-01T00:00:00Z", h.submit("K1", "100.00", submitted_on="2025-03-31")),
    h.at("2025-04-02T00:00:00Z", h.approve("K1", approved_on="2025-04-01")),
    h.at("2025-04-03T00:00:00Z", h.settle("K1", paid_on="2025-04-02", paid_amount="100.00")),
    h.at("2025-05-01T00:00:00Z", h.write_off("10.00", effective_date="2025-04-30")),
    h.at("2025-05-02T00:00:00Z", h.amend("A1", "2025-01-01",
                                         tiers=h.tier_list((("0", "1.5"), ("100", "2.5"))))),
    h.at("2025-07-15T00:00:00Z", h.sale("S3", "5", "50.00", "2025-03-20")),
]


@pytest.fixture
def book(database_url: str) -> Iterator[Ledger]:
    """The worked book, on SQLite and on PostgreSQL."""
    with Ledger(database_url) as ledger:
        h.accepted_all(ledger, BOOK)
        yield ledger


@pytest.fixture
def cli(tmp_path: Path) -> Runner:
    """The installed CLI in a fresh directory whose default store holds the worked book."""
    runner = Runner(tmp_path)
    runner.write("book.jsonl", BOOK)
    done = runner("apply", "book.jsonl")
    assert done.code == 0, str(done)
    return runner
