"""Brian 1's ``run_tasks`` (``brian.tools.taskfarm``) on a :class:`~daskfarm.Farm`.

What changes for a Brian user: the Tk window becomes the farm panel in the browser (one row per
running task with its ``taskname``, the overall bar, a Terminate button), the pool becomes a
LocalCluster (or any Dask cluster, with ``farm=``), and the shelf files become a
:class:`~daskfarm.DataManager` directory. What stays: the signature, tuple items expanded into
arguments (and only tuples), class tasks built once per worker process with
``process_number``, the ``report`` keyword, ``numitems`` for an ETA over iterators, Brian's text
progress lines with ``verbose``, and results kept when the run is terminated or interrupted.
"""

from __future__ import annotations

import logging
import threading
import time
import webbrowser
from collections.abc import Iterable
from typing import Any

from daskfarm._protocol import PLUGIN_NAME, Star
from daskfarm.compat.progressreporting import make_text_report
from daskfarm.farm import Farm
from daskfarm.run import Run, RunSummary

logger = logging.getLogger(__name__)

__all__ = ["run_tasks"]

# Seconds between two looks at the run when printing verbose progress (Brian used 0.1 s to
# pump its Tk window; a text report refreshed twice a second reads the same).
_TICK = 0.5
_NO_INFO = "No task information"


def run_tasks(dataman: Any, task: Any, items: Iterable, gui: bool = True, poolsize: int = 0,
              initargs: Iterable | None = None, initkwds: dict | None = None,
              verbose: bool | None = None, numitems: int | None = None, *,
              farm: Farm | None = None) -> RunSummary:
    """Run ``task`` over every item on every core, storing each result in ``dataman``.

    Brian 1's ``brian.tools.taskfarm.run_tasks``, on a Dask farm. It blocks until every item
    is done (or the run is terminated from the panel, or Ctrl-C).

    Parameters
    ----------
    dataman : DataManager or path
        Where the results go: each result is stored as it arrives, under a key made from the
        task and the item (``dataman.params(key)`` gives the item back).
    task : callable or class
        A function called per item, or a class instantiated once per worker process with
        ``initargs``/``initkwds`` (plus ``process_number=``, a stable 0..n-1 index of the
        worker process that a restarted worker gets back, if ``__init__`` takes it) and then
        called per item. A tuple item is expanded into positional arguments,
        ``task(*item)``; any other item (a list, an array row, a dict) is passed as one
        argument. If the function (or ``__call__``) takes ``report``, it receives
        :data:`daskfarm.report`, which Brian 2's ``run(..., report=report)`` accepts. A class
        task's ``taskname`` attribute is shown with its row in the panel and in verbose lines.
    items : iterable
        The items, a sequence or any iterator (also an endless one: stop it from the panel).
    gui : bool
        Print the farm panel's link and open it in a browser, when this machine has one.
    poolsize : int
        Worker processes: ``0`` one per CPU, ``-k`` all but k, ``k > 0`` exactly k. Ignored
        when ``farm`` is given.
    initargs, initkwds : optional
        Constructor arguments of a class task.
    verbose : bool, optional
        Print Brian's text progress: a ``Process i: ...`` line for each progress report of a
        running task and an ``Overall, N done of M: ...`` line as results arrive. Default:
        ``not gui``.
    numitems : int, optional
        The number of items, for the overall fraction and ETA when ``len(items)`` does not
        work (a generator).
    farm : Farm, optional
        Run on this farm (a remote cluster, say) instead of a new LocalCluster of
        ``poolsize`` workers; it is left open.

    Returns
    -------
    RunSummary
        Counts of done, failed, skipped and cancelled items, the elapsed time and the status
        (``"finished"``, or ``"cancelled"`` after Terminate). Brian returned nothing.

    Raises
    ------
    Exception
        The first exception a task raised (with the worker's traceback); the other items are
        cancelled, the results already stored are kept.
    KeyboardInterrupt
        After Ctrl-C has cancelled the run; stored results are kept.

    Notes
    -----
    Deliberate differences from Brian 1: an item whose result ``dataman`` already holds for the
    same task is skipped rather than computed and stored twice; a task failure stops the run
    cleanly; and with ``verbose=False`` nothing is printed (Brian's text mode still printed
    the overall lines).

    Examples
    --------
    Brian's top-up idiom: run only as many new random items as the store lacks.

    >>> from numpy.random import rand
    >>> from daskfarm import DataManager, run_tasks  # doctest: +SKIP
    >>> def find_rate(k, report):
    ...     rate = ...                             # simulate, calling report(fraction)
    ...     return (k, rate)
    >>> if __name__ == "__main__":                 # doctest: +SKIP
    ...     N = 20
    ...     dataman = DataManager("taskfarmexample")
    ...     if dataman.itemcount() < N:
    ...         run_tasks(dataman, find_rate, rand(N - dataman.itemcount()) * 19 + 1)
    ...     X, Y = zip(*dataman.values())
    """
    if verbose is None:
        verbose = not gui
    dm, own_store = _open_store(dataman)
    try:
        if farm is not None:
            if poolsize:
                logger.warning("run_tasks: poolsize=%r is ignored when farm= is given", poolsize)
            return _run(farm, dm, task, items, gui=gui, verbose=verbose, numitems=numitems,
                        initargs=initargs, initkwds=initkwds)
        with Farm(n_workers=poolsize, threads_per_worker=1, processes=True,
                  dashboard=gui) as owned:
            return _run(owned, dm, task, items, gui=gui, verbose=verbose, numitems=numitems,
                        initargs=initargs, initkwds=initkwds)
    finally:
        if own_store:
            dm.close()


