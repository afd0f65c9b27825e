"""What the feeder does with a batch that came back: outcomes, failures, order, reruns.

A finished batch carries one outcome per item (:class:`~daskfarm._protocol.Outcome`): results
go to the store, the callbacks, the live plot and the caller's iterator (in input order for
ordered runs, held back here until the items before them are in); failures become
:class:`~daskfarm.Failure` records. A batch that did not finish is run again if its result
was lost, split into single items if something broke it, or failed as a whole item; a batch
cancelled because one of its items overran its timeout fails that item and runs the others
again.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any

from daskfarm._protocol import Outcome
from daskfarm.client.state import RunState
from daskfarm.exceptions import FarmPicklingError, ItemTimeoutError, TaskFailedError
from daskfarm.run import Failure, call_safely
from daskfarm.worker.execute import _CloudPickled, failure_record
from daskfarm.worker.reporter import short_repr

__all__ = ["Batch", "RemoteTraceback", "Results"]

logger = logging.getLogger(__name__)

_UNSTORABLE = ("the task's result {} cannot be stored: only cloudpickle can pickle it (a "
               "lambda, a local class). Return plain data (numbers, arrays, dicts, "
               "dataclasses defined at module level) instead")
#: a batch whose result was lost (its worker died after finishing) is run this often again
LOST_RERUNS = 2


class RemoteTraceback(Exception):
    """Carries a worker's traceback text as the ``__cause__`` of a re-raised exception."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class Batch:
    """Items sent as one Dask task: their input position, store keys and reruns so far."""

    __slots__ = ("attempts", "items", "keys", "resubmitted", "start")

    def __init__(self, start: int, items: list, keys: list | None, attempts: int = 0):
        self.start = start
        self.items = items
        self.keys = keys
        self.resubmitted = 0
        self.attempts = attempts  # hard timeouts of this (single-item) batch so far

    def one(self, j: int) -> Batch:
        """Item ``j`` as a batch of its own."""
        return Batch(self.start + j, [self.items[j]],
                     [self.keys[j]] if self.keys is not None else None, self.attempts)


