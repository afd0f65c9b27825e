"""Brian's run_tasks on a Farm: call semantics, storage, text output, terminate and Ctrl-C."""

from __future__ import annotations

import _thread
import logging
import re
import threading
import webbrowser

import numpy as np
import pytest
from distributed import Event

from daskfarm import DataManager
from daskfarm.compat import run_tasks, taskfarm
from tests.conftest import DEADLINE

from ..conftest import wait_for
from . import _tasks

PROCESS_LINE = re.compile(
    r"^Process (\d+): (\d+)% complete, \d+s elapsed"
    r"(, approximately (\d+[dhms] ?)+ remaining)?\.: (.+)$"
)
OVERALL_LINE = re.compile(
    r"^Overall, (\d+) done( of (\d+): \d+% complete, \d+s elapsed"
    r"(, approximately (\d+[dhms] ?)+ remaining)?\.)?$"
)
QUIET = {"gui": False, "verbose": False}


@pytest.fixture
def dm(tmp_path):
    with DataManager(tmp_path / "store") as store:
        yield store


def test_only_tuples_are_star_expanded(farm, dm):
    items = [(1, 2), [3, 4], 5, np.array([6, 7]), (8,), {"a": 1}]
    summary = run_tasks(dm, _tasks.star_probe, items, farm=farm, **QUIET)
    assert summary.done == 6
    assert summary.status == "finished"
    assert sorted(dm.values()) == sorted([
        (2, ("int", "int")), (1, ("list",)), (1, ("int",)), (1, ("ndarray",)), (1, ("int",)),
        (1, ("dict",)),
    ])


def test_report_keyword_gets_daskfarms_reporter(farm, dm):
    run_tasks(dm, _tasks.with_report, [1, 2], farm=farm, **QUIET)
    assert sorted(dm.values()) == [(1, "Reporter"), (2, "Reporter")]


def test_results_are_stored_with_their_items(farm, dm):
    run_tasks(dm, _tasks.find_rate, [(1.5,), (3.0,)], farm=farm, **QUIET)
    stored = {dm.params(key): value for key, value in dm.items()}
    assert stored == {(1.5,): (1.5, 3.0), (3.0,): (3.0, 6.0)}


def test_class_task_with_initargs_and_process_number(farm, dm):
    run_tasks(dm, _tasks.Numbered, range(8), initargs=(100,), farm=farm, **QUIET)
    values = dm.values()
    assert sorted(v[0] for v in values) == list(range(100, 108))
    # one instance per worker process, numbered 0..n-1
    numbers_by_pid = {pid: number for _, number, _, pid in values}
    assert sorted(numbers_by_pid.values()) == [0, 1]


def test_process_number_survives_a_worker_restart(farm, tmp_path):
    def numbers(path):
        with DataManager(path) as store:
            run_tasks(store, _tasks.Numbered, range(8), farm=farm, **QUIET)
            return {name: number for _, number, name, _ in store.values()}

    before = numbers(tmp_path / "before")
    assert sorted(before.values()) == [0, 1]
    victim = next(addr for addr, info in farm.client.scheduler_info()["workers"].items()
                  if info["name"] == next(iter(before)))
    farm.client.restart_workers([victim], timeout=2 * DEADLINE)
    wait_for(lambda: len(farm.client.nthreads()) == 2, timeout=2 * DEADLINE, message="two workers")
    # Brian handed numbers out through a queue, so a respawned worker blocked for ever;
    # here it gets its number back
    assert numbers(tmp_path / "after") == before


def test_class_task_without_init(farm, dm):
    run_tasks(dm, _tasks.NoInit, [1, 2], farm=farm, **QUIET)
    assert sorted(dm.values()) == [2, 4]


def test_a_path_is_accepted_as_dataman(farm, tmp_path):
    run_tasks(str(tmp_path / "by-path"), _tasks.find_rate, [(1.0,)], farm=farm, **QUIET)
    with DataManager(tmp_path / "by-path") as store:
        assert store.values() == [(1.0, 2.0)]


