"""Choosing how many items go into one Dask task.

Dask costs about 1-2 ms of scheduler and client time per task on a 2-core machine
(measured: bench/README.md), so 1 ms items sent one per task leave the cores three quarters
idle. The sizer measures how long items take on the workers and groups them so that one Dask
task runs for about ``target`` seconds. It starts at one item, so the first results come back
fast, and grows at most ``growth`` times per completed batch, so one misleading measurement
cannot make a huge batch. Items of ``LONG_ITEM`` (50 ms) or more always go one per task, so
batching never slows a run of such items down.
"""

from __future__ import annotations

import math

__all__ = ["LONG_ITEM", "BatchSizer"]

#: seconds from which an item always runs in a Dask task of its own
LONG_ITEM = 0.05


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
        The largest factor by which the size grows after one batch.
    """

    def __init__(self, fixed: int | None = None, *, target: float = 0.5, max_size: int = 10_000,
                 growth: float = 4.0):
        self.fixed = fixed
        self.target = target
        self.max_size = max_size
        self.growth = growth
        self.size = fixed or 1
        self.per_item: float | None = None

    def observe(self, n_items: int, seconds: float) -> None:
        """Record that a batch of ``n_items`` took ``seconds`` of compute on a worker."""
        if self.fixed or n_items <= 0:
            return
        per_item = max(seconds / n_items, 1e-7)
        # exponential average: a few slow items should not collapse a good size at once
        self.per_item = per_item if self.per_item is None else 0.7 * self.per_item + 0.3 * per_item
        # Items of 50 ms or more gain nothing from batching (Dask's ~2 ms per task is small
        # next to them) and would only lose balance across workers: one item per task.
        wanted = 1 if self.per_item >= LONG_ITEM else max(1, int(self.target / self.per_item))
        if wanted > self.size:
            wanted = min(wanted, math.ceil(self.size * self.growth))
        self.size = max(1, min(wanted, self.max_size))

    def next_size(self, *, threads: int, remaining: int | None, cap: int | None) -> int:
        """The size of the next batch.

        ``remaining`` (items not yet submitted, when known) keeps at least two batches per
        thread so the last items still spread over every core; ``cap`` is a limit in items
        (from ``buffersize``).
        """
        size = self.size
        if not self.fixed and remaining is not None:
            size = min(size, max(1, math.ceil(remaining / (2 * max(threads, 1)))))
        if cap is not None:
            size = min(size, max(1, cap))
        return max(1, size)
