"""A Farm on a remote scheduler: real ``dask scheduler`` / ``dask worker`` subprocesses.

One scheduler (``--preload daskfarm.dashboard``) and two workers serve the whole module; the
tests that take a worker away or add one leave two good workers behind.
"""

from __future__ import annotations

import importlib
import time
import urllib.request

import dask
import pytest

import daskfarm
from daskfarm import (
    DataManager,
    Farm,
    SchedulerImportError,
    VersionMismatchWarning,
    WorkerImportError,
    WorkerVersionError,
)
from tests.conftest import DEADLINE, wait_for
from tests.remote import _tasks
from tests.remote._procs import DaskProcesses, dask_env
from tests.remote.conftest import EXT_MODULE, worker_names

pytestmark = pytest.mark.slow


def addresses_by_name(farm) -> dict[str, str]:
    workers = farm.client.scheduler_info(n_workers=-1)["workers"]
    return {str(info["name"]): address for address, info in workers.items()}


def run_tasks_on_scheduler(farm) -> int:
    """How many farm tasks (keys are (run id, batch number) tuples) the scheduler holds."""
    return farm.client.run_on_scheduler(
        lambda dask_scheduler: sum(type(k) is tuple for k in dask_scheduler.tasks))


def kill_and_replace(farm, remote, victim: str, newcomer: str):
    """SIGKILL ``victim`` while it runs items, start ``newcomer``; (the items it had, its proc)."""
    address = addresses_by_name(farm)[victim]
    running = wait_for(lambda: farm.client.processing([address])[address], timeout=DEADLINE,
                       message=f"{victim} to be running items")
    remote.kill_worker(victim)
    proc = remote.start_worker(newcomer)
    wait_for(lambda: newcomer in addresses_by_name(farm), timeout=1.5 * DEADLINE,
             message="the new worker to join")
    return running, proc


def test_map_on_a_remote_scheduler_serves_the_panel_and_leaves_the_cluster_running(remote):
    started = time.perf_counter()
    with Farm(remote.address) as farm:
        results = []
        for result in farm.map(_tasks.where, range(30), batch_size=1, progress=False):
            if not results:
                first = time.perf_counter() - started
            results.append(result)
        assert sorted(x for x, _ in results) == list(range(30))
        assert len({pid for _, pid in results}) == 2  # both workers took items

        base, _, token = farm.panel_link.partition("?token=")
        assert base == f"http://127.0.0.1:{remote.dashboard_port}/farm"
        assert token == remote.token  # the preload's DASKFARM_TOKEN
        with urllib.request.urlopen(farm.panel_link, timeout=DEADLINE) as page:
            assert page.status == 200
            assert b"bokeh" in page.read().lower()
    print(f"remote tcp: Farm(address) to first result {first:.2f} s")
    assert remote.alive()  # a Farm never closes what it did not start
    assert worker_names(remote) == {"w1", "w2"}


def test_a_worker_killed_and_another_started_mid_run_lose_no_item(remote, tmp_path):
    store = tmp_path / "store"
    n = 48
    with Farm(remote.address) as farm:
        run = farm.map(_tasks.where, range(n), store=str(store), batch_size=2, name="where",
                       progress=False)
        results, killed_with = [], None
        for result in run:
            results.append(result)
            if len(results) == 6:
                killed_with, replacement = kill_and_replace(farm, remote, "w1", "w3")
        summary = run.wait(timeout=2 * DEADLINE)
    assert killed_with  # items were in flight on the killed worker
    assert (summary.done, summary.failed, summary.cancelled) == (n, 0, 0)
    assert sorted(x for x, _ in results) == list(range(n))
    assert replacement.pid in {pid for _, pid in results}  # the new worker took items

    with DataManager(store, readonly=True) as dm:
        assert len(dm) == n
        assert dm.failures() == []
        assert all(len(dm.get_all(key)) == 1 for key in dm.keys())
        assert sorted(x for x, _ in dm.values()) == list(range(n))


def test_a_worker_retired_mid_run_as_at_walltime_loses_no_item(remote, tmp_path):
    """``retire_workers`` is what ``dask worker --lifetime`` and scale-down do."""
    n = 40
    with Farm(remote.address) as farm:
        run = farm.map(_tasks.where, range(n), store=str(tmp_path / "s"), batch_size=2,
                       name="where", progress=False)
        results = []
        for result in run:
            results.append(result)
            if len(results) == 6:
                name = sorted(addresses_by_name(farm))[0]
                retire(farm, remote, name)
                remote.start_worker(f"{name}-next")
        summary = run.wait(timeout=2 * DEADLINE)
    assert (summary.done, summary.failed, summary.cancelled) == (n, 0, 0)
    with DataManager(tmp_path / "s", readonly=True) as dm:
        assert len(dm) == n
        assert all(len(dm.get_all(key)) == 1 for key in dm.keys())


