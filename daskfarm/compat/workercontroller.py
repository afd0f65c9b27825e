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

from daskfarm.compat._cycle import RunBook, RunKeeper, TaskCall, in_slot, live_controllers
from daskfarm.compat._threadnames import ThreadNames
from daskfarm.compat.signals import Signal
from daskfarm.exceptions import FarmStateError
from daskfarm.farm import Farm
from daskfarm.run import Failure, Run

logger = logging.getLogger(__name__)

__all__ = ["WorkerController"]


class WorkerController(RunKeeper, ThreadNames):
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
    sig_message_from_worker : Signal
        ``(text)`` for every task that raised: the task, the exception type and message
        (pydidas' workers sent their text through this signal).

    Notes
    -----
    Differences from pydidas, on purpose: results are delivered while suspended (suspend only
    holds back new tasks); a task that raises is recorded in :attr:`failures` (and logged) and
    counts toward the progress, so the cycle still completes (pydidas dropped the task, killed
    the worker and could wait forever); ``None`` is a task like any other; a finalized
    controller closes the farm it started when its last task is done.

    The rest of pydidas' and QThread's names work as there: :attr:`flags`, the hooks
    :meth:`cycle_pre_run` and :meth:`cycle_post_run` (which :class:`AppRunner` overrides),
    :meth:`wait_for_processes_to_finish`, :meth:`reset_task_list`, :meth:`join_workers`,
    :meth:`wait`, :meth:`quit`, :meth:`exit`, :meth:`requestInterruption` and
    :meth:`isRunning`; ``suspend()`` does not block (pydidas waited up to 2 s for the workers).

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
        self.sig_message_from_worker = Signal("sig_message_from_worker")
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
        self._must_restart = False
        self._ended_for_good = False
        self._interruption_requested = False
        self._ended = threading.Event()  # set while not running, for wait()
        self._ended.set()
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
            self._suspended = self._must_restart = False
            self._ended_for_good = self._interruption_requested = False
            self._error = None
            self._ended.clear()
            try:
                self.cycle_pre_run()
            except BaseException:
                self._alive = False
                self._ended.set()
                raise

    def suspend(self) -> None:
        """Hold new tasks back until :meth:`restart`; tasks already handed over go on."""
        with self._lock:
            self._suspended = True

    def restart(self) -> None:
        """Start a new cycle: progress counts from zero, held tasks (and function) go out.

        Before :meth:`start` (or after the controller ended) it only marks the restart, as in
        pydidas (``flags["must_restart"]``): :meth:`start` begins the cycle.
        """
        with self._lock:
            if not self._alive:
                self._must_restart = True
                self._done, self._target = 0, len(self._pending)
                return
            self._suspended = False
            self.cycle_pre_run()

    def cycle_pre_run(self) -> None:
        """Begin a cycle: a new run when the function changed, the held tasks handed over.

        pydidas' hook, called by :meth:`start` and :meth:`restart`; a subclass (such as
        :class:`~daskfarm.compat.AppRunner`) overrides it to add its tasks first and then
        calls this. Outside a started controller it only resets the progress.
        """
        with self._lock:
            if not self._alive or self._call is None:
                self._done, self._target = 0, len(self._pending)
                return
            self._new_cycle()

    def cycle_post_run(self, timeout: float = 10) -> None:
        """End a cycle: wait up to ``timeout`` seconds for its tasks, release the workers.

        pydidas' hook, called once the finalized tasks are all done and by :meth:`stop` on a
        running controller, before ``finished`` is emitted; :class:`AppRunner` overrides it.
        """
        self.join_workers(timeout)
        with self._lock:
            if self._finalized:
                self._ended_for_good = True

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
            self._ended_for_good = True
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
            self._end_cycle()

    def _end_cycle(self) -> None:
        try:
            self.cycle_post_run()
        except Exception:
            logger.exception("cycle_post_run of %r failed", self)
        self._ended.set()
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

    def __repr__(self) -> str:
        state = "running" if self._running() else "suspended" if self._alive else "stopped"
        return f"<WorkerController {state}: {self._done}/{self._target}>"
