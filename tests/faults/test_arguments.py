"""Bad arguments: each gets an error of the right type, at once, whose message names the fix.

Not repeated here: tests/test_errors.py (a task that is not callable, a class without
``__call__``, items that are not iterable, buffersize, batch_size, retries, errors=, an
unpicklable task or item, a store path that is a file, a module missing on the workers,
a closed Farm, unreachable or wrong addresses, worker counts), tests/test_map.py (a Run
iterated twice, ``pairs()`` after iteration, ``add()`` after ``close_input()``) and
tests/store/test_manager.py (a closed or read-only DataManager used directly).
"""

from __future__ import annotations

import signal
import threading

import pytest

from daskfarm import (
    DataManager,
    Farm,
    FarmClosedError,
    FarmStateError,
    FarmTypeError,
    FarmValueError,
    StoreError,
)
from tests import _tasks as core_tasks
from tests.conftest import DEADLINE


def test_a_run_drained_by_wait_cannot_be_iterated(farm):
    run = farm.map(core_tasks.square, range(3), progress=False)
    assert run.wait(timeout=DEADLINE).done == 3
    with pytest.raises(FarmStateError, match="read them back from the run's store"):
        list(run)
    with pytest.raises(FarmStateError, match="iterated once"):
        run.pairs()


def test_add_to_a_run_that_was_given_its_items(farm):
    run = farm.map(core_tasks.square, range(3), progress=False)
    with pytest.raises(FarmStateError, match="items=None"):
        run.add(4)
    assert sorted(run) == [0, 1, 4]


def test_a_closed_or_readonly_datamanager_as_a_runs_store(farm, tmp_path):
    dm = DataManager(tmp_path / "closed")
    dm.close()
    with pytest.raises(FarmClosedError, match=r"open it again with DataManager\("):
        farm.map(core_tasks.square, [1], store=dm)
    with DataManager(tmp_path / "closed", readonly=True) as ro, \
            pytest.raises(StoreError, match=r"readonly=True: open DataManager\("):
        farm.map(core_tasks.square, [1], store=ro)
    assert not farm.runs or all(run.done for run in farm.runs)


# -- options that are not checked today: each should fail at map() with a FarmError -------

_BUG4 = "map() does not check this argument"


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    pytest.param({"name": 5}, FarmTypeError, "name must be a str", id="name-not-str"),
    pytest.param({"store": 123}, FarmTypeError, "DataManager or a directory path",
                 id="store-not-a-path"),
    pytest.param({"plot": 5}, FarmTypeError, "plot must be a function", id="plot-not-callable"),
    pytest.param({"initkwds": [1]}, FarmTypeError, "initkwds must be a dict",
                 id="initkwds-not-dict"),
    pytest.param({"numitems": -3}, FarmValueError, "numitems must be", id="numitems-negative"),
])
def test_unchecked_map_options_fail_at_map(farm, kwargs, error, match):
    task = core_tasks.Scaler if "initkwds" in kwargs else core_tasks.square
    with pytest.raises(error, match=match):  # (today: a run starts, and ends as it can)
        farm.map(task, range(3), progress=False, **kwargs)


def test_initargs_a_class_cannot_take_fail_at_map(farm):
    with pytest.raises(FarmTypeError, match="initargs"):
        farm.map(core_tasks.Scaler, range(3), initargs=(1, 2, 3, 4), errors="continue",
                 progress=False)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_numitems_that_is_not_a_number_fails_at_once():
    farm = Farm(n_workers=1, processes=False, dashboard=False)
    try:
        # (today: the run's feeder thread dies in _finish, so the run never ends, and
        # wait(), like the drain at a with block's exit, waits for ever)
        with pytest.raises(FarmValueError, match="numitems"):
            farm.map(core_tasks.square, iter(range(3)), numitems="3", progress=False)
    finally:
        farm.close(cancel=True)


def test_a_farm_can_be_closed_from_another_thread():
    # As in a script whose first Farm this is (another open Farm would own the handler).
    outer = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        farm = Farm(n_workers=1, processes=False, dashboard=False)
    finally:
        signal.signal(signal.SIGTERM, outer)
    errors: list = []

    def close():
        try:
            farm.close()
        except BaseException as e:
            errors.append(e)

    try:
        assert sorted(farm.map(core_tasks.square, range(3), progress=False)) == [0, 1, 4]
        closer = threading.Thread(target=close)  # a GUI's worker thread, an on_finished hook
        closer.start()
        closer.join(timeout=DEADLINE)
        assert not closer.is_alive()
        assert not errors, errors
    finally:
        farm.close()