def _open_store(dataman: Any) -> tuple[Any, bool]:
    from daskfarm.store import DataManager

    if isinstance(dataman, DataManager):
        return dataman, False
    return DataManager(dataman), True


def _run(farm: Farm, dm: Any, task: Any, items: Iterable, *, gui: bool, verbose: bool,
         numitems: int | None, initargs: Any, initkwds: Any) -> RunSummary:
    started = time.monotonic()
    if gui:
        _show_panel(farm)
    run = farm._map(task, items, Star.TUPLES, store=dm, numitems=numitems,
                    progress=False, initargs=tuple(initargs or ()), initkwds=initkwds)
    text = _TextReport(farm, run, started) if verbose else None
    if text is not None:
        text.begin()
    waiter = _Waiter(run)
    try:
        while not waiter.wait(_TICK):
            if text is not None:
                text.tick()
    except (KeyboardInterrupt, SystemExit):
        run.cancel()
        waiter.wait(30)
        if verbose:
            print("Terminated task processes")
        raise
    summary = waiter.summary()  # re-raises the first task failure
    if text is not None:
        text.tick()
        print("Finished." if summary.status == "finished" else "Terminated task processes")
    return summary


class _Waiter(threading.Thread):
    """Drains the run in the background, so the caller's thread stays free to print and to
    receive Ctrl-C (``Thread.join`` with a timeout is interruptible, ``Run.wait`` is too, but
    telling a timeout of ours from a task's own ``TimeoutError`` is not)."""

    def __init__(self, run: Run):
        super().__init__(name=f"daskfarm-run_tasks-{run.run_id}", daemon=True)
        self.run_ = run
        self._summary: RunSummary | None = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._summary = self.run_.wait()
        except BaseException as exc:
            self._error = exc

    def wait(self, timeout: float) -> bool:
        self.join(timeout)
        return not self.is_alive()

    def summary(self) -> RunSummary:
        if self._error is not None:
            raise self._error
        assert self._summary is not None
        return self._summary


