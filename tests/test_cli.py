"""The ``daskfarm`` command: argument handling in-process, end to end in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dask
import numpy as np
import pytest

from daskfarm import DataManager
from daskfarm.cli import main, parser
from daskfarm.cli._run import read_items

ROOT = Path(__file__).resolve().parents[1]


def daskfarm(*args: str, cwd: Path | None = None, timeout: float = 180,
             stdin: str | None = None) -> subprocess.CompletedProcess:
    """The installed console script's code, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "daskfarm.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env, input=stdin)


@pytest.fixture
def store(tmp_path):
    """A store with 5 numeric results, one failure, written by two sessions."""
    path = tmp_path / "store"
    with DataManager(path) as dm:
        with dm.session(task="sq") as s:
            for x in range(3):
                s.put(f"k{x}", float(x * x), item={"x": x})
        with dm.session(task="sq") as s:
            for x in range(3, 5):
                s.put(f"k{x}", float(x * x), item={"x": x})
            s.put_failure("k9", item={"x": 9}, exc_type="ValueError", message="nine",
                          traceback="Traceback ...")
    return path


# -- parsing and help ---------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    [], ["run"], ["store"], ["store", "ls"], ["store", "show"], ["store", "check"],
    ["store", "merge"], ["store", "export"], ["panel"], ["dashboard"], ["config"],
])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    assert "usage: daskfarm" in capsys.readouterr().out


