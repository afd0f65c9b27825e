"""A TLS cluster started by the deploy/local recipe (start.sh / stop.sh), used from Python and
from the ``daskfarm`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from distributed import Client
from distributed.security import Security

from daskfarm import DataManager, Farm, FarmConnectionError
from tests.conftest import DEADLINE
from tests.remote import _tasks
from tests.remote._procs import ROOT

pytestmark = pytest.mark.slow

RECIPE = ROOT / "deploy" / "local"


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    """deploy/local/start.sh with free ports and 2 workers; stop.sh afterwards."""
    run_dir = tmp_path_factory.mktemp("local-recipe")
    env = {**os.environ, "PORT": "0", "DASHBOARD_PORT": "0", "WORKERS": "2",
           "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("DASKFARM_TOKEN", None)
    try:
        started = subprocess.run(["bash", str(RECIPE / "start.sh"), str(run_dir)], env=env,
                                 capture_output=True, text=True, timeout=2 * DEADLINE)
        assert started.returncode == 0, started.stderr
        info = json.loads((run_dir / "scheduler.json").read_text())
        security = Security(tls_ca_file=str(run_dir / "ca.pem"),
                            tls_client_cert=str(run_dir / "cert.pem"),
                            tls_client_key=str(run_dir / "key.pem"), require_encryption=True)
        with Client(info["address"], security=security, timeout=DEADLINE / 2,
                    set_as_default=False) as client:
            client.wait_for_workers(2, timeout=2 * DEADLINE)
        yield run_dir, info, security, started.stdout
    finally:
        stopped = subprocess.run(["bash", str(RECIPE / "stop.sh"), str(run_dir)],
                                 capture_output=True, text=True, timeout=2 * DEADLINE)
        assert stopped.returncode == 0, stopped.stderr
        assert not list(run_dir.glob("*.pid"))


def test_the_recipe_prints_what_a_client_needs(tls_cluster):
    run_dir, info, _, stdout = tls_cluster
    token = (run_dir / "token").read_text().strip()
    assert info["address"].startswith("tls://127.0.0.1:")
    assert f"scheduler:  {info['address']}" in stdout
    assert f"/farm?token={token}" in stdout
    assert oct((run_dir / "key.pem").stat().st_mode & 0o777) == "0o600"


def test_farm_over_tls_maps_serves_the_panel_and_leaves_the_cluster(tls_cluster, tmp_path):
    run_dir, info, security, _ = tls_cluster
    started = time.perf_counter()
    with Farm(info["address"], security=security) as farm:
        results = []
        for result in farm.map(_tasks.where, range(20), batch_size=1, store=tmp_path / "s",
                               progress=False):
            if not results:
                first = time.perf_counter() - started
            results.append(result)
        assert sorted(x for x, _ in results) == list(range(20))
        assert len({pid for _, pid in results}) == 2
        link = farm.panel_link
        assert link.endswith(f"/farm?token={(run_dir / 'token').read_text().strip()}")
        with urllib.request.urlopen(link, timeout=DEADLINE) as page:
            assert page.status == 200
    print(f"local recipe, tls: Farm(address) to first result {first:.2f} s")
    with DataManager(tmp_path / "s", readonly=True) as dm:
        assert len(dm) == 20
    with Client(info["address"], security=security, timeout=DEADLINE / 2,
                set_as_default=False) as c:
        assert len(c.scheduler_info(n_workers=-1)["workers"]) == 2  # still running


def test_no_certificate_or_a_foreign_one_no_connection(tls_cluster):
    _, info, _, _ = tls_cluster
    with pytest.raises(FarmConnectionError, match="no certificates were given") as error:
        Farm(info["address"], timeout=5)
    assert "security=" in str(error.value)
    started = time.monotonic()
    with pytest.raises(FarmConnectionError, match="cannot reach a Dask scheduler"):
        Farm(info["address"], security=Security.temporary(), timeout=2)
    assert time.monotonic() - started < 30


def daskfarm(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "daskfarm.cli", *args], capture_output=True,
                          text=True, timeout=3 * DEADLINE, env=env)


def test_the_command_runs_on_the_tls_cluster_and_prints_the_panel_link(tls_cluster, tmp_path):
    run_dir, info, _, _ = tls_cluster
    tls = ["--tls-ca-file", str(run_dir / "ca.pem"), "--tls-cert", str(run_dir / "cert.pem"),
           "--tls-key", str(run_dir / "key.pem")]
    done = daskfarm("run", "tests.remote._tasks:square", "--expr", "range(10)",
                    "--scheduler-file", str(run_dir / "scheduler.json"), *tls, "--workers", "2",
                    "--store", str(tmp_path / "s"), "--ordered", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["result"] for line in done.stdout.splitlines()] == \
        [x * x for x in range(10)]

    panel = daskfarm("panel", "--scheduler", info["address"], *tls)
    assert panel.returncode == 0, panel.stderr
    token = (run_dir / "token").read_text().strip()
    assert panel.stdout.strip() == \
        f"http://127.0.0.1:{info['services']['dashboard']}/farm?token={token}"

    refused = daskfarm("panel", "--scheduler", info["address"], "--timeout", "5")
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"daskfarm: error: {info['address']!r} is a TLS scheduler")
    assert "--tls-ca-file" in refused.stderr
    assert "Traceback" not in refused.stderr
