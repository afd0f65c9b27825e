"""The pieces of :class:`~daskfarm.compat.WorkerController` that are not its API: the call its
workers make, its runs (one per function, their results and failures turned into signals),
and stopping live controllers at exit."""

from __future__ import annotations

import atexit
import inspect
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daskfarm.compat.signals import Signal
from daskfarm.farm import Farm
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


class RunKeeper:
    """The controller's runs: opened on its farm, fed, drained and turned into signals (a
    mixin of WorkerController, working on its state under its lock)."""

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
            self._emit(self.sig_message_from_worker,
                       f"task {failure.item!r} failed: {failure.exc_type}: {failure.message}")
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
                    self._ended_for_good = True
            if ended:
                live_controllers.discard(self)
                self._end_cycle()


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
