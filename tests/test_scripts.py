"""Script-defined tasks on real workers: the script's globals, its file and lines, clear errors.

The in-process tests build the "script" with ``exec`` under ``__name__ == "__main__"`` (so
cloudpickle sends its functions by value, as it does a real script's); the last tests run real
scripts in subprocesses, on a LocalCluster and on a ``dask scheduler`` + ``dask worker`` pair.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daskfarm import FarmPicklingError, FarmTypeError
from daskfarm.exceptions import ScriptGlobalError
from tests.conftest import DEADLINE

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent('''
    import threading
    from os import environ

    import numpy as np
    from distributed import Event

    V0 = 3.5
    TABLE = np.arange(5)
    BIG = np.zeros(300_000)
    LOCK = threading.Lock()


    def task(x):
        # names used only inside a string, the way Brian 2 reads equations
        return eval("V0 * x + TABLE[x]")


    def uses_big(x):
        return eval("BIG[x]")


    def uses_lock(x):
        return eval("LOCK.locked()")


    def library_object(x):
        import os
        return eval("environ") is os.environ


    def fails(x, gate):
        Event(gate).wait(60)
        y = x + 1
        raise ValueError(f"bad {y}")


    class Scaled:
        def __init__(self, factor):
            self.factor = factor

        def __call__(self, x):
            return eval("self.factor * V0 * x")
''')


def exec_script(tmp_path: Path, source: str = SCRIPT) -> dict:
    """Run ``source`` as a script module would run (``__main__``, with a ``__file__``)."""
    path = tmp_path / "sweep.py"
    path.write_text(source)
    namespace = {"__name__": "__main__", "__file__": str(path)}
    exec(compile(source, str(path), "exec"), namespace)
    return namespace


def test_names_used_only_in_strings_reach_the_workers(farm, tmp_path):
    script = exec_script(tmp_path)
    assert sorted(farm.map(script["task"], range(5))) == [3.5 * x + x for x in range(5)]
    assert sorted(farm.map(script["Scaled"], [1, 2], initargs=(2,))) == [7.0, 14.0]


def test_library_objects_are_the_workers_own(farm, tmp_path):
    # `environ` from `from os import environ` is the worker's os.environ, not a copy
    script = exec_script(tmp_path)
    assert list(farm.map(script["library_object"], [0])) == [True]


def test_big_or_unpicklable_globals_fail_only_when_used(farm, tmp_path):
    script = exec_script(tmp_path)
    with pytest.raises(ScriptGlobalError, match=r"uses 'BIG'.*it is 2\.4 MB, over the 1\.0 MB "
                                                r"limit\. Pass it to the task as an argument"):
        list(farm.map(script["uses_big"], [1]))
    with pytest.raises(NameError, match=r"uses 'LOCK'.*cannot be pickled \(TypeError: cannot "
                                        r"pickle '_thread.lock' object\)"):
        list(farm.map(script["uses_lock"], [1]))
    assert list(farm.map(script["task"], [1])) == [4.5]  # the others are fine


def test_tracebacks_name_the_script_line_even_where_the_file_is_gone(farm, tmp_path, release):
    script = exec_script(tmp_path)
    path = tmp_path / "sweep.py"
    failing = farm.starmap(script["fails"], [(1, release.name)], errors="continue")
    path.rename(tmp_path / "moved.py")  # the workers have only what the task brought
    release.set()
    failing.wait(timeout=DEADLINE)
    (failure,) = failing.failures
    line = SCRIPT.splitlines().index('    raise ValueError(f"bad {y}")') + 1
    assert f'File "{path}", line {line}, in fails\n    raise ValueError(f"bad {{y}}")' \
        in failure.traceback
    assert "<dynamic-code>" not in failure.traceback


def test_the_pickling_hint_names_the_global_that_failed(farm, tmp_path):
    pytest.importorskip("brian2")
    script = exec_script(tmp_path, "def task(x):\n    return run(x)\n")
    script["run"] = farm.map(abs, [1])  # the README's `run = farm.map(...)`: hides Brian's run()
    script["run"].wait()
    with pytest.raises(FarmPicklingError) as info:
        farm.map(script["task"], [1])
    message = str(info.value)
    assert "The task uses the script's global 'run', a daskfarm.run.Run, which cannot be " \
           "pickled" in message
    assert "hides brian2's run() that the task means: give the Run another name" in message
    assert "Define the task at module level" not in message


BRIAN_STANDALONE = textwrap.dedent('''
    from brian2 import Network, NeuronGroup, device, ms, set_device


    def simulate(directory, report):
        set_device("cpp_standalone", directory=directory, build_on_run=False)
        try:
            group = NeuronGroup(1, "dv/dt = -v / (10 * ms) : 1")
            Network(group).run(1 * ms, report=report)
        finally:
            device.reinit()
            set_device("runtime")
''')


def test_brian_standalone_says_what_to_pass_as_report(farm, tmp_path):
    pytest.importorskip("brian2")
    script = exec_script(tmp_path, BRIAN_STANDALONE)
    with pytest.raises(TypeError, match=r"Brian 2's standalone mode .* cannot call daskfarm's "
                                        r"report: pass report='text' there") as info:
        list(farm.starmap(script["simulate"], [(str(tmp_path / "build"),)]))
    assert isinstance(info.value, FarmTypeError)


def test_brian_units_in_script_globals_stay_units(farm, tmp_path):
    # Brian pickles a Unit as a plain Quantity; a TimedArray's return unit must stay a Unit
    pytest.importorskip("brian2")
    script = exec_script(tmp_path, textwrap.dedent('''
        from brian2 import TimedArray, mV, ms

        stimulus = TimedArray([0, 1, 2] * mV, dt=1 * ms)


        def return_unit(x):
            unit = eval("stimulus")._return_unit
            return type(unit).__name__, str(unit)
    '''))
    assert list(farm.map(script["return_unit"], [0])) == [("Unit", "V")]


def test_tasks_from_modules_are_pickled_as_before():
    from daskfarm.worker import execute as _execute

    from . import _tasks

    spec = _execute.make_spec(_tasks.square, star="never", initargs=(), initkwds=None,
                              retries=0, report_interval=1.0)
    assert pickle.loads(_execute.dumps_spec(spec)).task is _tasks.square


def _run(args, *, cwd, timeout=240):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


MAIN = textwrap.dedent('''
    import sys

    from distributed import Event

    from daskfarm import Farm

    if __name__ == "__main__":
        address = sys.argv[1] if len(sys.argv) > 1 else None
        with Farm(address, n_workers=1, dashboard=False) as farm:
            print("results", sorted(farm.map(task, range(5))))
            try:
                list(farm.map(uses_lock, [1]))
            except NameError as exc:
                print("error", type(exc).__name__)
            gate = Event("gate-sweep", client=farm.client)
            failing = farm.starmap(fails, [(1, gate.name)], errors="continue")
            gate.set()
            failing.wait(60)
            print(failing.failures[0].traceback)
''')


def _check_script_output(out: str, path: Path) -> None:
    assert "results [0.0, 4.5, 9.0, 13.5, 18.0]" in out.replace("np.float64(", "").replace(
        ")", "")
    assert "error ScriptGlobalError" in out
    assert re.search(rf'File "{re.escape(str(path))}", line \d+, in fails\n'
                     r'    raise ValueError\(f"bad \{y\}"\)', out)


@pytest.mark.slow
def test_a_real_script_on_a_local_cluster(tmp_path):
    path = tmp_path / "sweep.py"
    path.write_text(SCRIPT + MAIN)
    _check_script_output(_run([str(path)], cwd=tmp_path), path)


@pytest.mark.slow
def test_a_real_script_on_a_remote_worker_that_never_ran_it(tmp_path):
    from tests.remote._procs import DaskProcesses
    from tests.remote.conftest import wait_for_workers

    script_dir = tmp_path / "client"
    script_dir.mkdir()
    path = script_dir / "sweep.py"
    path.write_text(SCRIPT + MAIN)
    procs = DaskProcesses(tmp_path)
    try:
        procs.start_scheduler(preload=False)
        procs.start_worker("w1")
        wait_for_workers(procs, 1)
        _check_script_output(_run([str(path), procs.address], cwd=script_dir), path)
    finally:
        procs.close()
