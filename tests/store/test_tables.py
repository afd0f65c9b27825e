"""Issue 14, store side: the store as a DataFrame, queries by item field, provenance."""

from __future__ import annotations

import collections
import dataclasses
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from daskfarm.exceptions import FarmError, FarmTypeError
from daskfarm.store import DataManager
from tests.store._oldformat import write_v1_shard


def sweep(store, n_shards=2, per=6):
    """A sweep of dict items {a, b} and dict results {mean, std}, with durations and
    workers, over several shards; one key stored twice (the newer wins)."""
    with DataManager(store) as dm:
        for j in range(n_shards):
            with dm.session(task="sim", version=2, run_id=f"run{j}") as s:
                s.put_many((f"k{j}-{i}", {"a": j, "b": i}, {"mean": i / 2, "std": 0.1 * j},
                            0.01 * i, f"tcp://w{i % 2}:1") for i in range(per))
        with dm.session(task="sim", version=2, run_id="again") as s:
            s.put("k0-0", {"mean": -1.0, "std": 0.0}, item={"a": 0, "b": 0})
            s.put_failure("bad", item={"a": 9, "b": 9}, exc_type="ValueError",
                          message="b too big", traceback="Traceback ...")


def test_a_sweep_of_dict_items_and_results_as_a_dataframe(tmp_path):
    sweep(tmp_path)
    with DataManager(tmp_path) as dm:
        df = dm.to_dataframe()
        failed = dm.to_dataframe(failures=True)
    assert list(df.columns) == ["a", "b", "mean", "std", "key", "task", "version", "run_id",
                                "host", "worker", "time", "duration"]
    assert len(df) == 12 and df["key"].is_unique
    row = df.set_index("key").loc["k1-3"]
    assert (row["a"], row["b"], row["mean"], row["std"]) == (1, 3, 1.5, pytest.approx(0.1))
    assert (row["task"], row["version"], row["run_id"], row["worker"]) == ("sim", 2, "run1",
                                                                           "tcp://w1:1")
    assert row["duration"] == pytest.approx(0.03)
    assert df.set_index("key").loc["k0-0", "mean"] == -1.0  # the newer record wins
    assert df.set_index("key").loc["k0-0", "run_id"] == "again"
    assert np.isnan(df.set_index("key").loc["k0-0", "duration"])  # put() without one
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert (df["time"] > pd.Timestamp.now(tz="UTC") - pd.Timedelta("1h")).all()
    assert df["mean"].dtype == float and df["a"].dtype == np.int64
    # from a sweep to a grid
    grid = df.set_index(["a", "b"])["mean"]
    assert grid.loc[(1, 5)] == 2.5
    assert list(failed.columns) == ["a", "b", "exc_type", "message", "traceback", "key",
                                    "task", "version", "run_id", "host", "worker", "time",
                                    "duration"]
    assert failed[["key", "exc_type", "message"]].values.tolist() == [
        ["bad", "ValueError", "b too big"]]


@dataclasses.dataclass
class Point:
    x: int
    label: str


Pair = collections.namedtuple("Pair", "x y")


def test_item_and_result_columns_for_other_shapes(tmp_path):
    with DataManager(tmp_path / "dc") as dm, dm.session() as s:
        s.put_many([("p1", Point(1, "u"), 0.5), ("p2", Point(2, "v"), 0.7)])
    with DataManager(tmp_path / "nt") as dm, dm.session() as s:
        s.put_many([("n1", Pair(1, 2), (1, 2)), ("n2", Pair(3, 4), (3, 4))])
    with DataManager(tmp_path / "plain") as dm, dm.session() as s:
        s.put_many([("q1", 5, {"key": 1, "x": 2}), ("q2", 6, {"key": 3, "x": 4})])
    with DataManager(tmp_path / "dc") as dm:
        df = dm.to_dataframe()
        assert list(df.columns[:3]) == ["x", "label", "value"]
        assert df["label"].tolist() == ["u", "v"]
    with DataManager(tmp_path / "nt") as dm:
        df = dm.to_dataframe()
        assert list(df.columns[:3]) == ["x", "y", "value"]
        assert df["value"].tolist() == [(1, 2), (3, 4)]
    with DataManager(tmp_path / "plain") as dm:
        df = dm.to_dataframe()
        # result fields named like a provenance column or an item field get a prefix
        assert list(df.columns[:3]) == ["item", "result.key", "x"]
        assert df["result.key"].tolist() == [1, 3] and df["key"].tolist() == ["q1", "q2"]


