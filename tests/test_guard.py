"""A script without ``if __name__ == "__main__":`` gets one short FarmError, not a flood."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TASK = '''
from daskfarm import Farm


def square(x):
    return x * x

'''


def run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "sweep.py"
    script.write_text(TASK + textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("body", [
    """
    with Farm(n_workers=1, dashboard=False) as farm:
        print(sorted(farm.map(square, range(3), progress=False)))
    """,
    """
    def main():
        with Farm(n_workers=1, dashboard=False) as farm:
            print(sorted(farm.map(square, range(3), progress=False)))

    main()
    """,
])
def test_an_unguarded_script_gets_one_short_error(tmp_path, body):
    proc = run_script(tmp_path, body)
    assert proc.returncode == 1
    err = proc.stderr
    assert "daskfarm.exceptions.FarmStateError: sweep.py, line " in err
    assert 'if __name__ == "__main__":' in err
    assert "bootstrapping phase" not in err and "Nanny failed" not in err
    assert err.count("Traceback") == 1
    assert len(err.splitlines()) < 30, err
    assert proc.stdout == ""


@pytest.mark.parametrize("body", [
    """
    if __name__ == "__main__":
        with Farm(n_workers=1, dashboard=False) as farm:
            print(sorted(farm.map(square, range(3), progress=False)))
    """,
    """
    def main():
        with Farm(n_workers=1, dashboard=False) as farm:
            print(sorted(farm.map(square, range(3), progress=False)))

    if "__main__" == __name__:
        main()
    """,
    """
    with Farm(n_workers=1, processes=False, dashboard=False) as farm:  # threads: no guard needed
        print(sorted(farm.map(square, range(3), progress=False)))
    """,
])
def test_a_guarded_or_threaded_script_runs(tmp_path, body):
    proc = run_script(tmp_path, body)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0, 1, 4]"
    assert "FarmStateError" not in proc.stderr


def test_a_module_run_with_dash_m_is_checked_too(tmp_path):
    (tmp_path / "sweepmod.py").write_text(TASK + textwrap.dedent("""
    with Farm(n_workers=1, dashboard=False) as farm:
        print(sorted(farm.map(square, range(3), progress=False)))
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    proc = subprocess.run([sys.executable, "-m", "sweepmod"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "FarmStateError: sweepmod.py, line " in proc.stderr
    assert "Nanny failed" not in proc.stderr
