"""The README's demo: examples/quickstart.py runs, prints the panel link, and resumes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEADLINE

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quickstart_runs_and_resumes(tmp_path):
    cmd = [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--store",
           str(tmp_path / "results")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=3 * DEADLINE, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "Farm panel: http://127.0.0.1:" in first.stdout
    assert "/farm?token=" in first.stdout
    assert "25 computed, 0 already stored" in first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=3 * DEADLINE, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "0 computed, 25 already stored" in second.stdout
