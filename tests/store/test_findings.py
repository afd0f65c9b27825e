"""The December audit's store findings (research/audit-2026-12.md), one test each.

Numbers are the audit's: 1 (a shard's index could run code), 2 (commits not safe against
every exception), 15 (a value whose class cannot be imported), 18 (header and block lengths
outside any checksum), 19 (orphan large values), 21 (bad store paths and options), 22 (a
large value copied four times at commit), and the suspected ones that were real: directory
fsyncs (on create, EIO swallowed, merge) and a writer's liveness across containers.
"""

from __future__ import annotations

import errno
import os
import pathlib
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings

import numpy as np
import pytest

from daskfarm.cli import main
from daskfarm.exceptions import (
    CorruptShardWarning,
    FarmTypeError,
    FarmValueError,
    StoreError,
)
from daskfarm.store import DataManager, _commit, _format, _merge, manager, merge_store
from daskfarm.store._log import Log
from daskfarm.store._record import HOST
from daskfarm.store.session import Session
from tests.conftest import DEADLINE
from tests.store._oldformat import Touch, write_v1_shard
from tests.store.conftest import ROOT


def quiet_read(path) -> dict:
    """key -> value of a fresh reader; any warning fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with DataManager(path, readonly=True) as dm:
            assert all(len(dm.get_all(k)) == 1 for k in dm.keys()), "a key stored twice"
            return dict(dm.items())


# ---- 1: nothing a scan reads is a pickle ------------------------------------------------


def test_a_crafted_old_format_index_runs_nothing(tmp_path, capsys):
    store, marker = tmp_path / "store", tmp_path / "ran"
    store.mkdir()
    write_v1_shard(store / "good.dfshard", [("a", {"x": 1}, 1.0)])
    # a valid format-1 block whose index pickle would create `marker`
    from tests.store import _oldformat as old

    index = __import__("pickle").dumps(Touch(marker), protocol=5)
    bad = store / "evil.dfshard"
    bad.write_bytes(old.header_v1({"host": "x", "pid": 1}) + old.block_v1(index, b"", b""))
    with DataManager(store, readonly=True) as dm:
        with pytest.warns(CorruptShardWarning, match="evil.dfshard"):
            assert dm.stored_keys() == {"a"}
        assert len(dm) == 1
        statuses = {e.name: e.status for e in dm.check().entries}
    assert statuses == {"good.dfshard": "ok", "evil.dfshard": "corrupt"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptShardWarning)
        assert main(["store", "check", str(store)]) == 1
        assert main(["store", "ls", str(store)]) == 0
        assert main(["store", "merge", str(store), str(tmp_path / "copy")]) == 0
    assert not marker.exists(), "scanning a shard ran code from its index"


def test_old_format_shards_still_read(tmp_path):
    write_v1_shard(tmp_path / "old.dfshard", [("a", {"x": 1}, (1.0, 2.0)), ("b", {"x": 2}, 3)])
    with DataManager(tmp_path) as dm:
        assert dm.stored_keys() == {"a", "b"}
        assert dict(dm.items()) == {"a": (1.0, 2.0), "b": 3}
        assert dm.params("b") == {"x": 2}
        (record,) = dm.get_all("a")
        assert (record.task, record.host, record.run_id) == ("old", "oldhost", "r1")
        assert (record.duration, record.worker) == (None, None)
        report = dm.check()
        with dm.session() as s:  # new shards go next to it in format 2
            s["c"] = 4
        assert sorted(dm.keys()) == ["a", "b", "c"]
    assert report.ok and "format 1" in report.entries[0].detail


def test_listing_checking_merging_and_resuming_unpickle_nothing(tmp_path):
    store, marker = tmp_path / "store", tmp_path / "ran"
    with DataManager(store) as dm, dm.session() as s:
        s.put("k", Touch(marker), item={"x": 1})
        s.put_failure("f", item=Touch(marker), exc_type="E", message="m")
    with DataManager(store, readonly=True) as dm:
        assert dm.stored_keys() == {"k"} and len(dm) == 1 and dm.keys() == ["k"]
        assert dm.failed_keys() == {"f"}
        assert dm.check().ok
        report = merge_store(store, tmp_path / "copy")
        assert (report.copied, report.records) == (1, 2)
        assert main(["store", "ls", str(store)]) == 0
        assert not marker.exists(), "listing, checking or merging unpickled a value"
        dm["k"]  # reading a value is what unpickles, as documented
    assert marker.exists()


def test_trust_is_documented_where_users_merge(capsys):
    with pytest.raises(SystemExit):
        main(["store", "merge", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "runs pickle" in text and "trust" in text
    assert "unpickle" in DataManager.__doc__ and "trust" in DataManager.__doc__


# ---- 2: a commit is safe against an exception at any point ------------------------------


class _Interrupt:
    """A tracer that raises KeyboardInterrupt at the n-th line run inside a commit."""

    CODES = {Log.flush.__code__, Log._open_for_append.__code__, _commit.write_all.__code__,
             Session.flush.__code__}

    def __init__(self, n: int):
        self.n, self.fired = n, False

    def __call__(self, frame, event, arg):
        return self.local if frame.f_code in self.CODES else None

    def local(self, frame, event, arg):
        if event == "line" and not self.fired:
            self.n -= 1
            if self.n < 0:
                self.fired = True
                raise KeyboardInterrupt
        return self.local


class _FullDisk:
    def __getattr__(self, name):
        return getattr(os, name)

    def writev(self, fd, buffers):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_commit_interrupted_anywhere_stores_every_record_once(tmp_path, monkeypatch):
    point = 0
    while True:
        store = tmp_path / f"s{point}"
        with DataManager(store) as dm:
            s = dm.session(commit_interval=3600, commit_records=10**6)
            s.put_many((f"a{i}", i, i) for i in range(10))
            s.flush()
            s.put_many((f"b{i}", i, i) for i in range(10))
            tracer = _Interrupt(point)
            sys.settrace(tracer)
            try:
                s.flush()
            except KeyboardInterrupt:
                pass
            finally:
                sys.settrace(None)
            s.put_many((f"c{i}", i, i) for i in range(10))
            s.flush()  # the retry: whatever the interrupt left, each record goes in once
            # and a later failed commit never cuts back into what was committed
            s.put_many((f"d{i}", i, i) for i in range(10))
            monkeypatch.setattr(_commit, "os", _FullDisk())
            with pytest.raises(StoreError):
                s.flush()
            monkeypatch.undo()
            s._log.pending = _commit.Pending()  # dropped: the session is abandoned here
            s.close()
        expected = {f"{p}{i}": i for p in "abc" for i in range(10)}
        assert quiet_read(store) == expected, f"interrupted at line event {point}"
        if not tracer.fired:
            break  # every line of the commit has been interrupted once
        point += 1
    assert point > 20


# ---- 15: a value whose class the reader cannot import -----------------------------------


def test_a_value_of_an_unimportable_class_names_its_module(tmp_path, monkeypatch):
    code = tmp_path / "code"
    code.mkdir()
    (code / "labmodels.py").write_text("class Fit:\n    def __init__(self, a):\n"
                                       "        self.a = a\n")
    monkeypatch.syspath_prepend(str(code))
    import labmodels

    with DataManager(tmp_path / "store") as dm, dm.session() as s:
        s.put_many([("k0", 0, 1), ("k1", 1, labmodels.Fit(2)), ("k2", 2, [3])])
    monkeypatch.delitem(sys.modules, "labmodels")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(code)])
    with DataManager(tmp_path / "store") as dm:
        assert dm["k0"] == 1 and dm["k2"] == [3]  # the same block still reads
        with pytest.raises(StoreError, match=r"'k1'.*labmodels\.Fit.*install the module"):
            dm["k1"]
        with pytest.warns(CorruptShardWarning, match="labmodels"):
            assert sorted(dm.values(), key=str) == [1, [3]]


# ---- 18: every length is under a checksum ------------------------------------------------


def _shard_with_blocks(path, n_blocks=3):
    with DataManager(path) as dm, dm.session() as s:
        for b in range(n_blocks):
            s.put_many((f"k{b}-{i}", i, i) for i in range(20))
            s.flush()
    return s.path, [blk.offset - _format.BLOCK.size for blk in Log(s.path).blocks]


def _flip(path, offset, bit=0x04):
    data = bytearray(path.read_bytes())
    data[offset] ^= bit
    path.write_bytes(bytes(data))
    os.utime(path, (time.time() - 3600,) * 2)


def test_a_flipped_header_length_is_reported_corrupt(tmp_path):
    shard, _ = _shard_with_blocks(tmp_path)
    _flip(shard, 12 + 2)  # the metadata length field: now beyond the end of the file
    with DataManager(tmp_path) as dm:
        with pytest.warns(CorruptShardWarning, match="checksum"):
            assert len(dm) == 0
        assert [e.status for e in dm.check().entries] == ["corrupt"]


def test_a_flipped_block_length_with_blocks_after_it_is_corrupt(tmp_path):
    shard, starts = _shard_with_blocks(tmp_path)
    _flip(shard, starts[1] + 3)  # the second block's length: now beyond the file
    with DataManager(tmp_path) as dm:
        with pytest.warns(CorruptShardWarning, match="corrupt"):
            assert len(dm) == 20
        assert [(e.status, e.records) for e in dm.check().entries] == [("corrupt", 20)]


# ---- 19: orphan large values, and temporary files never merged --------------------------

KILLED_WRITER = """
import os, sys
import numpy as np
from daskfarm.store import DataManager
dm = DataManager(sys.argv[1])
s = dm.session()
s.put("big", np.ones(100_000))  # its own file at once; the shard comes at the first commit
os._exit(0)
"""


def test_orphan_blobs_are_reported_and_temporary_files_not_merged(tmp_path):
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(store)], env=env, check=True,
                   timeout=2 * DEADLINE)
    (orphan,) = store.glob("*.blobs")
    (orphan / ".00000001.1a2b3c4d.tmp").write_bytes(b"half")  # a write a kill cut short
    with DataManager(store) as dm, dm.session() as s:
        s.put("big2", np.ones(100_000))  # a real shard with a large value
        s.put("small", 1)
    (live_blobs,) = [d for d in store.glob("*.blobs") if d != orphan]
    (live_blobs / ".00000009.5e6f7a8b.tmp").write_bytes(b"half")
    with DataManager(store) as dm:
        entries = {e.name: e for e in dm.check().entries}
    assert entries[orphan.name].status == "orphan"
    assert "never committed" in entries[orphan.name].detail
    assert "1 unfinished" in entries[orphan.name].detail
    merge_store(store, tmp_path / "copy")
    copied = sorted(p.name for p in (tmp_path / "copy").rglob("*"))
    assert not [n for n in copied if n.startswith(".")], copied
    assert orphan.name not in copied
    assert len(quiet_read(tmp_path / "copy")) == 2


# ---- 21: bad paths and options get errors that name the fix ------------------------------


def test_bad_store_paths_and_options(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FarmValueError, match="names no directory"):
        DataManager("")
    with pytest.raises(FarmTypeError, match=r"not NoneType.*DataManager\('results'\)"):
        DataManager(None)
    with DataManager(tmp_path / "s") as dm:
        with pytest.raises(FarmTypeError, match="commit_interval='1s' must be a number"):
            dm.session(commit_interval="1s")
        with pytest.raises(FarmValueError, match="commit_records=0 must be >= 1"):
            dm.session(commit_records=0)
    assert main(["store", "show", str(tmp_path / "s"), "--limit", "-5"]) == 1
    assert "--limit -5" in capsys.readouterr().err


# ---- 22: a large value is not copied again and again at commit ---------------------------


def test_committing_a_large_inline_value_copies_it_once(tmp_path):
    size = 64 << 20
    with DataManager(tmp_path) as dm, dm.session(commit_interval=3600) as s:
        s["big"] = "x" * size  # a str: inline, no buffer to put in a file of its own
        tracemalloc.start()
        try:
            s.flush()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert dm["big"] == "x" * size
    # the one pickle of the block (its buffer grows by half at a time); it was 4x before
    assert peak < 2 * size, f"commit peak {peak / size:.2f}x the value"


# ---- suspected findings that were real ---------------------------------------------------


class _DirSync:
    """Stands in for the os module in _format: fsync of a directory fails with ``err``."""

    def __init__(self, err):
        self.err = err

    def __getattr__(self, name):
        return getattr(os, name)

    def fsync(self, fd):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(self.err, os.strerror(self.err))
        return os.fsync(fd)


def test_a_failed_directory_fsync_fails_the_commit(tmp_path, monkeypatch):
    with DataManager(tmp_path) as dm:
        s = dm.session()
        s["a"] = 1
        monkeypatch.setattr(_format, "os", _DirSync(errno.EIO))
        with pytest.raises(StoreError, match="I/O error"):
            s.flush()
        monkeypatch.setattr(_format, "os", _DirSync(errno.EINVAL))  # cannot sync dirs at all
        s.flush()
        monkeypatch.undo()
        s.close()
        assert dm["a"] == 1


def test_new_store_directories_are_made_durable(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(manager, "fsync_dir", synced.append)
    DataManager(tmp_path / "a" / "b" / "store").close()
    assert synced == [tmp_path / "a" / "b", tmp_path / "a", tmp_path]


def test_merge_fsyncs_what_it_copies(tmp_path, monkeypatch):
    with DataManager(tmp_path / "src") as dm, dm.session() as s:
        s["a"] = np.ones(100_000)
    synced = []

    class Recording:
        def __getattr__(self, name):
            return getattr(os, name)

        def fsync(self, fd):
            synced.append(pathlib.Path(os.readlink(f"/proc/self/fd/{fd}")).name)
            return os.fsync(fd)

    monkeypatch.setattr(_merge, "os", Recording())
    monkeypatch.setattr(_format, "os", Recording())
    merge_store(tmp_path / "src", tmp_path / "dst")
    shard = next((tmp_path / "dst").glob("*.dfshard")).name
    assert any(n.startswith(f".{shard}.merging") for n in synced)  # the file, then its name
    assert "dst" in synced and any(n.endswith(".blobs") for n in synced)
    assert any(n.startswith(".00000000.merging") for n in synced)


def test_a_writer_in_another_container_with_the_same_pid_is_not_alive(tmp_path):
    # Same host name and a live pid older than the shard: only the namespace tells them apart
    for ns, status in [("another-container", "truncated"), (None, "in-progress")]:
        path = tmp_path / f"{status}.dfshard"
        meta = {"host": HOST, "pid": os.getppid(), "created": time.time()}
        if ns is not None:
            meta["ns"] = ns
        log = Log(path, meta)
        log["a"] = 1
        log.close()
        with open(path, "ab") as f:
            f.write(struct.pack("<Q", 1000))  # a torn block
        os.utime(path, (time.time() - 3600,) * 2)
        with DataManager(tmp_path, readonly=True) as dm:
            assert {e.name: e.status for e in dm.check().entries}[path.name] == status
