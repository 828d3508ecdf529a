"""The ports of the Kafka workers: what the application service hands a worker, and what it
gets back.

The workers themselves (`consumers.relay`, `consumers.intake`, `replay.commands`,
`consumers.pipeline`) are infrastructure that `ledger` never imports (tests/test_import_arrows.py):
an entrypoint names the worker, the service (`LedgerService.run_relay`, `run_intake`,
`run_projection`, `replay_projection`, `audit_view`, `run_pipeline`) checks who asks and hands
the worker the store it was built over. So an entrypoint never opens or holds the store itself.
Each worker returns its exit status (0 done, 1 a difference found, 3 stalled; see each command).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ledger.core import Ledger
    from ledger.kafka.settings import KafkaSettings


class RelayWorker(Protocol):
    """`consumers.relay.main_relay`: publish the stored events to the events topic."""

    def __call__(self, ledger: Ledger, settings: KafkaSettings, home: Path, *,
                 once: bool = ..., echo: Callable[[str], None] = ...,
                 from_position: int | None = ...) -> int: ...


class IntakeWorker(Protocol):
    """`consumers.intake.main_intake`: apply the sales and commands topics to the store."""

    def __call__(self, ledger: Ledger, settings: KafkaSettings, home: Path, *,
                 group_id: str | None = ..., until_idle_s: float | None = ...,
                 echo: Callable[[str], None] = ...) -> int: ...


class ProjectionWorker(Protocol):
    """`replay.commands.main_project`: feed the projections from the events topic."""

    def __call__(self, ledger: Ledger, settings: KafkaSettings, home: Path, *,
                 until_idle_s: float | None, poll_records: int = ..., console: Any) -> int: ...


class ReplayWorker(Protocol):
    """`replay.commands.main_replay`: rebuild one projection from the start of the topic."""

    def __call__(self, ledger: Ledger, name: str, settings: KafkaSettings, home: Path,
                 console: Any) -> int: ...


class AuditViewWorker(Protocol):
    """`replay.commands.main_audit_view`: the liability at (D, K) from the topic alone,
    compared with the core's and the live projection's."""

    def __call__(self, ledger: Ledger, as_of: date, known_at: datetime | None,
                 settings: KafkaSettings, home: Path, *, output: str = ..., console: Any,
                 err_console: Any) -> int: ...


class PipelineWorker(Protocol):
    """`consumers.pipeline.run_pipeline_demo`: the demo's ERP feed through Kafka."""

    def __call__(self, console: Any, ledger: Ledger, plan: Any, bootstrap: str,
                 settings: KafkaSettings, *, feed: int = ..., as_of: date = ...,
                 seed: int = ...) -> Any: ...


class LogCheck(Protocol):
    """`consumers.relay.check_events_log`: the events topic checked against the store
    (`verify --log`): the breaks, and how many records were read."""

    def __call__(self, ledger: Any) -> tuple[list[Any], int]: ...
