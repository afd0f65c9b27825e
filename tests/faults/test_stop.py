"""Stop means stop: cancel with a grace period and a hard stop after it, a second cancel that
stops hard at once, per-item timeouts, and wait() that returns only when the workers are idle.

Silent tasks wait on a ``distributed.Event`` without ever calling ``report()``: only a restart
of their worker process can stop them before the test releases them.
"""

from __future__ import annotations

import functools
import threading
import warnings

import dask
import pytest

from daskfarm import DataManager, Farm, HardStopWarning, ItemTimeoutError
from daskfarm.worker import execute
from tests.conftest import DEADLINE, wait_for
from tests.faults import _tasks
from tests.faults.test_tasks import busy_threads


def pids(farm) -> dict:
    return farm.client.run(lambda: __import__("os").getpid())


def test_items_that_never_report_are_stopped_hard_after_the_grace(farm, tmp_path, release):
    marks = tmp_path / "marks"
    marks.mkdir()
    before = pids(farm)
    task = functools.partial(_tasks.silent, event=release.name, directory=str(marks))
    stopped = farm.map(task, range(6), store=tmp_path / "store", batch_size=1,
                       buffersize=4, progress=False)  # 4 pulled: 2 running, 2 queued
    wait_for(lambda: len(_tasks.marks(marks)) == 2, timeout=DEADLINE, message="two silent items")
    stopped.cancel(grace=0.5)
    # cancel() returned: no worker thread runs an item of the run any more
    assert stopped.done and stopped.status == "cancelled"
    summary = stopped.wait(timeout=10)
    assert (summary.done, summary.failed, summary.cancelled) == (0, 0, 4)
    wait_for(lambda: len(farm.client.nthreads()) == 2, timeout=DEADLINE, message="workers back")
    assert busy_threads(farm) == 0
    assert set(pids(farm).values()).isdisjoint(before.values())  # new processes
    # the next run starts on the freed workers at once (the silent items would wait 120 s)
    nxt = farm.map(_tasks.paced, range(4), batch_size=1, progress=False)
    assert sorted(x for x, _ in nxt) == [0, 1, 2, 3]
    assert not _tasks.marks(marks, "end-0") and not _tasks.marks(marks, "end-1")
    with DataManager(tmp_path / "store") as dm:
        assert len(dm) == 0 and not dm.failures()  # cancelled is not failed


def _worker_states(run_id, dask_worker=None):
    return [ts.state for key, ts in dask_worker.state.tasks.items()
            if type(key) is tuple and key[0] == run_id]


def test_a_cancelled_batch_stops_at_its_next_item(farm, tmp_path, release):
    # One batch of 20: item 0 waits (silently) for the event, the others would be instant.
    # Cancelled while item 0 runs, the batch must end when item 0 returns, cooperatively:
    # no later item starts and no worker process is restarted.
    marks = tmp_path / "marks"
    marks.mkdir()
    before = pids(farm)
    task = functools.partial(_tasks.first_waits, event=release.name, directory=str(marks))
    run = farm.map(task, range(20), batch_size=20, progress=False)
    wait_for(lambda: _tasks.marks(marks) == ["start-0"], timeout=DEADLINE, message="item 0")
    stopper = threading.Thread(target=run.cancel, kwargs={"grace": 2 * DEADLINE})
    stopper.start()
    try:
        wait_for(lambda: any("cancelled" in states for states in
                             farm.client.run(_worker_states, run.run_id).values()),
                 timeout=DEADLINE, message="the worker to learn of the cancel")
    finally:
        release.set()
    stopper.join(DEADLINE)
    assert not stopper.is_alive(), "cancel() did not return once item 0 ended"
    assert run.status == "cancelled"
    assert _tasks.marks(marks) == ["start-0"]  # items 1-19 never started
    assert pids(farm) == before  # stopped between items, not by a restart


def test_workers_come_back_after_hard_stops_whatever_the_lost_worker_timeout(farm, tmp_path,
                                                                            release):
    # A LocalCluster closes the nanny of a worker that is still absent lost-worker-timeout
    # after its removal; with a timeout shorter than a restart, that is every hard stop. The
    # Farm's own cluster keeps its nannies, which restart the workers.
    marks = tmp_path / "marks"
    marks.mkdir()
    task = functools.partial(_tasks.silent, event=release.name, directory=str(marks))
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "100ms"}):
        for round_ in range(2):
            run = farm.map(task, range(2), batch_size=1, progress=False)
            wait_for(lambda n=2 * (round_ + 1): len(_tasks.marks(marks)) == n,
                     timeout=DEADLINE, message="two silent items")
            run.cancel(grace=0)
            wait_for(lambda: len(farm.client.nthreads()) == 2, timeout=DEADLINE / 2,
                     message="the workers to come back after the hard stop")
            assert run.status == "cancelled"
    quick = functools.partial(_tasks.hangs_on, slow={}, event=release.name)
    assert sorted(x for x, _ in farm.map(quick, range(4), progress=False)) == [0, 1, 2, 3]


def test_a_second_cancel_stops_hard_at_once(farm, tmp_path, release):
    marks = tmp_path / "marks"
    marks.mkdir()
    task = functools.partial(_tasks.silent, event=release.name, directory=str(marks))
    stopped = farm.map(task, range(2), batch_size=1, progress=False)
    wait_for(lambda: len(_tasks.marks(marks)) == 2, timeout=DEADLINE, message="two silent items")
    first = threading.Thread(target=stopped.cancel, kwargs={"grace": 600})
    first.start()
    wait_for(lambda: stopped.status == "stopping", timeout=10, message="the run stopping")
    assert not stopped.done  # within its 600 s of grace
    stopped.cancel()  # the second Terminate click / Ctrl-C
    assert stopped.done and stopped.status == "cancelled"
    first.join(timeout=DEADLINE / 2)
    assert not first.is_alive()
    wait_for(lambda: busy_threads(farm) == 0, timeout=DEADLINE, message="idle workers")


