"""DataManager and Session semantics in one process: reads, writes, merge rule, lifecycle."""

from __future__ import annotations

import multiprocessing
import os
import uuid

import numpy as np
import pytest

from daskfarm.exceptions import (
    FarmClosedError,
    FarmValueError,
    StoreError,
)
from daskfarm.store import DataManager, Record, Session
from daskfarm.store._log import Log
from daskfarm.store._record import shard_stem


def shards(path):
    return sorted(n for n in os.listdir(path) if n.endswith(".dfshard"))


def test_write_then_read_everything(tmp_path):
    with DataManager(tmp_path) as dm:
        with dm.session(task="sim", version=2, run_id="r1") as s:
            s["a"] = 1.0
            s.put("b", (2, 2.0), item={"x": 2})
            s.put_many([(f"k{i}", {"i": i}, i * 0.5) for i in range(100)])
        assert len(dm) == dm.itemcount() == 102
        assert dm["b"] == (2, 2.0)
        assert dm.get("b") == (2, 2.0)
        assert dm.get("nope") is None
        assert dm.get("nope", 7) == 7
        assert "k5" in dm
        assert "nope" not in dm
        assert 5 not in dm
        with pytest.raises(KeyError):
            dm["nope"]
        assert dm.params("b") == {"x": 2}
        assert dm.params("a") is None
        assert sorted(dm.keys()) == sorted(dm) == sorted(["a", "b", *(f"k{i}" for i in range(100))])
        assert dict(dm.items()) == dict(dm.iteritems())
        assert sorted(dm.values(), key=repr) == sorted(dm.itervalues(), key=repr)
        assert dict(dm.items())["k9"] == 4.5
        [record] = dm.get_all("b")
        assert record == Record("b", (2, 2.0), {"x": 2}, "sim", 2, record.time, record.host,
                                "r1", shards(tmp_path)[0])


def test_brian_top_up_idiom(tmp_path):
    n = 20
    for _round in range(2):  # the second run finds enough results and computes nothing
        dm = DataManager(tmp_path)
        if dm.itemcount() < n:
            with dm.computer_session() as s:
                for k in range(n - dm.itemcount()):
                    s[dm.make_unique_key()] = (k, k * 2.0)
        x, _y = zip(*dm.values())
        assert len(x) == n
        dm.close()
    assert len(shards(tmp_path)) == 1
    uuid.UUID(DataManager.make_unique_key())


def test_brian_sessions_are_new_shards(tmp_path):
    with DataManager(tmp_path) as dm:
        for make in (dm.session, dm.computer_session, dm.locking_session,
                     dm.locking_computer_session):
            with make() as s:
                assert isinstance(s, Session)
                s["k"] = 1
        assert len(shards(tmp_path)) == 4


def test_duplicate_keys_newest_wins_and_get_all_shows_all(tmp_path):
    # Records with chosen times: an older and a newer shard, and a tie.
    for name, t, value in [("b", 10.0, "old"), ("a", 20.0, "new"), ("c", 20.0, "tie")]:
        log = Log(tmp_path / f"{name}.dfshard", {"host": f"h{name}", "run_id": name})
        log.append("k", value, {"from": name}, 0, t)
        log.append("only-" + name, value, None, 0, t)
        log.close()
    with DataManager(tmp_path) as dm:
        # 20.0 beats 10.0; of the two at 20.0 the greater shard name ("c") wins.
        assert dm["k"] == "tie"
        assert dm.params("k") == {"from": "c"}
        records = dm.get_all("k")
        assert [(r.value, r.shard, r.host, r.run_id, r.time) for r in records] == [
            ("old", "b.dfshard", "hb", "b", 10.0),
            ("new", "a.dfshard", "ha", "a", 20.0),
            ("tie", "c.dfshard", "hc", "c", 20.0),
        ]
        assert len(dm) == 4
        assert dict(dm.items())["k"] == "tie"
        assert sorted(dm.values()) == ["new", "old", "tie", "tie"]


