"""Task functions for the panel tests: they must be importable by worker processes."""

from __future__ import annotations

import time

XSS = "<img src=x onerror=window.__xss=1>"


def gated(item, report, event: str, speed: float = 0.02):
    """Report progress until the distributed.Event ``event`` is set, then return.

    ``report()`` raises TaskCancelled when the task is cancelled: that is the stop point.
    The fraction grows at a different pace per item, so the bars differ.
    """
    from distributed import Event

    release = Event(event)
    index = int(str(item).rsplit("-", 1)[-1]) if isinstance(item, str) else int(item)
    step = 0
    while not release.wait(0.1):
        step += 1
        message = XSS if index == 0 else f"item {item}: step {step}"
        report(min(0.95, step * speed * (1 + index)), message)
    report(1.0, "done")
    return f"{item}!"


def quick(x, report=None):
    """A short task with a result worth plotting."""
    time.sleep(0.01)
    return (x - 20) ** 2 / 10 + (x % 7)


def gate_above(x, report, event: str, limit: int = 4):
    """Items below ``limit`` finish at once; the others wait (reporting) for ``event``."""
    if x < limit:
        return x
    return gated(x, report, event)


def slow(x, report=None, seconds: float = 0.2):
    """Sleeps in small steps, reporting, so a cancel stops it soon."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if report is not None:
            report((seconds - (end - time.monotonic())) / seconds)
        time.sleep(0.02)
    return x


def silent(item, event: str):
    """Waits for the distributed.Event ``event`` without ever calling report()."""
    from distributed import Event

    Event(event).wait(120)
    return item