def test_brians_top_up_idiom(farm, dm):
    N = 6
    # an interrupted first session left two results
    run_tasks(dm, _tasks.find_rate, np.random.rand(2) * 19 + 1, farm=farm, **QUIET)
    for _ in range(2):  # the script run twice: it tops up once, then computes nothing
        if dm.itemcount() < N:
            run_tasks(dm, _tasks.find_rate, np.random.rand(N - dm.itemcount()) * 19 + 1,
                      farm=farm, **QUIET)
    assert dm.itemcount() == N
    X, Y = zip(*dm.values())
    assert Y == pytest.approx([2 * x for x in X])


def test_a_task_failure_is_raised_and_results_are_kept(farm, dm):
    with pytest.raises(ValueError, match="bad item 3"):
        run_tasks(dm, _tasks.fails_on_3, range(3, 4), farm=farm, **QUIET)
    run_tasks(dm, _tasks.fails_on_3, [1, 2], farm=farm, **QUIET)
    assert sorted(dm.values()) == [1, 2]


def test_verbose_lines_follow_brians_format(farm, dm, capsys):
    run_tasks(dm, _tasks.with_report, range(3), farm=farm, gui=False)  # verbose = not gui
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Process 0: 0% complete, 0s elapsed.: No task information"
    assert lines[1] == "Process 1: 0% complete, 0s elapsed.: No task information"
    assert lines[2] == "Overall, 0 done of 3: 0% complete, 0s elapsed."
    assert lines[-1] == "Finished."
    assert re.match(r"Overall, 3 done of 3: 100% complete, \d+s elapsed, approximately 0s "
                    r"remaining\.$", lines[-2])
    for line in lines[:-1]:
        assert PROCESS_LINE.match(line) or OVERALL_LINE.match(line), line


def test_numitems_gives_an_eta_over_an_iterator(farm, dm, capsys):
    run_tasks(dm, _tasks.find_rate, ((k,) for k in range(4)), numitems=4, farm=farm,
              gui=False)
    out = capsys.readouterr().out
    assert "Overall, 0 done of 4: 0% complete, 0s elapsed." in out
    assert re.search(r"Overall, 4 done of 4: 100% complete, \d+s elapsed, approximately",
                     out)
    # the panel gets the total too, for its ETA
    assert farm.client.run_on_scheduler(_tasks.run_total, farm.runs[-1].run_id) == 4
    # without numitems a generator has no total: counts only
    run_tasks(dm, _tasks.find_rate, ((k,) for k in range(10, 12)), farm=farm, gui=False)
    out = capsys.readouterr().out
    assert "Overall, 2 done\n" in out
    assert " of " not in out


def _in_thread(fn, **kwargs):
    box: dict = {}

    def target():
        try:
            box["value"] = fn(**kwargs)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def test_taskname_in_verbose_lines_and_panel_rows(farm, dm, capsys):
    gate = Event("compat-taskname", client=farm.client)
    thread, box = _in_thread(run_tasks, dataman=dm, task=_tasks.NamedWaiter, items=[1],
                             initargs=("compat-taskname",), gui=False, verbose=True,
                             farm=farm)
    out: list[str] = []
    try:
        wait_for(lambda: out.append(capsys.readouterr().out) or
                 "named-task item 1" in "".join(out), timeout=DEADLINE, message="the taskname line")
        rows = farm.client.run_on_scheduler(taskfarm._scheduler_rows, farm.runs[-1].run_id)
        assert [row["taskname"] for row in rows] == ["named-task item 1"]
    finally:
        gate.set()
        thread.join(60)
    assert "error" not in box
    assert box["value"].done == 1
    line = next(x for x in "".join(out).splitlines() if "named-task" in x)
    match = PROCESS_LINE.match(line)
    assert match, line
    assert match.group(5) == "named-task item 1"


