"""``Run``: the handle that :meth:`Farm.map` returns.

The work is done by the run's feeder thread (:mod:`daskfarm.client.feeder`); what the feeder
and the caller share is a :class:`~daskfarm.client.state.RunState`, which owns every counter,
buffer and flag. A Run is a thin handle over it: it reads the state and asks it for named
transitions, and writes nothing else's fields.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from daskfarm import config
from daskfarm.client.stopping import HARD_STOP_BOUND
from daskfarm.exceptions import FarmValueError

if TYPE_CHECKING:
    from daskfarm.client.state import RunState

logger = logging.getLogger(__name__)

__all__ = ["Failure", "Run", "RunSummary"]

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
    ...     sweep = farm.map(simulate, range(100), store="results/")
    ...     for value in sweep:
    ...         print(value, sweep.progress, sweep.counts)
    ...     summary = sweep.wait()
    """

    def __init__(self, run_id: str, state: RunState):
        self.run_id = run_id
        self.name = state.name
        self._state = state
        self._join: Callable[[float | None], bool] = lambda timeout: True  # set by the Farm
        self._taken: list = []  # the rest of the batch being iterated, last pair first

    # -- iteration -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        # taking a few results (islice) and then looping over the rest is one consumer
        self._state.claim("results", again_ok=True)
        return self

    def __next__(self) -> Any:
        if self._state.mode() is None:
            self._state.claim("results")
        return self._next_pair()[1]

    def pairs(self) -> Iterator[tuple[Any, Any]]:
        """Iterate ``(item, result)`` pairs instead of bare results.

        Examples
        --------
        >>> for params, value in farm.map(simulate, grid).pairs():   # doctest: +SKIP
        ...     print(params, value)
        """
        self._state.claim("pairs")
        return self._iter_pairs()

    def _iter_pairs(self) -> Iterator[tuple[Any, Any]]:
        while True:
            try:
                yield self._next_pair()
            except StopIteration:
                return

    def _next_pair(self) -> tuple[Any, Any]:
        if self._taken:
            return self._taken.pop()
        try:
            chunk = self._state.next_chunk()
        except (KeyboardInterrupt, SystemExit):
            self._interrupted()
            raise
        pair = chunk.pop()
        self._taken = chunk
        return pair

    def _interrupted(self) -> None:
        # Ctrl-C or SIGTERM in the caller: stop the run; a second one during the stop stops
        # running items hard (the grace period is for the first)
        try:
            self.cancel()
        except (KeyboardInterrupt, SystemExit):
            self._state.request_cancel(0)
            self._join(_HARD_STOP_BOUND)
            raise

    # -- control -------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> RunSummary:
        """Drain the run: let every item finish (each result stored) and return the summary.

        Results not yet taken are dropped (they are in the store, if the run has one). After
        :meth:`cancel`, it returns once no item of the run executes on any worker.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait; on timeout the run goes on and ``TimeoutError`` is raised.

        Raises
        ------
        Exception
            The first task failure, with ``errors="raise"``.
        FarmStateError
            Called from one of the run's own callbacks (which run in its feeder thread).
        """
        timeout = _check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        self._taken = []
        try:
            self._state.wait_finished(deadline, timeout)
        except (KeyboardInterrupt, SystemExit):
            self._interrupted()
            raise
        return self.summary()

    def cancel(self, grace: float | str | None = None) -> None:
        """Stop the run; results already stored are kept.

        No more items are pulled and pending ones are cancelled at once. Running items get
        :class:`~daskfarm.TaskCancelled` at their next ``report()`` call; one still running
        ``grace`` seconds later is stopped hard: the worker process running it is restarted
        (through its nanny), and that worker's other tasks are rescheduled without blame.
        Calling ``cancel`` again while the run is stopping stops hard at once.

        Returns when no item of the run executes any more (bounded by the grace plus a worker
        restart); from one of the run's own callbacks it only asks, and returns at once.

        Parameters
        ----------
        grace : float or str, optional
            Seconds (or a string such as ``"5s"``) before the hard stop; 0 stops hard at once.
            Default: the dask config key ``daskfarm.cancel-grace`` (5 s).

        Notes
        -----
        Workers without a nanny (``Farm(processes=False)``, ``dask worker --no-nanny``) cannot
        be restarted: there the stop stays cooperative (a warning says so once), and a task
        that never calls ``report()`` runs its item to the end; its result is dropped.
        """
        seconds = config.get_seconds("cancel-grace", grace)
        if seconds < 0:
            raise FarmValueError(f"grace must be >= 0 seconds, not {grace!r}")
        if not self._state.request_cancel(seconds):
            return
        if not self._state.in_feeder():
            self._join(seconds + _HARD_STOP_BOUND)

    def suspend(self) -> None:
        """Stop feeding new items; running and queued ones go on."""
        self._state.suspend()

    def resume(self) -> None:
        """Start feeding new items again after :meth:`suspend`."""
        self._state.resume()

    def add(self, *items: Any) -> None:
        """Add items to a run started with ``items=None`` (pydidas' ``add_task``)."""
        self._state.add(items)

    def close_input(self) -> None:
        """Declare that no more items will be added; the run ends when they are done."""
        self._state.close_input()

    # -- callbacks -----------------------------------------------------------------------

    def on_result(self, fn: Callable[[Any, Any], Any]) -> Callable:
        """Call ``fn(item, result)`` for every result as it arrives (in the feeder thread).

        A run with result callbacks that is not being iterated keeps no results for the
        caller: the callbacks consume them (so the run never stalls on ``buffersize``).
        """
        self._state.add_callback("result", fn)
        return fn

    def on_progress(self, fn: Callable[[float], Any]) -> Callable:
        """Call ``fn(progress)`` (0..1) about once a second and at the end."""
        self._state.add_callback("progress", fn)
        return fn

    def on_finished(self, fn: Callable[[RunSummary], Any]) -> Callable:
        """Call ``fn(summary)`` once when the run ends (at once if it already has)."""
        if not self._state.add_callback("finished", fn):
            call_safely(fn, self.summary())
        return fn

    # -- state ---------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True once the run has ended (finished, cancelled or failed)."""
        return self._state.finished

    @property
    def total(self) -> int | None:
        """The number of items, when known (``numitems``, ``len(items)``, or a closed input)."""
        return self._state.total

    @property
    def counts(self) -> dict[str, int]:
        """``pending``, ``running``, ``done``, ``failed``, ``skipped`` and ``cancelled``."""
        return self._state.counts()

    @property
    def progress(self) -> float:
        """The fraction done, 0..1, counting the running tasks' reported fractions."""
        return self._state.progress()

    @property
    def failures(self) -> list[Failure]:
        """Every failed item so far (with ``errors="continue"``; the first one otherwise)."""
        return self._state.failures()

    @property
    def status(self) -> str:
        """``running``, ``suspended``, ``stopping``, ``finished``, ``cancelled`` or ``failed``."""
        return self._state.status.value

    def summary(self) -> RunSummary:
        """The counts and elapsed time so far (final once the run is done)."""
        return RunSummary(**self._state.summary_fields())

    def _repr_html_(self) -> str:
        from daskfarm.client.html import run_html

        return run_html(self)

    def __repr__(self) -> str:
        c = self._state.summary_fields()
        return (f"<Run {self.name!r} {c['status']}: done {c['done']}, failed {c['failed']}, "
                f"skipped {c['skipped']}, cancelled {c['cancelled']}>")


#: seconds to wait for a stopping run beyond its grace: the hard stop, and then some
_HARD_STOP_BOUND = HARD_STOP_BOUND + 10.0


def call_safely(fn: Callable, *args: Any) -> None:
    """Call a user callback; whatever it raises (even SystemExit) is logged, not the run's end."""
    try:
        fn(*args)
    except BaseException:
        # A broken callback (a GUI hook, say) must not lose the sweep's results.
        logger.exception("run callback %r failed", fn)


def _check_timeout(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise FarmValueError(f"timeout must be a number of seconds >= 0 (or None), not "
                             f"{timeout!r}")
    return float(timeout)
