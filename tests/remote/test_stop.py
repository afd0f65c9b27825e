"""Hard stops on a real ``dask scheduler`` + ``dask worker`` pair (workers with a nanny)."""

from __future__ import annotations

import functools
import uuid

import dask
import pytest
from distributed import Event

from daskfarm import Farm
from tests.conftest import DEADLINE, wait_for
from tests.faults import _tasks
from tests.faults.test_tasks import busy_threads
from tests.remote._procs import DaskProcesses
from tests.remote.conftest import wait_for_workers


@pytest.fixture(scope="module")
def nannied(tmp_path_factory):
    procs = DaskProcesses(tmp_path_factory.mktemp("nannied"))
    try:
        procs.start_scheduler(token=uuid.uuid4().hex)
        for name in ("n1", "n2"):
            procs.start_worker(name, nanny=True)
        wait_for_workers(procs, 2)
        yield procs
    finally:
        procs.close()


def test_a_remote_worker_is_restarted_by_its_nanny(nannied, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    with Farm(nannied.address) as farm:
        release = Event(f"release-{uuid.uuid4().hex}", client=farm.client)
        try:
            task = functools.partial(_tasks.silent, event=release.name, directory=str(marks))
            stopped = farm.map(task, range(4), batch_size=1, buffersize=4, progress=False)
            wait_for(lambda: len(_tasks.marks(marks)) == 2, timeout=DEADLINE,
                     message="two silent items")
            stopped.cancel(grace=0.5)
            assert stopped.done and stopped.status == "cancelled"
            wait_for(lambda: len(farm.client.nthreads()) == 2, timeout=1.5 * DEADLINE,
                     message="the restarted workers")
            assert busy_threads(farm) == 0
            names = {str(w["name"]) for w in
                     farm.client.scheduler_info(n_workers=-1)["workers"].values()}
            assert names == {"n1", "n2"}  # the same workers, new processes
            nxt = farm.map(_tasks.paced, range(6), batch_size=1, progress=False)
            assert sorted(x for x, _ in nxt) == list(range(6))
        finally:
            release.set()


def test_a_timed_out_item_on_a_remote_worker_fails_alone(nannied):
    with Farm(nannied.address) as farm:
        release = Event(f"release-{uuid.uuid4().hex}", client=farm.client)
        try:
            task = functools.partial(_tasks.hangs_on, slow={2: "silent"}, event=release.name)
            with dask.config.set({"daskfarm.cancel-grace": "1s"}):
                run = farm.map(task, range(8), timeout=1.0, errors="continue", batch_size=1,
                               progress=False)
            assert sorted(x for x, _ in run) == [0, 1, 3, 4, 5, 6, 7]
            assert [f.item for f in run.failures] == [2]
            assert run.failures[0].exc_type == "daskfarm.exceptions.ItemTimeoutError"
        finally:
            release.set()
        wait_for(lambda: len(farm.client.nthreads()) == 2, timeout=1.5 * DEADLINE,
                 message="the restarted worker")


def test_controls_off_gives_a_link_without_the_token(nannied):
    with Farm(nannied.address, controls=False) as farm:
        link = farm.panel_link
        assert link is not None and "token=" not in link
    with Farm(nannied.address) as farm:
        assert "token=" in farm.panel_link
