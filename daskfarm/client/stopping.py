"""A cancelled run's last phase: wait until no worker executes its items, then stop hard.

Cancelling a Dask future does not stop the thread running it: the task goes on until it calls
``report()`` (which raises TaskCancelled) or returns. The :class:`Stopper` asks the workers
which of them still execute an item of the run (from 20 ms apart, doubling to ``POLL``); once
the grace period is over it has the scheduler plugin restart those worker processes through
their nannies (their other tasks are rescheduled, unblamed). Where that is impossible (no
plugin, no nanny) it warns once and the stop stays cooperative.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

from daskfarm._protocol import HARD_STOP_HANDLER
from daskfarm.client.state import RunState
from daskfarm.exceptions import HardStopWarning
from daskfarm.worker import execute

__all__ = ["HARD_STOP_BOUND", "Stopper"]

logger = logging.getLogger(__name__)

#: seconds between two looks at the workers while a run stops: from FIRST_POLL, doubling up
#: to POLL (a batch of short items ends at its next item, tens of ms after the cancel; each
#: look is one message to every worker)
FIRST_POLL = 0.02
POLL = 0.2
#: seconds a hard stop may take before the run ends anyway (workers restart in a few)
HARD_STOP_BOUND = 60.0
#: seconds between two status messages while stopping
_STATUS_EVERY = 1.0


class Stopper:
    """Waits out one cancelled run (see the module docstring)."""

    def __init__(self, run_id: str, state: RunState, client: Any, plugin: bool):
        self.run_id = run_id
        self.state = state
        self.client = client
        self.plugin = plugin

    def wait_idle(self, publish: Callable[[], None]) -> None:
        """Return when no worker executes an item of the run (or a hard stop was impossible
        or took more than ``HARD_STOP_BOUND``)."""
        hard_deadline = None
        last_status = 0.0
        delay = FIRST_POLL
        while True:
            busy = self.busy_workers()
            if not busy:
                return
            now = time.monotonic()
            if hard_deadline is None and self.state.stop_due(now):
                if not self.hard_stop(sorted(busy)):
                    return  # cannot be made hard: the run ends, the threads run on
                hard_deadline = now + HARD_STOP_BOUND
            elif hard_deadline is not None and now > hard_deadline:
                logger.warning("run %s: workers %s still run its items %g s after their "
                               "restart was asked for", self.run_id, sorted(busy),
                               HARD_STOP_BOUND)
                return
            if now - last_status >= _STATUS_EVERY:
                last_status = now
                publish()
            time.sleep(delay)
            delay = min(2 * delay, POLL)

    def busy_workers(self) -> dict[str, int]:
        """Workers where an item of this run executes now (a cancelled task's thread runs on
        until the task returns)."""
        if self.client.status != "running":
            return {}
        try:
            replies = self.client.run(execute.active_batches, self.run_id, on_error="return")
        except Exception:
            logger.debug("could not ask the workers what they run", exc_info=True)
            return {}
        return {w: n for w, n in replies.items() if isinstance(n, int) and n > 0}

    def hard_stop(self, workers: list[str]) -> bool:
        """Restart these workers' processes; False where that is impossible (warned once)."""
        if not self.plugin:
            _warn_cooperative("no plugin", "the scheduler has no daskfarm plugin to restart "
                              "workers")
            return False
        try:
            replies = self.client.sync(getattr(self.client.scheduler, HARD_STOP_HANDLER),
                                       workers=workers, reason=f"run {self.run_id} stopped")
        except Exception as exc:
            logger.warning("run %s: the hard stop failed (%r)", self.run_id, exc)
            return False
        logger.info("run %s: restarted worker processes %s", self.run_id, replies)
        no_nanny = sorted(w for w, r in replies.items() if r == "no nanny")
        if no_nanny:
            _warn_cooperative("no nanny", f"workers {no_nanny} have no nanny "
                              "(processes=False, or dask worker --no-nanny)")
        return len(no_nanny) < len(replies)


_warned: set[str] = set()


def _warn_cooperative(kind: str, why: str) -> None:
    if kind in _warned:
        return
    _warned.add(kind)
    warnings.warn(
        f"a running item cannot be stopped hard: {why}. It stops at its next report() call, "
        "or runs to its end (its result is dropped). Use workers with a nanny (the default "
        "of Farm() and `dask worker`) for hard stops.", HardStopWarning, stacklevel=2)
