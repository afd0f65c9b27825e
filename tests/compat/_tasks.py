"""Tasks for the compatibility tests, in an importable module so worker processes load them."""

from __future__ import annotations

import os
import time

from distributed import Event, get_worker


def star_probe(*args):
    """How the item arrived: the number of arguments and their types."""
    return (len(args), tuple(type(a).__name__ for a in args))


def with_report(x, report):
    report(0.5, f"half of {x}")
    return (x, type(report).__name__)


def find_rate(k, report):
    """Brian's taskfarm example, minus the simulation: returns (k, rate)."""
    report(1.0)
    return (k, 2 * k)


def fails_on_3(x):
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def linear(task, slope, offset):
    """pydidas' test_func."""
    return task * slope + offset


def linear_reporting(task, slope, offset=0, report=None):
    report(0.5)
    return (task * slope + offset, type(report).__name__)


def catch_all(task, *args, **kwargs):
    return (task, args, sorted(kwargs))


def _wait(event_name: str, report) -> None:
    """Report until the named distributed.Event is set (a cancelled task stops in report)."""
    event = Event(event_name)
    deadline = time.monotonic() + 120
    while not event.wait(0.05):
        report(0.5, "waiting")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test never set the event {event_name!r}")


def fast_or_gated(x, event_name, report):
    """Negative items return at once; the others wait for the event."""
    if x >= 0:
        _wait(event_name, report)
    return x


def gated_linear(task, slope, event_name, report):
    _wait(event_name, report)
    return task * slope


class Numbered:
    """A class task that tells which worker process (and process_number) ran each item."""

    def __init__(self, offset=0, process_number=None):
        self.offset = offset
        self.process_number = process_number
        self.taskname = f"numbered p{process_number}"

    def __call__(self, x):
        time.sleep(0.2)  # long enough that both workers get items
        return (x + self.offset, self.process_number, get_worker().name, os.getpid())


class NamedWaiter:
    """A class task whose taskname the verbose lines and panel rows must show."""

    def __init__(self, event_name, process_number):
        self.event_name = event_name
        self.taskname = f"named-task p{process_number}"

    def __call__(self, x, report):
        self.taskname = f"named-task item {x}"
        _wait(self.event_name, report)
        return x


class NoInit:
    """A class task without its own __init__ (Brian's docs allow it)."""

    def __call__(self, x):
        return 2 * x


def terminate_run(run_id, dask_scheduler=None):
    """What the panel's Terminate button does (runs on the scheduler)."""
    dask_scheduler.plugins["daskfarm"].control(run_id, "terminate")


def run_total(run_id, dask_scheduler=None):
    """The total (numitems) the panel uses for the ETA of a run."""
    return dask_scheduler.plugins["daskfarm"].runs[run_id].total