class _TextReport:
    """Brian's ``TextTaskController``: process lines and overall lines, on stdout."""

    def __init__(self, farm: Farm, run: Run, started: float):
        self.farm = farm
        self.run = run
        self.started = started
        self.seen: dict[tuple, float] = {}
        self.last_done = -1
        self.running = 0.0  # sum of the running tasks' fractions, as last fetched
        self.total_known = run.total is not None
        self.rows_available = True

    def begin(self) -> None:
        try:
            processes = len(self.farm.client.nthreads())
        except Exception:
            processes = 0
        for i in range(processes):
            print(f"Process {i}: {make_text_report(0, 0)}: {_NO_INFO}")
        self._print_overall()

    def tick(self) -> None:
        for row in self._new_rows():
            complete = row["frac"]
            print(f"Process {row['process']}: {make_text_report(row['elapsed'], complete)}: "
                  f"{row['taskname'] or _NO_INFO}")
            self._print_overall()
        if self._done() != self.last_done:
            self._print_overall()

    def _done(self) -> int:
        counts = self.run.counts
        return counts["done"] + counts["skipped"]

    def _print_overall(self) -> None:
        done = self.last_done = self._done()
        text = f"Overall, {done} done"
        # a finished run knows how many items it had, but Brian shows no total it lacked
        total = self.run.total if self.total_known else None
        if total:
            # Brian's overall completion: (finished + running fractions) / numitems, with the
            # fractions of the rows just printed (the run's own figure lags by a second)
            counts = self.run.counts
            finished = done + counts["failed"] + counts["cancelled"]
            complete = min(1.0, (finished + self.running) / total)
            elapsed = time.monotonic() - self.started
            text += f" of {total}: {make_text_report(elapsed, complete)}"
        print(text)

    def _new_rows(self) -> list[dict]:
        if not self.rows_available:
            return []
        try:
            rows = self.farm.client.run_on_scheduler(_scheduler_rows, self.run.run_id)
        except Exception as exc:
            # no daskfarm plugin on that scheduler: only the overall lines can be printed
            logger.debug("no per-task rows from the scheduler: %r", exc)
            self.rows_available = False
            return []
        # a final report(1.0) must not count twice: the item is about to count as done
        self.running = sum(row["frac"] for row in rows if row["frac"] < 1.0)
        fresh = []
        for row in sorted(rows, key=lambda r: (str(r["process"]), r["index"])):
            ident = (row["key"], row["index"])
            if self.seen.get(ident) != row["updated"]:
                self.seen[ident] = row["updated"]
                fresh.append(row)
        return fresh


def _scheduler_rows(run_id: str, dask_scheduler: Any = None) -> list[dict]:
    """The running tasks of a run as the farm plugin holds them (runs on the scheduler)."""

    plugin = dask_scheduler.plugins[PLUGIN_NAME]
    state = plugin.runs.get(run_id)
    if state is None:
        return []
    numbers = plugin.worker_index.numbers
    rows = []
    for row in state.task_rows():
        ws = dask_scheduler.workers.get(row.worker)
        name = str(ws.name) if ws is not None else ""
        rows.append({
            "key": repr(row.key), "index": row.index, "process": numbers.get(name, name or "?"),
            "elapsed": row.elapsed, "frac": row.frac, "taskname": row.taskname,
            "updated": row.updated,
        })
    return rows


def _show_panel(farm: Farm) -> None:
    link = farm.panel_link
    if link is None:
        logger.warning("run_tasks(gui=True): this farm has no dashboard, so no panel to show")
        return
    print(f"Task control: {link}")
    _open_in_browser(link)


def _open_in_browser(url: str) -> bool:
    """Open ``url`` in a graphical browser, if this machine has one; never raise or block."""
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    # On a headless machine with TERM set, webbrowser falls back to console browsers (lynx,
    # w3m) as plain GenericBrowser objects: they would take over this terminal and block.
    if type(browser) is webbrowser.GenericBrowser:
        return False
    try:
        return bool(browser.open(url, new=2))
    except Exception:
        logger.debug("could not open %s in a browser", url, exc_info=True)
        return False
