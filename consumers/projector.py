"""The projection worker: feeds the live generation of each projection from the events topic.

    from consumers.projector import Projector
    with Projector(ledger, transport, settings) as projector:   # names=("liability", ...)
        projector.run_once(timeout_s=0.2)  # -> records read (over every projection)
        projector.run(stop)                # until `stop` is set (or idle for until_idle_s)
        projector.caught_up_to()           # -> store position every projection has applied

One `ProjectionRunner` (`ledger.projections.runner`) per projection, each on the database of
that projection's live generation (`ledger.projections.generations`): it assigns every
partition of the events topic, applies each polled batch with its positions in one
transaction, skips redelivered `(position, part)` and reads everything again from offset 0 when
the broker's cluster id changed. When a replay swaps a new generation in, the worker follows
it: the runner on the old generation is closed and one on the new generation opens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from consumers.transport import Transport, TransportError
from ledger.core import Ledger
from ledger.kafka.settings import KafkaSettings
from ledger.projections.generations import NAMES, Generation, live_generation, live_or_new
from ledger.projections.read_models import model
from ledger.projections.runner import ProjectionRunner

LOG = logging.getLogger(__name__)

PROJECTIONS: tuple[str, ...] = NAMES


class Projector:
    """The projections `names` of the store of `ledger`, fed from `settings.topic("events")`."""

    def __init__(
        self,
        ledger: Ledger,
        transport: Transport,
        settings: KafkaSettings,
        *,
        names: Sequence[str] = PROJECTIONS,
        poll_records: int = 20_000,
        poll_timeout_s: float = 0.2,
    ) -> None:
        assert names and set(names) <= set(NAMES), names
        assert 1 <= poll_records <= 1_000_000, poll_records
        self.ledger = ledger
        self.transport = transport
        self.settings = settings
        self.names = tuple(names)
        self.poll_records = poll_records
        self.poll_timeout_s = poll_timeout_s
        self.runners: dict[str, ProjectionRunner] = {}
        self._live: dict[str, Generation] = {}
        self._engines: dict[str, Engine] = {}

    # --- lifecycle ------------------------------------------------------------------------

    def _runner(self, name: str) -> ProjectionRunner:
        """The runner on the live generation of `name` (made if there is none)."""
        current = live_generation(self.ledger.engine, name)
        if name in self.runners and current == self._live.get(name):
            return self.runners[name]
        self._drop(name)
        generation = live_or_new(self.ledger.engine, name)
        engine = generation.engine()
        self._engines[name] = engine
        self._live[name] = generation
        runner = ProjectionRunner(
            engine, model(name), self.transport, self.settings,
            poll_records=self.poll_records, poll_timeout_s=self.poll_timeout_s,
        )
        self.runners[name] = runner
        runner.open()
        return runner

    def _drop(self, name: str) -> None:
        runner = self.runners.pop(name, None)
        if runner is not None:
            runner.close()
        engine = self._engines.pop(name, None)
        if engine is not None:
            engine.dispose()
        self._live.pop(name, None)

    def close(self) -> None:
        for name in list(self.runners):
            self._drop(name)

    def __enter__(self) -> Projector:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- work -----------------------------------------------------------------------------

    def run_once(self, timeout_s: float | None = None) -> int:
        """One poll (waiting up to `timeout_s` each) and one transaction per projection;
        return the records read over all of them (0: nothing new)."""
        count = 0
        for name in self.names:
            runner = self._runner(name)
            try:
                count += runner.step(timeout_s)
            except SQLAlchemyError:
                # its generation was swapped out and dropped by a replay: follow the pointer
                if live_generation(self.ledger.engine, name) == self._live.get(name):
                    raise
                self._drop(name)
        return count

    def run(
        self,
        stop: threading.Event,
        *,
        until_idle_s: float | None = None,
        retry_sleep_s: float = 1.0,
        on_step: Callable[[Projector], None] | None = None,
    ) -> None:
        """Apply until `stop` is set (or nothing new came for `until_idle_s`). Kafka and
        database outages are logged and retried after `retry_sleep_s` with new clients; the
        positions in each projection's database make the retry exact."""
        idle_since = time.monotonic()
        while not stop.is_set():
            try:
                count = self.run_once()
            except (TransportError, OperationalError) as error:
                LOG.warning("projector: %s; retrying in %.1f s", error, retry_sleep_s)
                self.close()
                stop.wait(retry_sleep_s)
                continue
            if on_step is not None:
                on_step(self)
            if count:
                idle_since = time.monotonic()
            elif until_idle_s is not None and time.monotonic() - idle_since >= until_idle_s:
                return

    # --- progress -------------------------------------------------------------------------

    def caught_up_to(self) -> int:
        """The store position every projection has applied: the lowest watermark read over
        every partition of the events topic, over every projection (0 before any)."""
        if set(self.runners) != set(self.names):
            return 0
        return min(runner.caught_up_to() for runner in self.runners.values())

    def counters(self) -> dict[str, dict[str, int]]:
        """Per projection: envelopes applied and skipped, log replacements, watermark,
        malformed records quarantined (the projection is then incomplete until a replay), and
        envelope v2 records held after a gap, gaps healed, gaps still open."""
        return {
            name: {"applied": r.applied, "skipped": r.skipped, "reseeks": r.reseeks,
                   "watermark": r.caught_up_to(), "quarantined": r.quarantined,
                   "held": r.held, "healed": r.healed, "gaps": len(r.gaps())}
            for name, r in self.runners.items()
        }

    def gaps(self) -> dict[str, list[str]]:
        """Per projection, the gaps open on the log, described with what heals them."""
        return {name: [gap.describe() for gap in r.gaps()]
                for name, r in self.runners.items() if r.gaps()}
