"""The scheduler plugin that holds every run's live state.

Data flow (one fixed topic each way, run id inside every message)::

    task: report() ──log_event "daskfarm-progress"──▶ FarmPlugin.log_event ─┐
    client feeder ───log_event "daskfarm-run"───────▶ (counts, total, plot) ├─▶ RunRecord
    scheduler transitions (processing → memory/erred/released) ─────────────┘       │
                                                                                     ▼
    clients ◀──"daskfarm-summary" (1 Hz: running, sum of fractions)── FarmPlugin ── /farm page
    feeders ◀──"daskfarm-control" (terminate / suspend / resume / timeout)── FarmPlugin

    worker watchdog ──"daskfarm-timeout"──▶ FarmPlugin: tell the client, cancel the task,
                                            restart the worker process (a hard stop)
    client ──daskfarm_hard_stop(workers)──▶ FarmPlugin: restart those worker processes

Names and message shapes are in :mod:`daskfarm._protocol`. The page is mounted with one
guarded import of :mod:`daskfarm.dashboard` (as distributed's scheduler mounts its own
dashboard): no Bokeh is imported when it is missing.

Every hook runs on the scheduler's event loop: each one filters first and does O(1) work per
message, so a farm never slows the scheduler down.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from daskfarm import _distributed
from daskfarm._protocol import (
    CANCEL_ITEMS_OP,
    CONTROL_TOPIC,
    HARD_STOP_HANDLER,
    INFO_HANDLER,
    PLUGIN_NAME,
    PROGRESS_TOPIC,
    RUN_TOPIC,
    SUMMARY_TOPIC,
    TIMEOUT_TOPIC,
    WORKER_INDEX_HANDLER,
    Control,
    RunOp,
)
from daskfarm.exceptions import FarmValueError
from daskfarm.scheduler.state import (
    KEEP_FINISHED,
    RunRecord,
    TaskRow,
    WorkerIndex,
    plot_labels,
)

__all__ = ["FarmPlugin"]

logger = logging.getLogger(__name__)

#: topics the plugin consumes (from workers and Farms) and the broker need not keep
_INBOUND = frozenset({PROGRESS_TOPIC, RUN_TOPIC, TIMEOUT_TOPIC})


class FarmPlugin(SchedulerPlugin):
    """Keeps the live state of every farm run on the scheduler.

    Registered by :class:`~daskfarm.Farm` (``client.register_plugin``) or preloaded with
    ``dask scheduler --preload daskfarm.dashboard``. It also serves scheduler handlers:
    ``daskfarm_worker_index`` (the stable ``process_number`` of a worker),
    ``daskfarm_info`` (version and control token, for authenticated Dask clients only) and
    ``daskfarm_hard_stop`` (restart worker processes that still run a stopped run's items).

    Parameters
    ----------
    token : str, optional
        The secret that unlocks the panel's controls. Generated when not given.
    controls : bool
        False makes the panel read-only for everybody.
    page : bool
        Serve the farm page on the scheduler's HTTP server (with or without Dask's own
        dashboard pages). False serves none, and never imports Bokeh: a ``Farm`` asks for
        that when it starts a LocalCluster without a dashboard.

    Examples
    --------
    >>> from daskfarm import FarmPlugin
    >>> plugin = FarmPlugin(token="s3cret", controls=False)
    >>> plugin.runs, plugin.controls
    ({}, False)
    """

    name = PLUGIN_NAME

    def __init__(self, token: str | None = None, controls: bool = True, page: bool = True):
        self.token = token or secrets.token_urlsafe(24)
        self.controls = controls
        self.page = page
        self.scheduler: Any = None
        self.runs: dict[str, RunRecord] = {}
        self.finished: deque[str] = deque()
        self.events = 0
        self.worker_index = WorkerIndex()
        self._summary_pc: Any = None
        self._mount: Any = None  # the /farm page, when the dashboard could be mounted
        self._background: set = set()

    def __getstate__(self) -> dict:
        # Pickled by value to reach the scheduler: only the settings travel.
        return {"token": self.token, "controls": self.controls, "page": self.page}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    async def start(self, scheduler) -> None:
        self.scheduler = scheduler
        previous = scheduler.plugins.get(self.name)
        if previous is not None and previous is not self:
            # register_scheduler_plugin never closes the plugin it replaces
            await previous.close()
            self.runs.update(getattr(previous, "runs", {}))
        scheduler.handlers[WORKER_INDEX_HANDLER] = self._handle_worker_index
        scheduler.handlers[INFO_HANDLER] = self._handle_info
        scheduler.handlers[HARD_STOP_HANDLER] = self._handle_hard_stop
        for ws in scheduler.workers.values():
            self.worker_index.assign(str(ws.name), ws.address, scheduler.workers.values())
        self._summary_pc = _distributed.periodic(self._tick, 1.0)
        if not self.page:  # nor Bokeh's import: half a second of a Farm's start
            logger.debug("no /farm page asked for")
            return
        try:
            from daskfarm.dashboard import serve
        except ImportError:  # bokeh missing on this scheduler: the farm works without a page
            logger.debug("daskfarm.dashboard is not importable: no /farm page")
        else:
            self._mount = await serve(self, scheduler)

    async def close(self) -> None:
        pc, self._summary_pc = self._summary_pc, None
        if pc is not None:
            pc.stop()
        scheduler = self.scheduler
        if scheduler is not None:
            for op in (WORKER_INDEX_HANDLER, INFO_HANDLER, HARD_STOP_HANDLER):
                if getattr(scheduler.handlers.get(op), "__self__", None) is self:
                    del scheduler.handlers[op]
        mount, self._mount = self._mount, None
        if mount is not None:
            from daskfarm.dashboard import unserve

            unserve(mount)

    # -- scheduler hooks -----------------------------------------------------------------

    def log_event(self, topic: str, msg: Any) -> None:
        if topic in _INBOUND:
            # the plugin keeps the live state; the broker's copies (the last 1,000 events of
            # each topic: progress batches, plot points) only held memory
            _distributed.forget_events(self.scheduler, topic)
        if topic == PROGRESS_TOPIC:
            worker = msg.get("worker", "") if isinstance(msg, dict) else ""
            for item_msg in msg.get("batch", ()) if isinstance(msg, dict) else ():
                if isinstance(item_msg, dict):
                    item_msg["worker"] = worker
                    self._on_progress(item_msg)
        elif topic == RUN_TOPIC:
            if isinstance(msg, dict):
                self._on_run_message(msg)
        elif topic == TIMEOUT_TOPIC:
            if isinstance(msg, dict):
                self._on_timeout(msg)

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        if type(key) is not tuple:
            return
        run = self.runs.get(key[0])
        if run is None:
            return
        if finish == "processing":
            worker = _distributed.processing_on(self.scheduler, key)
            run.processing[key] = (worker, time.time())
            run.dirty = True
        elif start == "processing":
            run.processing.pop(key, None)
            run.rows.pop(key, None)
            run.dirty = True

    def add_worker(self, scheduler, worker: str) -> None:
        ws = scheduler.workers.get(worker)
        if ws is not None:
            self.worker_index.assign(str(ws.name), worker, scheduler.workers.values())

    def remove_worker(self, scheduler, worker: str, **kwargs) -> None:
        for run in self.runs.values():
            for key, (address, _) in list(run.processing.items()):
                if address == worker:
                    run.processing.pop(key, None)
                    run.rows.pop(key, None)
        self.worker_index.prune({str(ws.name) for ws in scheduler.workers.values()})

    def remove_client(self, scheduler, client: str) -> None:
        # a client that died (SIGKILL) never says "finish": end its runs here
        for run in list(self.runs.values()):
            if run.client == client and run.finished is None:
                self._end(run, "cancelled")

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
        if op == RunOp.START:
            run = self.runs[run_id] = RunRecord(
                run_id=run_id, name=str(msg.get("name", run_id)), client=str(msg.get("client")),
                total=msg.get("total"), plot=bool(msg.get("plot")),
                plot_labels=plot_labels(msg.get("plot")),
            )
            run.started = float(msg.get("started", run.started))
            return
        run = self.runs.get(run_id)
        if run is None or run.finished is not None:
            return
        if "counts" in msg:
            run.counts.update(msg["counts"])
        for name in ("total", "rate", "status"):
            if name in msg:
                setattr(run, name, msg[name])
        grace_left = msg.get("grace_left")
        run.stop_at = None if grace_left is None else time.time() + float(grace_left)
        if op == RunOp.POINTS:
            run.points.extend(tuple(p) for p in msg.get("xy", ()))
        elif op == RunOp.FINISH:
            self._end(run, run.status)
        run.dirty = True

    def _end(self, run: RunRecord, status: str) -> None:
        run.status = status
        run.end()
        self.finished.append(run.run_id)
        while len(self.finished) > KEEP_FINISHED:
            self.runs.pop(self.finished.popleft(), None)

    def _on_timeout(self, msg: dict) -> None:
        """An item overran its timeout and the grace: fail it, then stop it hard."""
        run_id, key = msg.get("run"), msg.get("key")
        if not isinstance(run_id, str) or not isinstance(key, (list, tuple)):
            return
        key = tuple(key)
        # first the client learns which item timed out, then its task is cancelled: both
        # travel on the same stream, so the client knows why its future was cancelled
        self.scheduler.log_event(CONTROL_TOPIC, {
            "run": run_id, "action": Control.TIMEOUT.value, "key": list(key),
            "i": msg.get("i"), "seconds": msg.get("seconds"),
        })
        self.cancel_keys(run_id, [key], reason=f"item {msg.get('i')} timed out")
        worker = msg.get("worker")
        if isinstance(worker, str):
            task = asyncio.ensure_future(self._handle_hard_stop([worker], reason="item timeout"))
            self._background.add(task)  # kept until done: the loop holds tasks weakly
            task.add_done_callback(self._background.discard)

    def _tick(self) -> None:
        self._publish_summary()
        self._end_orphans()

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

    def _end_orphans(self) -> None:
        # a run whose client left without remove_client reaching us (a plugin registered
        # after the client connected, a lost message)
        clients = _distributed.client_ids(self.scheduler)
        for run in list(self.runs.values()):
            if run.finished is None and run.client not in clients:
                self._end(run, "cancelled")

    def _executing(self, run: RunRecord) -> int:
        """The run's tasks actually executing: "processing" tasks beyond a worker's thread
        count wait in that worker's queue (worker-saturation lets the scheduler send more)."""
        per_worker: dict[str, int] = {}
        for address, _ in run.processing.values():
            per_worker[address] = per_worker.get(address, 0) + 1
        threads = _distributed.worker_threads(self.scheduler)
        return sum(min(n, threads.get(a, 0)) for a, n in per_worker.items())

    # -- handlers ------------------------------------------------------------------------

    def _handle_worker_index(self, name: str) -> int:
        return self.worker_index.number(name, self.scheduler.workers.values())

    def _handle_info(self) -> dict:
        from daskfarm import __version__

        mount = self._mount
        return {"version": __version__, "token": self.token if self.controls else None,
                "controls": self.controls,
                "panel_path": f"{mount.prefix}farm" if mount is not None else None}

    async def _handle_hard_stop(self, workers: list, reason: str = "daskfarm hard stop") -> dict:
        """Restart these worker processes through their nannies; their other tasks are
        rescheduled without counting toward ``allowed-failures``."""
        results = await asyncio.gather(*(
            _distributed.restart_worker(self.scheduler, address, reason=reason)
            for address in dict.fromkeys(workers)
        ), return_exceptions=True)
        return {address: (r if isinstance(r, str) else f"error: {r!r}")
                for address, r in zip(dict.fromkeys(workers), results)}

    # -- controls (the page calls these; each is cheap and never blocks) -----------------

    def control(self, run_id: str, action: str) -> None:
        """Tell the run's feeder to ``terminate``, ``suspend`` or ``resume``.

        Terminate is the same stop as ``run.cancel()`` (pending items at once, running ones
        at their next report(), a hard stop after the grace); a second terminate of a
        stopping run stops it hard at once.
        """
        if action not in (Control.TERMINATE, Control.SUSPEND, Control.RESUME):
            raise FarmValueError(f"unknown action {action!r}: use terminate, suspend or resume")
        self.scheduler.log_event(CONTROL_TOPIC, {"run": run_id, "action": str(action)})
        if action == Control.TERMINATE:
            run = self.runs.get(run_id)
            keys = _distributed.run_keys(self.scheduler, run_id)
            self.cancel_keys(run_id, keys, reason=f"run {run.name if run else run_id} terminated")

    def cancel_items(self, run_id: str, pairs) -> int:
        """Cancel single items ``(dask key, item index)`` of a run's running tasks.

        The worker marks each item cancelled: a running one stops at its next ``report()``,
        one still waiting in its batch is skipped, and the batch's other items go on.
        """
        run = self.runs.get(run_id)
        if run is None:
            return 0
        by_worker: dict[str, list] = {}
        for key, index in pairs:
            entry = run.processing.get(key)
            if entry is not None:
                by_worker.setdefault(entry[0], []).append(int(index))
        for address, indices in by_worker.items():
            _distributed.send_to_worker(self.scheduler, address,
                                        {"op": CANCEL_ITEMS_OP, "run": run_id,
                                         "indices": indices})
            for key, index in pairs:
                run.rows.get(key, {}).pop(index, None)
        run.dirty = True
        return sum(len(v) for v in by_worker.values())

    def cancel_keys(self, run_id: str, keys, reason: str = "cancelled from the panel") -> int:
        """Cancel these Dask tasks of a run (pending or running) for every client."""
        keys = [k for k in keys if type(k) is tuple and k[0] == run_id]
        return _distributed.cancel_keys(self.scheduler, keys, reason)