def test_a_bystander_run_loses_and_fails_nothing(farm, tmp_path, release):
    marks = tmp_path / "marks"
    marks.mkdir()
    task = functools.partial(_tasks.silent, event=release.name, directory=str(marks))
    victim = farm.map(task, range(2), batch_size=1, progress=False)
    wait_for(lambda: len(_tasks.marks(marks)) == 2, timeout=DEADLINE, message="two silent items")
    # queued behind the silent items on both workers
    bystander = farm.map(_tasks.paced, range(40), batch_size=1, store=tmp_path / "store",
                         errors="continue", progress=False)
    victim.cancel(grace=0)
    summary = bystander.wait(timeout=2 * DEADLINE)
    assert (summary.done, summary.failed, summary.cancelled) == (40, 0, 0)
    with DataManager(tmp_path / "store") as dm:
        assert sorted(dm.params(k) for k in dm.keys()) == list(range(40))


def test_wait_after_cancel_returns_when_no_item_executes(farm, tmp_path, release):
    marks = tmp_path / "marks"
    marks.mkdir()
    task = functools.partial(_tasks.gated, event=release.name, directory=str(marks))
    stopped = farm.map(task, range(6), batch_size=1, progress=False)
    wait_for(lambda: len(_tasks.marks(marks)) == 2, timeout=DEADLINE, message="two running items")
    stopped.cancel(grace=30)  # cooperative: the items stop at their next report()
    stopped.wait(timeout=DEADLINE)
    assert busy_threads(farm) == 0


def test_a_worker_counts_a_task_of_the_run_that_dask_executes_outside_a_batch(farm, tmp_path,
                                                                              release):
    # The stopper's idle check must see what Dask sees: a thread Dask runs for a key of the
    # run is busy even before (or after) the batch runner counts it, else cancel() could
    # return while Dask still holds the thread. Here the key runs a plain function, which the
    # batch runner never counts at all.
    marks = tmp_path / "marks"
    marks.mkdir()
    future = farm.client.submit(_tasks.silent, 0, event=release.name, directory=str(marks),
                                key=("run-outside", 0), pure=False)
    wait_for(lambda: _tasks.marks(marks) == ["start-0"], timeout=DEADLINE, message="the task")
    counts = farm.client.run(execute.active_batches, "run-outside")
    assert sorted(counts.values()) == [0, 1]
    assert set(farm.client.run(execute.active_batches, "another-run").values()) == {0}
    release.set()
    assert future.result(timeout=DEADLINE) == (0, "silent")
    wait_for(lambda: set(farm.client.run(execute.active_batches, "run-outside").values()) == {0},
             timeout=DEADLINE, message="the task's end")


def test_an_item_that_overruns_its_timeout_fails_and_the_run_goes_on(farm, tmp_path, release):
    store = tmp_path / "store"
    task = functools.partial(_tasks.hangs_on, slow={3: "silent", 5: "reporting"},
                             event=release.name)
    with pytest.raises(ValueError):
        farm.map(task, range(3), timeout="soon")
    with dask.config.set({"daskfarm.cancel-grace": "1s"}):  # fixed when the run starts
        run = farm.map(task, range(10), store=store, timeout=1.0, errors="continue",
                       batch_size=1, progress=False)
    results = sorted(x for x, _ in run)
    assert results == [0, 1, 2, 4, 6, 7, 8, 9]
    failures = {f.item: f for f in run.failures}
    assert sorted(failures) == [3, 5]
    assert {f.exc_type for f in failures.values()} == {"daskfarm.exceptions.ItemTimeoutError"}
    assert "did not stop at report()" in failures[3].message  # the hard stop
    assert "ran longer than its timeout" in failures[5].message  # the soft one
    with DataManager(store) as dm:
        assert sorted(f.item for f in dm.failures()) == [3, 5]
    wait_for(lambda: len(farm.client.nthreads()) == 2, timeout=DEADLINE, message="workers back")


def test_retries_apply_to_timeouts_and_errors_raise_raises_it(farm, release):
    task = functools.partial(_tasks.hangs_on, slow={0: "reporting"}, event=release.name)
    run = farm.map(task, [0], timeout=0.5, retries=1, batch_size=1, progress=False)
    with pytest.raises(ItemTimeoutError, match=r"timeout of 0\.5 s"):
        list(run)


def test_without_a_nanny_the_stop_stays_cooperative_and_warns(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    with Farm(n_workers=1, processes=False, dashboard=False) as farm:
        from distributed import Event

        release = Event("no-nanny-release", client=farm.client)
        task = functools.partial(_tasks.silent, event=release.name, directory=str(marks))
        run = farm.map(task, range(2), batch_size=1, progress=False)
        wait_for(lambda: len(_tasks.marks(marks)) == 1, timeout=DEADLINE, message="a silent item")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run.cancel(grace=0)
        assert run.status == "cancelled"
        assert any(issubclass(w.category, HardStopWarning) for w in caught)
        release.set()
        wait_for(lambda: busy_threads(farm) == 0, timeout=DEADLINE, message="the item to end")