def test_usage_errors_exit_2_without_a_traceback(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "mod:f"])  # neither --items nor --expr
    assert exit_.value.code == 2
    assert "one of the arguments --items --expr is required" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "no_such_module_xyz:f", "--expr", "range(3)"], "cannot import 'no_such_module_xyz'"),
    (["run", "tests.remote._tasks:nothing", "--expr", "range(3)"], "has no 'nothing'"),
    (["run", "tests.remote._tasks:square", "--expr", "1/0"], "ZeroDivisionError"),
    (["run", "tests.remote._tasks:square", "--expr", "42"], "not an iterable of items"),
    (["run", "tests.remote._tasks:square", "--items", "missing.jsonl"], "no items file"),
    (["run", "tests.remote._tasks:square", "--expr", "range(3)", "--tls-cert", "c.pem"],
     "add --tls-ca-file and --tls-key"),
    (["store", "ls", "no/such/store"], "no store directory"),
    (["config", "no-such-key"], "no setting daskfarm.no-such-key"),
    (["panel"], "which scheduler? give --scheduler"),
])
def test_user_errors_are_one_line_on_stderr(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("daskfarm: error: ")
    assert message in err
    assert "Traceback" not in err


def test_items_from_json_lines_csv_a_json_array_and_an_expression(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n\n[2, 3]\n4.5\n')
    (tmp_path / "b.csv").write_text("x,name,w\n1,a,0.5\n2,b,\n")
    (tmp_path / "c.json").write_text('[{"x": 1}, {"x": 2}]')
    (tmp_path / "bad.jsonl").write_text('{"x": 1}\nnot json\n')
    args = parser().parse_args

    def items(*argv):
        found, total = read_items(args(["run", "m:f", *argv]))
        return list(found), total

    assert items("--items", str(tmp_path / "a.jsonl")) == ([{"x": 1}, [2, 3], 4.5], 3)
    assert items("--items", str(tmp_path / "b.csv")) == (
        [{"x": 1, "name": "a", "w": 0.5}, {"x": 2, "name": "b", "w": None}], 2)
    assert items("--items", str(tmp_path / "c.json")) == ([{"x": 1}, {"x": 2}], 2)
    assert items("--expr", "range(3)") == ([0, 1, 2], 3)
    assert items("--expr", "(x / 2 for x in range(2))") == ([0.0, 0.5], None)
    assert items("--expr", "np.linspace(0, 1, 3)")[0] == [0.0, 0.5, 1.0]
    with pytest.raises(Exception, match=r"bad.jsonl, line 2: not JSON"):
        items("--items", str(tmp_path / "bad.jsonl"))


def test_config_prints_the_settings_but_not_the_token(capsys):
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("daskfarm:")
    assert "commit-records: 500" in out
    assert main(["config", "connect.timeout"]) == 0
    assert capsys.readouterr().out.strip() == "10s"
    with dask.config.set({"daskfarm.token": "s3cret-token"}):
        assert main(["config"]) == 0
        assert main(["config", "token"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out
    assert "token: <set>" in out


# -- store subcommands, in-process ----------------------------------------------------------

def test_store_ls_show_and_check(store, capsys):
    assert main(["store", "ls", str(store)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{store}: 2 shards, 6 records, 5 keys, 1 failures"
    assert out.count(".dfshard") == 2

    assert main(["store", "show", str(store), "--limit", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["k0  {'x': 0} -> 0.0", "k1  {'x': 1} -> 1.0"]
    assert "3 more" in captured.err

    assert main(["store", "show", str(store), "k4", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["key"], record["value"], record["item"], record["task"]) == \
        ("k4", 16.0, {"x": 4}, "sq")

    assert main(["store", "show", str(store), "--failures"]) == 0
    assert "k9  {'x': 9} FAILED ValueError: nine" in capsys.readouterr().out

    assert main(["store", "check", str(store)]) == 0
    assert "0 problem(s)" in capsys.readouterr().out
    (store / "notes.txt").write_text("not a shard")
    assert main(["store", "check", str(store)]) == 1
    assert "stray" in capsys.readouterr().out


def test_store_merge_copies_shards_once(store, tmp_path, capsys):
    dest = tmp_path / "merged"
    with DataManager(dest) as dm, dm.session() as s:
        s.put("other", -1.0, item={"x": -1})
    assert main(["store", "merge", str(store), str(dest)]) == 0
    assert "2 shards copied" in capsys.readouterr().out
    assert main(["store", "merge", str(store), str(dest)]) == 0
    assert "0 shards copied, 0 updated, 2 already there" in capsys.readouterr().out
    with DataManager(dest, readonly=True) as dm:
        assert sorted(dm.keys()) == ["k0", "k1", "k2", "k3", "k4", "other"]
        assert len(dm.failures()) == 1
    assert main(["store", "merge", str(store), str(store)]) == 1


def test_store_export_csv_jsonl_and_npz(store, tmp_path, capsys):
    csv_file, jsonl_file, npz_file = (tmp_path / f"out.{s}" for s in ("csv", "jsonl", "npz"))
    assert main(["store", "export", str(store), str(csv_file)]) == 0
    lines = csv_file.read_text().splitlines()
    assert lines[0] == "key,x,result"
    assert sorted(lines[1:]) == [f"k{x},{x},{float(x * x)}" for x in range(5)]

    assert main(["store", "export", str(store), str(jsonl_file)]) == 0
    rows = [json.loads(line) for line in jsonl_file.read_text().splitlines()]
    assert sorted((r["key"], r["item"]["x"], r["result"]) for r in rows) == \
        [(f"k{x}", x, float(x * x)) for x in range(5)]

    assert main(["store", "export", str(store), str(npz_file)]) == 0
    with np.load(npz_file) as data:
        assert sorted(data.files) == ["item_x", "keys", "results"]
        assert data["results"].dtype == np.float64
        assert np.array_equal(data["results"], data["item_x"] ** 2)

    with DataManager(store) as dm, dm.session() as s:
        s.put("text", "not a number", item={"x": 99})
    assert main(["store", "export", str(store), str(npz_file)]) == 1
    assert "export to .csv or .jsonl instead" in capsys.readouterr().err
    assert main(["store", "export", str(store), str(tmp_path / "out.xyz")]) == 1


# -- end to end: the command in subprocesses on a LocalCluster ------------------------------

@pytest.mark.slow
def test_run_then_store_commands_end_to_end(tmp_path):
    store, merged = tmp_path / "results", tmp_path / "merged"
    params = tmp_path / "params.csv"
    params.write_text("x\n" + "\n".join(str(x) for x in range(12)) + "\n")
    (tmp_path / "model.py").write_text(
        "def simulate(p):\n"
        "    if p['x'] == 5:\n"
        "        raise ValueError('five is bad')\n"
        "    return p['x'] ** 2\n")

    done = daskfarm("run", "model:simulate", "--items", str(params), "--store", str(store),
                    "--workers", "2", "--errors", "continue", "--no-progress", cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # one item failed
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted((r["item"]["x"], r["result"]) for r in results) == \
        [(x, x * x) for x in range(12) if x != 5]
    assert "item {\"x\": 5} failed: ValueError: five is bad" in done.stderr
    assert "11 done, 1 failed" in done.stderr

    again = daskfarm("run", "model:simulate", "--items", str(params), "--store", str(store),
                     "--workers", "1", "--errors", "continue", "--quiet", cwd=tmp_path)
    assert "0 done, 1 failed, 11 skipped" in again.stderr  # resumed: only the failure reran

    ls = daskfarm("store", "ls", str(store))
    assert ls.returncode == 0, ls.stderr
    assert "2 shards" in ls.stdout and "11 keys, 1 failures" in ls.stdout
    show = daskfarm("store", "show", str(store), "--limit", "0", "--json")
    assert sorted(json.loads(line)["value"] for line in show.stdout.splitlines()) == \
        sorted(x * x for x in range(12) if x != 5)
    check = daskfarm("store", "check", str(store))
    assert check.returncode == 0 and "0 problem(s)" in check.stdout
    merge = daskfarm("store", "merge", str(store), str(merged))
    assert merge.returncode == 0 and "2 shards copied" in merge.stdout
    export = daskfarm("store", "export", str(merged), str(tmp_path / "out.npz"))
    assert export.returncode == 0, export.stderr
    with np.load(tmp_path / "out.npz") as data:
        assert sorted(data["results"].tolist()) == sorted(x * x for x in range(12) if x != 5)
        assert np.array_equal(data["results"], data["item_x"] ** 2)


@pytest.mark.slow
def test_run_from_stdin_with_star_and_ordered_output(tmp_path):
    lines = "".join(json.dumps([a, b]) + "\n" for a, b in [(2, 3), (3, 2), (10, 0)])
    done = daskfarm("run", "builtins:pow", "--items", "-", "--star", "--ordered",
                    "--workers", "1", stdin=lines)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["result"] for line in done.stdout.splitlines()] == [8, 9, 1]


@pytest.mark.slow
def test_a_failing_task_shows_its_remote_traceback_and_exits_1(tmp_path):
    (tmp_path / "bad.py").write_text("def boom(x):\n    raise KeyError(x)\n")
    done = daskfarm("run", "bad:boom", "--expr", "[7]", "--workers", "1", cwd=tmp_path)
    assert done.returncode == 1
    assert 'File "' in done.stderr and "bad.py" in done.stderr  # the task's own traceback
    assert done.stderr.rstrip().splitlines()[-1].startswith("daskfarm: error: KeyError: 7")
