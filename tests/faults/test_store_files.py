"""Odd things in a store directory that tests/store/test_damage.py does not make: a link to a
missing shard, a FIFO, a shard this user may not read; and a disk that takes a shard's
header in pieces.

The rule is the same as for damaged shards: the file is skipped with one warning naming it,
``check()`` reports it, and every other shard still reads; nothing hangs.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import shutil
import tempfile
import threading
import warnings

import pytest

from daskfarm.exceptions import CorruptShardWarning, StoreError
from daskfarm.store import DataManager, _commit
from tests.conftest import DEADLINE


def write_shards(path, n: int = 2, per: int = 10) -> None:
    with DataManager(path) as dm:
        for j in range(n):
            with dm.session() as s:
                s.put_many((f"k{j}-{i}", i, (j, i)) for i in range(per))


def read(path) -> tuple[int, list[str]]:
    """(number of keys, warning messages) of a fresh DataManager's read."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with DataManager(path, readonly=True) as dm:
            n = len(dm)
            assert len(dm.values()) == n
    return n, [str(w.message) for w in caught if issubclass(w.category, CorruptShardWarning)]


def statuses(path) -> dict[str, str]:
    with DataManager(path, readonly=True) as dm:
        return {e.name: e.status for e in dm.check().entries}


def test_link_to_a_missing_shard_hides_nothing(tmp_path):
    write_shards(tmp_path)
    # sorted before the real shards, as a half-done `cp -s` or a moved target leaves it
    os.symlink(tmp_path / "gone" / "x.dfshard", tmp_path / "0000-link.dfshard")
    n, warned = read(tmp_path)
    assert n == 20
    assert len(warned) == 1 and "0000-link.dfshard" in warned[0]
    assert "missing file" in warned[0]
    assert statuses(tmp_path)["0000-link.dfshard"] == "stray"


def test_fifo_named_like_a_shard_does_not_block_readers(tmp_path):
    write_shards(tmp_path)
    os.mkfifo(tmp_path / "0000-pipe.dfshard")
    outcome: list = []

    def reader():
        outcome.append(read(tmp_path))
        outcome.append(statuses(tmp_path))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout=DEADLINE / 2)
    if thread.is_alive():  # free the blocked open() so the thread can end
        fd = os.open(tmp_path / "0000-pipe.dfshard", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("a FIFO in the store blocked the reader")
    (n, warned), found = outcome
    assert n == 20
    assert len(warned) == 1 and "not a regular file" in warned[0]
    assert found["0000-pipe.dfshard"] == "stray"


def _read_as_nobody(path: str, conn) -> None:
    try:
        os.setgid(65534)
        os.setuid(65534)
        conn.send((read(path), statuses(path)))
    except BaseException as e:  # report anything to the parent, which asserts
        conn.send(repr(e))
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to read as another user")
def test_shard_without_read_permission_is_skipped_with_a_warning():
    # Root reads everything: the reader is a forked child that became `nobody`. The store
    # is outside pytest's tmp_path, whose parents only root may enter.
    path = tempfile.mkdtemp(prefix="daskfarm-perm-")
    try:
        os.chmod(path, 0o755)
        write_shards(path)
        private = sorted(n for n in os.listdir(path) if n.endswith(".dfshard"))[0]
        os.chmod(os.path.join(path, private), 0o600)
        ctx = multiprocessing.get_context("fork")
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_read_as_nobody, args=(path, send))
        child.start()
        assert receive.poll(60), "the reader did not answer"
        answer = receive.recv()
        child.join(60)
    finally:
        shutil.rmtree(path, ignore_errors=True)
    assert not isinstance(answer, str), answer
    (n, warned), found = answer
    assert n == 10  # the other shard
    assert len(warned) == 1 and private in warned[0] and "Permission denied" in warned[0]
    assert found[private] == "unreadable"


class _ShortWrites:
    """Stands in for the os module in _commit: at most ``room`` bytes fit, taken ``step`` at a
    time, then ``ENOSPC``; ``room=None`` frees the disk again."""

    def __init__(self, room: int, step: int):
        self.room, self.step = room, step

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        if self.room is None:
            return os.write(fd, data)
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.write(fd, bytes(data)[: min(self.step, self.room)])
        self.room -= n
        return n

    def writev(self, fd, buffers):
        return self.write(fd, b"".join(buffers))


def test_header_written_in_pieces_on_a_nearly_full_disk(tmp_path, monkeypatch):
    disk = _ShortWrites(room=10_000, step=7)  # room for the header, 7 bytes per write
    monkeypatch.setattr(_commit, "os", disk)
    with DataManager(tmp_path) as dm, dm.session(commit_interval=3600) as s:
        s.put_many((f"a{i}", i, i) for i in range(5))
        s.flush()
        disk.room = 0  # full: the next block fails, the shard is cut back
        s.put_many((f"b{i}", i, i) for i in range(5))
        with pytest.raises(StoreError) as info:
            s.flush()
        disk.room = None
    assert read(tmp_path) == (10, [])  # a whole header; the torn block was cut off
    assert "cannot commit 5 records" in str(info.value)


def test_disk_full_before_the_header_leaves_no_shard(tmp_path, monkeypatch):
    disk = _ShortWrites(room=12, step=5)  # not even a header fits
    monkeypatch.setattr(_commit, "os", disk)
    with DataManager(tmp_path) as dm:
        s = dm.session(commit_interval=3600)
        s["a"] = 1
        with pytest.raises(StoreError, match="create shard") as info:
            s.flush()
        assert info.value.errno == errno.ENOSPC
        assert not list(tmp_path.glob("*.dfshard"))  # no half header left behind
        disk.room = None  # space again: the same session commits on its next try
        s.close()
        assert dm["a"] == 1
    assert read(tmp_path) == (1, [])
