"""Hard per-item timeouts: a look every quarter second at this process's timed items.

An item of a run with ``map(timeout=...)`` fails softly at its first ``report()`` after the
timeout (:mod:`daskfarm.worker.reporter`). One that does not report is still running when its
timeout plus the grace period has passed; the watchdog then tells the scheduler plugin once
(topic ``TIMEOUT_TOPIC``), which tells the client to fail the item and restarts this worker
process. The watchdog runs on the worker's event loop and only reads the item contexts.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from daskfarm import _distributed
from daskfarm._protocol import TIMEOUT_TOPIC

__all__ = ["track", "untrack"]

#: seconds between two looks
INTERVAL = 0.25

_lock = threading.Lock()
# item context -> (seconds after which the item is stopped hard, its worker)
_tracked: dict[Any, tuple[float, Any]] = {}
_started: weakref.WeakSet = weakref.WeakSet()


def track(ctx: Any, hard_after: float, worker: Any) -> None:
    """Watch the items run through ``ctx`` (one context serves a whole batch)."""
    with _lock:
        _tracked[ctx] = (hard_after, worker)
    if worker is not None and worker not in _started:
        _started.add(worker)
        _distributed.call_periodically(worker, _look, INTERVAL)


def untrack(ctx: Any) -> None:
    with _lock:
        _tracked.pop(ctx, None)


def _look() -> None:
    from daskfarm.worker.reporter import _clock

    now = _clock()
    with _lock:
        due = [(ctx, worker) for ctx, (after, worker) in _tracked.items()
               if not ctx.timeout_sent and now - ctx.start > after]
    for ctx, worker in due:
        ctx.timeout_sent = True
        if worker is not None:
            worker.log_event(TIMEOUT_TOPIC, {
                "run": ctx.run_id, "key": _distributed.wire_key(ctx.key), "i": ctx.index,
                "worker": worker.address, "seconds": float(ctx.timeout or 0.0),
            })
