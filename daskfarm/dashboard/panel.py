"""The ``/farm`` page: runs, running tasks and live plots, read from the FarmPlugin's state.

::

    summary line     Div, plain text
    runs table       one row per active run and the last finished ones
    [controls]       only in sessions opened with the token (controls.py)
    tasks table      one row per running item: one ColumnDataSource + one DataTable
    plots            a scatter of (x, y) per run that was given ``plot=``

Every refresh runs on the scheduler's event loop, so it must stay cheap with 1,000 running
tasks: the table columns are built once per refresh period and shared by all open sessions,
and a session sends only the columns that changed (one widget per task costs seconds per
tick at 200 rows, measured with bench/panel.py). Task messages are untrusted text: they go
through ``StringFormatter`` only; the HTML templates (``templates.py``) read nothing but
numbers.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from typing import Any

import numpy as np
from bokeh.layouts import column
from bokeh.models import (
    ColumnDataSource,
    CustomJS,
    DataTable,
    Div,
    HTMLTemplateFormatter,
    NumberFormatter,
    StringFormatter,
    TableColumn,
)
from distributed.utils import log_errors

from daskfarm.dashboard._mount import (
    DashboardComponent,
    add_periodic_callback,
    dress,
    task_executing,
    theme,
)
from daskfarm.dashboard.plots import Plots
from daskfarm.dashboard.templates import (
    BAR_TEMPLATE,
    DURATION_TEMPLATE,
    RUN_PROGRESS_TEMPLATE,
)
from daskfarm.scheduler.state import TaskRow

logger = logging.getLogger(__name__)

#: milliseconds between refreshes of the tables (the plots refresh every other tick)
REFRESH_MS = 500
#: seconds for which one computation of the table columns serves every session
SHARED_FOR = 0.2

TASK_FIELDS = ("id", "run", "item", "taskname", "worker", "process", "frac", "elapsed",
               "remaining", "msg")
RUN_FIELDS = ("run_id", "name", "status", "progress", "done", "total", "running", "pending",
              "failed", "skipped", "cancelled", "finished", "rate", "elapsed", "eta")
_NUMERIC = {"frac", "elapsed", "remaining", "progress", "done", "total", "running", "pending",
            "failed", "skipped", "cancelled", "finished", "rate", "eta", "process"}


@functools.lru_cache(maxsize=1 << 16)  # every refresh asks again for every running task
def key_id(key: Any) -> str:
    """The text form of a run's Dask key ``(run_id, batch)`` used in the page."""
    if isinstance(key, tuple):
        return "/".join(map(str, key))
    return str(key)


def row_id(row: Any) -> str:
    """A task row's id: its Dask key, plus ``/<item index>`` once the item has reported.

    The index lets "cancel selected" stop one item of a batch and leave the others running.
    """
    return key_id(row.key) if row.index < 0 else f"{key_id(row.key)}/{row.index}"


def active_runs(plugin: Any) -> list:
    return [run for run in plugin.runs.values() if run.finished is None]


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _batch_order(key: Any) -> Any:
    # keys are (run_id, batch number): show batches in the order they were submitted
    last = key[-1] if isinstance(key, tuple) and key else 0
    return last if isinstance(last, int) else 0