def _blocked_run(farm, dm, event_name, **kwargs):
    """Items -2, -1 finish at once, 0..3 wait for the event."""
    items = [(x, event_name) for x in (-2, -1, 0, 1, 2, 3)]
    return dict(dataman=dm, task=_tasks.fast_or_gated, items=items, farm=farm, **kwargs)


def test_terminate_from_the_panel_keeps_what_is_stored(farm, dm, capsys):
    gate = Event("compat-terminate", client=farm.client)
    runs_before = len(farm.runs)
    thread, box = _in_thread(run_tasks, **_blocked_run(farm, dm, "compat-terminate",
                                                       gui=False, verbose=True))
    try:
        wait_for(lambda: len(farm.runs) > runs_before and farm.runs[-1].counts["done"] == 2,
                 timeout=DEADLINE, message="the two fast items")
        farm.client.run_on_scheduler(_tasks.terminate_run, farm.runs[-1].run_id)
        thread.join(60)
    finally:
        gate.set()
        thread.join(60)
    summary = box["value"]
    assert summary.status == "cancelled"
    assert summary.done == 2
    assert sorted(dm.values()) == [-2, -1]
    assert capsys.readouterr().out.splitlines()[-1] == "Terminated task processes"


def test_ctrl_c_cancels_and_keeps_what_is_stored(farm, dm, capsys):
    gate = Event("compat-ctrl-c", client=farm.client)
    runs_before = len(farm.runs)

    def press_ctrl_c():
        wait_for(lambda: len(farm.runs) > runs_before and farm.runs[-1].counts["done"] == 2,
                 timeout=DEADLINE, message="the two fast items")
        _thread.interrupt_main()

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_tasks(**_blocked_run(farm, dm, "compat-ctrl-c", gui=False, verbose=True))
    finally:
        gate.set()
        presser.join(60)
    run = farm.runs[-1]
    assert run.status == "cancelled"
    assert run.counts["done"] == 2
    assert sorted(dm.values()) == [-2, -1]
    assert capsys.readouterr().out.splitlines()[-1] == "Terminated task processes"


def test_gui_prints_and_opens_the_panel(farm, dm, capsys, monkeypatch):
    opened = []
    monkeypatch.setattr(taskfarm, "_open_in_browser", opened.append)
    run_tasks(dm, _tasks.find_rate, [(1.0,)], farm=farm)  # gui=True, verbose=False
    out = capsys.readouterr().out
    assert out == f"Task control: {farm.panel_link}\n"
    assert opened == [farm.panel_link]
    assert "/farm?token=" in farm.panel_link


def test_no_console_browser_takes_the_terminal(monkeypatch):
    def must_not_open(*args, **kwargs):
        raise AssertionError("a console browser must not be started")

    console = webbrowser.GenericBrowser("lynx")  # what webbrowser picks headless, TERM set
    console.open = must_not_open
    monkeypatch.setattr(webbrowser, "get", lambda: console)
    assert taskfarm._open_in_browser("http://127.0.0.1:1/farm") is False

    def no_browser():
        raise webbrowser.Error("could not locate runnable browser")

    monkeypatch.setattr(webbrowser, "get", no_browser)
    assert taskfarm._open_in_browser("http://127.0.0.1:1/farm") is False


def test_poolsize_is_ignored_with_a_farm(farm, dm, caplog):
    with caplog.at_level(logging.WARNING, logger="daskfarm.compat.taskfarm"):
        run_tasks(dm, _tasks.find_rate, [(2.0,)], poolsize=-1, farm=farm, **QUIET)
    assert "poolsize=-1 is ignored" in caplog.text
    assert dm.values() == [(2.0, 4.0)]


def test_poolsize_starts_a_farm_of_that_size(dm):
    summary = run_tasks(dm, _tasks.Numbered, range(3), poolsize=1, **QUIET)
    assert summary.done == 3
    assert {(number, name) for _, number, name, _ in dm.values()} == {(0, 0)}
