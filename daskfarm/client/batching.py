"""Choosing how many items go into one Dask task.

Dask costs about 1-2 ms of scheduler and client time per task on a 2-core machine
(measured: bench/README.md), so 1 ms items sent one per task leave the cores three quarters
idle. The sizer measures how long items take on the workers and groups them so that one Dask
task runs for about ``target`` seconds.

*Start*: before anything is measured, each worker thread gets a batch of one item and one
of two (``RAMP``), sent at once: the first results come back fast, and a thread has work
while the first measurement makes its round trip (15-25 ms on a 2-core machine). A longer
ramp (1, 2, 4, 8) covered that round trip for 1 ms items but cost more in Dask tasks than
it saved on 10 ms ones (bench/README.md). The first measured duration then sets the size at
once, to a quarter of the target (a first item can mislead: cold caches make it slow, which
only costs a smaller batch; an easy first item makes it fast, which the quarter bounds).
From there the size grows at most ``growth`` times per completed batch.

*Window*: the feeder keeps two batches per worker thread in flight (one running, one waiting
on the worker, so no thread waits for a round trip), counted in batches rather than items:
a window counted in items sent a sliver each time a few items came back, and every sliver
paid Dask's whole per-task cost. Under a ``buffersize`` a batch holds at most a
``2 * threads``-th of it, for the same reason; when less room than half a batch is left
while others run, the feeder waits for one to come back instead of sending a sliver.

*Tail*: with a known total, a batch holds at most ``remaining / (2 * threads)`` of the items
not yet submitted (guided self-scheduling, halved because each thread has a batch waiting
ahead of the new one: ``remaining / threads`` sent fewer tasks but left a worker idle at the
end, 0.90x against 0.96x Pool on 1 ms items), so batches shrink as the run ends and every
worker finishes at about the same time; never below ``min_seconds`` of work, where Dask's
per-task cost would show again, and the last batch takes what would be left over.

*Streams*: with no known total the caller may stop the run at any moment; then what the
batches in flight have done is lost, and until then its results come a batch at a time.
There a batch holds at most ``stream_share`` (an eighth) of the time the run has been going,
and never less than ``STREAM_FLOOR`` (0.1 s) of work, so a short stream keeps its batches
short and a long one reaches ``target`` after 4 s. The first 2,000 results of an endless
stream of 1 ms items (bench/peers.py): 1,286 -> 1,442 per second (0.78x -> 0.89x Pool),
1,528 -> 619 items pulled beyond them; bench/stream.py sees the pull halve but not the
rate rise (bench/README.md).

Items of ``LONG_ITEM`` (0.2 s) or more always go one per task: Dask's cost of a task (about
5 ms of a 2-core machine's time next to CPU-bound items, bench/README.md) is under 3% of
them, and batching them would only cost balance across workers. Items of 50-200 ms are
batched: one per task cost 100 ms items 6-7% of the cores here (0.94x Pool; batched, 0.97x).
"""

from __future__ import annotations

import math

__all__ = ["LONG_ITEM", "RAMP", "STREAM_FLOOR", "BatchSizer"]

#: seconds from which an item always runs in a Dask task of its own
LONG_ITEM = 0.2
#: batches per worker thread sent before the first measurement: of 1, 2, ... items
RAMP = 2
#: seconds of work a batch of a stream (no known total) may always hold
STREAM_FLOOR = 0.1


