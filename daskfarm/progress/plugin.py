"""The scheduler plugin that holds every run's live state.

Data flow (one fixed topic each way, run id inside every message)::

    task: report() ──log_event "daskfarm-progress"──▶ FarmPlugin.log_event ─┐
    client feeder ───log_event "daskfarm-run"───────▶ (counts, total, plot) ├─▶ RunState
    scheduler transitions (processing → memory/erred/released) ─────────────┘       │
                                                                                     ▼
    clients ◀──"daskfarm-summary" (1 Hz: running, sum of fractions)── FarmPlugin ── /farm page
    feeders ◀──"daskfarm-control" (terminate / suspend / resume)──── FarmPlugin.control()

Every hook runs on the scheduler's event loop: each one filters first and does O(1) work per
message, so a farm never slows the scheduler down.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from daskfarm.progress.reporter import PROGRESS_TOPIC

logger = logging.getLogger(__name__)

RUN_TOPIC = "daskfarm-run"
SUMMARY_TOPIC = "daskfarm-summary"
CONTROL_TOPIC = "daskfarm-control"
#: the worker stream handler that cancels single items (registered by the batch runner)
CANCEL_ITEMS_OP = "daskfarm-cancel-items"
PLUGIN_NAME = "daskfarm"
#: finished runs kept for the page
KEEP_FINISHED = 10
#: plot points kept per run
MAX_POINTS = 10_000
COUNT_NAMES = ("pending", "running", "done", "failed", "skipped", "cancelled")


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

    @property
    def remaining(self) -> float | None:
        """Linear estimate of the time to finish (as Brian's text report computes it)."""
        if self.frac <= 0.001:
            return None
        return self.elapsed / self.frac - self.elapsed


@dataclass
class RunState:
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
    #: dask key -> {item index -> TaskRow}; items of one batch run one after another
    rows: dict = field(default_factory=dict)
    #: dask key -> (worker address, start time) for the run's tasks being processed
    processing: dict = field(default_factory=dict)
    points: deque = field(default_factory=lambda: deque(maxlen=MAX_POINTS))
    dirty: bool = True

    def task_rows(self) -> list[TaskRow]:
        return [row for by_index in self.rows.values() for row in by_index.values()]

    @property
    def frac_sum(self) -> float:
        return sum(row.frac for by_index in self.rows.values() for row in by_index.values()
                   if row.frac < 1.0)

    @property
    def progress(self) -> float | None:
        """(done + sum of running fractions) / total, Brian's overall completion."""
        if not self.total:
            return None
        c = self.counts
        finished = c["done"] + c["failed"] + c["skipped"] + c["cancelled"]
        return min(1.0, (finished + self.frac_sum) / self.total)

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def eta(self) -> float | None:
        progress = self.progress
        if not progress or self.finished:
            return None
        return self.elapsed / progress - self.elapsed


class FarmPlugin(SchedulerPlugin):
    """Keeps the live state of every farm run on the scheduler.

    Registered by :class:`~daskfarm.Farm` (``client.register_plugin``) or preloaded with
    ``dask scheduler --preload daskfarm.dashboard``. It also serves two scheduler handlers:
    ``daskfarm_worker_index`` (the stable ``process_number`` of a worker) and
    ``daskfarm_info`` (version and control token, for authenticated Dask clients only).

    Parameters
    ----------
    token : str, optional
        The secret that unlocks the panel's controls. Generated when not given.
    controls : bool
        False makes the panel read-only for everybody.
    """

    name = PLUGIN_NAME

    def __init__(self, token: str | None = None, controls: bool = True):
        # Pickled by value to reach the scheduler: keep the constructor's state tiny.
        self.token = token or secrets.token_urlsafe(24)
        self.controls = controls

    def _init_state(self) -> None:
        self.scheduler = None
        self.runs: dict[str, RunState] = {}
        self.finished: deque[str] = deque()
        self.events = 0
        self._worker_index: dict[str, int] = {}
        self._summary_pc = None

    async def start(self, scheduler) -> None:
        from distributed.utils import log_errors
        from tornado.ioloop import PeriodicCallback

        self._init_state()
        self.scheduler = scheduler
        previous = scheduler.plugins.get(self.name)
        if previous is not None and previous is not self:
            # register_scheduler_plugin never closes the plugin it replaces
            await previous.close()
            self.runs.update(getattr(previous, "runs", {}))
        scheduler.handlers["daskfarm_worker_index"] = self._handle_worker_index
        scheduler.handlers["daskfarm_info"] = self._handle_info
        for ws in scheduler.workers.values():
            self._assign_index(str(ws.name), ws.address)

        def publish():
            with log_errors():
                self._publish_summary()

        self._summary_pc = PeriodicCallback(publish, 1000)
        self._summary_pc.start()
        try:  # the dashboard registers its page mount as a start hook
            import daskfarm.dashboard  # noqa: F401
        except ImportError:
            logger.debug("daskfarm.dashboard is not importable: no /farm page")
        for hook in _START_HOOKS:
            await hook(self, scheduler)

    async def close(self) -> None:
        pc = getattr(self, "_summary_pc", None)
        if pc is not None:
            pc.stop()
            self._summary_pc = None
        scheduler = getattr(self, "scheduler", None)
        if scheduler is not None:
            for op in ("daskfarm_worker_index", "daskfarm_info"):
                if getattr(scheduler.handlers.get(op), "__self__", None) is self:
                    del scheduler.handlers[op]
        for hook in _CLOSE_HOOKS:
            await hook(self)

    # -- scheduler hooks -----------------------------------------------------------------

    def log_event(self, topic: str, msg: Any) -> None:
        if topic == PROGRESS_TOPIC:
            worker = msg.get("worker", "") if isinstance(msg, dict) else ""
            for item_msg in msg.get("batch", ()) if isinstance(msg, dict) else ():
                if isinstance(item_msg, dict):
                    item_msg["worker"] = worker
                    self._on_progress(item_msg)
        elif topic == RUN_TOPIC:
            self._on_run_message(msg)

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        if type(key) is not tuple:
            return
        run = self.runs.get(key[0])
        if run is None:
            return
        if finish == "processing":
            ts = self.scheduler.tasks.get(key)
            worker = ts.processing_on.address if ts is not None and ts.processing_on else ""
            run.processing[key] = (worker, time.time())
            run.dirty = True
        elif start == "processing":
            run.processing.pop(key, None)
            run.rows.pop(key, None)
            run.dirty = True

    def add_worker(self, scheduler, worker: str) -> None:
        ws = scheduler.workers.get(worker)
        if ws is not None:
            self._assign_index(str(ws.name), worker)

    def remove_worker(self, scheduler, worker: str, **kwargs) -> None:
        for run in self.runs.values():
            for key, (address, _) in list(run.processing.items()):
                if address == worker:
                    run.processing.pop(key, None)
                    run.rows.pop(key, None)

    # -- messages ------------------------------------------------------------------------

    def _on_progress(self, msg: dict) -> None:
        self.events += 1
        try:
            run = self.runs.get(msg["run"])
            if run is None:
                return
            key = tuple(msg["key"]) if isinstance(msg["key"], list) else msg["key"]
            index = msg["i"]
            by_index = run.rows.get(key)
            if by_index is None:
                if key not in run.processing:
                    return  # a late event of a task that already ended
                by_index = run.rows[key] = {}
            row = by_index.get(index)
            if row is None:
                # items of one batch run in order: an earlier item is finished
                for old in [i for i in by_index if i < index]:
                    del by_index[old]
                row = by_index[index] = TaskRow(key=key, index=index,
                                                worker=str(msg.get("worker", "")))
            if "item" in msg:
                row.item = str(msg["item"])
            if "taskname" in msg:
                row.taskname = str(msg["taskname"])
            row.frac = float(msg["frac"])
            row.msg = str(msg["msg"])
            row.elapsed = float(msg["elapsed"])
            row.updated = time.time()
            run.dirty = True
        except (KeyError, TypeError, ValueError):
            logger.debug("ignored a malformed progress event")

    def _on_run_message(self, msg: dict) -> None:
        op = msg.get("op")
        run_id = msg.get("run")
        if not isinstance(run_id, str):
            return
        if op == "start":
            run = self.runs[run_id] = RunState(
                run_id=run_id, name=str(msg.get("name", run_id)), client=str(msg.get("client")),
                total=msg.get("total"), plot=bool(msg.get("plot")),
            )
            run.started = float(msg.get("started", run.started))
            return
        run = self.runs.get(run_id)
        if run is None:
            return
        if "counts" in msg:
            run.counts.update(msg["counts"])
        for name in ("total", "rate", "status"):
            if name in msg:
                setattr(run, name, msg[name])
        if op == "points":
            run.points.extend(tuple(p) for p in msg.get("xy", ()))
        elif op == "finish":
            run.finished = time.time()
            run.rows.clear()
            run.processing.clear()
            self.finished.append(run_id)
            while len(self.finished) > KEEP_FINISHED:
                self.runs.pop(self.finished.popleft(), None)
        run.dirty = True

    def _publish_summary(self) -> None:
        summary = {
            run_id: [self._executing(run), run.frac_sum]
            for run_id, run in self.runs.items()
            if run.finished is None and run.dirty
        }
        for run_id in summary:
            self.runs[run_id].dirty = False
        if summary:
            self.scheduler.log_event(SUMMARY_TOPIC, {"runs": summary})

    def _executing(self, run: RunState) -> int:
        """The run's tasks actually executing: "processing" tasks beyond a worker's thread
        count wait in that worker's queue (worker-saturation lets the scheduler send more)."""
        per_worker: dict[str, int] = {}
        for address, _ in run.processing.values():
            per_worker[address] = per_worker.get(address, 0) + 1
        workers = self.scheduler.workers
        return sum(min(n, workers[a].nthreads) if a in workers else 0
                   for a, n in per_worker.items())

    # -- worker index --------------------------------------------------------------------

    def _assign_index(self, name: str, address: str) -> int:
        in_use = {
            self._worker_index[str(ws.name)]
            for ws in self.scheduler.workers.values()
            if ws.address != address and str(ws.name) in self._worker_index
        }
        index = self._worker_index.get(name)
        if index is None or index in in_use:
            index = next(i for i in range(len(in_use) + 1) if i not in in_use)
            self._worker_index[name] = index
        return index

    def _handle_worker_index(self, name: str) -> int:
        for ws in self.scheduler.workers.values():
            if str(ws.name) == name:
                return self._assign_index(name, ws.address)
        return self._worker_index.get(name, 0)

    def _handle_info(self) -> dict:
        from daskfarm import __version__

        mount = getattr(self, "_farm_mount", None)  # set by daskfarm.dashboard when mounted
        return {"version": __version__, "token": self.token if self.controls else None,
                "controls": self.controls,
                "panel_path": f"{mount.prefix}farm" if mount is not None else None}

    # -- controls (the page calls these; each is cheap and never blocks) -----------------

    def control(self, run_id: str, action: str) -> None:
        """Tell the run's feeder to ``terminate``, ``suspend`` or ``resume``."""
        if action not in ("terminate", "suspend", "resume"):
            raise ValueError(f"unknown action {action!r}")
        self.scheduler.log_event(CONTROL_TOPIC, {"run": run_id, "action": action})
        if action == "terminate":
            run = self.runs.get(run_id)
            keys = [k for k in self.scheduler.tasks if type(k) is tuple and k[0] == run_id]
            self.cancel_keys(run_id, keys, reason=f"run {run.name if run else run_id} terminated")

    def cancel_items(self, run_id: str, pairs) -> int:
        """Cancel single items ``(dask key, item index)`` of a run's running tasks.

        The worker marks each item cancelled: a running one stops at its next ``report()``,
        one still waiting in its batch is skipped, and the batch's other items go on.
        """
        from daskfarm._dask import send_to_worker

        run = self.runs.get(run_id)
        if run is None:
            return 0
        by_worker: dict[str, list] = {}
        for key, index in pairs:
            entry = run.processing.get(key)
            if entry is not None:
                by_worker.setdefault(entry[0], []).append(int(index))
        for address, indices in by_worker.items():
            send_to_worker(self.scheduler, address,
                           {"op": CANCEL_ITEMS_OP, "run": run_id, "indices": indices})
            for key, index in pairs:
                run.rows.get(key, {}).pop(index, None)
        run.dirty = True
        return sum(len(v) for v in by_worker.values())

    def cancel_keys(self, run_id: str, keys, reason: str = "cancelled from the panel") -> int:
        """Cancel these Dask tasks of a run (pending or running) for every client."""
        from daskfarm._dask import cancel_keys

        keys = [k for k in keys if type(k) is tuple and k[0] == run_id]
        return cancel_keys(self.scheduler, keys, reason)


# The dashboard registers its mount here, so this module never imports bokeh.
_START_HOOKS: list = []
_CLOSE_HOOKS: list = []
