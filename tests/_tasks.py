"""Task functions for the tests: in an importable module, so worker processes can load them."""

from __future__ import annotations

import os
import threading
import time

from distributed import Event

from daskfarm import report


def square(x):
    return x * x


def noop(x):
    return x


def dask_key(x):
    """The key of the Dask task running this item (items of one batch share it)."""
    from distributed import get_worker

    return str(get_worker().get_current_task())


def add(a, b):
    return a + b


def fails_on_multiples_of_3(x):
    if x % 3 == 0:
        raise ValueError(f"bad item {x}")
    return x


def reports_until_released(x, event_name="release", report=report):
    """Loop calling report() until the named distributed.Event is set (or 60 s pass)."""
    event = Event(event_name)
    deadline = time.monotonic() + 60
    step = 0
    while not event.is_set():
        step += 1
        report(min(0.5, step / 1000), f"item {x} step {step}")
        time.sleep(0.05)
        if time.monotonic() > deadline:
            raise TimeoutError("the test never released this task")
    return x


def waits_for_event(x, event_name="release"):
    if not Event(event_name).wait(60):
        raise TimeoutError("the test never released this task")
    return x


def report_half(x, report):
    report(0.5, f"half of {x}")
    return x


def pid(x):
    return os.getpid()


def unpicklable_result(x):
    return threading.Lock()


_attempts: dict = {}


def fails_twice(x):
    """Fails on its first two calls for each item in this worker process."""
    n = _attempts[x] = _attempts.get(x, 0) + 1
    if n <= 2:
        raise RuntimeError(f"attempt {n} of item {x}")
    return x


class Scaler:
    """A class task: built once per worker process."""

    def __init__(self, factor, process_number=None, marker_dir=None):
        self.factor = factor
        self.process_number = process_number
        self.marker_dir = marker_dir
        self.pid = os.getpid()
        self.taskname = f"scaler x{factor}"

    def __call__(self, x):
        return (x * self.factor, self.process_number, self.pid)

    def close(self):
        if self.marker_dir:
            path = os.path.join(self.marker_dir, f"closed-{self.pid}")
            with open(path, "w") as f:
                f.write(str(self.process_number))


def slow_item(x, report):
    """Takes about half a second, reporting as it goes."""
    for _ in report.iter(range(10)):
        time.sleep(0.05)
    return x


def touch(x, directory):
    """Leaves one file per computed item, so a test can count executions."""
    with open(os.path.join(directory, f"item-{x}"), "w") as f:
        f.write("x")
    return x * 2


class HoldsALock:
    """A callable that cannot be pickled."""

    def __init__(self):
        self.lock = threading.Lock()

    def __call__(self, x):
        return x


def reports_text(x, report):
    report("half")
    return x


def lambda_for(x, bad):
    """A result only cloudpickle can carry (a lambda) for the item ``bad``."""
    return (lambda: x) if x == bad else x


def sleeps_for(pair):
    """``(name, seconds)``: sleeps that long (a known duration for the store's records)."""
    time.sleep(pair[1])
    return pair[0]


def product_dict(params):
    return {"product": params["a"] * params["b"]}


def fast_then_waits(x, first=200, event_name="release"):
    """Items below ``first`` take 2 ms; the others wait for the named distributed.Event."""
    if x < first:
        time.sleep(0.002)
        return x
    return waits_for_event(x, event_name)