def task_columns(plugin: Any, now: float | None = None) -> dict:
    """The tasks table's columns: one row per running item of every active run.

    A task that never called ``report()`` still gets a row once the workers' heartbeat says
    it executes (``processing`` on the scheduler also holds tasks queued on a worker).
    """
    now = time.time() if now is None else now
    scheduler = getattr(plugin, "scheduler", None)
    tasks: list = []  # TaskRow, or (run, key) of a task that has not reported
    runs: list[str] = []
    for run in active_runs(plugin):
        for key in sorted(run.processing, key=_batch_order):
            by_index = run.rows.get(key)
            if by_index is not None:
                tasks.extend(by_index.values())
                runs.extend([run.name] * len(by_index))
            elif scheduler is not None and task_executing(scheduler, key,
                                                          run.processing[key][0]):
                tasks.append((run, key))
                runs.append(run.name)
    if any(type(t) is tuple for t in tasks):
        tasks = [_unreported_row(t, now) if type(t) is tuple else t for t in tasks]
    # Column by column (comprehensions and numpy): this runs every refresh for every task.
    frac = np.array([t.frac for t in tasks], dtype=float)
    worker_elapsed = np.array([t.elapsed for t in tasks], dtype=float)
    since = np.maximum(now - np.array([t.updated for t in tasks], dtype=float), 0.0)
    since[~(frac < 1.0)] = 0.0  # a finished item's clock stops (unreported rows: timed now)
    with np.errstate(divide="ignore", invalid="ignore"):
        # a linear estimate at the last report, minus the time since
        left = np.where(frac > 0.001, worker_elapsed / frac - worker_elapsed, np.nan) - since
    numbers = _process_numbers(plugin, scheduler) if tasks else {}
    return {
        "id": [row_id(t) for t in tasks],
        "run": runs,
        "item": [t.item for t in tasks],
        "taskname": [t.taskname for t in tasks],
        "worker": [t.worker for t in tasks],
        "process": np.array([numbers.get(t.worker, math.nan) for t in tasks], dtype=float),
        "frac": frac,
        "elapsed": np.round(worker_elapsed + since),
        "remaining": np.round(np.maximum(left, 0.0)),
        "msg": [t.msg for t in tasks],
    }


def _process_numbers(plugin: Any, scheduler: Any) -> dict[str, int]:
    """Worker address -> the stable process number a class task gets as ``process_number``."""
    index = getattr(plugin, "worker_index", None)
    workers = getattr(scheduler, "workers", None)
    if index is None or not workers:
        return {}
    return index.by_address(workers.values())


def _unreported_row(entry: tuple, now: float) -> Any:
    run, key = entry
    address, start = run.processing[key]
    return TaskRow(key=key, index=-1, worker=address, frac=math.nan, elapsed=now - start,
                   updated=now,
                   item=f"batch {key[-1]}" if isinstance(key, tuple) else str(key))


def run_columns(plugin: Any) -> dict:
    """The runs table's columns: active runs first (newest first), then finished ones."""
    cols: dict[str, list] = {name: [] for name in RUN_FIELDS}
    runs = sorted(plugin.runs.values(), key=lambda r: (r.finished is not None, -r.started))
    for run in runs:
        c = run.counts
        cols["run_id"].append(run.run_id)
        cols["name"].append(run.name)
        stop_in = run.stop_in
        cols["status"].append(str(run.status) if stop_in is None
                              else f"stopping: hard stop in {math.ceil(stop_in)} s")
        # progress walks every running task (frac_sum): once per run and refresh
        cols["progress"].append(_nan(run.progress))
        for name in ("done", "running", "pending", "failed", "skipped", "cancelled"):
            cols[name].append(float(c.get(name, 0)))
        cols["finished"].append(float(sum(c.get(name, 0) for name in
                                          ("done", "failed", "skipped", "cancelled"))))
        cols["total"].append(_nan(run.total))
        cols["rate"].append(float(run.rate or 0.0))
        cols["elapsed"].append(round(run.elapsed))
        eta = run.eta
        cols["eta"].append(math.nan if eta is None else round(eta))
    for name in _NUMERIC & set(RUN_FIELDS):
        cols[name] = np.array(cols[name], dtype=float)
    return cols


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and np.array_equal(a, b, equal_nan=True))
    return a == b


def _set_columns(source: ColumnDataSource, data: dict, selected_ids: Any = None) -> None:
    """Send only the columns that changed; the whole dict when the rows themselves changed.

    ``data``'s first column holds the row ids. When the rows change, the browser would keep
    the selection's *positions*; ``selected_ids()`` (admin sessions) gives the ids the user
    chose, and their new positions are sent instead.
    """
    old = source.data
    first = next(iter(data))
    if _same(old.get(first), data[first]):
        changed = {k: v for k, v in data.items() if not _same(old.get(k), v)}
        if changed:
            source.data.update(changed)
        return
    source.data = data
    if selected_ids is not None:
        wanted = selected_ids()
        indices = [i for i, rid in enumerate(data[first]) if rid in wanted]
        if indices != list(source.selected.indices):
            source.selected.indices = indices


