"""The feeder: one thread per run that streams items through the cluster.

::

    ItemSource ──take(k)──▶ ResumeFilter ──submit batch──▶ Dask ──done callback──▶ done queue
      ▲                                                                                 │
      │ RunState.room(): items in flight + results not taken <= buffersize              ▼
      └─────────────── feeder loop ◀── gather finished batches in bulk, one call ───────┘
                           │
                           ├─▶ Results: store session, callbacks, plot, the caller's chunks
                           └─▶ ~1 Hz StatusPublisher: the plugin, the terminal bar, on_progress

The loop never blocks for long: it waits on the done queue with a short timeout, so cancel,
suspend and added items are noticed within a tick. A cancelled run then *stops*: its tasks are
cancelled, and the feeder waits until no worker executes an item of the run any more; items
still running when the grace period ends are stopped hard (their worker processes restarted
through the scheduler plugin). Only then does the run end.
"""

from __future__ import annotations

import logging
import pickle
import queue
import threading
import time
from typing import Any

from distributed import Client

from daskfarm import _distributed, config
from daskfarm._protocol import RunOp
from daskfarm.client.batching import BatchSizer
from daskfarm.client.results import Batch, Results
from daskfarm.client.source import ItemSource, ResumeFilter
from daskfarm.client.state import RunState
from daskfarm.client.status import StatusPublisher
from daskfarm.client.stopping import Stopper
from daskfarm.exceptions import FarmConnectionError, FarmPicklingError
from daskfarm.run import call_safely
from daskfarm.worker import execute
from daskfarm.worker.reporter import short_repr

__all__ = ["Feeder"]

logger = logging.getLogger(__name__)

_UNREAD = object()
_TICK = 0.1  # seconds between checks of flags when nothing completes
_STATUS_EVERY = 1.0  # seconds between status messages to the plugin / progress bar
_CAPACITY_EVERY = 2.0  # seconds between two looks at the cluster's size


