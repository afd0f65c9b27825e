"""``RunState``: the one owner of a run's counters, buffers and condition.

Three threads touch a run: the feeder (submits items, records outcomes), the caller (iterates,
waits, cancels, adds items) and the client's event loop (progress summaries, panel controls).
They meet here and nowhere else: every field is private to this class, every change is a named
transition taken under the one condition variable, and the invariant that bounds memory,

    items in flight + results not yet taken + ordered results held back <= buffersize,

is checked in :meth:`RunState.room`. Event-loop callers only set flags (never wait).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from daskfarm._protocol import RunStatus, finished_count, fraction_done
from daskfarm.exceptions import FarmStateError

__all__ = ["RunState"]

#: how often a waiting caller wakes up to notice Ctrl-C (seconds)
WAKE = 0.2

_KEEP = ("results", "pairs")  # consume modes that keep results for the caller


class _Chunks:
    """Results waiting for the caller, one chunk per batch; guarded by the RunState's
    condition (only RunState calls it)."""

    __slots__ = ("chunks", "exhausted", "mode", "unconsumed")

    def __init__(self):
        self.chunks: deque[list] = deque()  # each a list of (item, result), taken from the end
        self.unconsumed = 0
        self.mode: str | None = None  # "results", "pairs" or "discard"
        self.exhausted = False

    def keeps(self, has_callbacks: bool) -> bool:
        """Are results kept for the caller? Not while wait() drains, nor for a run that
        result callbacks consume and nobody iterates (it would stall on buffersize)."""
        return self.mode in _KEEP or (self.mode is None and not has_callbacks)

    def add(self, pairs: list) -> None:
        pairs.reverse()  # the consumer pops from the end
        self.chunks.append(pairs)
        self.unconsumed += len(pairs)

    def take(self) -> list:
        """The first chunk whole (its pairs to be popped from the end)."""
        chunk = self.chunks.popleft()
        self.unconsumed -= len(chunk)
        return chunk

    def drop(self) -> None:
        self.chunks.clear()
        self.unconsumed = 0

    def claim(self, name: str, mode: str, again_ok: bool) -> None:
        if self.exhausted:
            raise FarmStateError(
                f"run {name!r} was already iterated to its end; a Run can be iterated once. "
                "Keep the results as they come, or read them back from the run's store."
            )
        if self.mode is not None and not (again_ok and self.mode == mode):
            raise FarmStateError(
                f"run {name!r} is already being consumed ({self.mode}); a Run can be "
                "iterated once. Keep the results you need as they come, or read them back "
                "from the run's store."
            )
        self.mode = mode


class _Stop:
    """A cancel's flags; guarded by the RunState's condition (only RunState calls it)."""

    __slots__ = ("at", "hard", "wanted")

    def __init__(self):
        self.wanted = False
        self.hard = False  # stop running items now (a second cancel, grace=0)
        self.at: float | None = None  # monotonic time of the hard stop after the grace

    def request(self, grace: float | None, now: float) -> None:
        if self.wanted:
            self.hard = True  # the second Terminate click, the second Ctrl-C
            return
        self.wanted = True
        if grace is not None:
            self.hard = grace <= 0
            self.at = now + max(grace, 0.0)

    def due(self, now: float) -> bool:
        return self.wanted and (self.hard or (self.at is not None and now >= self.at))

    def left(self, now: float) -> float | None:
        return None if self.at is None else max(0.0, self.at - now)


class RunState:
    """Counters, result chunks, flags and callbacks of one run, behind one condition."""

    def __init__(self, *, name: str, total: int | None, ordered: bool,
                 buffersize: int | None, errors: str, input_open: bool):
        self.name = name
        self.ordered = ordered
        self.errors = errors
        self.buffersize = buffersize
        self._cond = threading.Condition()
        self._total = total
        self._results = _Chunks()
        self._counts = {"done": 0, "failed": 0, "skipped": 0, "cancelled": 0}
        self._in_flight = 0
        self._remote = (0, 0.0)  # (tasks executing, sum of their reported fractions)
        self._failures: list = []
        self._error: BaseException | None = None
        self._error_raised = False
        self._status = RunStatus.RUNNING
        self._finished = False
        self.started = time.time()
        self._ended: float | None = None
        self._stop = _Stop()
        self._suspended = False
        self._input_open = input_open
        self._added: deque = deque()
        self._callbacks: dict[str, list[Callable]] = {"result": [], "progress": [], "finished": []}
        self._timeouts: dict = {}  # dask key -> (item index, seconds) of a hard timeout
        self._feeder_ident: int | None = None
        self._wake: Callable[[], None] = lambda: None

    # -- wiring (the feeder, once) -------------------------------------------------------

    def attach(self, wake: Callable[[], None]) -> None:
        """Called by the feeder thread as it starts: how to wake it, and who it is."""
        self._wake = wake
        self._feeder_ident = threading.get_ident()

    def in_feeder(self) -> bool:
        return threading.get_ident() == self._feeder_ident

    # -- the feeder's transitions --------------------------------------------------------

    def stop_wanted(self) -> bool:
        with self._cond:
            return self._stop.wanted or self._error is not None

    def cancelled(self) -> bool:
        return self._stop.wanted

    def may_submit(self) -> bool:
        with self._cond:
            return not (self._suspended or self._stop.wanted or self._error is not None)

    def room(self, default_limit: int, held_back: int) -> int:
        """Items that may still be submitted under ``buffersize`` (or the default window)."""
        with self._cond:
            in_use = self._in_flight + self._results.unconsumed + held_back
            limit = self.buffersize if self.buffersize is not None else default_limit
            return limit - in_use

    def remaining(self, submitted: int) -> int | None:
        with self._cond:
            return None if self._total is None else max(self._total - submitted, 0)

    def take_added(self, n: int) -> list:
        with self._cond:
            return [self._added.popleft() for _ in range(min(n, len(self._added)))]

    def added_input_finished(self) -> bool:
        with self._cond:
            return not self._input_open and not self._added

    def submitted(self, n: int) -> None:
        with self._cond:
            self._in_flight += n

    def returned(self, n: int) -> None:
        """A batch of ``n`` items left the cluster (finished, failed, cancelled or lost)."""
        with self._cond:
            self._in_flight -= n

    def counted(self, *, done: int = 0, failed: int = 0, skipped: int = 0,
                cancelled: int = 0) -> None:
        with self._cond:
            c = self._counts
            c["done"] += done
            c["failed"] += failed
            c["skipped"] += skipped
            c["cancelled"] += cancelled

    def failed(self, failure: Any, error: BaseException | None) -> None:
        """Record a failed item; ``error`` (errors="raise") ends the run with it."""
        with self._cond:
            self._failures.append(failure)
            if error is not None and self._error is None:
                self._error = error

    def set_error(self, error: BaseException) -> None:
        """The run stops with ``error`` (the first one wins)."""
        with self._cond:
            if self._error is None:
                self._error = error
            self._cond.notify_all()

    def deliver(self, pairs: list) -> None:
        """Hand results to the caller's iterator (in the order given)."""
        if not pairs:
            return
        with self._cond:
            if self._results.keeps(bool(self._callbacks["result"])):
                self._results.add(pairs)
                self._cond.notify_all()

    def all_in_flight_cancelled(self) -> None:
        with self._cond:
            self._counts["cancelled"] += self._in_flight
            self._in_flight = 0

    def stop_due(self, now: float) -> bool:
        """True once running items must be stopped hard (a second cancel, or the grace ran out)."""
        with self._cond:
            return self._stop.due(now)

    def grace_left(self) -> float | None:
        with self._cond:
            if self._status is not RunStatus.STOPPING:
                return None
            return self._stop.left(time.monotonic())

    def end(self) -> RunStatus:
        """The feeder is done: fix the final status (callbacks not yet fired)."""
        with self._cond:
            self._ended = time.time()
            if self._stop.wanted:
                self._status = RunStatus.CANCELLED
            elif self._error is not None:
                self._status = RunStatus.FAILED
            else:
                self._status = RunStatus.FINISHED
            self._in_flight = 0
            return self._status

    def mark_finished(self) -> list[Callable]:
        """The run has ended: wake every waiter; return the on_finished callbacks to call."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()
            return list(self._callbacks["finished"])

    # -- the event loop's transitions (flags only, never wait) ---------------------------

    def set_remote(self, executing: int, fractions: float) -> None:
        with self._cond:
            self._remote = (executing, fractions)

    def note_timeout(self, key: Any, index: int, seconds: float) -> None:
        """The plugin says: item ``index`` of task ``key`` overran its timeout (its task is
        being cancelled and its worker restarted)."""
        with self._cond:
            self._timeouts[key] = (index, seconds)
            self._wake()

    def pop_timeout(self, key: Any) -> tuple[int, float] | None:
        with self._cond:
            return self._timeouts.pop(key, None)

    # -- the caller's transitions --------------------------------------------------------

    def claim(self, mode: str, *, again_ok: bool = False) -> None:
        """Make ``mode`` the one way this run's results are consumed; a second claim fails."""
        with self._cond:
            self._results.claim(self.name, mode, again_ok)

    def mode(self) -> str | None:
        return self._results.mode

    def next_chunk(self) -> list:
        """The next batch's ``(item, result)`` pairs, last first (the caller pops them), in
        one call rather than one lock per item; StopIteration at the end; the run's failure
        raised once the feeder has stopped everything."""
        self._refuse_in_feeder("iterate")
        with self._cond:
            while True:
                if self._results.unconsumed:
                    self._wake()  # the window has room again
                    return self._results.take()
                if self._finished:
                    if self._error is not None and not self._error_raised:
                        self._error_raised = True
                        raise self._error
                    self._results.exhausted = True
                    raise StopIteration
                self._cond.wait(WAKE)

    def wait_finished(self, deadline: float | None, timeout: Any) -> None:
        """Drop results not yet taken and wait for the end (``deadline``: monotonic)."""
        self._refuse_in_feeder("wait for")
        with self._cond:
            # wait() drains: results the caller did not take (a loop left early) are dropped,
            # or they would fill the window and the run would stall
            self._results.mode = "discard"
            self._drop_chunks()
            self._wake()
            while not self._finished:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"run {self.name!r} did not finish within {timeout} s; it goes on "
                        "(call wait() again, or cancel())"
                    )
                self._cond.wait(WAKE)
                self._drop_chunks()
            if self._error is not None and not self._error_raised:
                self._error_raised = True
                raise self._error

    def _drop_chunks(self) -> None:
        if self._results.unconsumed:
            self._results.drop()
            self._wake()

    def _refuse_in_feeder(self, what: str) -> None:
        if self.in_feeder() and not self._finished:
            raise FarmStateError(
                f"a callback of run {self.name!r} tried to {what} the run it belongs to: "
                "callbacks run in the run's feeder thread, which would wait for itself. Do it "
                "after the callback returns (e.g. set a flag or an Event in the callback)."
            )

    def request_cancel(self, grace: float | None) -> bool:
        """Ask the feeder to stop. ``grace``: seconds before running items are stopped hard
        (None: never; 0: at once). A second request while stopping stops hard at once.
        Returns False if the run had already ended."""
        with self._cond:
            if self._finished:
                return False
            self._stop.request(grace, time.monotonic())
            self._status = RunStatus.STOPPING
            self._wake()
            self._cond.notify_all()
            return True

    def suspend(self) -> None:
        with self._cond:
            self._suspended = True
            if self._status is RunStatus.RUNNING:
                self._status = RunStatus.SUSPENDED

    def resume(self) -> None:
        with self._cond:
            self._suspended = False
            if self._status is RunStatus.SUSPENDED:
                self._status = RunStatus.RUNNING
            self._wake()

    def add(self, items: tuple) -> None:
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
        with self._cond:
            self._input_open = False
            self._wake()

    def input_open(self) -> bool:
        return self._input_open

    def add_callback(self, kind: str, fn: Callable) -> bool:
        """Register ``fn``; False (not registered) for on_finished of an ended run."""
        with self._cond:
            if kind == "finished" and self._finished:
                return False
            self._callbacks[kind].append(fn)
            return True

    def callbacks(self, kind: str) -> list[Callable]:
        return self._callbacks[kind]

    # -- reading -------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def status(self) -> RunStatus:
        return self._status

    @property
    def suspended(self) -> bool:
        return self._suspended

    @property
    def total(self) -> int | None:
        with self._cond:
            if self._total is None and not self._input_open and self._finished:
                return finished_count(self._counts)
            return self._total

    def counts(self) -> dict[str, int]:
        with self._cond:
            executing, _ = self._remote
            running = min(self._in_flight, executing)
            return {"pending": self._in_flight - running, "running": running, **self._counts}

    def progress(self) -> float:
        with self._cond:
            if self._finished:
                return 1.0
            return fraction_done(self._counts, self._total, self._remote[1], self._in_flight)

    def failures(self) -> list:
        with self._cond:
            return list(self._failures)

    def summary_fields(self) -> dict:
        with self._cond:
            end = self._ended or time.time()
            return {"status": self._status.value, "elapsed": end - self.started, **self._counts}
