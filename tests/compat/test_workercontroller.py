"""pydidas' WorkerController on a Farm: the seed's minimal and restart workflows and the rest."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from distributed import Event

from daskfarm import FarmStateError
from daskfarm.compat import Signal, SignalSpy, WorkerController
from tests.conftest import DEADLINE

from ..conftest import wait_for
from . import _tasks


def expected(tasks, slope, offset):
    return [[t, t * slope + offset] for t in tasks]


@pytest.fixture
def controller(farm):
    wc = WorkerController(farm=farm)
    yield wc
    wc.stop()


def test_minimal_example(farm, controller):
    controller.change_function(_tasks.linear, 2, 5)
    result_spy = SignalSpy(controller.sig_results)
    progress_spy = SignalSpy(controller.sig_progress)
    finished_spy = SignalSpy(controller.sig_finished)
    assert controller.progress == -1  # pydidas: no tasks yet

    controller.add_tasks(np.arange(10))
    controller.finalize_tasks()
    controller.start()
    wait_for(lambda: controller.progress >= 1, timeout=DEADLINE, message="all results")

    assert sorted(result_spy) == expected(range(10), 2, 5)
    assert sorted(p for (p,) in progress_spy) == [i / 10 for i in range(1, 11)]
    wait_for(lambda: not controller.is_alive(), timeout=DEADLINE, message="the controller to end")
    assert finished_spy == [[]]
    assert farm.client.status == "running"  # a farm it was given stays open


def test_restart_example(controller):
    controller.change_function(_tasks.linear, 2, 5)
    result_spy = SignalSpy(controller.sig_results)

    controller.add_tasks(np.arange(10))
    controller.start()
    wait_for(lambda: controller.progress >= 1, timeout=DEADLINE, message="the first ten")
    assert sorted(result_spy) == expected(range(10), 2, 5)
    assert controller.isRunning()

    controller.add_tasks(np.arange(10, 20))  # while running
    assert controller.progress < 1
    wait_for(lambda: controller.progress >= 1, timeout=DEADLINE, message="ten more")
    assert sorted(result_spy) == expected(range(20), 2, 5)

    controller.suspend()
    controller.change_function(_tasks.linear, -1, 0)
    controller.add_tasks(np.arange(20, 30))
    # held back while suspended: nothing was handed to the workers
    assert controller.progress == 0
    assert len(result_spy) == 20
    controller.restart()
    wait_for(lambda: controller.progress >= 1, timeout=DEADLINE, message="the new function's ten")
    assert sorted(result_spy) == expected(range(20), 2, 5) + expected(range(20, 30), -1, 0)
    assert controller.isRunning()


def test_change_function_while_running_takes_effect_at_once(controller):
    spy = SignalSpy(controller.sig_results)
    controller.change_function(_tasks.linear, 1, 0)
    controller.add_tasks([1, 2])
    controller.start()
    wait_for(lambda: controller.progress >= 1, timeout=DEADLINE, message="the first two")
    controller.change_function(_tasks.linear, 10, 0)
    assert controller.progress == -1  # a new cycle without tasks
    controller.add_tasks([3])
    wait_for(lambda: controller.progress >= 1, timeout=DEADLINE, message="the third")
    assert sorted(spy) == [[1, 1], [2, 2], [3, 30]]


def test_failures_are_recorded_and_the_cycle_completes(controller, caplog):
    spy = SignalSpy(controller.sig_results)
    controller.change_function(_tasks.fails_on_3)
    controller.add_tasks(range(5))
    controller.finalize_tasks()
    with caplog.at_level(logging.WARNING, logger="daskfarm.compat.workercontroller"):
        controller.start()
        wait_for(lambda: not controller.is_alive(), timeout=DEADLINE, message="the cycle to end")
    assert controller.progress == 1
    assert sorted(spy) == [[0, 0], [1, 1], [2, 2], [4, 4]]
    [failure] = controller.failures
    assert failure.item == 3
    assert failure.exc_type == "ValueError"
    assert "bad item 3" in caplog.text


def test_kwargs_are_keywords_and_report_is_passed_when_declared(farm):
    with WorkerController(function=_tasks.linear_reporting, func_args=(2,),
                          func_kwargs={"offset": 1}, farm=farm) as wc:
        spy = SignalSpy(wc.sig_results)
        wc.add_task(3)
        wc.start()
        wait_for(lambda: wc.progress >= 1, timeout=DEADLINE, message="the result")
        # pydidas passed func_kwargs' keys positionally
        assert spy == [[3, (7, "Reporter")]]
        # a **kwargs catch-all does not receive the reporter
        wc.change_function(_tasks.catch_all, 1, key=2)
        wc.add_task(5)
        wait_for(lambda: wc.progress >= 1, timeout=DEADLINE, message="the second result")
        assert spy[-1] == [5, (5, (1,), ["key"])]


def test_send_stop_signal_cancels_and_restart_goes_on(farm, controller):
    gate = Event("compat-stop", client=farm.client)
    spy = SignalSpy(controller.sig_results)
    try:
        controller.change_function(_tasks.gated_linear, 2, "compat-stop")
        controller.add_tasks(range(4))
        controller.start()
        wait_for(lambda: controller._books and controller._books[0].run.counts["running"],
                 timeout=DEADLINE, message="a running task")
        controller.send_stop_signal()
        assert controller._runs[0].status == "cancelled"
        assert spy == []
    finally:
        gate.set()
    controller.add_tasks([10])
    controller.restart()
    wait_for(lambda: controller.progress >= 1, timeout=DEADLINE, message="the task after the stop")
    assert spy == [[10, 20]]


def test_owned_farm_closes_when_finalized_tasks_are_done():
    wc = WorkerController(n_workers=1, function=_tasks.linear, func_args=(3, 0))
    finished = SignalSpy(wc.sig_finished)
    try:
        wc.add_tasks([1, 2])
        wc.finalize_tasks()
        wc.start()
        farm = wc._farm
        wait_for(lambda: finished, timeout=2 * DEADLINE, message="sig_finished")
        assert not wc.is_alive()
        assert wc._farm is None
        assert farm.client.status in ("closing", "closed")
    finally:
        wc.stop()
    assert finished == [[]]  # stop() after the end emits nothing more


def test_state_errors(controller):
    with pytest.raises(FarmStateError, match="change_function"):
        controller.start()
    with pytest.raises(ValueError, match="n_workers"):
        controller.n_workers = 2.5
    controller.change_function(_tasks.linear, 1, 0)
    controller.finalize_tasks()
    with pytest.raises(FarmStateError, match="finalize_tasks"):
        controller.add_task(1)


def test_a_failing_slot_does_not_stop_the_others(caplog):
    signal = Signal("sig_results")
    got = []

    def broken(*args):
        raise RuntimeError("broken slot")

    signal.connect(broken)
    signal.connect(lambda *args: got.append(args))
    with caplog.at_level(logging.ERROR, logger="daskfarm.compat.signals"):
        signal.emit(1, 2)
    assert got == [(1, 2)]
    assert "broken slot" in caplog.text
    signal.disconnect(broken)
    signal.disconnect()
    signal.emit(3, 4)
    assert got == [(1, 2)]


def test_stop_from_a_results_slot(farm):
    wc = WorkerController(function=_tasks.linear, func_args=(1, 0), farm=farm)
    finished = SignalSpy(wc.sig_finished)
    wc.sig_results.connect(lambda task, result: wc.stop())
    wc.add_tasks(range(3))
    wc.start()
    wait_for(lambda: finished, timeout=DEADLINE, message="the stop from the slot")
    assert not wc.is_alive()
    wc.stop()
    assert finished == [[]]
