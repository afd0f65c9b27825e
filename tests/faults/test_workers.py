"""Workers that die: SIGKILLed mid-item (LocalCluster and a remote ``dask worker``), and a
task that kills its worker every time it runs.

Killed items are run again elsewhere by distributed; the farm must still deliver and store
every result exactly once, and a task that always kills its worker must end as that item's
failure (``KilledWorker`` after ``distributed.scheduler.allowed-failures``), not a stall.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import uuid

import pytest
from distributed import Event

from daskfarm import DataManager, Farm
from tests.conftest import DEADLINE, scheduler_states, wait_for
from tests.faults import _tasks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def farm():
    """The tests here kill workers: a LocalCluster of their own (2 workers, 1 thread each)."""
    with Farm(n_workers=2, dashboard=False) as farm:
        yield farm



def stored_once(store, items) -> None:
    """Every item has exactly one record, and its value."""
    with DataManager(store) as dm:
        assert sorted(dm.params(k) for k in dm.keys()) == sorted(items)
        assert all(len(dm.get_all(k)) == 1 for k in dm.keys())
        assert all(dm[k] == (dm.params(k), "released") or dm[k] == (dm.params(k), "result")
                   for k in dm.keys())
        assert not dm.failures()
        assert dm.check().ok


def starts(marks) -> list[str]:
    """start-<item> for every start of a gated item (repeated if it started again)."""
    return [m for m in _tasks.marks(marks) if m.startswith("start-")]


def worker_pids(client) -> dict:
    try:
        return client.run(os.getpid)
    except Exception:  # a worker leaving while we ask
        return {}


def kill_a_busy_worker(client, marks, release, threads: int) -> list[str]:
    """SIGKILL a worker process while every thread runs a gated item; then release them.

    Returns the markers of the items that were running.
    """
    wait_for(lambda: len(starts(marks)) >= threads, timeout=DEADLINE, message="the gated items")
    busy = starts(marks)
    pids = worker_pids(client)
    victim = next(iter(pids.values()))
    os.kill(victim, signal.SIGKILL)

    def restarted():
        now = worker_pids(client)
        return len(now) == len(pids) and victim not in now.values()

    wait_for(restarted, timeout=2 * DEADLINE, message="the worker's restart")
    release.set()
    return busy


def consume(run) -> tuple[threading.Thread, list]:
    """Iterate ``run`` in a thread (the buffer must keep moving while the test acts)."""
    results: list = []
    thread = threading.Thread(target=lambda: results.extend(run), daemon=True)
    thread.start()
    return thread, results


def test_worker_sigkilled_mid_item_every_result_arrives_once(farm, tmp_path, release):
    store, marks = tmp_path / "store", tmp_path / "marks"
    marks.mkdir()
    task = functools.partial(_tasks.gate_from, event=release.name, first=6,
                             directory=str(marks))
    run = farm.map(task, range(20), store=store, batch_size=1, buffersize=4, progress=False)
    try:
        consumer, results = consume(run)
        busy = kill_a_busy_worker(farm.client, marks, release, threads=2)
        consumer.join(timeout=2 * DEADLINE)
        assert not consumer.is_alive()
    finally:
        run.cancel()
    assert sorted(x for x, _ in results) == list(range(20))
    assert run.summary().failed == 0
    # the killed worker's item really ran twice; it was still stored once
    again = starts(marks)
    assert any(again.count(name) == 2 for name in set(busy)), again
    stored_once(store, range(20))


def test_remote_worker_sigkilled_mid_item_every_result_arrives_once(dask_cluster, tmp_path):
    store, marks = tmp_path / "store", tmp_path / "marks"
    marks.mkdir()
    with Farm(dask_cluster.address, timeout=DEADLINE / 2) as farm:
        farm.client.wait_for_workers(1, timeout=1.5 * DEADLINE)
        release = Event(f"release-{uuid.uuid4().hex}", client=farm.client)
        try:
            task = functools.partial(_tasks.gate_from, event=release.name, first=6,
                                     directory=str(marks))
            run = farm.map(task, range(16), store=store, batch_size=1, buffersize=4,
                           progress=False)
            consumer, results = consume(run)
            busy = kill_a_busy_worker(farm.client, marks, release, threads=2)
            consumer.join(timeout=2 * DEADLINE)
            assert sorted(x for x, _ in results) == list(range(16))
        finally:
            release.set()
            run.cancel()
    again = starts(marks)  # one worker process: both its running items ran again
    assert all(again.count(name) == 2 for name in set(busy)), again
    stored_once(store, range(16))
    assert "Restarting worker" in dask_cluster.log("worker")


def test_task_that_kills_its_worker_every_time_is_a_recorded_failure(farm, tmp_path, release):
    store, marks = tmp_path / "store", tmp_path / "marks"
    marks.mkdir()
    allowed = farm.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
    # The killer strikes once the other items' results are in, so that no finished result
    # waits on a worker it kills (see test_result_lost_between_done_and_gather_...).
    task = functools.partial(_tasks.kills_its_worker, victim=11, event=release.name,
                             directory=str(marks))
    run = farm.map(task, range(12), store=store, errors="continue", batch_size=1,
                   progress=False)
    results = iter(run)
    assert sorted(next(results) for _ in range(11)) == list(range(11))
    release.set()
    assert list(results) == []
    summary = run.wait(timeout=3 * DEADLINE)
    assert (summary.done, summary.failed, summary.status) == (11, 1, "finished")
    (failure,) = run.failures
    assert failure.item == 11
    assert failure.exc_type == "distributed.scheduler.KilledWorker"
    assert "workers died while running it" in failure.message
    # tried allowed-failures + 1 times, each time killing a worker
    assert allowed + 1 <= len(_tasks.marks(marks, "kill-11")) <= 2 * (allowed + 1)
    with DataManager(store) as dm:
        assert sorted(dm.params(k) for k in dm.keys()) == list(range(11))
        (record,) = dm.failures()
        assert (record.item, record.exc_type) == (11, "distributed.scheduler.KilledWorker")
    wait_for(lambda: len(worker_pids(farm.client)) == 2, timeout=2 * DEADLINE,
             message="two workers")


def test_with_errors_raise_the_killed_worker_is_raised(farm, release):
    from distributed.scheduler import KilledWorker

    task = functools.partial(_tasks.kills_its_worker, victim=2, event=release.name)
    run = farm.map(task, range(3), batch_size=1, progress=False)
    results = iter(run)
    assert sorted(next(results) for _ in range(2)) == [0, 1]
    release.set()
    with pytest.raises(KilledWorker, match="workers died"):
        next(results)
    assert run.status == "failed"
    wait_for(lambda: len(worker_pids(farm.client)) == 2, timeout=2 * DEADLINE,
             message="two workers")


@pytest.mark.xfail(strict=True, reason="bystanders of a worker-killing item get KilledWorker: "
                   "the scheduler blames every task assigned to a worker that dies")
def test_items_sharing_a_worker_with_a_killer_are_not_blamed(tmp_path):
    # One worker process with a thread for each item: the killer and three items waiting on
    # an Event all run on it at each of its deaths.
    marks = tmp_path / "marks"
    marks.mkdir()
    with Farm(n_workers=1, threads_per_worker=4, dashboard=False) as farm:
        allowed = farm.client.run_on_scheduler(
            lambda dask_scheduler: dask_scheduler.allowed_failures)
        arm = Event(f"arm-{uuid.uuid4().hex}", client=farm.client)
        release = Event(f"release-{uuid.uuid4().hex}", client=farm.client)
        task = functools.partial(_tasks.kill_or_wait, victim=0, arm=arm.name,
                                 event=release.name, directory=str(marks))
        run = farm.map(task, range(4), errors="continue", batch_size=1, buffersize=4,
                       progress=False)
        try:
            wait_for(lambda: len(starts(marks)) == 3, timeout=DEADLINE, message="the three items")
            arm.set()
            wait_for(lambda: len(_tasks.marks(marks, "kill-0")) > allowed, timeout=2 * DEADLINE,
                     message="the killer's last attempt")
            release.set()
            summary = run.wait(timeout=3 * DEADLINE)
        finally:
            release.set()
            run.cancel()
        assert [f.item for f in run.failures] == [0]
        assert summary.done == 3


def _all_in_memory(states: list) -> bool:
    # the feeder may keep some of buffersize back: every submitted task finished, 3 or more
    return len(states) >= 3 and all(state == "memory" for state in states)


def test_a_future_lost_between_done_and_gather_costs_only_itself(farm, release, monkeypatch):
    # In a real run this happens when a worker dies holding finished, not yet gathered
    # results, or when the panel cancels a task just as it finishes. Here the race is
    # forced: the feeder is held in an on_result callback until four results wait, and
    # the first future of the next gather is cancelled just before that gather.
    hold, held = threading.Event(), []
    run = farm.map(functools.partial(_tasks.gated, event=release.name), range(4),
                   batch_size=1, buffersize=4, errors="continue", progress=False)

    @run.on_result
    def block_the_feeder(item, result):
        if not held:
            held.append(item)
            hold.wait(60)

    real_gather, dropped = farm.client.gather, []

    def gather(futures, *args, **kwargs):
        if len(futures) >= 2 and not dropped:
            dropped.append(futures[0])
            farm.client.cancel([futures[0]], force=True)
        return real_gather(futures, *args, **kwargs)

    monkeypatch.setattr(farm.client, "gather", gather)
    try:
        release.set()
        wait_for(lambda: held and _all_in_memory(scheduler_states(farm, run.run_id)),
                 timeout=DEADLINE, message="every item to finish while the feeder is held")
        hold.set()
        results = sorted(x for x, _ in run)
    finally:
        hold.set()
        run.cancel()
    assert dropped
    assert len(results) == 3 and run.counts["cancelled"] == 1
    assert not run.failures
