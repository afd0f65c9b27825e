"""Every name and message shape that crosses a process boundary.

Client, workers and scheduler run different parts of daskfarm; whatever one of them sends and
another reads is defined here, once, so that no module has to import another process's code to
learn a topic name or an outcome code. This module imports nothing but the standard library.

::

    worker  ── PROGRESS_TOPIC {"batch": [ProgressMsg, ...], "worker"} ──▶ scheduler plugin
    worker  ── TIMEOUT_TOPIC  TimeoutMsg (an item overran timeout + grace) ──▶ scheduler plugin
    client  ── RUN_TOPIC      RunMsg (start / update / points / finish) ──▶ scheduler plugin
    plugin  ── SUMMARY_TOPIC  {"runs": {run_id: [executing, sum of fractions]}} ──▶ clients
    plugin  ── CONTROL_TOPIC  ControlMsg (terminate / suspend / resume / timeout) ──▶ clients
    plugin  ── CANCEL_ITEMS_OP {"run", "indices"} on the worker stream ──▶ workers

Dask keys of a farm are ``(run_id, batch number)`` tuples, so scheduler-side code can tell runs
apart without asking the client.
"""

from __future__ import annotations

from enum import Enum, IntEnum
from typing import TypedDict

__all__ = [
    "CANCEL_ITEMS_OP",
    "CONTROL_TOPIC",
    "COUNT_NAMES",
    "HARD_STOP_HANDLER",
    "INFO_HANDLER",
    "MAIN_PATH_ENV",
    "PLUGIN_NAME",
    "PROGRESS_TOPIC",
    "RUN_TOPIC",
    "SUMMARY_TOPIC",
    "TIMEOUT_TOPIC",
    "WORKER_INDEX_HANDLER",
    "Control",
    "Outcome",
    "RunOp",
    "RunStatus",
    "Star",
    "eta",
    "finished_count",
    "fraction_done",
]

PROGRESS_TOPIC = "daskfarm-progress"
TIMEOUT_TOPIC = "daskfarm-timeout"
RUN_TOPIC = "daskfarm-run"
SUMMARY_TOPIC = "daskfarm-summary"
CONTROL_TOPIC = "daskfarm-control"
#: the worker stream handler that cancels single items (registered by the batch runner)
CANCEL_ITEMS_OP = "daskfarm-cancel-items"
#: scheduler handlers that the plugin serves
WORKER_INDEX_HANDLER = "daskfarm_worker_index"
INFO_HANDLER = "daskfarm_info"
HARD_STOP_HANDLER = "daskfarm_hard_stop"
PLUGIN_NAME = "daskfarm"
#: environment variable: the client script a LocalCluster's workers import only when needed
MAIN_PATH_ENV = "DASKFARM_MAIN_PATH"

COUNT_NAMES = ("pending", "running", "done", "failed", "skipped", "cancelled")


class Outcome(IntEnum):
    """What happened to one item of a batch (sent back from the worker with each item)."""

    OK = 0
    FAILED = 1
    CANCELLED = 2


class Star(str, Enum):
    """How an item is passed to the task: as one argument, or expanded."""

    NEVER = "never"  # task(item)
    ALWAYS = "always"  # task(*item)  (starmap)
    TUPLES = "tuples"  # task(*item) for tuples, task(item) otherwise (Brian's run_tasks)


class RunStatus(str, Enum):
    """A run's life: running (or suspended) -> stopping -> one of the three ends."""

    RUNNING = "running"
    SUSPENDED = "suspended"
    STOPPING = "stopping"  # cancelled; running items get the grace period, then a hard stop
    FINISHED = "finished"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        return self in (RunStatus.FINISHED, RunStatus.CANCELLED, RunStatus.FAILED)


class RunOp(str, Enum):
    START = "start"
    UPDATE = "update"
    POINTS = "points"
    FINISH = "finish"


class Control(str, Enum):
    """What the plugin tells a run's client to do."""

    TERMINATE = "terminate"
    SUSPEND = "suspend"
    RESUME = "resume"
    TIMEOUT = "timeout"  # an item of a batch overran its timeout: fail it (hard stop follows)


class ProgressMsg(TypedDict, total=False):
    """One running item's progress (``report()``), batched per worker process."""

    run: str
    key: list
    i: int
    frac: float
    msg: str
    elapsed: float
    item: str  # the first message of an item only
    taskname: str  # class tasks with a ``taskname`` attribute
    worker: str  # set by the plugin from the batch envelope


class TimeoutMsg(TypedDict):
    run: str
    key: list
    i: int
    worker: str
    seconds: float


class RunMsg(TypedDict, total=False):
    op: str  # a RunOp
    run: str
    counts: dict
    status: str
    total: int | None
    rate: float
    grace_left: float | None
    name: str  # start only
    client: str  # start only
    started: float  # start only
    plot: bool  # start only
    xy: list  # points only


class ControlMsg(TypedDict, total=False):
    run: str
    action: str  # a Control
    key: list  # timeout only
    i: int  # timeout only
    seconds: float  # timeout only


def finished_count(counts: dict) -> int:
    """Items that have ended one way or another."""
    return counts["done"] + counts["failed"] + counts["skipped"] + counts["cancelled"]


def fraction_done(counts: dict, total: int | None, fractions: float = 0.0,
                  in_flight: int = 0) -> float:
    """Brian's overall completion, 0..1: (ended items + running fractions) / total.

    With no known total it still moves: the denominator is the items seen so far.

    >>> fraction_done({"done": 3, "failed": 0, "skipped": 1, "cancelled": 0}, 8, 0.5)
    0.5625
    >>> fraction_done({"done": 1, "failed": 0, "skipped": 0, "cancelled": 0}, None, 0, 3)
    0.25
    """
    finished = finished_count(counts)
    if total:
        return min(1.0, (finished + fractions) / total)
    seen = finished + in_flight
    return min(1.0, (finished + fractions) / seen) if seen else 0.0


def eta(elapsed: float, progress: float | None) -> float | None:
    """Seconds left, extrapolated linearly from the time so far (None before any progress).

    >>> eta(10.0, 0.25)
    30.0
    """
    if not progress or progress >= 1.0:
        return None
    return elapsed / progress - elapsed
