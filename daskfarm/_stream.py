"""The feeder: one thread per run that streams items through the cluster.

::

    items ──take(k)──▶ [resume check] ──submit batch──▶ Dask ──done callback──▶ _done queue
      ▲                                                                           │
      │ at most `buffersize` items in flight or waiting for the caller            ▼
      └──────────── feeder loop ◀── gather finished batches in bulk, one call ────┘
                        │
                        ├─▶ store session (put_many, committed about once a second)
                        ├─▶ run chunks (the caller's iterator), on_result callbacks
                        └─▶ ~1 Hz: counts to the scheduler plugin, terminal bar, on_progress

The loop never blocks for long: it waits on the done queue with a short timeout, so
cancel, suspend and added items are noticed within a tick.
"""

from __future__ import annotations

import itertools
import logging
import pickle
import queue
import threading
import time
from collections.abc import Iterable
from typing import Any

from dask.base import tokenize
from distributed import Client

from daskfarm import _execute, config
from daskfarm._batching import BatchSizer
from daskfarm.exceptions import (
    FarmConnectionError,
    FarmPicklingError,
    TaskFailedError,
    WorkerImportError,
)
from daskfarm.progress.plugin import RUN_TOPIC
from daskfarm.progress.reporter import short_repr
from daskfarm.run import Failure, Run

logger = logging.getLogger(__name__)

_TICK = 0.1  # seconds between checks of flags when nothing completes
_STATUS_EVERY = 1.0  # seconds between status messages to the plugin / progress bar
_CAPACITY_EVERY = 2.0  # seconds between two looks at the cluster's size


