"""Damaged stores: stray, truncated, corrupt, foreign and future-format files; full disks."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import struct
import time
import warnings

import numpy as np
import pytest

from daskfarm.exceptions import CorruptShardWarning, StoreError, StoreFormatError
from daskfarm.store import DataManager, _commit, _format, _log
from daskfarm.store._log import Log


def write_store(path, n_blocks=4, per_block=50, prefix="k"):
    """A closed shard of ``n_blocks`` blocks; returns its path and the block boundaries."""
    with DataManager(path) as dm, dm.session() as s:
        for b in range(n_blocks):
            s.put_many((f"{prefix}{b}-{i}", i, (b, i)) for i in range(per_block))
            s.flush()
        shard = s.path
    return shard, [blk.offset + blk.length for blk in Log(shard).blocks]


def read_all(path):
    with DataManager(path) as dm:
        return dict(dm.items())


def one_warning(record, name):
    """Exactly one CorruptShardWarning, naming ``name``; returns its message."""
    messages = [str(w.message) for w in record if issubclass(w.category, CorruptShardWarning)]
    assert len(messages) == 1, messages
    assert name in messages[0]
    return messages[0]


def test_stray_file_and_directory_are_skipped_with_one_warning_each(tmp_path):
    write_store(tmp_path)
    (tmp_path / "README.txt").write_text("notes")
    (tmp_path / "subdir").mkdir()
    with DataManager(tmp_path) as dm:
        with pytest.warns(CorruptShardWarning) as record:
            assert len(dm) == 200
        messages = sorted(str(w.message) for w in record)
        assert len(messages) == 2
        assert "README.txt" in messages[0]
        assert "stray" in messages[0]
        assert "subdir" in messages[1]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert len(dm.items()) == 200  # warned once, not at every read


@pytest.mark.parametrize("cut", ["header", "mid-block", "block-header"])
def test_truncated_shard_reads_up_to_its_last_intact_block(tmp_path, cut):
    shard, ends = write_store(tmp_path)
    size = shard.stat().st_size
    keep = {"header": 10, "mid-block": ends[1] + 100, "block-header": ends[2] + 5}[cut]
    os.truncate(shard, keep)
    os.utime(shard, (time.time() - 3600,) * 2)  # long since written
    assert keep < size
    with pytest.warns(CorruptShardWarning) as record:
        items = read_all(tmp_path)
    message = one_warning(record, shard.name)
    assert "truncated" in message
    intact = {"header": 0, "mid-block": 2, "block-header": 3}[cut]
    assert items == {f"k{b}-{i}": (b, i) for b in range(intact) for i in range(50)}


def test_half_copied_shard_from_another_machine(tmp_path):
    src, ends = write_store(tmp_path / "elsewhere")
    write_store(tmp_path / "here", prefix="h")
    with open(src, "rb") as f, open(tmp_path / "here" / src.name, "wb") as g:
        g.write(f.read(ends[0] + 30))  # the copy broke off inside the second block
    with pytest.warns(CorruptShardWarning) as record:
        items = read_all(tmp_path / "here")
    one_warning(record, src.name)
    assert len(items) == 200 + 50


def test_corrupt_block_is_read_up_to_with_one_warning(tmp_path):
    shard, ends = write_store(tmp_path)
    with open(shard, "r+b") as f:
        f.seek(ends[1] + 40)  # inside the third block
        byte = f.read(1)
        f.seek(ends[1] + 40)
        f.write(bytes([byte[0] ^ 0xFF]))
    with DataManager(tmp_path) as dm:
        with pytest.warns(CorruptShardWarning) as record:
            assert len(dm) == 100
        assert "checksum" in one_warning(record, shard.name)
        report = dm.check()
    assert [(e.status, e.records) for e in report.problems] == [("corrupt", 100)]


def test_garbage_file_named_like_a_shard_is_skipped(tmp_path):
    write_store(tmp_path)
    garbage = tmp_path / "garbage.dfshard"
    garbage.write_bytes(os.urandom(5000))
    empty = tmp_path / "empty.dfshard"
    empty.write_bytes(b"")
    os.utime(empty, (time.time() - 3600,) * 2)
    with pytest.warns(CorruptShardWarning) as record:
        assert len(read_all(tmp_path)) == 200
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    assert "empty.dfshard" in messages[0]
    assert "incomplete header" in messages[0]
    assert "garbage.dfshard" in messages[1]
    assert "not a daskfarm shard" in messages[1]
    with pytest.raises(StoreFormatError):
        Log(garbage)


def test_shard_of_a_future_format_is_skipped(tmp_path):
    shard, _ = write_store(tmp_path)
    future = tmp_path / "future.dfshard"
    data = bytearray(shard.read_bytes())
    struct.pack_into("<H", data, 8, _format.FORMAT_VERSION + 1)
    future.write_bytes(bytes(data))
    with pytest.warns(CorruptShardWarning) as record:
        assert len(read_all(tmp_path)) == 200  # the same keys, from the readable shard
    message = one_warning(record, "future.dfshard")
    assert "newer daskfarm" in message
    assert "upgrade" in message
    with pytest.raises(StoreFormatError) as info:
        Log(future)
    assert info.value.reason == "newer"


def test_check_reports_every_kind_of_file(tmp_path):
    shard, ends = write_store(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "bad.dfshard").write_bytes(b"garbage" * 10)
    cut = tmp_path / "cut.dfshard"
    cut.write_bytes(shard.read_bytes()[: ends[0] + 10])
    os.utime(cut, (time.time() - 3600,) * 2)
    with DataManager(tmp_path) as dm:
        report = dm.check()
    statuses = {e.name: (e.status, e.records) for e in report.entries}
    assert statuses == {
        shard.name: ("ok", 200),
        "notes.txt": ("stray", 0),
        "bad.dfshard": ("foreign", 0),
        "cut.dfshard": ("truncated", 50),
    }
    assert not report.ok
    assert len(report.problems) == 3
    assert "3 problem(s)" in str(report)
    assert "cut.dfshard" in str(report)


def test_missing_blob_is_reported_and_skipped(tmp_path):
    with DataManager(tmp_path / "a") as dm, dm.session() as s:
        s["big"] = np.zeros(100_000)
        s["small"] = 1
        shard = s.path
    (tmp_path / "b").mkdir()
    shutil.copy(shard, tmp_path / "b")  # copied without its .blobs directory
    with DataManager(tmp_path / "b") as dm:
        assert dm["small"] == 1
        with pytest.raises(StoreError, match=r"is missing.*copy the directory"):
            dm["big"]
        with pytest.warns(CorruptShardWarning, match="is missing"):
            assert dm.items() == [("small", 1)]
        assert [e.status for e in dm.check().problems] == ["missing-blob"]


def test_a_live_writers_unfinished_block_is_not_a_problem(tmp_path):
    # A reader can catch a writer mid-block: no warning while the writer lives.
    with DataManager(tmp_path) as dm, dm.session() as s:
        s.put_many((f"k{i}", None, i) for i in range(10))
        s.flush()
        with open(s.path, "ab") as f:  # what a reader may see during a write
            f.write(_format.block_head(1000, 0) + b"partial")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert len(dm) == 10
        assert [e.status for e in dm.check().entries] == ["in-progress"]


def test_foreign_hosts_unfinished_block_warns_after_the_grace_period(tmp_path):
    log = Log(tmp_path / "remote.dfshard", {"host": "elsewhere", "pid": 1})
    log["a"] = 1
    log.close()
    with open(log.path, "ab") as f:
        f.write(b"\x05\x00")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_all(tmp_path)) == 1  # modified just now: may still be written
    os.utime(log.path, (time.time() - 2 * _log.WRITER_GRACE,) * 2)
    with pytest.warns(CorruptShardWarning, match="remote.dfshard"):
        assert len(read_all(tmp_path)) == 1


class _FullDisk:
    """Stands in for the os module in _commit: writes stop after ``room`` bytes with ``error``."""

    def __init__(self, room, error):
        self.room, self.error = room, error

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        if self.room <= 0:
            raise OSError(self.error, os.strerror(self.error))
        n = os.write(fd, bytes(data)[: self.room])
        self.room -= n
        return n

    def writev(self, fd, buffers):
        return self.write(fd, b"".join(buffers))


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO])
def test_disk_error_at_commit_leaves_the_shard_readable(tmp_path, monkeypatch, error):
    with DataManager(tmp_path) as dm:
        s = dm.session(commit_interval=3600, commit_records=10**6)
        s.put_many((f"a{i}", None, i) for i in range(100))
        s.flush()
        monkeypatch.setattr(_commit, "os", _FullDisk(room=300, error=error))
        s.put_many((f"b{i}", None, i) for i in range(100))
        with pytest.raises(StoreError) as info:
            s.flush()
        message = str(info.value)
        assert s.path.name in message
        assert info.value.errno == error
        assert ("free some disk space" if error == errno.ENOSPC else "I/O error") in message
        assert s.npending == 100  # kept for a retry
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # cut back to the last block: nothing damaged
            assert sorted(dm.keys()) == sorted(f"a{i}" for i in range(100))
        monkeypatch.undo()  # space is free again
        s.flush()
        assert len(dm) == 200
        s.close()


def _flush_in_child(session, conn):
    session["child"] = 1
    try:
        session.flush()
        conn.send("flushed")
    except StoreError as e:
        conn.send(str(e))


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_forked_child_cannot_write_its_parents_shard(tmp_path):
    with DataManager(tmp_path) as dm, dm.session() as s:
        s["parent"] = 0
        s.flush()
        ctx = multiprocessing.get_context("fork")
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_flush_in_child, args=(s, send))
        child.start()
        assert receive.poll(60)
        assert "open a new session in the child" in receive.recv()
        child.join(60)
        s.flush()
        assert dm.keys() == ["parent"]


def test_header_is_json_with_provenance(tmp_path):
    with DataManager(tmp_path) as dm, dm.session("n", run_id="r", task="t", version=(1, 2)) as s:
        s["a"] = 1
    raw = s.path.read_bytes()
    magic, version, _flags, size, _crc, _head_crc = struct.unpack_from("<8sHHIII", raw)
    meta = json.loads(raw[24 : 24 + size])
    assert magic == _format.MAGIC
    assert version == 2
    assert meta["pid"] == os.getpid()
    assert (meta["run_id"], meta["task"]) == ("r", "t")
    assert meta["version"] == [1, 2]  # JSON
