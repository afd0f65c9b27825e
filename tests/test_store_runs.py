"""Runs with a store: results written as they arrive, resume, and the drain on exit."""

from __future__ import annotations

import functools
import os

from daskfarm import DataManager, Farm

from . import _tasks


def test_leaving_the_with_block_drains_an_unconsumed_run(tmp_path):
    path = tmp_path / "results"
    with Farm(n_workers=2, dashboard=False) as farm:
        farm.map(_tasks.square, range(50), store=path, progress=False)
    with DataManager(path) as dm:
        assert dm.itemcount() == 50
        assert sorted(dm.values()) == [x * x for x in range(50)]
        key = next(iter(dm.keys()))
        assert dm[key] == dm.params(key) ** 2


def test_resume_skips_stored_items_without_recomputing(farm, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    task = functools.partial(_tasks.touch, directory=str(marks))
    store = tmp_path / "store"
    first = farm.map(task, range(30), store=store, name="touch", progress=False)
    assert first.wait().done == 30
    assert len(os.listdir(marks)) == 30
    for name in os.listdir(marks):
        os.remove(marks / name)
    # ten new items next to the thirty done: only the ten are computed
    second = farm.map(task, range(40), store=store, name="touch", progress=False)
    summary = second.wait()
    assert (summary.done, summary.skipped) == (10, 30)
    assert sorted(os.listdir(marks)) == sorted(f"item-{x}" for x in range(30, 40))
    with DataManager(store) as dm:
        assert len(dm) == 40
    # the same items under another version are new work
    third = farm.map(task, range(5), store=store, name="touch", version=2, progress=False)
    assert third.wait().done == 5


def test_failures_are_stored_with_their_item(farm, tmp_path):
    store = tmp_path / "store"
    run = farm.map(_tasks.fails_on_multiples_of_3, range(9), store=store, errors="continue",
                   progress=False)
    run.wait()
    with DataManager(store) as dm:
        failures = dm.failures()
        assert sorted(f.item for f in failures) == [0, 3, 6]
        assert all(f.exc_type == "ValueError" for f in failures)
        assert all("bad item" in f.message and "Traceback" in f.traceback for f in failures)
        assert len(dm) == 6
    # a rerun computes the failed items again (only successes count as stored)
    rerun = farm.map(_tasks.fails_on_multiples_of_3, range(9), store=store, errors="continue",
                     progress=False)
    summary = rerun.wait()
    assert (summary.skipped, summary.failed) == (6, 3)


def test_a_datamanager_can_be_passed_and_stays_open(farm, tmp_path):
    with DataManager(tmp_path / "dm") as dm:
        run = farm.map(_tasks.square, range(10), store=dm, ordered=True, progress=False)
        assert list(run) == [x * x for x in range(10)]
        assert dm.itemcount() == 10
        records = [dm.get_all(k)[0] for k in dm.keys()]
        assert {r.run_id for r in records} == {run.run_id}
        assert {r.task for r in records} == {"tests._tasks.square"}
