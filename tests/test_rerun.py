"""A sweep's store as data: reruns yield every result, records carry how long each item ran
and where, and a farm's sweep turns into a DataFrame."""

from __future__ import annotations

import pytest

from daskfarm import DataManager
from tests import _tasks


def test_a_rerun_yields_every_result_in_completion_order_ordered_and_in_pairs(farm, tmp_path):
    store = tmp_path / "store"
    first = sorted(farm.map(_tasks.square, range(30), store=store, progress=False))
    assert first == [x * x for x in range(30)]
    again = farm.map(_tasks.square, range(40), store=store, progress=False)
    assert sorted(again) == [x * x for x in range(40)]  # 30 stored ones, 10 new
    assert again.counts["skipped"] == 30 and again.counts["done"] == 10
    ordered = farm.map(_tasks.square, range(40), store=store, ordered=True, progress=False)
    assert list(ordered) == [x * x for x in range(40)]
    assert ordered.counts["skipped"] == 40
    pairs = farm.map(_tasks.square, range(40), store=store, progress=False).pairs()
    assert sorted(pairs) == [(x, x * x) for x in range(40)]


def test_records_carry_the_duration_and_the_worker(farm, tmp_path):
    store = tmp_path / "store"
    sleeps = {0: 0.05, 1: 0.3, 2: 0.6}
    list(farm.map(_tasks.sleeps_for, list(sleeps.items()), store=store, batch_size=1,
                  progress=False))
    workers = set(farm.client.nthreads())
    with DataManager(store) as dm:
        for key in dm.keys():
            (record,) = dm.get_all(key)
            _, seconds = record.item
            assert seconds <= record.duration < seconds + 2.0
            assert record.worker in workers


def test_a_sweep_of_dict_items_and_results_is_a_table(farm, tmp_path):
    pd = pytest.importorskip("pandas")
    store = tmp_path / "store"
    grid = [{"a": a, "b": b} for a in range(3) for b in range(2)]
    list(farm.map(_tasks.product_dict, grid, store=store, progress=False))
    with DataManager(store) as dm:
        table = dm.to_dataframe()
    assert len(table) == 6
    assert {"a", "b", "product", "key", "task", "version", "run_id", "host", "worker", "time",
            "duration"} <= set(table.columns)
    assert (table["product"] == table["a"] * table["b"]).all()
    assert pd.api.types.is_datetime64_any_dtype(table["time"])
    assert table["worker"].isin(set(farm.client.nthreads())).all()
