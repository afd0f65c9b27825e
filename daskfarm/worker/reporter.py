"""Progress reports from inside a task: ``daskfarm.report``.

A task calls ``report(fraction, message)`` (or takes a ``report`` argument, which is the same
object). Every call first checks whether the task was cancelled and raises
:class:`~daskfarm.TaskCancelled` if so: that is how a running task is stopped. Then, at most
about once a second per item, it sends one event through ``Worker.log_event`` on the fixed
topic ``daskfarm-progress``; the scheduler plugin keeps the live state.

The per-item state lives in a thread-local slot set by the worker-side batch runner, so calls
need no lock and leave nothing behind when the item ends. Messages that are due wait in a
per-process outbox that the worker's event loop sends as one event every 0.2 s. Outside a farm
task a call does nothing.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from numbers import Real
from typing import Any, TypeVar

from daskfarm import _distributed
from daskfarm._protocol import PROGRESS_TOPIC
from daskfarm.exceptions import FarmTypeError, FarmValueError, ItemTimeoutError, TaskCancelled

__all__ = ["Reporter", "report", "short_repr"]

#: Messages are untrusted text shown in a browser and kept on the scheduler: keep them short.
MAX_MESSAGE = 200
#: A changed message is sent at once, but never more often than this (seconds).
MESSAGE_INTERVAL = 0.1

T = TypeVar("T")

_local = threading.local()
# Tests replace this with a fake clock (tqdm's DiscreteTimer habit).
_clock = time.monotonic


class _ItemContext:
    """What ``report()`` needs to know about the item running in this thread."""

    __slots__ = (
        "cancelled",
        "index",
        "instance",
        "interval",
        "item",
        "key",
        "last_frac",
        "last_msg",
        "last_sent",
        "run_id",
        "sent",
        "start",
        "task_cancelled",
        "timeout",
        "timeout_sent",
    )

    def __init__(self, run_id: str, key: Any, interval: float, instance: Any = None,
                 timeout: float | None = None, task_cancelled: Any = None):
        self.run_id = run_id
        self.key = key
        self.interval = interval
        self.timeout = timeout
        # the batch's probe of its Dask task (_distributed.task_cancelled_probe): a report()
        # then costs two lookups instead of resolving the worker and the key each time
        self.task_cancelled = task_cancelled
        # a class task's instance: Brian shows its `taskname` attribute, read at report time
        self.instance = instance
        self.reset(0, None)

    def reset(self, index: int, item: Any) -> None:
        """Start the next item of the batch (one context serves a whole batch)."""
        self.index = index
        self.item = item
        self.start = _clock()
        self.last_sent = -1e300
        self.last_frac = 0.0
        self.last_msg = ""
        self.sent = False
        # set by the worker-side control handler when this one item is cancelled
        self.cancelled = False
        self.timeout_sent = False  # the watchdog asked for this item's hard stop


def _enter(ctx: _ItemContext | None) -> None:
    _local.ctx = ctx


def _current() -> _ItemContext | None:
    return getattr(_local, "ctx", None)


#: run id -> indices of single items cancelled from the panel (filled on the worker's loop)
cancelled_items: dict[str, set] = {}


def cancel_items(run: str, indices, **kwargs: Any) -> None:
    """Worker stream handler: mark single items of a run cancelled."""
    cancelled_items.setdefault(run, set()).update(indices)


def _check_cancelled(ctx: _ItemContext) -> None:
    if not ctx.cancelled and ctx.index in cancelled_items.get(ctx.run_id, ()):
        ctx.cancelled = True
    probe = ctx.task_cancelled
    if ctx.cancelled or (probe() if probe is not None else _distributed.current_task_cancelled()):
        raise TaskCancelled(
            f"item {ctx.index} of run {ctx.run_id} was cancelled; let this exception propagate "
            "so the worker frees the thread"
        )
    if ctx.timeout is not None and _clock() - ctx.start > ctx.timeout:
        raise ItemTimeoutError(
            f"item {ctx.index} of run {ctx.run_id} ran longer than its timeout of "
            f"{ctx.timeout:g} s; raise the limit with farm.map(..., timeout=seconds) or "
            "dask config 'daskfarm.timeout'"
        )


class Reporter:
    """The progress reporter that tasks call: ``report(fraction=None, message=None)``.

    One instance, :data:`daskfarm.report`, serves every task; a task whose signature has a
    ``report`` parameter receives the same object. Calls are cheap: the cancellation check
    runs every time, an event is sent at most about once a second per item (the first call,
    a fraction of 1 and a changed message always go out sooner).

    It also accepts the signatures Brian uses for its ``report=`` callbacks,
    ``report(elapsed, completed)`` (Brian 1) and ``report(elapsed, completed, start,
    duration)`` (Brian 2), so ``net.run(duration, report=report)`` shows the simulation's
    progress in the farm.

    Examples
    --------
    >>> from daskfarm import report
    >>> def simulate(x, report):
    ...     total = 0
    ...     for step in report.iter(range(100)):
    ...         total += step * x
    ...     report(1.0, "done")
    ...     return total
    >>> simulate(2, report)  # outside a farm task, report() does nothing
    9900
    """

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        ctx = _current()
        if ctx is None:
            return
        _check_cancelled(ctx)
        if len(args) == 1 and not kwargs:  # report(fraction), the call made in tight loops
            fraction, message = args[0], None
        else:
            fraction, message = _parse_args(args, kwargs)
        now = _clock()
        if fraction is None:
            fraction = ctx.last_frac
        else:
            fraction = min(max(_as_fraction(fraction), 0.0), 1.0)
        if message is None:
            message = ctx.last_msg
        else:
            message = str(message)[:MAX_MESSAGE]
        due = (
            not ctx.sent
            or fraction >= 1.0
            or now - ctx.last_sent >= ctx.interval
            or (message != ctx.last_msg and now - ctx.last_sent >= MESSAGE_INTERVAL)
        )
        ctx.last_frac = fraction
        ctx.last_msg = message
        if due:
            self._send(ctx, now)

    @staticmethod
    def _send(ctx: _ItemContext, now: float) -> None:
        msg = {
            "run": ctx.run_id,
            "key": _distributed.wire_key(ctx.key),
            "i": ctx.index,
            "frac": ctx.last_frac,
            "msg": ctx.last_msg,
            "elapsed": now - ctx.start,
        }
        if not ctx.sent:
            msg["item"] = short_repr(ctx.item)
        if ctx.instance is not None:
            taskname = getattr(ctx.instance, "taskname", None)
            if taskname:
                msg["taskname"] = str(taskname)[:MAX_MESSAGE]
        ctx.sent = True
        ctx.last_sent = now
        _outbox.put(msg)

    def iter(self, iterable: Iterable[T], total: int | None = None) -> Iterator[T]:
        """Yield from ``iterable``, reporting the fraction done after each step.

        Parameters
        ----------
        iterable : iterable
            The loop to wrap.
        total : int, optional
            Its length, if ``len(iterable)`` does not work (a generator).

        Examples
        --------
        >>> from daskfarm import report
        >>> [x * x for x in report.iter(range(4))]
        [0, 1, 4, 9]
        """
        if total is None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        done = 0
        for value in iterable:
            yield value
            done += 1
            if total:
                self(done / total)
            else:
                self(None, f"{done} done")

    def cancelled(self) -> bool:
        """Return True if the calling task was cancelled, without raising.

        For tasks that want to tidy up before they stop.
        """
        ctx = _current()
        if ctx is None:
            return False
        try:
            _check_cancelled(ctx)
        except TaskCancelled:
            return True
        return False

    def __repr__(self) -> str:
        return "<daskfarm.report>"

    def __reduce__(self):
        # One reporter per process: unpickling on a worker yields that worker's singleton.
        return (_get_reporter, ())


class _Outbox:
    """Progress messages of one worker process, sent as one event every ``FLUSH_INTERVAL``.

    A thousand tasks reporting once a second would otherwise be a thousand scheduler messages a
    second; batched, they are a few. Per item only the newest message is kept (with the item's
    description from its first one). The flush runs on the worker's event loop.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._pending: dict = {}
        self._started: weakref.WeakSet = weakref.WeakSet()

    def put(self, msg: dict) -> None:
        ident = (msg["run"], msg["i"])
        with self._lock:
            old = self._pending.get(ident)
            if old is not None and "item" in old and "item" not in msg:
                msg["item"] = old["item"]
            self._pending[ident] = msg
        worker = _distributed.current_worker()
        if worker is not None and worker not in self._started:
            self._started.add(worker)  # weakly: a closed worker's address may come back
            _distributed.call_periodically(worker, self.flush, FLUSH_INTERVAL)

    def flush(self) -> None:
        with self._lock:
            if not self._pending:
                return
            batch, self._pending = list(self._pending.values()), {}
        _distributed.log_worker_event(PROGRESS_TOPIC, {"batch": batch})


