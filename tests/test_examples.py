"""Every example runs, small, as a user runs it: ``python examples/NAME.py`` in a subprocess."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NUMBERED = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))
TIMEOUT = 240  # seconds per example; a LocalCluster starts in each


def run_example(name: str, *args: str, cwd: Path) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_examples_are_documented_and_short():
    listed = (EXAMPLES / "README.md").read_text()
    assert NUMBERED, "no examples found"
    for name in NUMBERED:
        source = (EXAMPLES / name).read_text()
        assert ast.get_docstring(ast.parse(source)), f"{name} has no docstring"
        assert len(source.splitlines()) <= 80, f"{name} is over 80 lines"
        assert f"`{name}`" in listed, f"{name} is not listed in examples/README.md"


@pytest.mark.slow
def test_01_multiple_runs_with_gui(tmp_path):
    out = run_example("01_multiple_runs_with_gui.py", "--results", "3", "--no-browser",
                      cwd=tmp_path)
    assert re.search(r"^Simulation control: http://127\.0\.0\.1:\d+/farm\?token=", out, re.M)
    assert "Computed 3 results" in out
    assert "Computed 4 results" not in out


@pytest.mark.slow
def test_02_taskfarm_datamanager_tops_up_then_computes_nothing(tmp_path):
    args = ("--number", "4", "--store", "tf.data", "--html", "tf.html", "--no-gui")
    out = run_example("02_taskfarm_datamanager.py", *args, cwd=tmp_path)
    assert re.search(r"^Overall, 4 done of 4: 100% complete", out, re.M)
    assert "4 results in tf.data; plot in tf.html" in out
    assert "Bokeh" in (tmp_path / "tf.html").read_text()
    again = run_example("02_taskfarm_datamanager.py", *args, cwd=tmp_path)
    assert "Overall" not in again
    assert "4 results in tf.data" in again


def _table(out: str) -> list[tuple[float, int]]:
    rows = re.findall(r"^\s+(\d+\.\d+)\s+(\d+)$", out, re.M)
    return [(float(w), int(n)) for w, n in rows]


@pytest.mark.slow
def test_03_parallel_python_local(tmp_path):
    out = run_example("03_parallel_python.py", "--jobs", "5", cwd=tmp_path)
    assert [w for w, _ in _table(out)] == [0.0, 1.0, 2.0, 3.0, 4.0]  # input order
    assert re.search(r"^5 jobs on \d+ workers", out, re.M)


@pytest.mark.slow
def test_03_parallel_python_on_a_remote_scheduler(tmp_path):
    from distributed import LocalCluster

    # workers in another directory: the task's code must travel with it, as with pp
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0",
                      local_directory=str(tmp_path)) as cluster:
        out = run_example("03_parallel_python.py", cluster.scheduler_address, "--jobs", "3",
                          cwd=tmp_path)
    assert [w for w, _ in _table(out)] == [0.0, 2.0, 4.0]
    assert re.search(r"^3 jobs on 1 workers \(1 threads\)", out, re.M)


@pytest.mark.slow
def test_04_pydidas_minimal(tmp_path):
    out = run_example("04_pydidas_minimal.py", cwd=tmp_path)
    assert "Progress at  1.0" in out
    pairs = re.findall(r"\[np\.int64\((\d+)\), np\.int64\((\d+)\)\]", out)
    assert [(int(t), int(r)) for t, r in pairs] == [(t, 2 * t + 5) for t in range(10)]


@pytest.mark.slow
def test_05_pydidas_restart(tmp_path):
    out = run_example("05_pydidas_restart.py", cwd=tmp_path)
    last = out.strip().splitlines()[-2]  # the final "Results:" line
    numbers = [int(x) for x in re.findall(r"np\.int64\((-?\d+)\)", last)]
    tasks, results = numbers[0::2], numbers[1::2]
    assert tasks == list(range(30))
    assert results == [2 * t + 5 for t in range(20)] + [-t for t in range(20, 30)]
    assert "Results while suspended:  20" in out
    assert out.strip().endswith("WorkerController is alive:  True")


def _brian2_problem() -> str | None:
    """Why ``import brian2`` fails in a fresh interpreter, or None if it works."""
    proc = subprocess.run([sys.executable, "-c", "import brian2"], capture_output=True,
                          text=True, timeout=TIMEOUT)
    if proc.returncode == 0:
        return None
    return (proc.stderr.strip().splitlines() or ["import brian2 failed"])[-1]


@pytest.mark.slow
def test_06_brian2_sweep(tmp_path):
    problem = _brian2_problem()
    if problem:
        pytest.skip(f"brian2 is not importable here ({problem}); pip install brian2")
    out = run_example("06_brian2_sweep.py", "--store", "b2.data", cwd=tmp_path)
    assert re.search(r"^Overall, 8 done of 8: 100% complete", out, re.M)
    # Brian's text report, one line per running task (its taskname when a report of the task
    # reached the scheduler in time: tests/compat/test_run_tasks.py checks that with a gate)
    assert re.search(r"^Process \d+: \d+% complete, .*: ", out, re.M)
    assert len(re.findall(r"^weight \d\.\d\d mV: \d+ spikes$", out, re.M)) == 8


@pytest.mark.slow
def test_07_pydidas_apprunner(tmp_path):
    out = run_example("07_pydidas_apprunner.py", cwd=tmp_path)
    pairs = re.findall(r"\[np\.int64\((\d+)\), np\.int64\((\d+)\)\]", out)
    assert sorted((int(i), int(r)) for i, r in pairs) == [(i, 3 * i + 5) for i in range(20)]
    empty, final = re.findall(r"results: +\[([^\]]*)\]", out.replace("\n ", " "))
    assert [float(x) for x in empty.split()] == [0.0] * 20
    assert [float(x) for x in final.split()] == [3.0 * i + 5 for i in range(20)]


def _skip_without_brian2():
    problem = _brian2_problem()
    if problem:
        pytest.skip(f"brian2 is not importable here ({problem}); pip install brian2")


@pytest.mark.slow
def test_08_brian2_cython(tmp_path):
    _skip_without_brian2()
    out = run_example("08_brian2_cython.py", "--taus", "3", cwd=tmp_path)
    rows = re.findall(r"^tau = +(\d+\.\d) ms: v\(100 ms\) = (\d\.\d+), largest difference "
                      r"from exp\(-t/tau\): (\S+)$", out, re.M)
    assert [tau for tau, _, _ in rows] == ["5.0", "6.0", "7.0"]  # input order
    assert all(float(diff) < 1e-9 for _, _, diff in rows)


@pytest.mark.slow
def test_09_brian2_standalone(tmp_path):
    _skip_without_brian2()
    out = run_example("09_brian2_standalone.py", "--taus", "3", "--build-dir", "builds",
                      cwd=tmp_path)
    rows = re.findall(r"^tau = +(\d+\.\d) ms: .* forward Euler: (\S+)$", out, re.M)
    assert [tau for tau, _ in rows] == ["5.0", "6.0", "7.0"]
    assert all(float(diff) < 1e-9 for _, diff in rows)
    builds = sorted(p.name for p in (tmp_path / "builds").iterdir())
    assert builds and set(builds) <= {"standalone0", "standalone1"}  # one per worker process


def _sweep_rows(out: str) -> list[tuple[str, int, str]]:
    rows = re.findall(r"^gain (\d\.\d): (\d+) spikes, v = (-?\d+\.\d\d) mV$", out, re.M)
    return [(gain, int(count), v) for gain, count, v in rows]


@pytest.mark.slow
def test_10_brian2_constants_timedarray_matches_a_forked_pool(tmp_path):
    _skip_without_brian2()
    out = run_example("10_brian2_constants_timedarray.py", "--gains", "4", "--compare-pool",
                      cwd=tmp_path)
    rows = _sweep_rows(out)
    assert [gain for gain, _, _ in rows] == ["1.0", "1.5", "2.0", "2.5"]
    assert [count for _, count, _ in rows] != [0] * 4  # the stimulus drives the neurons
    assert "same as a forked Pool: True" in out


@pytest.mark.slow
def test_10_brian2_constants_timedarray_on_a_dask_scheduler_and_worker(tmp_path):
    _skip_without_brian2()
    from tests.remote._procs import DaskProcesses
    from tests.remote.conftest import wait_for_workers

    procs = DaskProcesses(tmp_path)  # the worker never imports the example
    try:
        procs.start_scheduler(preload=False)
        procs.start_worker("w1")
        wait_for_workers(procs, 1)
        out = run_example("10_brian2_constants_timedarray.py", procs.address, "--gains", "4",
                          "--compare-pool", cwd=tmp_path)
    finally:
        procs.close()
    assert len(_sweep_rows(out)) == 4
    assert "same as a forked Pool: True" in out
