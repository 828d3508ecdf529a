"""The garbage collector is paused around batches only, counted across threads, and never in
the HTTP server (issue 8: a process-wide gc.disable() in apply reached every request thread)."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import pytest

from ledger.gcpause import paused_gc


def test_a_batch_pauses_and_restores_the_collector() -> None:
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    with paused_gc(False):
        assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_gc():
        raise RuntimeError("a batch that fails")
    assert gc.isenabled()


def test_overlapping_batches_share_one_pause_and_the_last_one_restores_it() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        with paused_gc():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with paused_gc():
            second_in.set()
            first_out.wait(5)
            seen["after the first ended"] = gc.isenabled()
        seen["after both"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == {"after the first ended": False, "after both": True}
    assert gc.isenabled()


def test_a_collector_switched_off_before_stays_off() -> None:
    gc.disable()
    try:
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_servers_service_never_pauses_it(tmp_path: Path, monkeypatch: Any) -> None:
    from ledger.bootstrap import build_service
    from ledger.core import Ledger

    during: list[bool] = []
    original = Ledger._apply_chunk_now

    def spy(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        during.append(gc.isenabled())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Ledger, "_apply_chunk_now", spy)
    line = b'{"type": "record_sale", "sale_id": "S1"}'
    for server in (True, False):
        service = build_service(f"sqlite:///{tmp_path / f'{server}.db'}", server=server)
        try:
            service.ledger.apply_lines([line])
        finally:
            service.close()
    assert during == [True, False]
    assert gc.isenabled()
