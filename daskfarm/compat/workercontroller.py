"""pydidas' ``WorkerController`` on a :class:`~daskfarm.Farm`, without Qt.

pydidas runs ``func(task, *args, **kwargs)`` in worker processes over tasks that may be added
while it runs, and reports through the Qt signals ``sig_results(task, result)``,
``sig_progress(float)`` and ``finished``. Here the signals are plain :class:`Signal` objects,
and the work runs as daskfarm runs (started with ``items=None``, fed with :meth:`Run.add`), so
the panel shows it and any Dask cluster can do it.

A cycle begins at ``start``/``restart``; its progress is done / target over the tasks added in
it. Tasks added while suspended (or before the start) wait here until the next (re)start, as
pydidas' docs describe; tasks handed over keep running. A new function gets a new run; the old
run finishes the tasks it was given (their results still arrive, uncounted).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from numbers import Integral
from typing import Any

from daskfarm.compat._cycle import RunBook, TaskCall, in_slot, live_controllers
from daskfarm.compat.signals import Signal
from daskfarm.exceptions import FarmStateError
from daskfarm.farm import Farm
from daskfarm.run import Failure, Run

logger = logging.getLogger(__name__)

__all__ = ["WorkerController"]


class WorkerController:
    """pydidas' ``WorkerController``: ``func(task, *args, **kwargs)`` over tasks added at will.

    Parameters
    ----------
    n_workers : int, optional
        Worker processes of the farm the controller starts: ``None`` or ``0`` one per CPU,
        ``-k`` all but k, ``k > 0`` exactly k (pydidas' default was 4). Ignored with ``farm``.
    function : callable, optional
        The function, as for :meth:`change_function`.
    func_args, func_kwargs : optional
        Its extra arguments (pydidas passed the kwargs' keys positionally by mistake; here they
        are keywords).
    farm : Farm, optional
        Run on this farm (say, a remote cluster) instead of starting a LocalCluster; it is left
        open.

    Attributes
    ----------
    sig_results : Signal
        ``(task, result)`` for every result, in completion order.
    sig_progress : Signal
        The cycle's progress (see :attr:`progress`) after every result.
    sig_finished : Signal
        Emitted once the controller ends: the finalized tasks are all done, or :meth:`stop`.
        Also available as ``finished`` (pydidas' QThread name).

    Notes
    -----
    Differences from pydidas, on purpose: results are delivered while suspended (suspend only
    holds back new tasks); a task that raises is recorded in :attr:`failures` (and logged) and
    counts toward the progress, so the cycle still completes (pydidas dropped the task, killed
    the worker and could wait forever); ``None`` is a task like any other; a finalized
    controller closes the farm it started when its last task is done.

    Examples
    --------
    pydidas' minimal example, without Qt:

    >>> import numpy as np
    >>> from daskfarm.compat import SignalSpy, WorkerController
    >>> def test_func(task, slope, offset):
    ...     return task * slope + offset
    >>> with WorkerController() as worker_controller:              # doctest: +SKIP
    ...     worker_controller.change_function(test_func, 2, 5)
    ...     result_spy = SignalSpy(worker_controller.sig_results)
    ...     worker_controller.add_tasks(np.arange(10))
    ...     worker_controller.finalize_tasks()
    ...     worker_controller.start()
    ...     while worker_controller.progress < 1:
    ...         time.sleep(0.5)
    ...     print(sorted(result_spy))
    """

    def __init__(self, n_workers: int | None = None, function: Callable | None = None,
                 func_args: Iterable = (), func_kwargs: dict | None = None, *,
                 farm: Farm | None = None):
        self.sig_progress = Signal("sig_progress")
        self.sig_results = Signal("sig_results")
        self.sig_finished = Signal("sig_finished")
        self.finished = self.sig_finished
        self.n_workers = n_workers
        self._farm = farm
        self._own_farm = farm is None
        self._lock = threading.RLock()
        self._farm_lock = threading.Lock()
        self._call: TaskCall | None = None
        self._version = 0
        self._pending: list = []
        self._book: RunBook | None = None
        self._books: list[RunBook] = []
        self._runs: list[Run] = []
        self._alive = False
        self._suspended = False
        self._finalized = False
        self._done = 0
        self._target = 0
        self._error: BaseException | None = None
        live_controllers.add(self)
        if function is not None:
            self.change_function(function, *tuple(func_args), **(func_kwargs or {}))

    # -- configuration ---------------------------------------------------------------------

    @property
    def n_workers(self) -> int | None:
        """Worker processes for the next farm this controller starts."""
        return self._n_workers

    @n_workers.setter
    def n_workers(self, number: int | None) -> None:
        if number is not None and (isinstance(number, bool) or not isinstance(number, Integral)):
            raise ValueError(f"n_workers must be an integer or None, not {number!r}")
        self._n_workers = None if number is None else int(number)

    def change_function(self, func: Callable, *args: Any, **kwargs: Any) -> None:
        """Call ``func(task, *args, **kwargs)`` for the tasks from now on.

        Tasks not yet handed to the workers are dropped (pydidas' ``reset_task_list``). If the
        controller is running, the new function takes effect at once; if it is suspended, at
        :meth:`restart`.
        """
        if not callable(func):
            raise TypeError(f"the function must be callable, not {type(func).__name__}")
        with self._lock:
            self._call = TaskCall(func, args, kwargs)
            self._version += 1
            self._pending.clear()
            self._done = self._target = 0
            if self._running():
                self._new_cycle()

    # -- tasks -----------------------------------------------------------------------------

    def add_task(self, task: Any) -> None:
        """Add one task (also while running)."""
        self.add_tasks([task])

    def add_tasks(self, tasks: Iterable) -> None:
        """Add every task of ``tasks`` (also while running); each counts toward the target."""
        tasks = list(tasks)
        with self._lock:
            if self._finalized:
                raise FarmStateError(
                    "finalize_tasks() was called, so this cycle takes no more tasks; add them "
                    "after it has finished and start() again, or do not finalize"
                )
            self._pending.extend(tasks)
            self._target += len(tasks)
            if self._running():
                self._hand_over()

    def finalize_tasks(self) -> None:
        """Declare that no more tasks come: the controller ends once these are done."""
        with self._lock:
            self._finalized = True
            if self._running():
                self._hand_over()

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the farm (if needed) and hand it the tasks; returns at once (no-op if running)."""
        with self._lock:
            if self._alive:
                return
            if self._call is None:
                raise FarmStateError("call change_function(func, *args) before start()")
            self._alive = True
            self._suspended = False
            self._error = None
            try:
                self._new_cycle()
            except BaseException:
                self._alive = False
                raise

    def suspend(self) -> None:
        """Hold new tasks back until :meth:`restart`; tasks already handed over go on."""
        with self._lock:
            self._suspended = True

    def restart(self) -> None:
        """Start a new cycle: progress counts from zero, held tasks (and function) go out."""
        with self._lock:
            if not self._alive:
                self.start()
                return
            self._suspended = False
            self._new_cycle()

    def send_stop_signal(self) -> None:
        """Stop working: drop tasks not yet started, cancel the running ones.

        A running task stops at its next ``report()`` call; one that never reports finishes
        on its worker, but its result is dropped. Results already delivered stay delivered.
        :meth:`restart` begins again with the tasks added afterwards.
        """
        with self._lock:
            self._pending.clear()
            self._book = None
            runs = [book.run for book in self._books]
        for run in runs:
            run.cancel()

    def stop(self) -> None:
        """Stop working (as :meth:`send_stop_signal`) and close the farm it started.

        Idempotent; emits ``sig_finished`` if the controller was running.
        """
        if getattr(in_slot, "active", False):
            # a slot runs in a run's feeder thread, which stopping must wait for: stop from
            # another thread
            threading.Thread(target=self.stop, name="daskfarm-controller-stop").start()
            return
        with self._lock:
            was_alive = self._alive
            self._alive = self._suspended = self._finalized = False
            self._pending.clear()
            self._book = None
            books = list(self._books)
        for book in books:
            book.run.cancel()
        for book in books:
            if book.drain is not None and book.drain is not threading.current_thread():
                book.drain.join(timeout=60)
        self._close_farm()
        live_controllers.discard(self)
        if was_alive:
            self.sig_finished.emit()

    close = stop

    def __enter__(self) -> WorkerController:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- state -----------------------------------------------------------------------------

    @property
    def progress(self) -> float:
        """Done / target of the current cycle, 0..1; ``-1`` when it has no tasks (pydidas).

        Raises
        ------
        Exception
            What stopped the current cycle's run, if something did (a function the workers
            cannot load, say), so that a ``while progress < 1`` loop does not wait forever.
        """
        with self._lock:
            if self._error is not None:
                raise self._error
            return self._progress()

    def _progress(self) -> float:
        return self._done / self._target if self._target else -1.0

    def is_alive(self) -> bool:
        """True from :meth:`start` until the finalized tasks are done or :meth:`stop`."""
        return self._alive

    isRunning = is_alive  # QThread's name, used by pydidas' examples

    @property
    def failures(self) -> list[Failure]:
        """Every task that raised, with its exception type, message and traceback."""
        with self._lock:
            runs = list(self._runs)
        return [failure for run in runs for failure in run.failures]

    # -- internals -------------------------------------------------------------------------

    def _running(self) -> bool:
        return self._alive and not self._suspended and self._book is not None

    def _new_cycle(self) -> None:
        book = self._book
        if book is None or book.version != self._version or book.run.done:
            if book is not None:
                book.run.close_input()  # it finishes what it was given, uncounted
            book = self._book = self._open_book()
            self._target = len(self._pending)
        else:
            self._target = len(self._pending) + book.in_flight
        self._done = 0
        self._hand_over()

    def _open_book(self) -> RunBook:
        farm = self._ensure_farm()
        call = self._call
        func = call.func
        name = f"{getattr(func, '__module__', 'task')}.{getattr(func, '__qualname__', 'task')}"
        run = farm.map(call, None, errors="continue", progress=False, name=name)
        book = RunBook(run, self._version)
        run.on_result(lambda item, result: self._on_result(book, item, result))
        run.on_progress(lambda fraction: self._check_failures(book))
        # Results wait in a Run until someone takes them; draining keeps it from stalling.
        book.drain = threading.Thread(target=self._drain, args=(book,), daemon=True,
                                      name=f"daskfarm-controller-{run.run_id}")
        self._books.append(book)
        self._runs.append(run)
        book.drain.start()
        return book

    def _ensure_farm(self) -> Farm:
        with self._farm_lock:
            if self._farm is None:
                self._farm = Farm(n_workers=self._n_workers, threads_per_worker=1)
                self._own_farm = True
            return self._farm

    def _close_farm(self, cancel: bool = True) -> None:
        with self._farm_lock:
            farm, owned = self._farm, self._own_farm
            if owned:
                self._farm = None
            if owned and farm is not None:
                try:
                    farm.close(cancel=cancel)
                except Exception as exc:  # a run's failure: already recorded and logged
                    logger.debug("closing the controller's farm: %r", exc)

    def _hand_over(self) -> None:
        book = self._book
        if self._pending:
            tasks, self._pending = self._pending, []
            book.run.add(*tasks)
            book.handed += len(tasks)
        if self._finalized:
            book.run.close_input()

    def _on_result(self, book: RunBook, item: Any, result: Any) -> None:
        self._emit(self.sig_results, item, result)
        with self._lock:
            book.results += 1
            counted = book is self._book
            if counted:
                self._done += 1
                progress = self._progress()
        if counted:
            self._emit(self.sig_progress, progress)

    def _emit(self, signal: Signal, *args: Any) -> None:
        in_slot.active = True
        try:
            signal.emit(*args)
        finally:
            in_slot.active = False

    def _check_failures(self, book: RunBook) -> None:
        counts = book.run.counts
        with self._lock:
            new = counts["failed"] + counts["cancelled"] - book.failures_seen
            if new <= 0:
                return
            book.failures_seen += new
            counted = book is self._book
            if counted:
                self._done += new
                progress = self._progress()
            failures = book.run.failures
            fresh, book.logged = failures[book.logged:], len(failures)
        for failure in fresh:
            logger.warning("task %r failed: %s: %s", failure.item, failure.exc_type,
                           failure.message)
        if counted:
            self._emit(self.sig_progress, progress)

    def _drain(self, book: RunBook) -> None:
        try:
            book.run.wait()
        except BaseException as exc:
            logger.error("the run of %s stopped: %r", book.run.name, exc)
            with self._lock:
                if book is self._book:
                    self._error = exc
        self._check_failures(book)
        with self._lock:
            if book in self._books:
                self._books.remove(book)
            ended = book is self._book and self._finalized and self._alive
            if ended:
                self._finalized = False
                self._book = None
        if ended:
            # like a QThread, alive until its workers are gone
            self._close_farm(cancel=False)
            with self._lock:
                # unless stop() or a restart came meanwhile
                ended = self._alive and self._book is None
                if ended:
                    self._alive = False
            if ended:
                live_controllers.discard(self)
                self.sig_finished.emit()

    def __repr__(self) -> str:
        state = "running" if self._running() else "suspended" if self._alive else "stopped"
        return f"<WorkerController {state}: {self._done}/{self._target}>"
