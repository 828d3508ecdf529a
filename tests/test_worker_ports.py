"""Issue 8 point 1: the Kafka workers are called through the application service
(ledger.workers): the entrypoint names the worker, the service checks who asks and hands the
worker the store it was built over, and returns the worker's exit status."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger.access import Forbidden, Principal, Role, operator
from ledger.core import Ledger
from ledger.kafka.settings import KafkaSettings
from ledger.service import LedgerService


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LedgerService]:
    with LedgerService(Ledger(f"sqlite:///{tmp_path / 'l.db'}")) as built:
        yield built


def test_each_worker_gets_the_services_store_and_its_options(service: LedgerService,
                                                            tmp_path: Path) -> None:
    seen: list[tuple[str, Any, dict[str, Any]]] = []

    def worker(name: str, status: int) -> Any:
        def run(*args: Any, **kwargs: Any) -> int:
            store = args[1] if name == "pipeline" else args[0]
            seen.append((name, store, kwargs))
            return status
        return run

    kafka, home, me = KafkaSettings(), tmp_path, operator("cli:ops")
    assert service.run_relay(me, worker("relay", 0), kafka, home, once=True,
                             from_position=7) == 0
    assert service.run_intake(me, worker("intake", 3), kafka, home, group_id="g",
                              until_idle_s=1.5) == 3
    assert service.run_projection(me, worker("project", 0), kafka, home, until_idle_s=None,
                                  poll_records=4, console=None) == 0
    assert service.replay_projection(me, worker("replay", 0), "claims", kafka, home,
                                     None) == 0
    assert service.audit_view(me, worker("audit-view", 1), date(2025, 12, 31), None, kafka,
                              home, output="json", console=None, err_console=None) == 1
    assert service.run_pipeline(me, worker("pipeline", 0), None, None, "b:9092", kafka,
                                feed=10, as_of=date(2025, 12, 31), seed=1) == 0
    assert [name for name, _, _ in seen] == ["relay", "intake", "project", "replay",
                                             "audit-view", "pipeline"]
    assert all(store is service.ledger for _, store, _ in seen)
    options = {name: kwargs for name, _, kwargs in seen}
    assert options["relay"]["once"] is True and options["relay"]["from_position"] == 7
    assert options["intake"]["group_id"] == "g" and options["intake"]["until_idle_s"] == 1.5
    assert options["project"]["poll_records"] == 4
    assert options["audit-view"]["output"] == "json"
    assert options["pipeline"]["feed"] == 10


@pytest.mark.parametrize("role", [Role.finance, Role.sales, Role.ingest])
def test_only_an_operator_runs_a_worker(service: LedgerService, tmp_path: Path,
                                        role: Role) -> None:
    def never(*_: Any, **__: Any) -> int:
        raise AssertionError("the worker ran")

    someone = Principal(name="u", role=role)
    with pytest.raises(Forbidden, match=f"role {role.value} may not run the relay"):
        service.run_relay(someone, never, KafkaSettings(), tmp_path)
    with pytest.raises(Forbidden, match="may not run intake"):
        service.run_intake(someone, never, KafkaSettings(), tmp_path)
