"""Tasks for the scale-out tests: importable by every worker (the repository is on their path)."""

from __future__ import annotations

import os
import time


def square(x):
    return x * x


def slow_square(x, seconds=0.15):
    """x * x after ``seconds``: slow enough that a worker dies with items in flight."""
    time.sleep(seconds)
    return x * x


def where(x):
    """(x, the worker's pid): which process ran the item."""
    time.sleep(0.05)
    return x, os.getpid()


def span(x, seconds=0.1):
    """(x, start, end): when the item ran, to count how many ran at once."""
    start = time.time()
    time.sleep(seconds)
    return x, start, time.time()


def most_at_once(spans) -> int:
    """The largest number of (x, start, end) intervals that overlap."""
    events = sorted([(s, 1) for _, s, _ in spans] + [(e, -1) for _, _, e in spans])
    running = best = 0
    for _, step in events:
        running += step
        best = max(best, running)
    return best
