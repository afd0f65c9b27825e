"""farm.map / starmap on a real LocalCluster with worker processes."""

from __future__ import annotations

import functools
import itertools
import os
import time

import pytest
from distributed import Event

from daskfarm import Failure, FarmStateError, RunSummary
from daskfarm.client.feeder import Feeder
from tests.conftest import DEADLINE

from . import _tasks
from .conftest import scheduler_states, wait_for


def test_map_returns_every_result(farm):
    run = farm.map(_tasks.square, range(50), progress=False)
    assert sorted(run) == [x * x for x in range(50)]
    assert run.done
    assert run.counts == {"pending": 0, "running": 0, "done": 50, "failed": 0, "skipped": 0,
                          "cancelled": 0}
    assert run.progress == 1.0


def test_ordered_keeps_input_order(farm):
    assert list(farm.map(_tasks.square, range(40), ordered=True, batch_size=3,
                         progress=False)) == [x * x for x in range(40)]


def test_starmap_expands_tuples_and_pairs_gives_items(farm):
    run = farm.starmap(_tasks.add, [(1, 2), (3, 4), (5, 6)], ordered=True, progress=False)
    assert list(run.pairs()) == [((1, 2), 3), ((3, 4), 7), ((5, 6), 11)]


def test_map_passes_tuples_whole(farm):
    assert list(farm.map(len, [(1, 2, 3), (4,)], ordered=True, progress=False)) == [3, 1]


def test_a_run_is_iterated_once(farm):
    run = farm.map(_tasks.square, range(3), progress=False)
    assert sorted(run) == [0, 1, 4]
    with pytest.raises(FarmStateError, match="iterated once"):
        list(run)
    with pytest.raises(FarmStateError):
        run.pairs()


def test_class_task_built_once_per_worker_with_process_number(farm, tmp_path):
    run = farm.map(_tasks.Scaler, range(40), initargs=(10,),
                   initkwds={"marker_dir": str(tmp_path)}, batch_size=1, progress=False)
    results = list(run)
    assert sorted(r[0] for r in results) == [10 * x for x in range(40)]
    by_pid = {}
    for _, number, pid in results:
        by_pid.setdefault(pid, set()).add(number)
    # one instance per process, each with one stable number, numbers 0..n-1
    assert all(len(numbers) == 1 for numbers in by_pid.values())
    numbers = sorted(n for numbers in by_pid.values() for n in numbers)
    assert set(numbers) <= {0, 1} and len(set(numbers)) == len(numbers)
    # close() ran in every process that built an instance
    wait_for(lambda: len(os.listdir(tmp_path)) == len(by_pid), timeout=DEADLINE / 2,
             message="close() markers")


def test_progress_counts_reported_fractions(farm):
    gate = Event("release", client=farm.client)
    gate.clear()
    run = farm.map(_tasks.reports_until_released, range(2), batch_size=1, progress=False)
    try:
        wait_for(lambda: run.progress > 0.1, timeout=DEADLINE / 2, message="reported fractions")
        assert run.counts["running"] == 2
        assert 0 < run.progress < 1
    finally:
        gate.set()
    assert sorted(run) == [0, 1]
    assert run.progress == 1.0


def test_infinite_generator_is_pulled_lazily(farm):
    pulled = itertools.count()
    seen = []

    def endless():
        for i in itertools.count():
            seen.append(next(pulled))
            yield i

    run = farm.map(_tasks.square, endless(), buffersize=8, progress=False)
    taken = list(itertools.islice(run, 100))
    assert len(taken) == 100
    # never more than what was taken plus the buffer
    wait_for(lambda: len(seen) <= 100 + 8, timeout=5)
    assert len(seen) <= 108
    run.cancel()
    assert run.done and run.status == "cancelled"
    assert len(seen) <= 108


