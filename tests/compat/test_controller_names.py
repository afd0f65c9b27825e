"""The WorkerController names pydidas callers use: flags, the cycle hooks, waiting, joining,
QThread's wait/quit/exit/requestInterruption/isRunning, reset_task_list, sig_message_from_worker."""

from __future__ import annotations

import pytest

from daskfarm.compat import SignalSpy, WorkerController
from tests.conftest import DEADLINE

from ..conftest import wait_for
from . import _tasks


@pytest.fixture
def controller(farm):
    wc = WorkerController(farm=farm)
    yield wc
    wc.exit()  # pydidas' own tests tear down with exit()


def test_flags_of_a_new_controller(controller):
    assert controller.flags == {"running": False, "thread_alive": True, "active": False,
                                "stop_after_run": False, "must_restart": False}
    assert not controller.isRunning()
    assert controller.wait(0)  # never started: nothing to wait for
    controller.suspend()
    assert not controller.flags["running"]


def test_restart_before_start_only_flags_it(controller):
    controller.suspend()
    controller.restart()  # pydidas: no function yet is fine, nothing starts
    assert controller.flags["must_restart"]
    assert not controller.isRunning()
    controller.change_function(_tasks.linear, 2, 0)
    controller.add_tasks([1, 2])
    controller.start()
    assert not controller.flags["must_restart"]
    wait_for(lambda: controller.progress >= 1, timeout=DEADLINE, message="the results")


def test_stop_ends_the_thread(controller):
    controller.stop()
    assert not controller.flags["thread_alive"]
    assert not controller.isRunning()


def test_cycle_hooks_of_an_idle_controller(controller):
    controller.cycle_pre_run()
    controller.cycle_post_run(timeout=0.01)
    assert controller.progress == -1
    assert controller.flags["thread_alive"]  # not finalized: it may run again
    controller.finalize_tasks()
    controller.cycle_post_run(timeout=0.01)
    assert not controller.flags["thread_alive"]


def test_waiting_for_running_tasks(farm, controller, release):
    spy = SignalSpy(controller.sig_results)
    controller.change_function(_tasks.gated_linear, 3, release.name)
    controller.add_tasks([1, 2])
    controller.finalize_tasks()
    controller.start()
    assert controller.flags["stop_after_run"]
    wait_for(lambda: controller.flags["active"], timeout=DEADLINE, message="tasks handed over")
    assert controller.flags["running"]
    assert not controller.wait_for_processes_to_finish(timeout=0.2)
    assert not controller.wait(0.2)
    release.set()
    assert controller.wait_for_processes_to_finish(timeout=DEADLINE)
    assert controller.wait(60)
    assert sorted(spy) == [[1, 3], [2, 6]]
    assert controller.flags == {"running": False, "thread_alive": False, "active": False,
                                "stop_after_run": False, "must_restart": False}


def test_request_interruption_returns_at_once_and_wait_sees_the_end(farm, controller, release):
    finished = SignalSpy(controller.finished)
    controller.change_function(_tasks.gated_linear, 1, release.name)
    controller.add_tasks(range(3))
    controller.start()
    wait_for(lambda: controller.flags["active"], timeout=DEADLINE, message="tasks handed over")
    controller.requestInterruption()
    assert controller.isInterruptionRequested()
    assert controller.wait(60)
    assert finished == [[]]
    assert not controller.isRunning() and not controller.flags["thread_alive"]


@pytest.mark.parametrize("method", ["exit", "quit"])
def test_exit_and_quit_stop_it(controller, method):
    finished = SignalSpy(controller.finished)
    controller.change_function(_tasks.linear, 1, 0)
    controller.add_tasks([1])
    controller.start()
    getattr(controller, method)()
    assert finished == [[]]
    assert not controller.isRunning()


def test_reset_task_list_drops_held_tasks(controller):
    spy = SignalSpy(controller.sig_results)
    controller.change_function(_tasks.linear, 1, 0)
    controller.add_tasks([1, 2])
    controller.start()
    wait_for(lambda: controller.progress >= 1, timeout=DEADLINE, message="the first two")
    controller.suspend()
    controller.add_tasks([3, 4])
    assert controller.progress == 0.5
    controller.reset_task_list()
    assert controller.progress == 1.0  # the dropped tasks no longer count
    controller.add_tasks([5])
    controller.restart()
    wait_for(lambda: controller.progress >= 1, timeout=DEADLINE, message="the task after the reset")
    assert sorted(spy) == [[1, 1], [2, 2], [5, 5]]


def test_join_workers_lets_tasks_finish_and_a_restart_goes_on():
    wc = WorkerController(n_workers=1, function=_tasks.linear, func_args=(2, 0))
    spy = SignalSpy(wc.sig_results)
    try:
        wc.add_tasks([1, 2])
        wc.start()
        farm = wc._farm
        wc.join_workers(timeout=DEADLINE)
        assert sorted(spy) == [[1, 2], [2, 4]]
        assert farm.client.status in ("closing", "closed")  # the farm it started
        wc.add_tasks([3])
        wc.restart()  # a new farm, a new run
        wait_for(lambda: wc.progress >= 1, timeout=2 * DEADLINE, message="the task after the join")
        assert spy[-1] == [3, 6]
    finally:
        wc.exit()


def test_messages_from_workers_name_the_failed_task(controller):
    messages = SignalSpy(controller.sig_message_from_worker)
    controller.change_function(_tasks.fails_on_3)
    controller.add_tasks([2, 3])
    controller.start()
    wait_for(lambda: controller.progress >= 1, timeout=DEADLINE, message="both tasks")
    wait_for(lambda: messages, timeout=DEADLINE / 2, message="the worker's message")
    assert messages == [["task 3 failed: ValueError: bad item 3"]]
