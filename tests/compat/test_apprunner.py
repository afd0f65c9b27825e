"""pydidas' AppRunner on a real LocalCluster: the app's copy, its hooks, its signals."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from distributed import Event

from daskfarm import (
    AppMethodError,
    AppRunner,
    FarmPicklingError,
    FarmStateError,
    FarmTypeError,
    SignalSpy,
)
from tests.conftest import DEADLINE

from ..conftest import wait_for
from . import _apps


@pytest.fixture
def stop_later():
    runners = []
    yield runners.append
    for runner in runners:
        runner.exit()  # pydidas' own tests tear down with exit()


def test_the_copy_collects_every_result_and_the_callers_app_is_untouched(farm, stop_later):
    app = _apps.TripleApp(12)
    runner = AppRunner(app, farm=farm)
    stop_later(runner)
    final = SignalSpy(runner.sig_final_app_state)
    results = SignalSpy(runner.sig_results)
    progress = SignalSpy(runner.sig_progress)
    finished = SignalSpy(runner.finished)
    post_run = SignalSpy(runner.sig_post_run_called)

    runner.start()  # returns at once: the work goes on in the background
    assert runner.wait(120), "the runner did not finish"

    assert finished == [[]] and post_run == [[]]
    assert sorted((int(i), int(r)) for i, r in results) == [(i, 3 * i + 5) for i in range(12)]
    assert sorted(p for (p,) in progress) == [i / 12 for i in range(1, 13)]
    (final_app,), = final
    assert isinstance(final_app, _apps.TripleApp)
    assert final_app.results.tolist() == [3 * i + 5 for i in range(12)]
    assert not app.results.any()  # the caller's app was not sent the results
    assert runner.get_app().results.tolist() == final_app.results.tolist()
    assert not runner.isRunning() and not runner.flags["thread_alive"]
    assert farm.client.status == "running"  # a farm it was given stays open


def test_hooks_run_where_pydidas_runs_them(farm, stop_later):
    app = _apps.HookedApp(6)
    runner = AppRunner(app, farm=farm)
    stop_later(runner)
    final = SignalSpy(runner.sig_final_app_state)
    runner.start()
    assert runner.wait(120)

    (final_app,), = final
    # here: the runner's copy is prepared, gives the tasks and is post-run, once each
    assert final_app.calls == ["pre_run", "get_tasks", "post_run"]
    assert app.calls == [] and app.stored == {}
    # on the workers: each process's clone ran pre_run once, pre_cycle before every task
    stored = final_app.stored
    assert sorted(stored) == list(range(6))
    for task, value in stored.items():
        assert value["square"] == task * task
        assert value["cycle"] == task
        assert value["pre_runs"] == 1
        assert value["pid"] != final_app.pid


def test_carryon_gates_each_task(farm, stop_later):
    gate = Event(f"carryon-{uuid.uuid4().hex}", client=farm.client)
    runner = AppRunner(_apps.HookedApp(3, gate=gate.name), farm=farm)
    stop_later(runner)
    results = SignalSpy(runner.sig_results)
    try:
        runner.start()
        wait_for(lambda: runner.flags["active"], timeout=DEADLINE, message="tasks handed over")
        assert not runner.wait(0.5)  # held at multiprocessing_carryon()
        assert results == [] and runner.progress == 0
    finally:
        gate.set()
    assert runner.wait(120)
    assert sorted(task for task, _ in results) == [0, 1, 2]


def test_a_failing_task_is_recorded_and_the_runner_still_ends(farm, stop_later):
    runner = AppRunner(_apps.HookedApp(4, fail_on=2), farm=farm)
    stop_later(runner)
    messages = SignalSpy(runner.sig_message_from_worker)
    final = SignalSpy(runner.sig_final_app_state)
    runner.start()
    assert runner.wait(120)
    assert sorted(final[0][0].stored) == [0, 1, 3]
    assert [f.item for f in runner.failures] == [2]
    assert messages == [["task 2 failed: ValueError: task 2 is bad"]]


def test_stop_while_running_ends_with_the_final_state(farm, stop_later):
    gate = Event(f"carryon-{uuid.uuid4().hex}", client=farm.client)
    runner = AppRunner(_apps.HookedApp(3, gate=gate.name), farm=farm)
    stop_later(runner)
    final = SignalSpy(runner.sig_final_app_state)
    finished = SignalSpy(runner.finished)
    try:
        runner.start()
        wait_for(lambda: runner.flags["active"], timeout=DEADLINE, message="tasks handed over")
        runner.stop()
    finally:
        gate.set()
    assert finished == [[]]
    assert final[0][0].calls[-1] == "post_run"
    runner.stop()
    assert finished == [[]]


def test_helpers_work_on_the_runners_copy(farm, stop_later):
    app = _apps.HookedApp(2)
    runner = AppRunner(app, farm=farm)
    stop_later(runner)
    runner.call_app_method("multiprocessing_post_run")
    assert runner.get_app().calls == ["post_run"] and app.calls == []
    with pytest.raises(KeyError, match="no method 'no_such_method'") as info:
        runner.call_app_method("no_such_method")
    assert isinstance(info.value, AppMethodError)

    runner.set_app_param("n", 3)  # through the app's set_param_value
    assert runner.get_app().n == 3 and app.n == 2
    copy = runner.get_app()
    copy.n = 99
    assert runner.get_app().n == 3  # get_app gives a copy

    plain = AppRunner(_apps.TripleApp(2), farm=farm)
    stop_later(plain)
    plain.set_app_param("n", 5)
    with pytest.raises(AppMethodError, match="no parameter 'hdf5_last_image_num'"):
        plain.set_app_param("hdf5_last_image_num", 12345)


def test_no_app_method_calls_while_running(farm, stop_later):
    gate = Event(f"carryon-{uuid.uuid4().hex}", client=farm.client)
    runner = AppRunner(_apps.HookedApp(1, gate=gate.name), farm=farm)
    stop_later(runner)
    try:
        runner.start()
        wait_for(lambda: runner.flags["running"], timeout=DEADLINE, message="the runner to run")
        with pytest.raises(RuntimeError, match="stop") as info:
            runner.call_app_method("multiprocessing_post_run")
        assert isinstance(info.value, FarmStateError)
    finally:
        gate.set()
    assert runner.wait(120)
    assert runner.call_app_method("multiprocessing_get_tasks") == [0]


def test_bad_apps_get_clear_errors(farm, stop_later):
    with pytest.raises(FarmTypeError, match="lacks multiprocessing_get_tasks, "
                                            "multiprocessing_store_results"):
        AppRunner(_apps.NotAnApp())

    runner = AppRunner(_apps.UnpicklableApp(), farm=farm)
    stop_later(runner)
    finished = SignalSpy(runner.finished)
    runner.start()
    assert runner.wait(60)
    assert finished == [[]]
    with pytest.raises(FarmPicklingError, match="UnpicklableApp cannot be pickled"):
        runner.progress


def test_an_owned_farm_is_started_and_closed(stop_later):
    runner = AppRunner(_apps.TripleApp(4), n_workers=1)
    stop_later(runner)
    final = SignalSpy(runner.sig_final_app_state)
    runner.start()
    assert runner.wait(180)
    assert final[0][0].results.tolist() == [5, 8, 11, 14]
    assert runner._farm is None  # closed when the last task was done
    np.testing.assert_array_equal(runner.get_app().results, [5, 8, 11, 14])
