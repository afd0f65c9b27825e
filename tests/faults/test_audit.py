"""The December audit's client-side findings, each reproduced (these failed before the fix):
hangs and stalls of misused runs, a worker deadlock, close() during a call, KeyboardInterrupt in
a task, unclear errors for bad arguments, a generator that raises."""

from __future__ import annotations

import functools
import sys
import threading

import pytest
from distributed import Event

from daskfarm import DataManager, Farm, FarmStateError, FarmTypeError, FarmValueError, report
from tests import _tasks as core
from tests.conftest import DEADLINE, wait_for
from tests.faults import _tasks


def finishes(fn, timeout: float = 90) -> None:
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it does not return."""
    errors: list = []

    def target():
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{fn} did not return within {timeout} s"
    if errors:
        raise errors[0]


def test_5_no_deadlock_between_a_slow_class_init_and_closing_another_run(tmp_path):
    # one worker, two threads: run A waits on added items, run B builds a class task whose
    # initarg takes 3 s to unpickle and whose __init__ asks the scheduler for process_number
    def scenario():
        with Farm(n_workers=1, threads_per_worker=2, dashboard=False) as farm:
            open_run = farm.map(core.square, None, progress=False)
            open_run.add(1, 2)
            slow = farm.map(_tasks.Numbered, range(2), initargs=(_tasks.SlowToUnpickle(3.0),),
                            progress=False)
            threading.Timer(1.0, open_run.close_input).start()
            assert sorted(open_run) == [1, 4]
            assert sorted(slow) == [(0, 0), (1, 0)]

    finishes(scenario, timeout=2 * DEADLINE)


def test_6_a_run_whose_input_is_left_open_ends_at_the_with_exit(caplog):
    def scenario():
        with Farm(n_workers=1, processes=False, dashboard=False) as farm:
            left_open = farm.map(core.square, None, progress=False)
            left_open.add(1, 2, 3)
        assert left_open.done and left_open.status == "cancelled"

    finishes(scenario)
    assert "close_input()" in caplog.text


def test_7_wait_from_a_callback_is_refused_and_the_run_goes_on(farm):
    seen: list = []
    run = farm.map(core.square, range(5), progress=False)

    @run.on_result
    def waits(item, result):
        try:
            run.wait(timeout=1)
        except FarmStateError as exc:
            seen.append(str(exc))

    summary = run.wait(timeout=DEADLINE)
    assert summary.done == 5 and seen and "feeder thread" in seen[0]


def test_8_a_callback_that_exits_does_not_stop_the_run(farm):
    run = farm.map(core.square, range(20), batch_size=1, progress=False)
    run.on_progress(lambda fraction: sys.exit(3))
    run.on_result(lambda item, result: sys.exit(4))
    assert run.wait(timeout=DEADLINE).done == 20 and run.done


def test_9_a_run_consumed_only_by_callbacks_does_not_stall(farm):
    got: list = []
    run = farm.map(core.square, range(200), batch_size=1, buffersize=4, progress=False)
    run.on_result(lambda item, result: got.append(result))
    wait_for(lambda: run.done, timeout=DEADLINE, message="the run to end")
    assert sorted(got) == [x * x for x in range(200)]


def test_11_close_of_a_class_task_waits_for_its_running_calls(farm, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    release = Event(f"release-{tmp_path.name}", client=farm.client)
    run = farm.map(_tasks.ClosesAfterCalls, range(4), batch_size=1,
                   initargs=(release.name, str(marks)), progress=False)
    wait_for(lambda: run.counts["running"] == 2, timeout=DEADLINE, message="two running items")
    run.cancel(grace=30)  # cooperative: the calls stop at their next report()
    wait_for(lambda: len(_tasks.marks(marks)) == 2, timeout=DEADLINE, message="both closes")
    assert _tasks.marks(marks) == ["close-after", "close-after"]


def test_12_keyboard_interrupt_in_a_task_fails_its_item_not_the_worker(farm):
    before = set(farm.client.run(lambda: __import__("os").getpid()).values())
    run = farm.map(_tasks.interrupts, range(4), batch_size=1, errors="continue",
                   progress=False)
    pids = {pid for _, pid in run}
    assert [(f.item, f.exc_type) for f in run.failures] == [(1, "KeyboardInterrupt")]
    assert pids <= before  # no worker was restarted


def test_16_durations_are_checked_with_a_clear_error(farm):
    with pytest.raises(FarmValueError, match="timeout='abc' is not a duration"):
        Farm("tcp://127.0.0.1:9", timeout="abc")
    with pytest.raises(FarmValueError, match="more than 0 seconds"):
        farm.map(core.square, [1], timeout=-1)
    run = farm.map(core.square, [1], progress=False)
    with pytest.raises(FarmValueError, match="number of seconds"):
        run.wait(timeout="5")
    run.wait(timeout=DEADLINE)


def test_17_a_fraction_that_is_no_number_names_report(farm):
    run = farm.map(core.reports_text, [1], errors="continue", progress=False)
    run.wait(timeout=DEADLINE)
    (failure,) = run.failures
    assert failure.exc_type == "daskfarm.exceptions.FarmValueError"
    assert "report() got the fraction 'half'" in failure.message
    report("half")  # outside a task it does nothing, as documented


def test_20_items_pulled_before_a_generator_raises_are_counted(farm):
    def items():
        yield from range(5)
        raise RuntimeError("the generator broke")

    run = farm.map(core.square, items(), progress=False)
    with pytest.raises(RuntimeError, match="the generator broke"):
        list(run)
    counts = run.counts
    assert counts["done"] + counts["cancelled"] + counts["failed"] == 5


def test_21_options_of_the_wrong_type_are_refused(farm):
    with pytest.raises(FarmTypeError, match="resume must be True or False"):
        farm.map(core.square, [1], resume="no")
    with pytest.raises(FarmValueError, match="retries must be a whole number"):
        farm.map(core.square, [1], retries=True)


def test_4_an_unpicklable_result_with_a_store_is_that_items_failure(farm, tmp_path):
    task = functools.partial(core.lambda_for, bad=3)
    run = farm.map(task, range(20), store=tmp_path / "s", errors="continue", batch_size=1,
                   progress=False)
    assert len(list(run)) == 19
    assert [f.item for f in run.failures] == [3]
    with DataManager(tmp_path / "s") as dm:
        assert len(dm) == 19 and [f.item for f in dm.failures()] == [3]
