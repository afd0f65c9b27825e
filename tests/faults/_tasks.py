"""Tasks for the fault tests: importable by worker processes, each one fault.

Tasks that must stay busy wait on a ``distributed.Event`` (never a bare sleep), so a test
decides when they end; every wait has a deadline so that no task outlives a broken test.
Tasks that count their executions leave one marker file per attempt in ``directory``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid

from distributed import Event

from daskfarm import report

#: The longest any task here waits for its test (seconds).
DEADLINE = 120


def _mark(directory: str | None, name: str) -> None:
    """One new file per call: ``name.<pid>.<random>``, so repeated attempts all show."""
    if directory:
        path = os.path.join(directory, f"{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        with open(path, "w") as f:
            f.write(name)


def marks(directory, name: str | None = None) -> list[str]:
    """The names of the markers left in ``directory`` (every attempt, with repeats)."""
    names = [entry.rsplit(".", 2)[0] for entry in os.listdir(directory)]
    return sorted(n for n in names if name is None or n == name)


def paced(x, directory=None, seconds: float = 0.05, report=report):
    """Works for about ``seconds``, reporting; leaves a marker per execution."""
    _mark(directory, f"item-{x}")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        report(None)
        time.sleep(0.01)
    return (x, "result")


def gated(x, event: str, directory=None, report=report):
    """Reports (so it can be cancelled) until the Event ``event`` is set; marks each start."""
    _mark(directory, f"start-{x}")
    release = Event(event)
    deadline = time.monotonic() + DEADLINE
    while not release.wait(0.05):
        report(0.5, f"item {x} waiting")
        if time.monotonic() > deadline:
            raise TimeoutError("the test never released this task")
    return (x, "released")


def gate_from(x, event: str, first: int, directory=None, report=report):
    """Items below ``first`` run at once (paced); the others wait for ``event``."""
    if x < first:
        return paced(x, directory, seconds=0.02, report=report)
    return gated(x, event, directory, report=report)


def silent(x, event: str, directory=None):
    """Never calls report(): waits for ``event``, then marks that it ran to its end."""
    _mark(directory, f"start-{x}")
    if not Event(event).wait(DEADLINE):
        raise TimeoutError("the test never released this task")
    _mark(directory, f"end-{x}")
    return (x, "silent")


def hangs_on(x, slow: dict, event: str):
    """Returns at once, but for the items in ``slow``: "silent" ones wait for ``event``
    without report(), "reporting" ones report while they wait."""
    how = slow.get(x)
    if how is None:
        return (x, "quick")
    release = Event(event)
    deadline = time.monotonic() + DEADLINE
    while not release.wait(0.05):
        if how == "reporting":
            report(None, f"item {x} waiting")
        if time.monotonic() > deadline:
            raise TimeoutError("the test never released this task")
    return (x, "released")


def kills_its_worker(x, victim, event=None, directory=None):
    """SIGKILLs its own worker process for the item ``victim``, every time it runs (once the
    Event ``event``, if given, is set)."""
    if x == victim:
        if event is not None and not Event(event).wait(DEADLINE):
            raise TimeoutError("the test never released this task")
        _mark(directory, f"kill-{x}")
        os.kill(os.getpid(), signal.SIGKILL)
    _mark(directory, f"item-{x}")
    time.sleep(0.02)
    return x


def kill_or_wait(x, victim, arm: str, event: str, directory=None, report=report):
    """The item ``victim`` SIGKILLs its worker once ``arm`` is set; the others wait for
    ``event``."""
    if x == victim:
        return kills_its_worker(x, victim, event=arm, directory=directory)
    return gated(x, event, directory, report=report)


def add_to_path(directory: str) -> None:
    """Put ``directory`` first on this worker process's module path (for client.run)."""
    sys.path.insert(0, directory)


def raises(x):
    if x % 4 == 1:
        raise ValueError(f"item {x} is out of range; pick x % 4 != 1")
    return x


def exits(x):
    """Calls sys.exit() for odd items, as a script's argument check would."""
    if x % 2:
        sys.exit(f"bad parameter {x}")
    return x


def unpicklable(x):
    """A result that cannot travel back: a lock, for even items."""
    if x % 2 == 0:
        return threading.Lock()
    return x


def sized_value(x, size: int) -> str:
    return f"{x:08d}" + "x" * size


def paced_sized(x, size: int, seconds: float = 0.01, report=report):
    """A result of about ``size`` bytes (a string), after about ``seconds`` of work."""
    paced(x, seconds=seconds, report=report)
    return sized_value(x, size)


def _slow_made(seconds: float):
    time.sleep(seconds)
    return SlowToUnpickle(seconds)


class SlowToUnpickle:
    """An initarg that takes ``seconds`` to unpickle on a worker."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __reduce__(self):
        return (_slow_made, (self.seconds,))


class Numbered:
    """A class task that takes its process_number (an RPC to the scheduler) and a slow initarg."""

    def __init__(self, slow, process_number):
        self.number = process_number

    def __call__(self, x):
        return (x, self.number)


class ClosesAfterCalls:
    """A class task whose close() records whether a call was still running at the time."""

    def __init__(self, event: str, directory: str):
        self.event, self.directory, self.active = event, directory, 0

    def __call__(self, x, report=report):
        self.active += 1
        try:
            release = Event(self.event)
            deadline = time.monotonic() + DEADLINE
            while not release.wait(0.05):
                report(None)
                if time.monotonic() > deadline:
                    raise TimeoutError("the test never released this task")
            return x
        finally:
            self.active -= 1

    def close(self):
        _mark(self.directory, "close-early" if self.active else "close-after")


def interrupts(x):
    """Raises KeyboardInterrupt for item 1 (as a task's own Ctrl-C handling might)."""
    if x == 1:
        raise KeyboardInterrupt("inside the task")
    return (x, os.getpid())


def first_waits(x, event: str, directory=None):
    """Marks its start; item 0 then waits for ``event`` without report(), the others return."""
    _mark(directory, f"start-{x}")
    if x == 0 and not Event(event).wait(DEADLINE):
        raise TimeoutError("the test never released this task")
    return x