class Feeder:
    """Streams one run's items through the cluster (see the module docstring)."""

    def __init__(self, run_id: str, state: RunState, *, client: Client, source: ItemSource,
                 resume: ResumeFilter | None, session: Any, spec_bytes: bytes,
                 sizer: BatchSizer, capacity: Any, retries: int, status: StatusPublisher,
                 plot: Any, plugin: bool, on_end: Any):
        self.run_id = run_id
        self.state = state
        self.client = client
        self.source = source
        self.resume = resume
        self.session = session
        self.spec_bytes = spec_bytes
        self.sizer = sizer
        # worker threads to size the window for; asked again every few seconds, so workers
        # that join later (scale(), adapt(), batch jobs leaving the queue) get work
        self.capacity = capacity
        self.threads = capacity()
        self.last_capacity = self.started = time.monotonic()
        self.status = status
        self.plugin = plugin
        self.on_end = on_end  # closes the run's shard and the workers' copies of the task
        self.results = Results(state, session=session, plot=plot, retries=retries,
                               resubmit=self._submit_batch, observe=sizer.observe)
        self.done_q: queue.SimpleQueue = queue.SimpleQueue()
        self.in_flight: dict = {}  # future -> Batch
        # batches of the start's ramp (sent before any measurement) still in flight: they
        # stop counting against the window once the first measurement sets the size
        self.ramp: set = set()
        self.batch_no = 0
        self.last_status = 0.0
        self.disconnected_since: float | None = None
        self.lost_after = max(config.get_seconds("connect.timeout"), 1.0)
        self.scheduler_id = self._scheduler_id()
        self.stopper = Stopper(run_id, state, client, plugin)
        self.thread = threading.Thread(target=self._main, name=f"daskfarm-feeder-{run_id}",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float | None) -> bool:
        """Wait for the run's end; False if it goes on after ``timeout`` seconds."""
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout)
        return not self.thread.is_alive()

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    # -- plumbing --------------------------------------------------------------------------

    def wake(self) -> None:
        self.done_q.put(None)

    def _on_done(self, future) -> None:
        self.done_q.put(future)

    def _main(self) -> None:
        self.state.attach(self.wake)
        try:
            self.status.send(RunOp.START)
            self._loop()
        except BaseException as exc:  # the caller sees it on its next call
            logger.debug("run %s stopped by %r", self.run_id, exc)
            self.state.set_error(exc)
            self._cancel_in_flight()
        finally:
            self._finish()

    # -- main loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        state = self.state
        while True:
            if state.stop_wanted():
                self._cancel_in_flight()
                if state.cancelled():  # a failure (errors="raise") stops cooperatively
                    self.stopper.wait_idle(lambda: self.status.send(RunOp.UPDATE))
                return
            if self.client.status != "running":  # reconnecting: submit nothing, wait a while
                self._check_scheduler(time.monotonic())
                time.sleep(_TICK)
                continue
            self._fill()
            if not self.in_flight and self.source.finished():
                if self.source.error is not None:
                    raise self.source.error
                return
            self._collect()
            now = time.monotonic()
            if now - self.last_status >= _STATUS_EVERY:
                self.last_status = now
                self._tick(now)

    def _fill(self) -> None:
        state = self.state
        while state.may_submit():
            # two batches per thread in flight (see batching.py); results the caller has
            # not taken count against the same window, so its pace holds the run back
            counted = len(self.in_flight) - (len(self.ramp) if self.sizer.per_item else 0)
            if counted >= self.sizer.window(self.threads):
                return
            room = state.room(self.sizer.item_window(self.threads), self.results.held_back)
            if room <= 0:
                return
            size = self.sizer.next_size(threads=self.threads,
                                        remaining=state.remaining(self.source.pulled), cap=room,
                                        busy=bool(self.in_flight), buffersize=state.buffersize,
                                        batches=len(self.in_flight),
                                        elapsed=time.monotonic() - self.started)
            if size == 0:  # the room left is a sliver: wait for a batch to come back
                return
            start, items = self.source.take(size)
            if not items:
                if self.source.error is not None:
                    state.set_error(self.source.error)
                return
            self._submit(start, items)

    def _submit(self, start: int, items: list) -> None:
        if self.resume is None:
            self._submit_batch(Batch(start, items, None))
            return
        keys = self.resume.keys(items)
        keep = self.resume.missing(keys)
        if keep is None:
            self._submit_batch(Batch(start, items, keys))
            return
        # items already in the store are skipped (and yield their stored values again); the
        # others go one batch each
        self.state.counted(skipped=len(items) - len(keep))
        kept = set(keep)
        skipped = [j for j in range(len(items)) if j not in kept]
        values = iter(self._stored_values([keys[j] for j in skipped]))
        for j in range(len(items)):
            if j in kept:
                self._submit_batch(Batch(start + j, [items[j]], [keys[j]]))
            else:
                value = next(values, _UNREAD)
                self.results.skipped(start + j, None if value is _UNREAD else (items[j], value))

    def _stored_values(self, keys: list) -> list:
        try:
            return self.resume.stored_values(keys)
        except Exception:  # a value whose class cannot be imported here, a damaged block
            logger.warning("run %s: stored values of skipped items could not be read; they "
                           "are counted as skipped but not yielded", self.run_id, exc_info=True)
            return []

    def _submit_batch(self, batch: Batch) -> None:
        try:
            items_bytes = pickle.dumps(batch.items, protocol=5)
        except Exception:
            items_bytes = _pickle_items_or_raise(batch.items)
        key = (self.run_id, self.batch_no)
        self.batch_no += 1
        future = self.client.submit(execute.run_batch, self.spec_bytes, self.run_id,
                                    batch.start, items_bytes, key=key, pure=False)
        self.in_flight[future] = batch
        if self.sizer.per_item is None and not self.sizer.fixed:
            self.ramp.add(future)
        self.state.submitted(len(batch.items))
        future.add_done_callback(self._on_done)

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
        gathered = self._gather([f for f in futures if f.status == "finished"])
        for future in futures:
            batch = self.in_flight.pop(future)
            self.ramp.discard(future)
            self.state.returned(len(batch.items))
            if future in gathered:
                self.results.finished(batch, gathered[future])
            elif future.status == "cancelled":
                self.results.cancelled(batch, future.key)
            else:
                self.results.errored(batch, future)
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

    def _cancel_in_flight(self) -> None:
        futures = list(self.in_flight)
        if futures:
            try:
                self.client.cancel(futures, force=True, reason="daskfarm run cancelled")
            except Exception:
                logger.debug("cancelling in-flight futures failed", exc_info=True)
        self.in_flight.clear()
        self.ramp.clear()
        self.state.all_in_flight_cancelled()

    # -- status ----------------------------------------------------------------------------

    def _check_scheduler(self, now: float) -> None:
        """Raise once the client has been cut off from its scheduler for too long, or has
        reconnected (to a restarted scheduler, say): every future in flight is lost then."""
        if self.client.status == "running":
            if self.disconnected_since is not None or self._scheduler_id() != self.scheduler_id:
                raise FarmConnectionError(
                    f"the connection to the scheduler at {self.client.scheduler.address} was "
                    "lost and made again (a restarted scheduler?): the run's tasks in flight "
                    "are gone and the run stopped. Results received so far are in the store: "
                    "rerun the same map to resume."
                )
            return
        if self.disconnected_since is None:
            self.disconnected_since = now
        elif now - self.disconnected_since > self.lost_after:
            raise FarmConnectionError(
                f"lost the scheduler at {self.client.scheduler.address} for more than "
                f"{self.lost_after:g} s (client status {self.client.status!r}); the run stopped. "
                "Results received so far are in the store: rerun the same map to resume."
            )

    def _scheduler_id(self) -> str | None:
        return _distributed.scheduler_id(self.client)

    def _tick(self, now: float) -> None:
        self._check_scheduler(now)
        if now - self.last_capacity >= _CAPACITY_EVERY:
            self.last_capacity = now
            self.threads = self.capacity()
        if self.session is not None:
            self.session.maybe_flush()
            self.results.unstorable()
        points, self.results.plot_points = self.results.plot_points, []
        self.status.send(RunOp.UPDATE, points)
        self.status.draw("update")
        self.status.progress()

    def _finish(self) -> None:
        state = self.state
        errors = []
        try:
            for step in (self.session.flush if self.session is not None else None,
                         self.results.unstorable, self.on_end):
                if step is None:
                    continue
                try:  # each step on its own: a failed flush must not skip closing the shard
                    step()
                except BaseException as exc:
                    errors.append(exc)
            if errors:
                state.set_error(errors[0])
            status = state.end()
            points, self.results.plot_points = self.results.plot_points, []
            self.status.send(RunOp.FINISH, points)
            self.status.draw("close")
            self.status.progress(1.0 if status.value == "finished" else None)
        finally:
            # whatever happened above, waiters wake up and on_finished runs once
            callbacks = state.mark_finished()
            from daskfarm.run import RunSummary

            summary = RunSummary(**state.summary_fields())
            for fn in callbacks:
                call_safely(fn, summary)


def _pickle_items_or_raise(items: list) -> bytes:
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
