"""Tasks that misbehave: raise, call sys.exit(), return what cannot be pickled, hang (with and
without report() calls), or live in a module a worker cannot import.

Plain raising tasks are covered by tests/test_map.py (errors="raise" / "continue", retries)
and tests/test_store_runs.py (failure records in the store, rerun of the failed items); an
unpicklable result without a store by tests/test_map.py. These add the store and the limits.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import signal
import sys

import dask
import pytest

from daskfarm import DataManager, Farm, FarmPicklingError, WorkerImportError
from tests.conftest import DEADLINE, wait_for
from tests.faults import _tasks


@pytest.fixture(scope="module")
def farm():
    """Two workers; a task that kills its worker is given up on at its first death."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        farm = Farm(n_workers=2, dashboard=False)  # the scheduler reads it once, here
    with farm:
        yield farm



def busy_threads(farm) -> int:
    try:
        threads = farm.client.run(lambda dask_worker: len(dask_worker.active_threads))
    except Exception:  # a worker restarting
        return -1
    return sum(threads.values())


def worker_pids(farm) -> set:
    try:
        return set(farm.client.run(os.getpid).values())
    except Exception:
        return set()


def test_first_failure_stops_the_run_and_the_store_keeps_what_finished(farm, tmp_path):
    store = tmp_path / "store"
    run = farm.map(_tasks.raises, range(40), store=store, batch_size=1, progress=False)
    with pytest.raises(ValueError, match=r"item \d+ is out of range") as info:
        list(run)
    assert "in raises" in str(info.value.__cause__)  # the remote traceback
    summary = run.wait(timeout=DEADLINE)  # the failure was raised once; wait() reports the end
    assert summary.status == "failed" and summary.done + summary.failed < 40
    with DataManager(store) as dm:
        assert len(dm) == summary.done
        assert all(dm.params(k) % 4 != 1 for k in dm.keys())
        assert all(dm[k] == dm.params(k) for k in dm.keys())
        failed = dm.failures()
        assert failed and all(r.exc_type == "ValueError" for r in failed)
        assert all("out of range" in r.message and "Traceback" in r.traceback for r in failed)


def test_unpicklable_results_are_failures_in_the_store(farm, tmp_path):
    store = tmp_path / "store"
    run = farm.map(_tasks.unpicklable, range(6), store=store, errors="continue",
                   batch_size=3, progress=False)
    assert sorted(run) == [1, 3, 5]
    with DataManager(store) as dm:
        assert sorted(dm.values()) == [1, 3, 5]
        failed = sorted(dm.failures(), key=lambda r: r.item)
        assert [r.item for r in failed] == [0, 2, 4]
        assert {r.exc_type for r in failed} == {"daskfarm.exceptions.FarmPicklingError"}
        assert all("cannot be pickled" in r.message and "return plain data" in r.message
                   for r in failed)
    run = farm.map(_tasks.unpicklable, [1, 2], progress=False, ordered=True, batch_size=1)
    with pytest.raises(FarmPicklingError, match="return plain data"):
        list(run)


def test_sys_exit_in_a_task_is_that_items_failure(farm):
    before = worker_pids(farm)
    try:
        run = farm.map(_tasks.exits, range(4), errors="continue", batch_size=1,
                       progress=False)
        assert sorted(run) == [0, 2]
        assert sorted((f.item, f.exc_type) for f in run.failures) == [(1, "SystemExit"),
                                                                      (3, "SystemExit")]
        assert "bad parameter 1" in sorted(run.failures, key=lambda f: f.item)[0].message
        assert worker_pids(farm) == before  # no worker died
    finally:
        wait_for(lambda: len(worker_pids(farm)) == 2, timeout=2 * DEADLINE, message="two workers")


def test_hung_task_that_reports_is_cancelled_and_the_store_keeps_the_rest(farm, tmp_path,
                                                                         release):
    store, marks = tmp_path / "store", tmp_path / "marks"
    marks.mkdir()
    task = functools.partial(_tasks.gate_from, event=release.name, first=5,
                             directory=str(marks))
    # buffersize = threads: no item ever waits on a worker behind a hanging one
    run = farm.map(task, range(30), store=store, batch_size=1, buffersize=2, progress=False)
    results = iter(run)
    finished = sorted(next(results)[0] for _ in range(5))
    assert finished == list(range(5))
    wait_for(lambda: len(_tasks.marks(marks)) == 5 + 2, timeout=DEADLINE,
             message="two items hanging")
    run.cancel()  # joins the feeder: bounded by report()'s ~1 s check
    summary = run.wait(timeout=DEADLINE)
    assert (summary.status, summary.done, summary.failed) == ("cancelled", 5, 0)
    assert summary.cancelled >= 2
    wait_for(lambda: busy_threads(farm) == 0, timeout=DEADLINE / 2, message="the worker threads")
    with DataManager(store) as dm:
        assert sorted(dm.params(k) for k in dm.keys()) == finished
        assert not dm.failures()  # cancelled is not failed: a rerun computes them


def test_worker_restarted_without_the_tasks_module_stops_the_run(farm, tmp_path,
                                                                  monkeypatch):
    # The module is on the workers' path when the run starts (the preflight passes); a
    # worker restarted mid-run comes back without it, as one whose environment was lost.
    # (The client imports it from its file, not through sys.path: a restarted LocalCluster
    # worker is spawned with the client's sys.path.)
    source = tmp_path / "faults_only_here.py"
    source.write_text("def double(x):\n    return 2 * x\n")
    spec = importlib.util.spec_from_file_location("faults_only_here", source)
    faults_only_here = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(faults_only_here)
    monkeypatch.setitem(sys.modules, "faults_only_here", faults_only_here)
    farm.client.run(_tasks.add_to_path, str(tmp_path))

    run = farm.map(faults_only_here.double, None, errors="continue", batch_size=1,
                   progress=False)
    try:
        run.add(*range(4))
        results = iter(run)
        assert sorted(next(results) for _ in range(4)) == [0, 2, 4, 6]
        pids = worker_pids(farm)
        os.kill(next(iter(pids)), signal.SIGKILL)
        wait_for(lambda: len(worker_pids(farm) - pids) == 1 and len(worker_pids(farm)) == 2,
                 timeout=2 * DEADLINE, message="the worker's restart")
        run.add(*range(4, 100))
        run.close_input()
        with pytest.raises(WorkerImportError, match="faults_only_here") as info:
            list(results)
        assert "tcp://127.0.0.1" in str(info.value)  # which worker
        assert "PYTHONPATH" in str(info.value)  # and the fix
        assert run.status == "failed"
        assert not run.failures  # not one failure record per item
    finally:
        run.cancel()