def test_default_buffer_bounds_pulls_too(farm):
    pulled = []

    def endless():
        for i in itertools.count():
            pulled.append(i)
            yield i

    run = farm.map(_tasks.noop, endless(), progress=False)
    first = list(itertools.islice(run, 5000))
    n_pulled = len(pulled)
    run.cancel()
    assert len(first) == 5000
    # the default window is two batches per thread, and a batch is at most 10,000 items;
    # the caller also holds the rest of the batch it is iterating
    assert n_pulled <= 5000 + (2 * farm.nthreads + 1) * 10_000


def test_a_young_stream_sends_short_batches(farm, monkeypatch):
    # no known total: a batch holds at most an eighth of the run's age (>= 0.1 s of work),
    # where a run with a total would grow it to the 0.5 s target after two measurements
    sent = []
    submit = Feeder._submit_batch

    def recorded(self, batch):
        sent.append((time.perf_counter() - t0, len(batch.items)))
        return submit(self, batch)

    monkeypatch.setattr(Feeder, "_submit_batch", recorded)
    t0 = time.perf_counter()
    run = farm.map(_tasks.sleeps_for, ((i, 0.001) for i in itertools.count()), progress=False)
    assert len(list(itertools.islice(run, 1000))) == 1000
    run.cancel()
    assert max(n for _, n in sent) > 4  # it batches
    # each item sleeps >= 1 ms, so the feeder's measure of it is >= 1 ms; its clock started
    # after t0, so its age at a batch is below the t recorded here
    for t, n in sent:
        assert n <= int(max(0.1, t / 8) / 0.001) + 1, (t, n, sent)


def test_cancel_stops_running_tasks_at_their_next_report(farm):
    gate = Event("cancel-gate", client=farm.client)
    gate.clear()
    task = functools.partial(_tasks.reports_until_released, event_name="cancel-gate")
    run = farm.map(task, [0, 1, 2, 3], batch_size=1, progress=False)
    wait_for(lambda: run.counts["running"] == 2, timeout=DEADLINE / 2, message="two running tasks")
    run.cancel()
    assert run.done and run.status == "cancelled"
    summary = run.wait()
    assert summary.cancelled == 4 and summary.done == 0

    def busy_threads():
        return sum(farm.client.run(lambda dask_worker: len(dask_worker.active_threads))
                   .values())

    wait_for(lambda: busy_threads() == 0, timeout=DEADLINE / 2, message="worker threads to stop")
    gate.set()


def test_errors_raise_stops_the_run_with_the_remote_traceback(farm):
    run = farm.map(_tasks.fails_on_multiples_of_3, range(30), batch_size=1, progress=False)
    with pytest.raises(ValueError, match="bad item") as info:
        list(run)
    assert run.status == "failed"
    assert "fails_on_multiples_of_3" in str(info.value.__cause__)
    assert len(run.failures) >= 1


def test_errors_continue_records_failures(farm):
    run = farm.map(_tasks.fails_on_multiples_of_3, range(30), errors="continue",
                   batch_size=4, progress=False)
    assert sorted(run) == [x for x in range(30) if x % 3]
    failures = run.failures
    assert sorted(f.item for f in failures) == list(range(0, 30, 3))
    first = failures[0]
    assert isinstance(first, Failure)
    assert first.exc_type == "ValueError" and "bad item" in first.message
    assert "Traceback" in first.traceback and "fails_on_multiples_of_3" in first.traceback
    summary = run.wait()
    assert isinstance(summary, RunSummary)
    assert (summary.done, summary.failed) == (20, 10)


def test_retries_rerun_a_failing_item(farm):
    run = farm.map(_tasks.fails_twice, range(6), retries=2, progress=False)
    assert sorted(run) == list(range(6))


def test_unpicklable_result_becomes_that_items_failure(farm):
    run = farm.map(_tasks.unpicklable_result, range(3), errors="continue", batch_size=3,
                   progress=False)
    assert list(run) == []
    assert len(run.failures) == 3
    assert "cannot be pickled" in run.failures[0].message


def test_batches_keep_per_item_results_and_failures(farm):
    run = farm.map(_tasks.fails_on_multiples_of_3, range(100), batch_size=10,
                   errors="continue", ordered=True, progress=False)
    assert list(run) == [x for x in range(100) if x % 3]
    assert run.counts["failed"] == 34


