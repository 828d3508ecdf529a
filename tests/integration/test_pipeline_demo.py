"""The demo's Kafka phase: an ERP feed through the sales topic, intake, relay and the liability
projection, on the real embedded broker; the figures read from the projection are the core's,
and the ERP's malformed records land on the rejected topic with their reasons."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
from rich.console import Console

from consumers.pipeline import POISON, run_pipeline_demo
from ledger import Ledger
from ledger.demo import YEAR_END, print_pipeline, run_demo
from ledger.kafka.broker import EmbeddedBroker

from .conftest import settings_for

pytestmark = pytest.mark.kafka
_PREFIXES = itertools.count(1)


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_the_demo_pipeline_reads_from_the_projection_what_the_core_says(
    tmp_path: Path, kafka_broker: EmbeddedBroker, client: str
) -> None:
    console = Console(file=io.StringIO(), width=200)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = run_demo(database=url, console=console, customers=12, book_path=None)
    settings = settings_for(client, topic_prefix=f"demo{next(_PREFIXES)}.")
    with Ledger(url) as ledger:
        accepted_before = ledger.state()["accepted"]
        outcome = run_pipeline_demo(console, ledger, result.plan, kafka_broker.bootstrap,
                                    settings, feed=600, as_of=YEAR_END, seed=7)
        assert ledger.state()["accepted"] == accepted_before + 600
    assert outcome.source.startswith("projection liability")
    assert [r.to_dict() for r in outcome.after] == [r.to_dict() for r in outcome.core_after]
    # late December invoices raise the year-end accrual of the customers who bought
    assert sum(r.accrued for r in outcome.after) > sum(r.accrued for r in outcome.before)
    assert len(outcome.rejected_topic) == len(POISON)
    for source, reason in outcome.rejected_topic:
        assert source.startswith(f"{settings.topic('sales')}/"), source
        assert reason and reason != "?", reason
    print_pipeline(console, outcome, YEAR_END)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "identical to the core's: yes" in text
