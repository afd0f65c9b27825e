"""The pieces of :class:`~daskfarm.compat.WorkerController` that are not the controller: the
call its workers make, its per-run bookkeeping, and stopping live controllers at exit."""

from __future__ import annotations

import atexit
import inspect
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daskfarm.run import Run

logger = logging.getLogger("daskfarm.compat.workercontroller")


class TaskCall:
    """``func(task, *args, **kwargs)``: what pydidas' workers call for each task."""

    def __init__(self, func: Callable, args: tuple, kwargs: dict):
        self.func = func
        self.args = args
        self.kwargs = kwargs
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):
            params = {}
        # only a declared `report` parameter gets the reporter, never a **kwargs catch-all
        self.wants_report = "report" in params and "report" not in kwargs

    def __call__(self, task: Any, report: Any = None) -> Any:
        if self.wants_report:
            return self.func(task, *self.args, report=report, **self.kwargs)
        return self.func(task, *self.args, **self.kwargs)


@dataclass(eq=False)
class RunBook:
    """One run of the controller: what it was given and what came back."""

    run: Run
    version: int
    handed: int = 0
    results: int = 0
    failures_seen: int = 0
    logged: int = 0
    drain: threading.Thread | None = None

    @property
    def in_flight(self) -> int:
        return self.handed - self.results - self.failures_seen


# Controllers still running at interpreter exit are stopped (see _stop_all at the end).
live_controllers: weakref.WeakSet = weakref.WeakSet()
# Set while this thread runs the slots of a signal emitted from a run's feeder thread.
in_slot = threading.local()


@atexit.register
def _stop_all() -> None:
    # The seed's restart example never stops its controller: end its farm before the
    # interpreter tears down the threads it needs.
    for controller in list(live_controllers):
        try:
            controller.stop()
        except Exception:
            logger.debug("stopping %r at exit failed", controller, exc_info=True)
