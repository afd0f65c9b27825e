"""The run's status, about once a second: to the scheduler plugin, the bar, on_progress.

The plugin gets the counts (the panel's runs table), new plot points, and for a stopping run
the seconds left before its hard stop; the terminal bar and the ``on_progress`` callbacks get
the same numbers. Nothing here may stop a run: a bar that cannot be drawn is dropped, a
status message that cannot be sent is skipped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from daskfarm._protocol import RUN_TOPIC, RunOp
from daskfarm.client.state import RunState
from daskfarm.run import call_safely

__all__ = ["StatusPublisher"]

logger = logging.getLogger(__name__)


class StatusPublisher:
    """Sends one run's status; ``plugin=False`` (no plugin on the scheduler) sends nothing."""

    def __init__(self, run_id: str, state: RunState, *, client: Any, plugin: bool, bar: Any,
                 has_plot: bool):
        self.run_id = run_id
        self.state = state
        self.client = client
        self.plugin = plugin
        self.bar = bar
        self.has_plot = has_plot

    def send(self, op: RunOp, points: list | None = None) -> None:
        if not self.plugin or self.client.status != "running":
            return  # a call to a scheduler that is gone would block until its timeout
        state = self.state
        counts = state.counts()
        msg: dict = {"op": op.value, "run": self.run_id, "counts": counts,
                     "status": state.status.value, "total": state.total,
                     "grace_left": state.grace_left()}
        started = state.started
        if op is RunOp.START:
            msg.update(name=state.name, client=self.client.id, started=started,
                       plot=self.has_plot)
        elapsed = time.time() - started
        msg["rate"] = counts["done"] / elapsed if elapsed > 0 else 0.0
        try:
            if points:  # before the status: the plugin ignores points of a finished run
                self.client.log_event(RUN_TOPIC, {"op": RunOp.POINTS.value, "run": self.run_id,
                                                  "xy": points})
            self.client.log_event(RUN_TOPIC, msg)
        except Exception:
            logger.debug("status message to the scheduler failed", exc_info=True)

    def draw(self, how: str) -> None:
        """Draw the terminal bar; a bar that cannot be written (stderr closed) is dropped,
        never the run."""
        bar = self.bar
        if bar is None:
            return
        try:
            getattr(bar, how)(self.state)
        except Exception:
            logger.debug("the progress bar cannot be drawn any more", exc_info=True)
            self.bar = None
            try:
                bar.abandon()
            except Exception:
                logger.debug("the progress bar could not be abandoned", exc_info=True)

    def progress(self, value: float | None = None) -> None:
        state = self.state
        fraction = state.progress() if value is None else value
        for fn in state.callbacks("progress"):
            call_safely(fn, fraction)
