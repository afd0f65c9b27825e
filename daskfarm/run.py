"""``Run``: the handle that :meth:`Farm.map` returns.

The work itself is done by a feeder thread (:mod:`daskfarm._stream`); the Run is the state the
feeder and the caller share, behind one condition variable, plus the public methods. Results
wait here in chunks (one per finished batch) until the caller takes them, and count against
``buffersize`` until then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from daskfarm.exceptions import FarmStateError, FarmValueError

logger = logging.getLogger(__name__)

__all__ = ["Failure", "Run", "RunSummary"]

# How often a waiting caller wakes up to notice Ctrl-C (seconds).
_WAKE = 0.2


@dataclass(frozen=True)
class Failure:
    """One item that failed: its input and what went wrong on the worker.

    Attributes
    ----------
    item : object
        The item (parameter set) that was being computed.
    exc_type : str
        The exception's type, with its module unless it is a built-in.
    message : str
        ``str(exception)``.
    traceback : str
        The remote traceback, as text.
    exception : BaseException or None
        The exception itself, when it could be sent back from the worker.
    index : int
        The item's position in the input.
    key : str or None
        The item's store key, when the run has a store.
    """

    item: Any
    exc_type: str
    message: str
    traceback: str
    exception: BaseException | None = None
    index: int = -1
    key: str | None = None


@dataclass(frozen=True)
class RunSummary:
    """What :meth:`Run.wait` returns: the final counts and the elapsed time."""

    done: int
    failed: int
    skipped: int
    cancelled: int
    elapsed: float
    status: str

    def as_dict(self) -> dict:
        return {"done": self.done, "failed": self.failed, "skipped": self.skipped,
                "cancelled": self.cancelled, "elapsed": self.elapsed, "status": self.status}


class Run:
    """A running ``map`` over a stream of items.

    Iterate it for results in completion order (input order with ``ordered=True``), or call
    :meth:`pairs` for ``(item, result)``, :meth:`wait` to drain it, :meth:`cancel` to stop it.
    A Run can be iterated once. Callbacks registered with :meth:`on_result`,
    :meth:`on_progress` and :meth:`on_finished` run in the run's feeder thread: keep them short.

    Runs are made by :meth:`daskfarm.Farm.map`, never directly.

    Examples
    --------
    >>> with Farm(n_workers=2) as farm:                       # doctest: +SKIP
    ...     run = farm.map(simulate, range(100), store="results/")
    ...     for value in run:
    ...         print(value, run.progress, run.counts)
    ...     summary = run.wait()
    """

    def __init__(self, *, run_id: str, name: str, total: int | None, ordered: bool,
                 buffersize: int | None, errors: str, input_open: bool):
        self.run_id = run_id
        self.name = name
        self._total = total
        self._ordered = ordered
        self._buffersize = buffersize
        self._errors = errors
        self._cond = threading.Condition()
        self._chunks: deque[list] = deque()  # each a list of (item, result)
        self._unconsumed = 0
        self._consume_mode: str | None = None  # "results", "pairs", or "discard"
        self._exhausted = False
        self._counts = {"done": 0, "failed": 0, "skipped": 0, "cancelled": 0}
        self._in_flight = 0
        self._remote = (0, 0.0)  # (tasks processing, sum of their reported fractions)
        self._failures: list[Failure] = []
        self._error: BaseException | None = None
        self._error_raised = False
        self._finished = False
        self._status = "running"
        self._started = time.time()
        self._ended: float | None = None
        self._cancel_requested = False
        self._suspended = False
        self._input_open = input_open
        self._added: deque = deque()
        self._callbacks: dict[str, list[Callable]] = {"result": [], "progress": [], "finished": []}
        self._feeder = None  # set by Farm.map
        self._wake: Callable[[], None] = lambda: None

    # -- iteration -----------------------------------------------------------------------

    def _claim(self, mode: str, *, again_ok: bool = False) -> None:
        """Make ``mode`` the one way this run's results are consumed; a second claim fails."""
        with self._cond:
            if self._consume_mode is not None and not (again_ok and self._consume_mode == mode):
                raise FarmStateError(
                    f"run {self.name!r} is already being consumed ({self._consume_mode}); a Run "
                    "can be iterated once. Keep the results you need as they come, or read "
                    "them back from the run's store."
                )
            self._consume_mode = mode

    def __iter__(self) -> Iterator[Any]:
        if self._exhausted:
            raise FarmStateError(
                f"run {self.name!r} was already iterated to its end; a Run can be iterated "
                "once. Keep the results as they come, or read them back from the run's store."
            )
        # taking a few results (islice) and then looping over the rest is one consumer
        self._claim("results", again_ok=True)
        return self

    def __next__(self) -> Any:
        if self._consume_mode is None:
            self._claim("results")
        return self._next_pair()[1]

    def pairs(self) -> Iterator[tuple[Any, Any]]:
        """Iterate ``(item, result)`` pairs instead of bare results.

        Examples
        --------
        >>> for params, value in farm.map(simulate, grid).pairs():   # doctest: +SKIP
        ...     print(params, value)
        """
        self._claim("pairs")
        return self._iter_pairs()

    def _iter_pairs(self) -> Iterator[tuple[Any, Any]]:
        while True:
            try:
                yield self._next_pair()
            except StopIteration:
                return

    def _next_pair(self) -> tuple[Any, Any]:
        try:
            with self._cond:
                while True:
                    if self._chunks:
                        chunk = self._chunks[0]
                        pair = chunk.pop()
                        if not chunk:
                            self._chunks.popleft()
                        self._unconsumed -= 1
                        self._wake()
                        return pair
                    if self._finished:
                        # the feeder has stopped everything: now the failure can be raised
                        if self._error is not None and not self._error_raised:
                            self._error_raised = True
                            raise self._error
                        self._exhausted = True
                        raise StopIteration
                    self._cond.wait(_WAKE)
        except (KeyboardInterrupt, SystemExit):
            self.cancel()
            raise

    # -- control -------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> RunSummary:
        """Drain the run: let every item finish (each result stored) and return the summary.

        Results not yet taken are dropped (they are in the store, if the run has one).

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait; on timeout the run goes on and ``TimeoutError`` is raised.

        Raises
        ------
        Exception
            The first task failure, with ``errors="raise"``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self._cond:
                if self._consume_mode is None:
                    self._consume_mode = "discard"
                self._discard_chunks()
                self._wake()
                while not self._finished:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise TimeoutError(
                            f"run {self.name!r} did not finish within {timeout} s; it goes on "
                            "(call wait() again, or cancel())"
                        )
                    self._cond.wait(_WAKE)
                    self._discard_chunks()
                if self._error is not None and not self._error_raised:
                    self._error_raised = True
                    raise self._error
        except (KeyboardInterrupt, SystemExit):
            self.cancel()
            raise
        return self.summary()

    def _discard_chunks(self) -> None:
        if self._consume_mode == "discard" or self._consume_mode is None:
            self._chunks.clear()
            self._unconsumed = 0

    def cancel(self) -> None:
        """Stop the run: pull no more items, cancel pending ones, stop running ones at their
        next ``report()`` call. Results already stored are kept. Idempotent."""
        if not self._request_cancel():
            return
        feeder = self._feeder
        if feeder is not None and threading.current_thread() is not feeder:
            feeder.join(timeout=30)

    def _request_cancel(self) -> bool:
        """Ask the feeder to stop, without waiting (safe on the client's event loop)."""
        with self._cond:
            if self._finished:
                return False
            self._cancel_requested = True
            self._wake()
            self._cond.notify_all()
            return True

    def suspend(self) -> None:
        """Stop feeding new items; running and queued ones go on."""
        with self._cond:
            self._suspended = True
            if not self._finished:
                self._status = "suspended"

    def resume(self) -> None:
        """Start feeding new items again after :meth:`suspend`."""
        with self._cond:
            self._suspended = False
            if not self._finished:
                self._status = "running"
            self._wake()

    def add(self, *items: Any) -> None:
        """Add items to a run started with ``items=None`` (pydidas' ``add_task``)."""
        with self._cond:
            if not self._input_open:
                raise FarmStateError(
                    f"run {self.name!r} takes no more items: add() works on runs started with "
                    "items=None, before close_input()"
                )
            self._added.extend(items)
            if self._total is not None:
                self._total += len(items)
            self._wake()

    def close_input(self) -> None:
        """Declare that no more items will be added; the run ends when they are done."""
        with self._cond:
            self._input_open = False
            self._wake()

    # -- callbacks -----------------------------------------------------------------------

    def on_result(self, fn: Callable[[Any, Any], Any]) -> Callable:
        """Call ``fn(item, result)`` for every result as it arrives (in the feeder thread)."""
        self._callbacks["result"].append(fn)
        return fn

    def on_progress(self, fn: Callable[[float], Any]) -> Callable:
        """Call ``fn(progress)`` (0..1) about once a second and at the end."""
        self._callbacks["progress"].append(fn)
        return fn

    def on_finished(self, fn: Callable[[RunSummary], Any]) -> Callable:
        """Call ``fn(summary)`` once when the run ends (at once if it already has)."""
        with self._cond:
            if not self._finished:
                self._callbacks["finished"].append(fn)
                return fn
        _call_safely(fn, self.summary())
        return fn

    def _fire(self, kind: str, *args: Any) -> None:
        for fn in self._callbacks[kind]:
            _call_safely(fn, *args)

    # -- state ---------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True once the run has ended (finished, cancelled or failed)."""
        return self._finished

    @property
    def total(self) -> int | None:
        """The number of items, when known (``numitems``, ``len(items)``, or a closed input)."""
        if self._total is None and not self._input_open and self._finished:
            return self._finished_count()
        return self._total

    def _finished_count(self) -> int:
        c = self._counts
        return c["done"] + c["failed"] + c["skipped"] + c["cancelled"]

    @property
    def counts(self) -> dict[str, int]:
        """``pending``, ``running``, ``done``, ``failed``, ``skipped`` and ``cancelled``."""
        with self._cond:
            processing, _ = self._remote
            running = min(self._in_flight, processing)
            return {"pending": self._in_flight - running, "running": running, **self._counts}

    @property
    def progress(self) -> float:
        """The fraction done, 0..1, counting the running tasks' reported fractions."""
        with self._cond:
            finished = self._finished_count()
            _, fractions = self._remote
            if self._finished:
                return 1.0
            total = self._total
            if total:
                return min(1.0, (finished + fractions) / total)
            seen = finished + self._in_flight
            return min(1.0, (finished + fractions) / seen) if seen else 0.0

    @property
    def failures(self) -> list[Failure]:
        """Every failed item so far (with ``errors="continue"``; the first one otherwise)."""
        with self._cond:
            return list(self._failures)

    @property
    def status(self) -> str:
        """``running``, ``suspended``, ``finished``, ``cancelled`` or ``failed``."""
        return self._status

    def summary(self) -> RunSummary:
        with self._cond:
            end = self._ended or time.time()
            return RunSummary(status=self._status, elapsed=end - self._started, **self._counts)

    def __repr__(self) -> str:
        c = self._counts
        return (f"<Run {self.name!r} {self._status}: done {c['done']}, failed {c['failed']}, "
                f"skipped {c['skipped']}, cancelled {c['cancelled']}>")


def _call_safely(fn: Callable, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        # A broken callback (a GUI hook, say) must not lose the sweep's results.
        logger.exception("run callback %r failed", fn)


def check_errors_option(errors: str) -> str:
    if errors not in ("raise", "continue"):
        raise FarmValueError(
            f"errors={errors!r} is not an option: use errors='raise' (stop at the first failure) "
            "or errors='continue' (record failures and go on)"
        )
    return errors