#: seconds between two progress events of one worker process
FLUSH_INTERVAL = 0.2
_outbox = _Outbox()


def short_repr(obj: Any, limit: int = 80) -> str:
    """``repr(obj)`` cut to ``limit`` characters, never raising."""
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_fraction(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise FarmValueError(
            f"report() got the fraction {value!r}: pass a number between 0 and 1, e.g. "
            "report(0.5) or report(0.5, 'half way'); a message alone is report(message=...)"
        ) from None


def _get_reporter() -> Reporter:
    return report


def _parse_args(args: tuple, kwargs: dict) -> tuple[float | None, str | None]:
    """Map the three call conventions onto (fraction, message)."""
    if "fraction" in kwargs or "message" in kwargs or not args:
        fraction = kwargs.pop("fraction", args[0] if args else None)
        message = kwargs.pop("message", args[1] if len(args) > 1 else None)
        if kwargs:
            raise FarmTypeError(
                f"report() got unexpected keyword arguments {sorted(kwargs)}; it takes "
                "report(fraction=None, message=None)"
            )
        return fraction, message
    if len(args) == 1:
        return args[0], None
    second = args[1]
    # report(elapsed, completed[, start, duration]): Brian's callbacks pass numbers only.
    if isinstance(second, Real) and not isinstance(second, bool):
        completed = float(second)
        # Brian 1 resets a finished sub-run with `complete % 1.0`; the farm counts the item
        # done itself, so a final 1.0 is kept as 1.0 here.
        return completed, None
    if len(args) > 2:
        raise FarmTypeError(
            "report() takes (fraction, message) or Brian's (elapsed, completed, start, duration)"
        )
    return args[0], second


report = Reporter()