def retire(farm, remote, name: str) -> None:
    address = addresses_by_name(farm)[name]
    wait_for(lambda: farm.client.processing([address])[address], timeout=DEADLINE,
             message=f"{name} to be running items")
    farm.client.retire_workers([address], close_workers=True)
    remote.workers.pop(name).wait(timeout=DEADLINE)  # a worker without a nanny exits when closed


def test_preflight_names_the_worker_that_cannot_import_the_task_module(remote, ext_dir,
                                                                      monkeypatch):
    monkeypatch.syspath_prepend(str(ext_dir))
    ext = importlib.import_module(EXT_MODULE)
    remote.start_worker("bad", env=dask_env())  # its PYTHONPATH lacks ext_dir
    try:
        with Farm(remote.address) as farm:
            bad = wait_for(lambda: addresses_by_name(farm).get("bad"), timeout=1.5 * DEADLINE,
                           message="the worker without the module to join")
            with pytest.raises(WorkerImportError, match=EXT_MODULE) as info:
                farm.map(ext.triple, range(10), progress=False)
            assert f"worker {bad} cannot load the task" in str(info.value)
            assert "PYTHONPATH" in str(info.value)
            assert farm.runs == []  # refused before the first item
            assert run_tasks_on_scheduler(farm) == 0
    finally:
        remote.stop_worker("bad")
    with Farm(remote.address) as farm:
        wait_for(lambda: "bad" not in addresses_by_name(farm), timeout=DEADLINE,
                 message="the bad worker to leave")
        assert sorted(farm.map(ext.triple, range(5), progress=False)) == [0, 3, 6, 9, 12]


def test_preflight_reports_a_version_mismatch_before_the_first_item(remote, monkeypatch):
    workers = sorted(worker_names(remote))
    real = daskfarm.__version__
    # The client pretends to be another release; the workers report the real one.
    monkeypatch.setattr(daskfarm, "__version__", "0.99.0")
    with pytest.raises(WorkerVersionError, match=rf"has daskfarm {real} \(this client: 0.99.0\)"
                       ) as info:
        Farm(remote.address)
    where = {process for process, *_ in info.value.mismatches}
    assert len(where) == len(workers) + 1  # every worker, and the scheduler
    assert f"scheduler {remote.address}" in where
    assert "pip install 'daskfarm==0.99.0'" in str(info.value)
    assert isinstance(info.value, WorkerImportError)

    # the same check runs again before a map's first item
    with dask.config.set({"daskfarm.preflight.version-mismatch": "ignore"}):
        farm = Farm(remote.address)
    with farm:
        with pytest.raises(WorkerVersionError):
            farm.map(_tasks.square, range(4), progress=False)
        assert run_tasks_on_scheduler(farm) == 0
        with dask.config.set({"daskfarm.preflight.version-mismatch": "warn"}), \
                pytest.warns(VersionMismatchWarning, match="0.99.0"):
            run = farm.map(_tasks.square, range(4), progress=False)
        assert sorted(run) == [0, 1, 4, 9]

    # a patch-level difference only warns
    patch = ".".join([*real.split(".")[:2], "999"])
    monkeypatch.setattr(daskfarm, "__version__", patch)
    with pytest.warns(VersionMismatchWarning, match=rf"daskfarm {real} \(this client: {patch}\)"):
        farm = Farm(remote.address)
    farm.close()


BLOCK_DASKFARM = """
import sys
sys.modules["daskfarm"] = None  # this scheduler "cannot import daskfarm"
"""


def test_a_scheduler_that_cannot_import_daskfarm_is_named_at_connect(tmp_path):
    blocker = tmp_path / "block_daskfarm.py"
    blocker.write_text(BLOCK_DASKFARM)
    procs = DaskProcesses(tmp_path)
    try:
        procs.start_scheduler(preload=False, extra=["--preload", str(blocker)])
        with pytest.raises(SchedulerImportError, match="cannot import daskfarm") as info:
            Farm(procs.address)
        message = str(info.value)
        assert procs.address in message
        assert "install daskfarm" in message
        assert "--preload daskfarm.dashboard" in message
        assert procs.alive()
    finally:
        procs.close()
