"""Store test helpers: writer processes run as real subprocesses, every wait bounded."""

from __future__ import annotations

import os
import pathlib
import select
import subprocess
import sys
import time

import pytest

import daskfarm.store
from tests.conftest import DEADLINE

ROOT = pathlib.Path(daskfarm.store.__file__).resolve().parents[2]

#: A writer process: ``python -c WRITER path prefix n batch value_bytes label``. It stores
#: ``{prefix}-{i}`` -> ``(i, label, padding)``, commits a block every ``batch`` records and
#: prints the number of records committed so far after each commit.
WRITER = """
import sys
from daskfarm.store import DataManager

path, prefix, n, batch, size, label = sys.argv[1:7]
n, batch, pad = int(n), int(batch), "x" * int(size)
with DataManager(path) as dm, dm.session(prefix, run_id=label, task="t") as s:
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        s.put_many((f"{prefix}-{i}", {"i": i}, (i, label, pad + str(i))) for i in range(lo, hi))
        s.flush()
        print(hi, flush=True)
"""


def start_writer(path, prefix: str, n: int, batch: int = 500, size: int = 0,
                 label: str = "") -> subprocess.Popen:
    pythonpath = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": pythonpath}
    args = [str(path), prefix, str(n), str(batch), str(size), label or prefix]
    return subprocess.Popen([sys.executable, "-c", WRITER, *args], stdout=subprocess.PIPE,
                            text=True, env=env)


def read_line(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    """The next line the process prints; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no output from writer {proc.pid} within {timeout} s")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            return proc.stdout.readline()


def finish(proc: subprocess.Popen, timeout: float = 60.0) -> str:
    """Wait for the process to exit successfully; return the rest of its output."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"writer {proc.pid} exited with {proc.returncode}"
    return out


@pytest.fixture
def procs():
    """Processes a test starts; any still running at the end are killed and reaped."""
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=DEADLINE / 2)