def test_within_a_shard_the_later_record_wins_whatever_its_time(tmp_path):
    log = Log(tmp_path / "a.dfshard", {})
    log.append("k", "first", None, 0, 50.0)
    log.flush()
    log.append("k", "second", None, 0, 40.0)  # the clock went back
    log.append("k", "third", None, 0, 30.0)  # twice in one block
    log.close()
    with DataManager(tmp_path) as dm:
        assert dm["k"] == "third"
        assert [r.value for r in dm.get_all("k")] == ["first", "second", "third"]
        assert dm.items() == [("k", "third")]


def test_failures_and_stored_keys(tmp_path):
    with DataManager(tmp_path) as dm:
        with dm.session() as s:
            s.put("ok", 1, item=1)
            s.put_failure("bad", item=2, exc_type="ValueError", message="x < 0",
                          traceback="Traceback ...")
            s.put_failure("fixed", item=3, exc_type="KeyError", message="m")
            s.put("fixed", 3, item=3)  # a later success
            s.put("kept", 4, item=4)
            s.put_failure("kept", item=4, exc_type="OSError", message="late failure")
        assert dm.stored_keys() == {"ok", "fixed", "kept"}
        assert "bad" not in dm.stored_keys()
        assert "bad" not in dm
        assert dm["kept"] == 4  # a failure never hides a value
        [failure] = dm.failures()
        assert (failure.key, failure.item, failure.failed, failure.exc_type, failure.message,
                failure.traceback, failure.value) == (
            "bad", 2, True, "ValueError", "x < 0", "Traceback ...", None)
        assert [r.failed for r in dm.get_all("kept")] == [False, True]
        assert len(dm) == 3


def test_large_arrays_get_their_own_files_small_values_do_not(tmp_path):
    big = np.random.default_rng(0).random(2**20 // 8 * 3)  # 3 MiB
    with DataManager(tmp_path) as dm:
        with dm.session() as s:
            s.put("big", big, item="big")
            s.put("nested", {"arr": big[:200_000], "n": 1})  # 1.6 MB inside a dict
            s.put("raw", b"x" * 300_000)
            s.put_many((f"small{i}", i, np.arange(10)) for i in range(1000))
            assert np.array_equal(s["big"], big)
        [blobs] = [n for n in os.listdir(tmp_path) if n.endswith(".blobs")]
        assert len(os.listdir(tmp_path / blobs)) == 3  # 1000 small values cost no file
        out = dm["big"]
        np.testing.assert_array_equal(out, big)
        assert out.flags.writeable
        np.testing.assert_array_equal(dm["nested"]["arr"], big[:200_000])
        assert dm["raw"] == b"x" * 300_000
        assert dict(dm.items())["big"].sum() == big.sum()
        np.testing.assert_array_equal(dm["small7"], np.arange(10))
        assert dm.get_all("big")[0].item == "big"


def test_store_path_that_is_a_file(tmp_path):
    path = tmp_path / "results"
    path.write_text("not a store")
    with pytest.raises(StoreError, match="is a file, not a store directory") as info:
        DataManager(path)
    assert isinstance(info.value, OSError)
    assert path.read_text() == "not a store"  # untouched


def _open_as_nobody(paths, conn):
    # Runs in a forked child: drop root, then try each path with the modules already loaded
    # (the unprivileged user could not even read the interpreter under /root).
    os.setgid(65534)
    os.setuid(65534)
    out = []
    for path in paths:
        try:
            DataManager(path)
            out.append("no error")
        except StoreError as e:
            out.append(str(e))
    conn.send(out)


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_store_path_not_writable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(0o555)
    paths = [str(locked), str(locked / "new-store")]
    if os.geteuid() == 0:  # root may write anywhere: check as an unprivileged user
        dirs = [tmp_path, tmp_path.parent, tmp_path.parent.parent]  # let it reach `locked`
        modes = [d.stat().st_mode for d in dirs]
        ctx = multiprocessing.get_context("fork")
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_open_as_nobody, args=(paths, send))
        try:
            for d in dirs:
                d.chmod(0o755)
            child.start()
            assert receive.poll(60), "the unprivileged child did not answer"
            lines = receive.recv()
        finally:
            child.join(60)
            for d, mode in zip(dirs, modes):
                d.chmod(mode)
    else:
        lines = []
        for p in paths:
            with pytest.raises(StoreError) as info:
                DataManager(p)
            lines.append(str(info.value))
    assert "is not writable" in lines[0]
    assert "chmod" in lines[0]
    assert "cannot create the store directory" in lines[1]
    assert "Permission denied" in lines[1]
    locked.chmod(0o755)


