"""The scheduler of a remote cluster dies mid-run, or is restarted at once.

Either way the work in flight is gone (a reconnecting client cancels every future, and a
``dask worker`` stops when its scheduler goes): the run must stop with a clear error soon,
and the store must keep every result that reached the client before.
"""

from __future__ import annotations

import functools
import time
import uuid

import pytest

from daskfarm import DataManager, Farm, FarmConnectionError
from tests.conftest import DEADLINE
from tests.faults import _tasks
from tests.faults.conftest import kill_group

pytestmark = pytest.mark.slow

#: Seconds within which a run must report that its scheduler is gone.
PROMPT = 15


def test_scheduler_killed_mid_run_raises_promptly_and_keeps_what_arrived(dask_cluster,
                                                                          tmp_path):
    store = tmp_path / "store"
    never = f"never-{uuid.uuid4().hex}"  # items from 4 on wait for an Event nobody sets
    task = functools.partial(_tasks.gate_from, event=never, first=4)
    with Farm(dask_cluster.address, timeout=DEADLINE / 2) as farm:
        farm.client.wait_for_workers(1, timeout=1.5 * DEADLINE)
        run = farm.map(task, range(20), store=store, batch_size=1, buffersize=4,
                       progress=False)
        results = iter(run)
        received = sorted(next(results)[0] for _ in range(4))
        assert received == [0, 1, 2, 3]
        kill_group(dask_cluster.scheduler)
        killed = time.monotonic()
        with pytest.raises(FarmConnectionError, match=dask_cluster.address.split("://")[1]):
            run.wait(timeout=PROMPT)
        assert time.monotonic() - killed < PROMPT
        assert run.status == "failed"
    with DataManager(store) as dm:
        assert sorted(dm.params(k) for k in dm.keys()) == received
        assert dm.check().ok


def test_scheduler_restarted_mid_run_still_stops_the_run(dask_cluster, tmp_path):
    store = tmp_path / "store"
    never = f"never-{uuid.uuid4().hex}"
    task = functools.partial(_tasks.gate_from, event=never, first=4)
    with Farm(dask_cluster.address, timeout=DEADLINE / 2) as farm:
        farm.client.wait_for_workers(1, timeout=1.5 * DEADLINE)
        run = farm.map(task, range(20), store=store, batch_size=1, buffersize=4,
                       progress=False)
        results = iter(run)
        received = sorted(next(results)[0] for _ in range(4))
        dask_cluster.restart_scheduler()
        with pytest.raises(FarmConnectionError):
            run.wait(timeout=PROMPT)
        assert run.status == "failed"
    with DataManager(store) as dm:
        assert sorted(dm.params(k) for k in dm.keys()) == received
