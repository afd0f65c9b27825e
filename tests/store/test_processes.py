"""Many writer processes, merging stores by copying files, and writers killed mid-write."""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
import warnings

from daskfarm.exceptions import CorruptShardWarning
from daskfarm.store import DataManager
from tests.conftest import DEADLINE
from tests.store.conftest import finish, read_line, start_writer


def test_four_writers_lose_nothing_and_readers_read_meanwhile(tmp_path, procs):
    n, writers = 20_000, 4
    procs += [start_writer(tmp_path, f"w{j}", n, batch=500) for j in range(writers)]
    with DataManager(tmp_path) as dm, warnings.catch_warnings():
        warnings.simplefilter("error")  # a reader must never see a damaged shard
        seen = [0]
        deadline = time.monotonic() + 120
        while any(p.poll() is None for p in procs):
            assert time.monotonic() < deadline, "writers did not finish in time"
            count = len(dm)
            assert count >= seen[-1]  # committed records never disappear
            seen.append(count)
            time.sleep(0.02)
        for p in procs:
            finish(p)
        keys = dm.stored_keys()
        assert len(keys) == len(dm) == n * writers
        assert keys == {f"w{j}-{i}" for j in range(writers) for i in range(n)}
        assert dm["w3-19999"] == (19999, "w3", "19999")
        assert dm.params("w2-7") == {"i": 7}
        assert len([s for s in os.listdir(tmp_path) if s.endswith(".dfshard")]) == writers
        assert dm.check().ok
    assert len(set(seen)) > 2, "the reader never saw the store grow"


def test_two_stores_merge_by_copying_files(tmp_path, procs):
    a, b = tmp_path / "a", tmp_path / "b"
    procs.append(start_writer(a, "x", 1000, batch=300, size=10, label="first"))
    procs.append(start_writer(b, "y", 200, batch=300))
    finish(procs[0])
    time.sleep(0.01)  # b's records of x are strictly newer
    procs.append(start_writer(b, "x", 500, batch=300, size=10, label="second"))
    for p in procs[1:]:
        finish(p)
    before = sorted(os.listdir(a))
    for name in os.listdir(b):  # `cp -r b/* a/`
        shutil.copy2(b / name, a / name)
    assert set(before) < set(os.listdir(a))  # nothing overwritten, only added
    with DataManager(a) as dm:
        assert len(dm) == 1000 + 200
        assert dm["x-10"] == (10, "second", "x" * 10 + "10")  # in both: the newer wins
        assert dm["x-700"] == (700, "first", "x" * 10 + "700")  # only in a
        assert [(r.value[1], r.run_id) for r in dm.get_all("x-10")] == [
            ("first", "first"), ("second", "second")]
        assert dm.check().ok


def test_sigkilled_writer_leaves_a_readable_store(tmp_path, procs):
    # Blocks of 10 MB and a kill at a random moment: about half the kills land inside a
    # write, whose torn block readers then skip.
    proc = start_writer(tmp_path, "k", 10**7, batch=1000, size=10_000)
    procs.append(proc)
    committed = 0
    for _ in range(3):
        committed = int(read_line(proc, timeout=DEADLINE))
    time.sleep(random.random() * 0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=DEADLINE / 2)
    assert proc.returncode == -signal.SIGKILL
    with DataManager(tmp_path) as dm, warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        keys = dm.stored_keys()
        values = dm.values()
    warned = [str(w.message) for w in record if issubclass(w.category, CorruptShardWarning)]
    assert len(warned) <= 1
    assert all("truncated" in m for m in warned)
    assert {f"k-{i}" for i in range(committed)} <= keys  # everything committed is there
    assert len(keys) % 1000 == 0  # whole blocks only
    assert all(v == (v[0], "k", "x" * 10_000 + str(v[0])) for v in values)
    # The store stays writable after the crash.
    with DataManager(tmp_path) as dm:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CorruptShardWarning)
            with dm.session() as s:
                s["after"] = 1
            assert dm["after"] == 1
            assert len(dm) == len(keys) + 1
