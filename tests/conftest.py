"""Shared fixtures: one real LocalCluster farm per module, and leak checks."""

from __future__ import annotations

import os
import threading
import time
import uuid

import psutil
import pytest
from distributed import Event

from daskfarm import Farm

#: The one deadline of the suite (seconds): every wait for a cluster, a task or a process is
#: this, or a multiple of it. Raise DASKFARM_TEST_DEADLINE on a slow machine.
DEADLINE = float(os.environ.get("DASKFARM_TEST_DEADLINE", "60"))


def wait_for(predicate, timeout=DEADLINE / 2, interval=0.05, message="condition"):
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def farm():
    with Farm(n_workers=2, threads_per_worker=1) as f:
        yield f


@pytest.fixture
def release(farm):
    """A fresh distributed.Event that gated tasks wait for; set at teardown, so no task outlives
    its test (uses whichever ``farm`` fixture the test module sees)."""
    event = Event(f"release-{uuid.uuid4().hex}", client=farm.client)
    try:
        yield event
    finally:
        event.set()


def _task_states(run_id, dask_scheduler=None):
    return sorted(ts.state for key, ts in dask_scheduler.tasks.items()
                  if type(key) is tuple and key[0] == run_id)


def scheduler_states(farm, run_id):
    """The scheduler's states of a run's Dask tasks (keys are ``(run_id, n)``)."""
    return farm.client.run_on_scheduler(_task_states, run_id)


def _feeders():
    return [t for t in threading.enumerate() if t.name.startswith("daskfarm-feeder-")]


@pytest.fixture(autouse=True)
def no_feeder_left_behind():
    yield
    wait_for(lambda: not _feeders(), timeout=DEADLINE / 2, message="feeder threads to end")


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    yield
    wait_for(lambda: not leftover_children(), timeout=DEADLINE / 2,
             message="child processes to exit")


def leftover_children(proc=None):
    """Live child processes, except multiprocessing's own resource tracker (lives until exit)."""
    proc = proc or psutil.Process()
    alive = []
    for child in proc.children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            if any("resource_tracker" in part for part in child.cmdline()):
                continue
        except psutil.NoSuchProcess:
            continue
        alive.append(child)
    return alive
