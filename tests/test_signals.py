"""Ctrl-C (SIGINT) and SIGTERM to a script running a farm: a clean, prompt stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from daskfarm import DataManager
from tests.conftest import DEADLINE

ROOT = Path(__file__).resolve().parent.parent


def _start(store: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "tests._farm_script", str(store)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == "READY":
            return proc
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the farm script never got going: {proc.stderr.read()[-2000:]}")


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "codes"), [(signal.SIGINT, (-signal.SIGINT, 130, 1)),
                                           (signal.SIGTERM, (-signal.SIGTERM, 143))])
def test_signal_stops_the_farm_cleanly(tmp_path, sig, codes):
    store = tmp_path / "store"
    proc = _start(store)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "a LocalCluster has worker processes"
    start = time.monotonic()
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert time.monotonic() - start < 30
    assert proc.returncode in codes, err[-2000:]
    if sig == signal.SIGINT:
        assert "KeyboardInterrupt" in err
    # no worker or nanny process survives its parent
    _, alive = psutil.wait_procs(children, timeout=DEADLINE / 2)
    assert not alive
    # what was stored is readable, and every result is whole
    with DataManager(store) as dm:
        assert dm.itemcount() >= 4
        assert all(dm[k] == dm.params(k) for k in dm.keys())