def test_auto_batching_on_short_tasks(farm):
    keys = list(farm.map(_tasks.dask_key, range(20_000), progress=False))
    assert len(keys) == 20_000
    # each item returns the Dask key of the task that ran it: batches share a key
    assert len(set(keys)) < 20_000 / 10


def test_batches_in_flight_stay_within_two_per_thread(farm, release):
    # Fast items make the sizer grow its batches; then every item waits. Counted in items,
    # the window would let slivers go after the growth (the older, smaller batches leave
    # room); counted in batches it holds two per worker thread.
    task = functools.partial(_tasks.fast_then_waits, first=200, event_name=release.name)
    run = farm.map(task, (i for i in range(5000)), progress=False)
    seen = []

    def settled():
        states = scheduler_states(farm, run.run_id)
        seen.append(sum(s != "memory" and s != "released" for s in states))
        return len(seen) > 20 and len(set(seen[-10:])) == 1 and seen[-1] > 0

    try:
        wait_for(settled, timeout=DEADLINE / 2, message="the run's batches to be all waiting")
        assert max(seen) <= 2 * farm.nthreads, seen
    finally:
        release.set()
    assert sorted(run) == list(range(5000))


def test_suspend_stops_pulling_and_resume_restarts(farm):
    pulled = []

    def gen():
        for i in range(200):
            pulled.append(i)
            yield i

    run = farm.map(_tasks.noop, gen(), buffersize=4, batch_size=1, progress=False)
    taken = list(itertools.islice(run, 4))
    run.suspend()
    assert run.status == "suspended"
    wait_for(lambda: run.counts["pending"] + run.counts["running"] == 0, timeout=DEADLINE / 2,
             message="in-flight items to finish")
    n = len(pulled)
    assert n <= 4 + 4 + 1  # taken + buffer (+1: the feeder may hold one item it pulled)
    # suspended: nothing more is pulled, whatever the caller does
    taken += [next(run) for _ in range(run.counts["done"] - len(taken))]
    with pytest.raises(AssertionError):
        wait_for(lambda: len(pulled) > n, timeout=1.0)
    run.resume()
    assert len(taken) + sum(1 for _ in run) == 200
    assert len(pulled) == 200


def test_add_and_close_input(farm):
    run = farm.map(_tasks.square, None, progress=False)
    results = []
    run.add(1, 2, 3)
    results += itertools.islice(run, 3)
    run.add(4)
    run.close_input()
    results += list(run)
    assert sorted(results) == [1, 4, 9, 16]
    with pytest.raises(FarmStateError, match="add"):
        run.add(5)


def test_callbacks(farm):
    seen, progress, finished = [], [], []
    run = farm.map(_tasks.square, range(10), progress=False, batch_size=1)
    run.on_result(lambda item, result: seen.append((item, result)))
    run.on_progress(progress.append)
    run.on_finished(finished.append)
    summary = run.wait()
    assert sorted(seen) == [(x, x * x) for x in range(10)]
    assert finished == [summary]
    assert progress[-1] == 1.0
    late = []
    run.on_finished(late.append)
    assert late == [summary]


def test_wait_drains_without_iterating(farm):
    run = farm.map(_tasks.square, range(500), buffersize=10, progress=False)
    summary = run.wait(timeout=2 * DEADLINE)
    assert summary.done == 500 and summary.status == "finished"


def test_terminal_bar_shows_counts(farm, capsys):
    run = farm.map(_tasks.fails_on_multiples_of_3, range(9), errors="continue", progress=True,
                   name="barred")
    run.wait()
    err = capsys.readouterr().err
    assert "barred" in err
    assert "done=6" in err
    assert "failed=3" in err


def test_progress_auto_is_off_without_a_terminal(farm, capsys):
    farm.map(_tasks.square, range(5), name="quiet").wait()
    assert "quiet" not in capsys.readouterr().err
