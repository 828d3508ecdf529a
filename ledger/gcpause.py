"""Pausing Python's cyclic garbage collector around a batch, and only around a batch.

Applying a chunk of sales or a batch of Kafka records makes millions of short-lived objects and
no cycles worth chasing; the collector would run every few hundred lines and take a quarter of
apply's time and 40 % of a replay's (measured). But `gc.disable()` is process-wide: in a server
it would reach every other request's thread. So:

- only a process built for batches pauses it (`Settings.pause_gc_in_batches`, true for the CLI
  and the Kafka workers; the HTTP server's composition root turns it off);
- concurrent batches in one process share one pause, counted, and the collector comes back when
  the last of them ends, never while one is still running and never left off.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_batches = 0
_was_enabled = False


@contextmanager
def paused_gc(pause: bool = True) -> Iterator[None]:
    """The block runs with the cyclic collector paused when `pause` (and, counted, while any
    other paused block in the process runs); afterwards it is as it was before the first."""
    global _batches, _was_enabled
    if not pause:
        yield
        return
    with _lock:
        if _batches == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _batches += 1
    try:
        yield
    finally:
        with _lock:
            _batches -= 1
            if _batches == 0 and _was_enabled:
                gc.enable()
