"""What the scheduler keeps of each run: its rows of running items and its summary.

Plain data, no Dask: the plugin (:mod:`daskfarm.scheduler.plugin`) fills it on the
scheduler's event loop, and the panel (:mod:`daskfarm.dashboard`) reads it.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from daskfarm._protocol import COUNT_NAMES, eta, fraction_done

__all__ = ["KEEP_FINISHED", "MAX_POINTS", "RunRecord", "TaskRow", "WorkerIndex", "plot_labels"]

#: finished runs kept for the page
KEEP_FINISHED = 10
#: plot points kept per run
MAX_POINTS = 10_000
#: names of departed workers kept for their process_number, beyond the connected ones
SPARE_INDICES = 64


@dataclass
class TaskRow:
    """One running item, as the page shows it."""

    key: tuple
    index: int
    item: str = ""
    worker: str = ""
    frac: float = 0.0
    msg: str = ""
    elapsed: float = 0.0
    updated: float = 0.0
    taskname: str = ""


@dataclass
class RunRecord:
    """Everything the scheduler knows about one run."""

    run_id: str
    name: str = ""
    client: str = ""
    total: int | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    status: str = "running"
    counts: dict = field(default_factory=lambda: dict.fromkeys(COUNT_NAMES, 0))
    rate: float = 0.0
    plot: bool = False
    #: the plot's axis labels and title ({"x", "y", "title"}; see plot_labels)
    plot_labels: dict = field(default_factory=dict)
    #: dask key -> {item index -> TaskRow}; items of one batch run one after another
    rows: dict = field(default_factory=dict)
    #: dask key -> (worker address, start time) for the run's tasks being processed
    processing: dict = field(default_factory=dict)
    points: deque = field(default_factory=lambda: deque(maxlen=MAX_POINTS))
    dirty: bool = True
    #: wall-clock time of the hard stop of a stopping run (from the client's grace)
    stop_at: float | None = None

    def task_rows(self) -> list[TaskRow]:
        return [row for by_index in self.rows.values() for row in by_index.values()]

    @property
    def frac_sum(self) -> float:
        return sum(row.frac for by_index in self.rows.values() for row in by_index.values()
                   if row.frac < 1.0)

    @property
    def progress(self) -> float | None:
        """Brian's overall completion, counting the running items' fractions (also with no
        known total: then over the items seen so far); None before any item."""
        if self.finished is not None and self.status == "finished":
            return 1.0
        c = self.counts
        fractions = self.frac_sum if self.finished is None else 0.0
        in_flight = c.get("pending", 0) + c.get("running", 0)
        if not self.total and not in_flight and not any(c[n] for n in COUNT_NAMES[2:]):
            return None
        return fraction_done(c, self.total, fractions, in_flight)

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def eta(self) -> float | None:
        """Seconds left (only with a known total)."""
        if self.finished is not None or not self.total:
            return None
        return eta(self.elapsed, self.progress)

    @property
    def stop_in(self) -> float | None:
        """Seconds left before a stopping run's running items are stopped hard."""
        if self.status != "stopping" or self.stop_at is None:
            return None
        return max(0.0, self.stop_at - time.time())

    def end(self) -> None:
        """Keep only the summary of a finished run (its rows and points are dropped)."""
        self.finished = time.time()
        self.rows.clear()
        self.processing.clear()
        self.dirty = True


def plot_labels(value: object) -> dict:
    """The ``x``/``y``/``title`` labels of a run's start message, as short strings.

    Anything else (``True`` from a client before labels existed, malformed values) gives no
    labels: the panel then draws "x", "y" and the run's name.

    Examples
    --------
    >>> plot_labels({"x": "k", "y": "amplitude", "title": None, "colour": "red"})
    {'x': 'k', 'y': 'amplitude'}
    >>> plot_labels(True)
    {}
    """
    if not isinstance(value, dict):
        return {}
    return {name: value[name][:200] for name in ("x", "y", "title")
            if isinstance(value.get(name), str)}


class WorkerIndex:
    """Stable worker numbers 0..n-1 (a class task's ``process_number``), by worker name.

    A worker restarted by its nanny keeps its name, and so gets its number back; a number in
    use by another connected worker is never handed out twice. Names of departed workers are
    kept (most recently used last) but not for ever: adaptive clusters name every new worker
    anew.
    """

    def __init__(self):
        self.numbers: dict[str, int] = {}

    def assign(self, name: str, address: str, workers) -> int:
        """The number of worker ``name`` at ``address``; ``workers``: the connected ones."""
        in_use = {self.numbers[str(ws.name)] for ws in workers
                  if ws.address != address and str(ws.name) in self.numbers}
        number = self.numbers.pop(name, None)
        if number is None or number in in_use:
            number = next(i for i in range(len(in_use) + 1) if i not in in_use)
        self.numbers[name] = number  # (re)inserted: the dict is in order of last use
        return number

    def number(self, name: str, workers) -> int:
        for ws in workers:
            if str(ws.name) == name:
                return self.assign(name, ws.address, workers)
        return self.numbers.get(name, 0)

    def by_address(self, workers) -> dict[str, int]:
        """Address -> number of the connected ``workers`` that have one (for the panel)."""
        return {ws.address: self.numbers[str(ws.name)] for ws in workers
                if str(ws.name) in self.numbers}

    def prune(self, connected: set[str]) -> None:
        spare = [n for n in self.numbers if n not in connected]
        for name in spare[:max(0, len(spare) - SPARE_INDICES)]:
            del self.numbers[name]