def test_readonly_manager_reads_and_refuses_sessions(tmp_path):
    with DataManager(tmp_path) as dm, dm.session() as s:
        s["a"] = 1
    with DataManager(tmp_path, readonly=True) as ro:
        assert ro["a"] == 1
        with pytest.raises(StoreError, match="readonly"):
            ro.session()
    with pytest.raises(StoreError, match="does not exist"):
        DataManager(tmp_path / "missing", readonly=True)


def test_closed_manager_raises(tmp_path):
    dm = DataManager(tmp_path)
    s = dm.session()
    s["pending"] = 1
    dm.close()
    dm.close()  # idempotent
    with pytest.raises(FarmClosedError, match="is closed"):
        s["more"] = 2  # closing the manager closed (and committed) its sessions
    for use in [lambda: len(dm), dm.keys, dm.values, dm.items, dm.itemcount, dm.failures,
                dm.stored_keys, dm.refresh, dm.check, dm.session, lambda: dm["pending"],
                lambda: "x" in dm, lambda: dm.get_all("x"), lambda: dm.params("x"),
                lambda: list(dm.iteritems())]:
        with pytest.raises(FarmClosedError, match="DataManager"):
            use()
    with DataManager(tmp_path) as again:
        assert again["pending"] == 1


def test_session_lifecycle(tmp_path):
    with DataManager(tmp_path) as dm:
        with dm.session("my run") as s:
            s["a"] = 1
            assert s.npending == 1
            assert len(s) == 1
            assert "a" in s
            assert s["a"] == 1
            assert not s.path.exists()  # the shard is created at the first commit
        assert s.path.exists()
        assert "my-run" in s.path.name
        s.close()  # idempotent
        for use in [lambda: s.put("b", 2), lambda: s.put_many([("b", 1, 2)]),
                    lambda: s.put_failure("b"), lambda: s["a"]]:
            with pytest.raises(FarmClosedError, match="Session"):
                use()
        with pytest.raises(FarmValueError):
            dm.session(commit_records=0)


def test_commit_rules(tmp_path):
    with DataManager(tmp_path) as dm:
        with dm.session(commit_records=10, commit_interval=3600) as s:
            for i in range(9):
                s[f"k{i}"] = i
            assert s.npending == 9
            assert not s.path.exists()
            s["k9"] = 9  # the 10th record commits
            assert s.npending == 0
            assert len(dm) == 10
            s.put_many((f"m{i}", None, i) for i in range(25))  # one block for the batch
            assert s.npending == 0
            assert len(Log(s.path).blocks) == 2
        with dm.session(commit_records=10**6, commit_interval=0) as s:
            s["t"] = 1  # the interval has passed: committed at once
            assert s.npending == 0
            assert dm["t"] == 1
        with dm.session(commit_records=10**6, commit_interval=3600) as s:
            s["u"] = 1
            s.maybe_flush()
            assert s.npending == 1
            s.flush()
            assert s.npending == 0
            assert dm["u"] == 1