class RemoteTraceback(Exception):
    """Carries a worker's traceback text as the ``__cause__`` of a re-raised exception."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class _Batch:
    __slots__ = ("items", "keys", "resubmitted", "start")

    def __init__(self, start: int, items: list, keys: list | None):
        self.start = start
        self.items = items
        self.keys = keys
        self.resubmitted = 0


class Feeder(threading.Thread):
    """Streams one run's items through the cluster (see the module docstring)."""

    def __init__(self, run: Run, *, client: Client, items: Iterable | None, spec_bytes: bytes,
                 identity: str, store_session: Any, stored_keys: Any, sizer: BatchSizer,
                 capacity: Any, retries: int, progress_bar: Any, plot: Any, farm_plugin: bool):
        super().__init__(name=f"daskfarm-feeder-{run.run_id}", daemon=True)
        self.run_ = run
        self.client = client
        self.source = iter(items) if items is not None else None
        self.spec_bytes = spec_bytes
        self.identity = identity
        self.session = store_session
        self.stored = stored_keys if stored_keys is not None and len(stored_keys) else None
        self.sizer = sizer
        # worker threads to size the window for; asked again every few seconds, so workers
        # that join later (scale(), adapt(), batch jobs leaving the queue) get work
        self.capacity = capacity
        self.threads = capacity()
        self.last_capacity = time.monotonic()
        self.retries = retries
        self.bar = progress_bar
        self.plot = plot
        self.farm_plugin = farm_plugin
        self.done_q: queue.SimpleQueue = queue.SimpleQueue()
        self.in_flight: dict = {}  # future -> _Batch
        self.next_index = 0
        self.batch_no = itertools.count()
        self.exhausted = False
        # ordered runs: batch start index -> (items covered, pairs that succeeded)
        self.ordered_buffer: dict[int, tuple[int, list]] = {}
        self.next_ordered = 0
        self.last_status = 0.0
        self.plot_points: list = []
        self.on_end: Any = None  # set by the Farm: closes the run's shard and worker caches
        self.disconnected_since: float | None = None
        self.lost_after = max(config.get_seconds("connect.timeout"), 1.0)
        run._wake = self.wake

    # -- plumbing --------------------------------------------------------------------------

    def wake(self) -> None:
        self.done_q.put(None)

    def _on_done(self, future) -> None:
        self.done_q.put(future)

    def run(self) -> None:
        run = self.run_
        try:
            self._send_status("start")
            self._loop()
        except BaseException as exc:  # the caller sees it on its next call
            logger.debug("run %s stopped by %r", run.run_id, exc)
            with run._cond:
                if run._error is None:
                    run._error = exc
            self._cancel_in_flight()
        finally:
            self._finish()

    # -- main loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        run = self.run_
        while True:
            with run._cond:
                cancel = run._cancel_requested or run._error is not None
            if cancel:
                self._cancel_in_flight()
                return
            if self.client.status != "running":  # reconnecting: submit nothing, wait a while
                self._check_scheduler(time.monotonic())
                time.sleep(_TICK)
                continue
            self._fill()
            if not self.in_flight and self._input_finished():
                return
            self._collect()
            now = time.monotonic()
            if now - self.last_status >= _STATUS_EVERY:
                self.last_status = now
                self._tick()

    def _input_finished(self) -> bool:
        run = self.run_
        if self.source is not None:
            return self.exhausted
        with run._cond:
            return not run._input_open and not run._added

    def _room(self) -> int | None:
        """Items that may still be submitted under ``buffersize`` (None: no fixed limit)."""
        run = self.run_
        in_use = run._in_flight + run._unconsumed + self._ordered_waiting()
        if run._buffersize is not None:
            return run._buffersize - in_use
        # default: two batches of the current size per thread
        return 2 * self.threads * self.sizer.size - in_use

    def _ordered_waiting(self) -> int:
        if not self.run_._ordered:
            return 0
        return sum(len(pairs) for _, pairs in self.ordered_buffer.values())

    def _fill(self) -> None:
        run = self.run_
        while True:
            with run._cond:
                if run._suspended or run._cancel_requested:
                    return
                room = self._room()
            if room is None or room <= 0:
                return
            remaining = None
            if run._total is not None:
                remaining = max(run._total - self.next_index, 0)
            size = self.sizer.next_size(threads=self.threads, remaining=remaining, cap=room)
            items = self._take(size)
            if not items:
                return
            self._submit(items)

    def _take(self, n: int) -> list:
        if self.source is not None:
            if self.exhausted:
                return []
            items = list(itertools.islice(self.source, n))
            if len(items) < n:
                self.exhausted = True
            return items
        with self.run_._cond:
            added = self.run_._added
            return [added.popleft() for _ in range(min(n, len(added)))]

    def _submit(self, items: list) -> None:
        run = self.run_
        start = self.next_index
        self.next_index += len(items)
        keys = None
        if self.session is not None:
            keys = [tokenize(self.identity, item) for item in items]
            if self.stored is not None:
                keep = [j for j, k in enumerate(keys) if k not in self.stored]
                if len(keep) < len(items):
                    self._skip(start, items, keys, keep)
                    return
        self._submit_batch(_Batch(start, items, keys))
        with run._cond:
            run._in_flight += len(items)

    def _skip(self, start: int, items: list, keys: list, keep: list[int]) -> None:
        """Split off items already in the store; submit the others one batch each."""
        run = self.run_
        with run._cond:
            run._counts["skipped"] += len(items) - len(keep)
        kept = set(keep)
        for j, item in enumerate(items):
            if j in kept:
                self._submit_batch(_Batch(start + j, [item], [keys[j]]))
                with run._cond:
                    run._in_flight += 1
            elif run._ordered:
                self.ordered_buffer[start + j] = (1, [])
        self._release_ordered()

    def _submit_batch(self, batch: _Batch) -> None:
        try:
            items_bytes = pickle.dumps(batch.items, protocol=5)
        except Exception:
            items_bytes = self._pickle_items_or_raise(batch.items)
        key = (self.run_.run_id, next(self.batch_no))
        future = self.client.submit(_execute.run_batch, self.spec_bytes, self.run_.run_id,
                                    batch.start, items_bytes, key=key, pure=False)
        self.in_flight[future] = batch
        future.add_done_callback(self._on_done)

    def _pickle_items_or_raise(self, items: list) -> bytes:
        import cloudpickle

        for item in items:
            try:
                cloudpickle.dumps(item)
            except Exception as exc:
                raise FarmPicklingError(
                    f"the item {short_repr(item)} cannot be pickled to send it to a worker "
                    f"({type(exc).__name__}: {exc}); pass plain data (numbers, tuples, dicts, "
                    "arrays) as items"
                ) from exc
        return cloudpickle.dumps(items, protocol=5)

    # -- results ---------------------------------------------------------------------------

    def _collect(self) -> None:
        try:
            first = self.done_q.get(timeout=_TICK)
        except queue.Empty:
            return
        done = [first]
        while True:
            try:
                done.append(self.done_q.get_nowait())
            except queue.Empty:
                break
        futures = [f for f in done if f is not None and f in self.in_flight]
        if not futures:
            return
        finished = [f for f in futures if f.status == "finished"]
        gathered = self._gather(finished)
        for future in futures:
            batch = self.in_flight.pop(future)
            with self.run_._cond:
                self.run_._in_flight -= len(batch.items)
            if future in gathered:
                self._handle_outcomes(batch, gathered[future])
            elif future.status == "cancelled":
                self._count_cancelled(batch)
            else:
                self._handle_batch_error(batch, future)
            future.release()

    def _gather(self, finished: list) -> dict:
        """Results of finished futures, in one call; one by one if that call fails (a result
        lost with its worker must cost only its own batch, which is then run again)."""
        if not finished:
            return {}
        try:
            return dict(zip(finished, self.client.gather(finished)))
        except Exception:
            gathered = {}
            for future in finished:
                try:
                    gathered[future] = self.client.gather(future)
                except Exception:
                    logger.debug("the result of %s was lost", future.key, exc_info=True)
            return gathered

    def _handle_outcomes(self, batch: _Batch, payload: bytes) -> None:
        run = self.run_
        elapsed, outcomes = pickle.loads(payload)
        self.sizer.observe(len(outcomes), elapsed)
        pairs: list = []
        records: list = []
        n_failed = n_cancelled = 0
        keys = batch.keys
        for j, (status, value) in enumerate(outcomes):
            item = batch.items[j]
            if status == _execute.OK:
                if type(value) is _execute._CloudPickled:
                    value = value.load()
                pairs.append((item, value))
                if keys is not None:
                    records.append((keys[j], item, value))
            elif status == _execute.FAILED:
                n_failed += 1
                self._record_failure(batch.start + j, item, keys[j] if keys else None, value)
            else:
                n_cancelled += 1
        if self.session is not None and records:
            self.session.put_many(records)
        if run._callbacks["result"]:
            for item, value in pairs:
                run._fire("result", item, value)
        if self.plot is not None:
            self._plot(pairs)
        with run._cond:
            run._counts["done"] += len(pairs)
            run._counts["failed"] += n_failed
            run._counts["cancelled"] += n_cancelled
        self._deliver(batch.start, pairs, len(outcomes))

    def _deliver(self, start: int, pairs: list, n_items: int) -> None:
        run = self.run_
        if run._ordered:
            self.ordered_buffer[start] = (n_items, pairs)
            self._release_ordered()
            return
        if not pairs:
            return
        with run._cond:
            if run._consume_mode in (None, "results", "pairs"):
                pairs.reverse()  # the consumer pops from the end
                run._chunks.append(pairs)
                run._unconsumed += len(pairs)
                run._cond.notify_all()

    def _release_ordered(self) -> None:
        run = self.run_
        buffer = self.ordered_buffer
        released = []
        while self.next_ordered in buffer:
            n_items, pairs = buffer.pop(self.next_ordered)
            self.next_ordered += n_items
            released.extend(pairs)
        if released:
            with run._cond:
                if run._consume_mode in (None, "results", "pairs"):
                    released.reverse()
                    run._chunks.append(released)
                    run._unconsumed += len(released)
                    run._cond.notify_all()

    def _record_failure(self, index: int, item: Any, key: str | None, record: tuple) -> None:
        exc_type, message, tb, exception = record
        failure = Failure(item=item, exc_type=exc_type, message=message, traceback=tb,
                          exception=exception, index=index, key=key)
        run = self.run_
        with run._cond:
            run._failures.append(failure)
        if self.session is not None and key is not None:
            self.session.put_failure(key, item=item, exc_type=exc_type, message=message,
                                     traceback=tb)
        if run._errors == "raise":
            with run._cond:
                if run._error is None:
                    run._error = _reraisable(failure)

    def _handle_batch_error(self, batch: _Batch, future) -> None:
        if future.status == "finished" and batch.resubmitted < 2:
            # the task ran, but its result was lost before it was fetched: run it again
            batch.resubmitted += 1
            self._submit_batch(batch)
            with self.run_._cond:
                self.run_._in_flight += len(batch.items)
            return
        try:
            exc = future.exception(timeout=30)
        except Exception as err:  # the future vanished with its scheduler
            exc = err
        if exc is None:
            exc = RuntimeError(f"the result of Dask task {future.key} was lost twice")
        if isinstance(exc, WorkerImportError):
            raise exc
        if len(batch.items) > 1:
            # Isolate the item that broke the batch (a killed worker, a crash): run each alone.
            for j, item in enumerate(batch.items):
                keys = [batch.keys[j]] if batch.keys else None
                self._submit_batch(_Batch(batch.start + j, [item], keys))
                with self.run_._cond:
                    self.run_._in_flight += 1
            return
        from daskfarm._execute import failure_record

        with self.run_._cond:
            self.run_._counts["failed"] += 1
        self._record_failure(batch.start, batch.items[0], batch.keys[0] if batch.keys else None,
                             failure_record(exc))
        if self.run_._ordered:
            self.ordered_buffer[batch.start] = (1, [])
            self._release_ordered()

    def _count_cancelled(self, batch: _Batch) -> None:
        with self.run_._cond:
            self.run_._counts["cancelled"] += len(batch.items)
        if self.run_._ordered:
            self.ordered_buffer[batch.start] = (len(batch.items), [])
            self._release_ordered()

    def _cancel_in_flight(self) -> None:
        futures = list(self.in_flight)
        if futures:
            try:
                self.client.cancel(futures, force=True, reason="daskfarm run cancelled")
            except Exception:
                logger.debug("cancelling in-flight futures failed", exc_info=True)
        run = self.run_
        n = sum(len(b.items) for b in self.in_flight.values())
        self.in_flight.clear()
        with run._cond:
            run._in_flight = 0
            run._counts["cancelled"] += n

    # -- status ----------------------------------------------------------------------------

    def _check_scheduler(self, now: float) -> None:
        """Raise once the client has been cut off from its scheduler for too long."""
        if self.client.status == "running":
            self.disconnected_since = None
            return
        if self.disconnected_since is None:
            self.disconnected_since = now
        elif now - self.disconnected_since > self.lost_after:
            raise FarmConnectionError(
                f"lost the scheduler at {self.client.scheduler.address} for more than "
                f"{self.lost_after:g} s (client status {self.client.status!r}); the run stopped. "
                "Results received so far are in the store: rerun the same map to resume."
            )

    def _tick(self) -> None:
        run = self.run_
        now = time.monotonic()
        self._check_scheduler(now)
        if now - self.last_capacity >= _CAPACITY_EVERY:
            self.last_capacity = now
            self.threads = self.capacity()
        if self.session is not None:
            self.session.maybe_flush()
        self._send_status("update")
        self._draw_bar("update")
        if run._callbacks["progress"]:
            run._fire("progress", run.progress)

    def _draw_bar(self, how: str) -> None:
        """Draw the terminal bar; a bar that cannot be written (stderr closed) is dropped,
        never the run."""
        if self.bar is None:
            return
        try:
            getattr(self.bar, how)(self.run_)
        except Exception:
            logger.debug("the progress bar cannot be drawn any more", exc_info=True)
            self.bar = None

    def _plot(self, pairs: list) -> None:
        for item, value in pairs:
            try:
                x, y = self.plot(item, value)
                self.plot_points.append([float(x), float(y)])
            except Exception:
                logger.debug("plot function failed for %s", short_repr(item), exc_info=True)

    def _send_status(self, op: str) -> None:
        if not self.farm_plugin or self.client.status != "running":
            return  # a call to a scheduler that is gone would block until its timeout
        run = self.run_
        msg: dict = {"op": op, "run": run.run_id, "counts": run.counts, "status": run.status,
                     "total": run.total}
        if op == "start":
            msg.update(name=run.name, client=self.client.id, started=run._started,
                       plot=self.plot is not None)
        elapsed = time.time() - run._started
        msg["rate"] = run._counts["done"] / elapsed if elapsed > 0 else 0.0
        try:
            self.client.log_event(RUN_TOPIC, msg)
            if self.plot_points:
                points, self.plot_points = self.plot_points, []
                self.client.log_event(RUN_TOPIC, {"op": "points", "run": run.run_id,
                                                  "xy": points})
        except Exception:
            logger.debug("status message to the scheduler failed", exc_info=True)

    def _finish(self) -> None:
        run = self.run_
        errors = []
        for step in (self.session.flush if self.session is not None else None, self.on_end):
            if step is None:
                continue
            try:  # each step on its own: a failed flush must not skip closing the shard
                step()
            except BaseException as exc:
                errors.append(exc)
        error = errors[0] if errors else None
        with run._cond:
            if error is not None and run._error is None:
                run._error = error
            run._ended = time.time()
            if run._cancel_requested:
                run._status = "cancelled"
            elif run._error is not None:
                run._status = "failed"
            else:
                run._status = "finished"
            run._in_flight = 0
        self._send_status("finish")
        self._draw_bar("close")
        run._fire("progress", run.progress if run._status != "finished" else 1.0)
        with run._cond:
            run._finished = True
            run._cond.notify_all()
            callbacks = list(run._callbacks["finished"])
        summary = run.summary()
        for fn in callbacks:
            from daskfarm.run import _call_safely

            _call_safely(fn, summary)


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