def test_find_by_item_fields_reads_only_matching_values(tmp_path):
    sweep(tmp_path)
    with DataManager(tmp_path) as dm:
        found = dm.find(b=3)
        assert sorted(r.key for r in found) == ["k0-3", "k1-3"]
        assert {r.value["mean"] for r in found} == {1.5}
        assert [r.key for r in dm.find(a=1, b=3)] == ["k1-3"]
        assert dm.find(a=7) == [] and dm.find(nope=1) == []
        (r,) = dm.find(a=0, b=0)
        assert (r.value["mean"], r.run_id) == (-1.0, "again")  # the newest record only
        assert [r.key for r in dm.find(where=lambda it: it["a"] == 1 and it["b"] > 3)] == [
            "k1-4", "k1-5"]
        assert [r.key for r in dm.find(where=lambda it: it["b"] == 2, a=0)] == ["k0-2"]
        assert (found[0].duration, found[0].worker) == (pytest.approx(0.03), "tcp://w1:1")
        with pytest.raises(FarmTypeError, match="where"):
            dm.find(where=3)
        # the index follows new commits
        with dm.session() as s:
            s.put("new", 1.0, item={"a": 1, "b": 3})
        assert sorted(r.key for r in dm.find(a=1, b=3)) == ["k1-3", "new"]


def test_find_on_dataclass_and_namedtuple_items(tmp_path):
    with DataManager(tmp_path) as dm, dm.session() as s:
        s.put_many([("p1", Point(1, "u"), 0.5), ("p2", Point(2, "v"), 0.7),
                    ("n1", Pair(2, [1]), 1.0), ("z", 3, 1.0), ("l", {"x": [1, 2]}, 2.0)])
    with DataManager(tmp_path) as dm:
        assert sorted(r.key for r in dm.find(x=2)) == ["n1", "p2"]
        assert [r.key for r in dm.find(label="u")] == ["p1"]
        assert [r.key for r in dm.find(y=[1])] == ["n1"]  # unhashable values match too
        assert [r.key for r in dm.find(x=[1, 2])] == ["l"]


def test_records_carry_duration_and_worker_none_when_not_given(tmp_path):
    write_v1_shard(tmp_path / "old.dfshard", [("o", {"a": 1}, 1.0)])
    with DataManager(tmp_path) as dm:
        with dm.session() as s:
            s.put_many([("k", {"a": 2}, 2.0, 1.5, "w1"), ("m", {"a": 3}, 3.0)])
            s.put("p", 4.0, item={"a": 4}, duration=0.25, worker="w2")
        records = {k: dm.get_all(k)[0] for k in ("o", "k", "m", "p")}
        df = dm.to_dataframe().set_index("key")
    assert [(r.duration, r.worker) for r in records.values()] == [
        (None, None), (1.5, "w1"), (None, None), (0.25, "w2")]
    assert df.loc["o", "a"] == 1 and np.isnan(df.loc["o", "duration"])
    assert df.loc["k", "worker"] == "w1"


def test_get_many_reads_stored_values_in_the_order_asked(tmp_path):
    sweep(tmp_path)
    with DataManager(tmp_path) as dm:
        keys = ["k1-5", "k0-1", "k1-5", "k0-0"]
        assert [v["mean"] for v in dm.get_many(keys)] == [2.5, 0.5, 2.5, -1.0]
        with pytest.raises(KeyError):
            dm.get_many(["k0-1", "missing"])


def test_to_dataframe_without_pandas_names_the_extra(tmp_path, monkeypatch):
    sweep(tmp_path)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    with DataManager(tmp_path) as dm, pytest.raises(ImportError, match=r"daskfarm\[pandas\]"
                                                    ) as info:
        dm.to_dataframe()
    assert isinstance(info.value, FarmError)


def test_an_unreadable_value_is_left_out_of_the_table_with_a_warning(tmp_path, monkeypatch):
    code = tmp_path / "code"
    code.mkdir()
    (code / "gonemod.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(code))
    import gonemod

    with DataManager(tmp_path / "s") as dm, dm.session() as s:
        s.put_many([("a", 1, 1.0), ("b", 2, gonemod.Thing())])
    monkeypatch.delitem(sys.modules, "gonemod")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(code)])
    with DataManager(tmp_path / "s") as dm, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = dm.to_dataframe()
    assert df["key"].tolist() == ["a"]
    assert any("gonemod.Thing" in str(w.message) for w in caught)


def test_the_readmes_two_lines_from_a_sweep_to_an_xarray_grid(tmp_path):
    pytest.importorskip("xarray")
    with DataManager(tmp_path) as dm, dm.session() as s:
        s.put_many((f"k{a}{b}", {"a": a, "b": b}, {"mean": a * 10 + b, "std": 0.0})
                   for a in range(3) for b in range(4))
    df = DataManager(tmp_path).to_dataframe()  # a sweep over a and b
    grid = df.set_index(["a", "b"])["mean"].to_xarray()
    assert grid.dims == ("a", "b") and grid.shape == (3, 4)
    assert float(grid.sel(a=2, b=3)) == 23