def test_unpicklable_value_becomes_a_failure_record_and_keeps_the_rest(tmp_path):
    # audit finding 4: one unpicklable result raised from put_many and stopped the run
    with DataManager(tmp_path) as dm:
        with dm.session(commit_records=2) as s:
            s.put_many([("good1", 1, 1.0), ("bad", 2, lambda: 0), ("good2", 3, 2.0)])
            s.put_many([("good3", 4, 3.0), ("bad2", lambda: 1, 1.0)])  # an unpicklable item
            s.flush()
            assert s.npending == 0
            unstorable = s.pop_unstorable()
            assert [(k, i) for k, i, _e in unstorable] == [("bad", 2), ("bad2", None)] or \
                [k for k, _i, _e in unstorable] == ["bad", "bad2"]
            assert all(isinstance(e, Exception) for _k, _i, e in unstorable)
            assert s.pop_unstorable() == []
        assert sorted(dm.keys()) == ["good1", "good2", "good3"]
        failures = {r.key: r for r in dm.failures()}
        assert sorted(failures) == ["bad", "bad2"]
        assert failures["bad"].exc_type == "FarmPicklingError"
        assert "cannot be pickled" in failures["bad"].message
        assert "return picklable values" in failures["bad"].message
        assert failures["bad"].item == 2
        assert failures["bad2"].item is None  # the item itself could not be kept
        assert "its item" in failures["bad2"].message


def test_new_shards_are_picked_up(tmp_path):
    with DataManager(tmp_path) as reader, DataManager(tmp_path) as writer:
        assert len(reader) == 0
        with writer.session() as s:
            s["a"] = 1
        assert "a" in reader  # a point read of an unknown key rescans
        with writer.session() as s:
            s["a"] = 2
            s["b"] = 3
        assert len(reader) == 2
        assert reader["a"] == 2
        with reader.session() as s:  # our own session: point reads see it at once
            s["a"] = 4
        assert reader["a"] == 4


def test_iteration_sees_blocks_committed_meanwhile(tmp_path):
    with DataManager(tmp_path) as dm, dm.session() as s:
        s.put_many((f"k{i}", None, i) for i in range(10))
        s.flush()
        seen = []
        for key, _value in dm.iteritems():
            seen.append(key)
            if key == "k0":
                s["late"] = -1
                s.flush()
                dm.refresh()
        assert sorted(seen) == sorted([*(f"k{i}" for i in range(10)), "late"])


def _write_and_forget(path):
    s = Session(path)
    s["a"] = 1  # pending when the function returns and drops the session


def test_unclosed_session_is_committed_and_warned(tmp_path):
    dm = DataManager(tmp_path)
    with pytest.warns(ResourceWarning, match="unclosed"):
        _write_and_forget(tmp_path)
    assert dm["a"] == 1
    dm.close()


def test_shard_names_never_collide():
    names = {shard_stem("x") for _ in range(2000)}
    assert len(names) == 2000
    stem = shard_stem("a b/c")
    assert "/" not in stem
    assert " " not in stem
    assert stem.endswith("_a-b-c")
    assert str(os.getpid()) in stem


def test_hidden_files_are_ignored(tmp_path):
    """A hidden file (a copy in progress, .DS_Store) is neither read nor reported."""
    import warnings

    from daskfarm import DataManager

    with DataManager(tmp_path) as dm:
        with dm.session() as s:
            s.put("k", 1)
    (tmp_path / ".a.dfshard.merging-1").write_bytes(b"partial")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x01")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with DataManager(tmp_path) as dm:
            assert len(dm) == 1
            assert dm.check().ok


def test_array_items_are_stored_with_their_records(tmp_path):
    # an array compares element by element: a block of array items must not be taken
    # for "no items" by an == comparison with None
    with DataManager(tmp_path) as dm:
        with dm.session() as s:
            s.put_many([("a", np.array([6, 7]), 1), ("b", None, 2)])
        assert dm.params("a").tolist() == [6, 7] and dm.params("b") is None
