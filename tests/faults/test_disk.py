"""The disk under the store fills up mid-run: a real 1 MiB tmpfs, not an injected error.

(tests/store/test_damage.py injects ENOSPC and EIO at the write call for the store alone.)
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import warnings

import psutil
import pytest

from daskfarm import DataManager, Farm, StoreError
from tests.conftest import DEADLINE
from tests.faults import _tasks

pytestmark = pytest.mark.slow

SIZE = 3000  # bytes per result: 200 results are 600 KB, more than the disk has left
ITEMS = range(200)


def fill(disk, kib: int):
    """A file taking ``kib`` KiB of the disk; delete it to free the space."""
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (kib * 1024))
    return filler


def read_back(store) -> dict:
    """item -> value, failing on any warning (a damaged shard would warn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with DataManager(store, readonly=True) as dm:
            assert dm.check().ok, str(dm.check())
            assert all(len(dm.get_all(k)) == 1 for k in dm.keys())
            return {dm.params(k): dm[k] for k in dm.keys()}


def test_full_disk_stops_the_run_clearly_and_keeps_every_commit(farm, tiny_disk):
    store = tiny_disk / "store"
    filler = fill(tiny_disk, 500)
    task = functools.partial(_tasks.paced_sized, size=SIZE, seconds=0.03)
    dm = DataManager(store)
    try:
        run = farm.map(task, ITEMS, store=dm, name="sized", batch_size=1, progress=False)
        with pytest.raises(StoreError) as info:
            for _ in run:
                pass
        assert run.status == "failed"
    finally:
        with contextlib.suppress(StoreError):  # the run's shard is left open: bug 5
            dm.close()
    error = info.value
    assert error.errno == errno.ENOSPC
    assert str(store) in str(error)
    assert "No space left on device" in str(error)
    assert "free some disk space, or write the store elsewhere" in str(error)

    stored = read_back(store)  # readable, no warning: the torn block was cut off
    assert stored, "nothing was committed before the disk filled"
    assert len(stored) < len(ITEMS)
    assert all(value == _tasks.sized_value(item, SIZE) for item, value in stored.items())

    # space freed: the same map with resume computes only what was not stored
    filler.unlink()
    summary = farm.map(task, ITEMS, store=store, name="sized", batch_size=1,
                       progress=False).wait(timeout=2 * DEADLINE)
    assert (summary.done, summary.skipped) == (len(ITEMS) - len(stored), len(stored))
    assert sorted(read_back(store)) == list(ITEMS)


def test_full_disk_in_a_with_block_raises_once_and_closes_the_cluster(tiny_disk):
    store = tiny_disk / "store"
    fill(tiny_disk, 700)
    task = functools.partial(_tasks.paced_sized, size=SIZE, seconds=0.01)
    farm = Farm(n_workers=1, dashboard=False)
    workers = [psutil.Process(pid) for pid in farm.client.run(os.getpid).values()]
    try:
        with pytest.raises(StoreError) as info, farm:
            for _ in farm.map(task, ITEMS, store=store, batch_size=1, progress=False):
                pass
        assert info.value.errno == errno.ENOSPC
        # the commit's own error, not a second one from closing the store at exit
        assert "were not stored" not in str(info.value)
        assert not isinstance(info.value.__context__, StoreError)
        _, alive = psutil.wait_procs(workers, timeout=DEADLINE / 2)
        assert not alive, "the Farm left its cluster running"
    finally:
        if any(w.is_running() for w in workers):
            with contextlib.suppress(Exception):
                farm._conn.close()  # what Farm.close() should have done