def _redraw_on_change(table: DataTable) -> None:
    # BokehJS 3.x redraws a DataTable only when its CDSView's indices change, so new values
    # in rows of the same count never show (bokeh issues #13484, #13859). Nudge the view.
    # Display-only: this callback reads and changes nothing on the server.
    table.source.js_on_change("data", CustomJS(args={"view": table.view},
                                               code="view.change.emit();",
                                               name="farm-redraw"))


def _fit_height(table: DataTable, rows: int, least: int, most: int) -> None:
    """Size a table to its rows (between ``least`` and ``most`` rows; it scrolls beyond)."""
    height = 34 + 25 * min(max(rows, least), most)
    if table.height != height:
        table.height = height


def _duration() -> HTMLTemplateFormatter:
    return HTMLTemplateFormatter(template=DURATION_TEMPLATE)


class TasksTable(DashboardComponent):
    """One row per running item: item, worker, process number, progress bar, elapsed,
    remaining, message.

    Parameters
    ----------
    plugin : FarmPlugin
        Where the state lives.
    shared : dict, optional
        A cache shared by every session of one page (the columns are built once per
        ``SHARED_FOR`` seconds, however many browsers look).
    selectable : bool
        Rows can be selected (admin sessions, to cancel them).
    """

    def __init__(self, plugin: Any, shared: dict | None = None, selectable: bool = False):
        self.plugin = plugin
        self.shared = shared if shared is not None else {}
        self.source = ColumnDataSource(task_columns(plugin), name="farm-tasks-source")
        text = StringFormatter()  # escapes: messages and reprs are untrusted text
        self.taskname = TableColumn(field="taskname", title="Task", width=110, formatter=text,
                                    visible=False)
        columns = [
            TableColumn(field="run", title="Run", width=90, formatter=text),
            TableColumn(field="item", title="Item", width=130, formatter=text),
            self.taskname,
            TableColumn(field="worker", title="Worker", width=130, formatter=text),
            TableColumn(field="process", title="Process", width=55,
                        formatter=NumberFormatter(format="0", nan_format="")),
            TableColumn(field="frac", title="Progress", width=130,
                        formatter=HTMLTemplateFormatter(template=BAR_TEMPLATE)),
            TableColumn(field="elapsed", title="Elapsed", width=55, formatter=_duration()),
            TableColumn(field="remaining", title="Remaining", width=65, formatter=_duration()),
            TableColumn(field="msg", title="Last message", width=400, formatter=text),
        ]
        self.table = DataTable(source=self.source, columns=columns, index_position=None,
                               selectable=selectable, sizing_mode="stretch_width",
                               css_classes=["farm-tasks"], name="farm-tasks")
        _redraw_on_change(self.table)
        self.root = self.table
        #: admin sessions set this: the ids chosen in the browser, kept selected across
        #: refreshes even when rows above them end (the server re-sends row positions)
        self.selected_ids: Any = None

    def update(self) -> None:
        now = time.time()
        cached = self.shared.get("tasks")
        if cached is None or now - cached[0] > SHARED_FOR:
            cached = self.shared["tasks"] = (now, task_columns(self.plugin, now))
        data = cached[1]
        _set_columns(self.source, data, self.selected_ids)
        _fit_height(self.table, len(data["id"]), 3, 16)
        visible = any(data["taskname"])
        if self.taskname.visible != visible:
            self.taskname.visible = visible