class Results:
    """Outcomes of the run's batches, into the store, the callbacks and the caller's hands."""

    def __init__(self, state: RunState, *, session: Any, plot: Any, retries: int,
                 resubmit: Any, observe: Any):
        self.state = state
        self.session = session
        self.plot = plot
        self.retries = retries
        self._resubmit = resubmit  # feeder: send a Batch again
        self._observe = observe  # batch sizer: (items, seconds)
        self.plot_points: list = []
        # ordered runs: batch start index -> (items covered, pairs that succeeded)
        self._held: dict[int, tuple[int, list]] = {}
        self._next = 0
        self.held_back = 0

    # -- outcomes ------------------------------------------------------------------------

    def finished(self, batch: Batch, payload: bytes) -> None:
        elapsed, values, marks, wrapped, durations, worker = pickle.loads(payload)
        self._observe(len(values), elapsed)
        items, keys = batch.items, batch.keys
        n_failed = n_cancelled = 0
        if not marks and not wrapped:  # the common case, without a step per item in Python
            pairs = list(zip(items, values))
            records = _records(keys, items, values, durations, worker)
        else:
            pairs, records = [], []
            for j, value in enumerate(values):
                status = marks.get(j, Outcome.OK)
                if status == Outcome.OK:
                    if wrapped and type(value) is _CloudPickled:
                        if keys is not None:  # the store pickles with pickle: it cannot keep it
                            n_failed += 1
                            self.failure(batch.start + j, items[j], keys[j], failure_record(
                                FarmPicklingError(_UNSTORABLE.format(short_repr(value.load())))))
                            continue
                        value = value.load()
                    pairs.append((items[j], value))
                    if keys is not None:
                        records.append((keys[j], items[j], value,
                                        durations[j] if durations else None, worker))
                elif status == Outcome.FAILED:
                    n_failed += 1
                    self.failure(batch.start + j, items[j], keys[j] if keys else None, value)
                else:
                    n_cancelled += 1
        if records:
            self.session.put_many(records)
        state = self.state
        for fn in state.callbacks("result"):
            for item, value in pairs:
                call_safely(fn, item, value)
        if self.plot is not None:
            self._plot(pairs)
        state.counted(done=len(pairs), failed=n_failed, cancelled=n_cancelled)
        self._deliver(batch.start, pairs, len(values))

    def unstorable(self) -> None:
        """Results the store could not pickle when it committed them: it stored failure
        records instead; they become the items' failures here too (no longer done)."""
        if self.session is None:
            return
        for _key, item, exc in self.session.pop_unstorable():
            self.state.counted(done=-1, failed=1)
            self.failure(-1, item, None, failure_record(exc))

    def failure(self, index: int, item: Any, key: str | None, record: tuple) -> None:
        exc_type, message, tb, exception = record
        failure = Failure(item=item, exc_type=exc_type, message=message, traceback=tb,
                          exception=exception, index=index, key=key)
        if self.session is not None and key is not None:
            self.session.put_failure(key, item=item, exc_type=exc_type, message=message,
                                     traceback=tb)
        self.state.failed(failure, _reraisable(failure) if self.state.errors == "raise"
                          else None)

    def _plot(self, pairs: list) -> None:
        for item, value in pairs:
            try:
                x, y = self.plot(item, value)
                self.plot_points.append([float(x), float(y)])
            except Exception:
                logger.debug("plot function failed for %s", short_repr(item), exc_info=True)

    # -- batches that did not finish -----------------------------------------------------

    def cancelled(self, batch: Batch, key: Any) -> None:
        timeout = self.state.pop_timeout(key)
        if timeout is None:
            self.state.counted(cancelled=len(batch.items))
            self._deliver(batch.start, [], len(batch.items))
            return
        index, seconds = timeout
        j = index - batch.start
        for other in range(len(batch.items)):
            if other != j:  # lost with the batch, not at fault: run again
                self._resubmit(batch.one(other))
        if not 0 <= j < len(batch.items):
            return
        single = batch.one(j)
        if single.attempts < self.retries:
            single.attempts += 1
            self._resubmit(single)
            return
        exc = ItemTimeoutError(
            f"item {short_repr(batch.items[j])} ran longer than its timeout of {seconds:g} s "
            "and did not stop at report(): its worker process was restarted. Raise the limit "
            "with farm.map(..., timeout=seconds)."
        )
        self.state.counted(failed=1)
        self.failure(index, batch.items[j], single.keys[0] if single.keys else None,
                     failure_record(exc))
        self._deliver(index, [], 1)

    def errored(self, batch: Batch, future: Any) -> None:
        """A batch that raised in Dask itself (not in the task): rerun, isolate or fail."""
        if future.status == "finished" and batch.resubmitted < LOST_RERUNS:
            # the task ran, but its result was lost before it was fetched: run it again
            batch.resubmitted += 1
            self._resubmit(batch)
            return
        try:
            exc = future.exception(timeout=30)
        except Exception as err:  # the future vanished with its scheduler
            exc = err
        if exc is None:
            exc = RuntimeError(f"the result of Dask task {future.key} was lost twice")
        from daskfarm.exceptions import WorkerImportError

        if isinstance(exc, WorkerImportError):
            raise exc
        if len(batch.items) > 1:
            # Isolate the item that broke the batch (a killed worker, a crash): run each alone.
            for j in range(len(batch.items)):
                self._resubmit(batch.one(j))
            return
        self.state.counted(failed=1)
        self.failure(batch.start, batch.items[0], batch.keys[0] if batch.keys else None,
                     failure_record(exc))
        self._deliver(batch.start, [], 1)

    def skipped(self, start: int, pair: tuple | None) -> None:
        """An item the store already holds: its stored ``(item, value)`` is yielded again in
        its place (None: its value could not be read)."""
        self._deliver(start, [pair] if pair is not None else [], 1)

    # -- order ---------------------------------------------------------------------------

    def _deliver(self, start: int, pairs: list, n_items: int) -> None:
        if not self.state.ordered:
            self.state.deliver(pairs)
            return
        self._held[start] = (n_items, pairs)
        self.held_back += len(pairs)
        released = []
        while self._next in self._held:
            n, got = self._held.pop(self._next)
            self._next += n
            self.held_back -= len(got)
            released.extend(got)
        self.state.deliver(released)


def _records(keys: list | None, items: list, values: list, durations: list | None,
             worker: str | None) -> list:
    """Store records of a batch whose items all succeeded, with their provenance."""
    if keys is None:
        return []
    if durations is None:
        return list(zip(keys, items, values))
    return [(k, i, v, d, worker) for k, i, v, d in zip(keys, items, values, durations)]


def _reraisable(failure: Failure) -> BaseException:
    """The worker's exception with its remote traceback attached, as ProcessPool does."""
    exc = failure.exception
    if exc is None:
        return TaskFailedError(
            f"item {short_repr(failure.item)} failed with {failure.exc_type}: "
            f"{failure.message}\n{failure.traceback}",
            exc_type=failure.exc_type, traceback=failure.traceback, item=failure.item,
        )
    exc.__cause__ = RemoteTraceback(failure.traceback)
    if hasattr(exc, "add_note"):
        exc.add_note(f"daskfarm: raised by the task for item {short_repr(failure.item)}")
    return exc