class BatchSizer:
    """Batch size from measured per-item durations.

    Parameters
    ----------
    fixed : int, optional
        A fixed batch size (``batch_size=<int>``); the sizer then never changes it.
    target : float
        Seconds one Dask task should run.
    max_size : int
        The largest batch.
    growth : float
        The largest factor by which the size grows after one batch (after the first).
    min_seconds : float
        The least work a batch of the tail holds, and the least worth sending while other
        batches are still running.
    first_share : float
        The share of ``target`` the first measurement sets at once.
    tail_split : float
        A batch of the tail holds at most ``remaining / (tail_split * threads)`` items.
    stream_share : float
        With no known total, a batch holds at most this share of the run's elapsed time
        (and ``STREAM_FLOOR`` seconds at least).

    Examples
    --------
    >>> sizer = BatchSizer()
    >>> [sizer.next_size(threads=2, remaining=2000, cap=None, batches=b) for b in range(4)]
    [1, 1, 2, 2]
    >>> sizer.window(threads=2)  # batches in flight before the first measurement
    4
    >>> sizer.observe(1, 0.001)  # the first item took 1 ms: a quarter of 0.5 s at once
    >>> sizer.size
    125
    >>> sizer.window(threads=2)  # then one running and one waiting per thread
    4
    >>> sizer.next_size(threads=2, remaining=400, cap=None)  # the tail: 400 / (2 * 2)
    100
    >>> sizer.next_size(threads=2, remaining=60, cap=None)  # >= 40 ms of work, no sliver left
    60
    >>> sizer.next_size(threads=2, remaining=None, cap=None, elapsed=0.4)  # a stream: 0.1 s
    100
    >>> sizer.next_size(threads=2, remaining=None, cap=None, elapsed=2.0)  # 0.25 s: its size
    125
    """

    def __init__(self, fixed: int | None = None, *, target: float = 0.5, max_size: int = 10_000,
                 growth: float = 4.0, min_seconds: float = 0.04, first_share: float = 0.25,
                 tail_split: float = 2.0, stream_share: float = 0.125):
        self.fixed = fixed
        self.target = target
        self.max_size = max_size
        self.growth = growth
        self.min_seconds = min_seconds
        self.first_share = first_share
        self.tail_split = tail_split
        self.stream_share = stream_share
        self.size = fixed or 1
        self.per_item: float | None = None

    def observe(self, n_items: int, seconds: float) -> None:
        """Record that a batch of ``n_items`` took ``seconds`` of compute on a worker."""
        if self.fixed or n_items <= 0:
            return
        per_item = max(seconds / n_items, 1e-7)
        first = self.per_item is None
        # exponential average: a few slow items should not collapse a good size at once
        self.per_item = per_item if first else 0.7 * self.per_item + 0.3 * per_item
        # Long items gain little from batching (Dask's few ms per task are small next to
        # them) and would only lose balance across workers: one item per task.
        if self.per_item >= LONG_ITEM:
            self.size = 1
            return
        if first:
            wanted = max(self.size, int(self.target * self.first_share / self.per_item))
        else:
            wanted = max(1, int(self.target / self.per_item))
            if wanted > self.size:
                wanted = min(wanted, math.ceil(self.size * self.growth))
        self.size = max(1, min(wanted, self.max_size))

    def smallest(self) -> int:
        """The fewest items worth a Dask task of their own (``min_seconds`` of work)."""
        if self.fixed or self.per_item is None:
            return 1
        return max(1, min(self.size, math.ceil(self.min_seconds / self.per_item)))

    def window(self, threads: int) -> int:
        """How many batches may be in flight at once (see the module docstring)."""
        per_thread = RAMP if self.per_item is None and not self.fixed else 2
        return per_thread * max(threads, 1)

    def item_window(self, threads: int) -> int:
        """How many items may be in flight or wait for the caller, when ``buffersize`` does
        not say: the window's batches (results the caller has not taken count against it)."""
        if self.per_item is None and not self.fixed:
            return max(threads, 1) * (2 ** RAMP - 1)
        return self.window(threads) * self.size

    def next_size(self, *, threads: int, remaining: int | None, cap: int | None,
                  busy: bool = False, buffersize: int | None = None, batches: int = 0,
                  elapsed: float | None = None) -> int:
        """The size of the next batch; 0 means wait until a running batch comes back.

        ``remaining`` (items not yet submitted, when known) shrinks the batches of the tail
        (see the module docstring); ``cap`` is the room left, in items, under ``buffersize``
        or the default window, and ``buffersize`` the user's limit itself. ``busy`` says other
        batches are running: a cap below half the batch then waits for room instead of
        sending a sliver. ``batches`` is the number in flight, which sets the start's ramp;
        ``elapsed``, the seconds since the run started, bounds a stream's batches.
        """
        size = self.size
        threads = max(threads, 1)
        if not self.fixed and self.per_item is None:
            size = 2 ** min(batches // threads, RAMP - 1)
        if not self.fixed and buffersize is not None:
            size = min(size, max(1, buffersize // (2 * threads)))
        if (not self.fixed and remaining is None and elapsed is not None
                and self.per_item is not None):
            seconds = max(STREAM_FLOOR, elapsed * self.stream_share)
            size = min(size, max(1, int(seconds / self.per_item)))
        if not self.fixed and remaining is not None:
            smallest = self.smallest()
            size = min(size, max(smallest, math.ceil(remaining / (self.tail_split * threads))))
            if remaining - size < smallest:  # leave no sliver for a task of its own
                size = remaining
            size = min(size, max(remaining, 1))
        if cap is not None and cap < size:
            if busy and 2 * cap < size and (remaining is None or cap < remaining):
                return 0
            size = max(1, cap)
        return max(1, size)