class RunsTable(DashboardComponent):
    """One row per run: status, progress bar, counts, rate, elapsed and ETA."""

    def __init__(self, plugin: Any, selectable: bool = False):
        self.plugin = plugin
        self.source = ColumnDataSource(run_columns(plugin), name="farm-runs-source")
        count = NumberFormatter(format="0,0")
        columns = [
            TableColumn(field="name", title="Run", width=150, formatter=StringFormatter()),
            TableColumn(field="status", title="Status", width=80, formatter=StringFormatter()),
            TableColumn(field="progress", title="Progress", width=170,
                        formatter=HTMLTemplateFormatter(template=RUN_PROGRESS_TEMPLATE)),
            TableColumn(field="done", title="Done", width=60, formatter=count),
            TableColumn(field="total", title="Total", width=60,
                        formatter=NumberFormatter(format="0,0", nan_format="endless")),
            TableColumn(field="running", title="Running", width=60, formatter=count),
            TableColumn(field="pending", title="Pending", width=60, formatter=count),
            TableColumn(field="failed", title="Failed", width=55, formatter=count),
            TableColumn(field="skipped", title="Skipped", width=60, formatter=count),
            TableColumn(field="cancelled", title="Cancelled", width=70, formatter=count),
            TableColumn(field="rate", title="Items/s", width=60,
                        formatter=NumberFormatter(format="0.0[0]")),
            TableColumn(field="elapsed", title="Elapsed", width=60, formatter=_duration()),
            TableColumn(field="eta", title="ETA", width=60, formatter=_duration()),
        ]
        self.table = DataTable(source=self.source, columns=columns, index_position=None,
                               selectable=selectable, sizing_mode="stretch_width",
                               css_classes=["farm-runs"], name="farm-runs")
        _redraw_on_change(self.table)
        self.root = self.table
        self.selected_ids: Any = None  # as in TasksTable

    def update(self) -> None:
        data = run_columns(self.plugin)
        _set_columns(self.source, data, self.selected_ids)
        _fit_height(self.table, len(data["run_id"]), 1, 8)


def summary_text(plugin: Any, rows: int, mode: str) -> str:
    active = active_runs(plugin)
    return (f"runs: {len(active)} active, {len(plugin.runs) - len(active)} finished | "
            f"tasks running: {rows} | progress events: {plugin.events} | {mode}")


class FarmPage(DashboardComponent):
    """The whole page; ``update()`` refreshes every part (the plots every other call)."""

    def __init__(self, plugin: Any, mount: Any = None, admin: bool = False):
        from daskfarm.dashboard.controls import Controls, controls_enabled

        self.plugin = plugin
        self.mount = mount
        shared = mount.cache if mount is not None else {}
        self.runs = RunsTable(plugin, selectable=admin)
        self.tasks = TasksTable(plugin, shared, selectable=admin)
        self.plots = Plots(plugin)
        self.source = self.tasks.source
        if admin:
            self.controls = Controls(plugin, self)
            self.mode = "controls enabled"
        else:
            self.controls = None
            self.mode = ("read-only: open the link with the token (farm.panel_link) to control "
                         "runs" if controls_enabled(plugin) else "read-only: controls are off")
        self.summary = Div(text="", render_as_text=True, css_classes=["farm-summary"],
                           name="farm-summary")
        parts = [self.summary, self.runs.root]
        if self.controls is not None:
            parts.append(self.controls.root)
        parts += [self.tasks.root, self.plots.root]
        self.root = column(parts, sizing_mode="stretch_width", css_classes=["farm-page"])
        self._ticks = 0
        self.update()

    @log_errors
    def update(self) -> None:
        if self.mount is not None and self.mount.closed:
            return  # the plugin that owned this state was replaced or closed
        self.runs.update()
        self.tasks.update()
        if self._ticks % 2 == 0:
            self.plots.update()
        self._ticks += 1
        text = summary_text(self.plugin, len(self.tasks.source.data["id"]), self.mode)
        if self.summary.text != text:
            self.summary.text = text


def _add_page(plugin: Any, mount: Any, doc: Any) -> None:
    from daskfarm.dashboard.controls import is_admin

    page = FarmPage(plugin, mount, admin=is_admin(plugin, doc))
    add_periodic_callback(doc, page, REFRESH_MS)
    doc.add_root(page.root)


def farm_doc(plugin: Any, mount: Any, doc: Any) -> None:
    """Build one session's ``/farm`` document (the Bokeh ``FunctionHandler`` target)."""
    with log_errors():
        _add_page(plugin, mount, doc)
        dress(doc, mount.scheduler, mount.prefix, "Dask: Farm")


def individual_doc(plugin: Any, mount: Any, doc: Any) -> None:
    """The ``/individual-farm`` document: the page alone, for a JupyterLab pane.

    Like Dask's own individual plots it has the dashboard's theme and no navigation bar;
    opened without the token (as JupyterLab opens it), it is read-only.
    """
    with log_errors():
        _add_page(plugin, mount, doc)
        doc.title = "Dask: Farm"
        theme(doc)
