"""``daskfarm store export ... out.parquet`` and ``daskfarm store show --where``."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from daskfarm.cli import main
from daskfarm.store import DataManager
from tests.store.test_tables import sweep


def test_parquet_export_round_trips_the_dataframe(tmp_path, capsys):
    sweep(tmp_path / "store")
    out = tmp_path / "results.parquet"
    assert main(["store", "export", str(tmp_path / "store"), str(out)]) == 0
    assert "exported 12 results" in capsys.readouterr().out
    with DataManager(tmp_path / "store") as dm:
        expected = dm.to_dataframe()
    back = pd.read_parquet(out)
    assert list(back.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)
    assert str(back["time"].dtype).startswith("datetime64") and back["time"].dt.tz is not None


def test_parquet_export_without_pyarrow_names_the_extra(tmp_path, monkeypatch, capsys):
    sweep(tmp_path / "store")
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    assert main(["store", "export", str(tmp_path / "store"), str(tmp_path / "o.parquet")]) == 1
    assert "daskfarm[parquet]" in capsys.readouterr().err


def test_show_where_prints_the_matching_records(tmp_path, capsys):
    sweep(tmp_path / "store")
    assert main(["store", "show", str(tmp_path / "store"), "--where", "b=3", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["key"] for r in rows) == ["k0-3", "k1-3"]
    assert all(r["item"]["b"] == 3 and r["value"]["mean"] == 1.5 for r in rows)
    assert main(["store", "show", str(tmp_path / "store"), "--where", "a=1",
                 "--where", "b=4"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("k1-4  {'a': 1, 'b': 4} -> {'mean': 2.0")


@pytest.mark.parametrize("bad", ["x", "=2"])
def test_show_where_needs_field_equals_value(tmp_path, capsys, bad):
    sweep(tmp_path / "store")
    assert main(["store", "show", str(tmp_path / "store"), "--where", bad]) == 1
    assert "FIELD=VALUE" in capsys.readouterr().err
