"""A Farm on a real single-node SLURM: dask-jobqueue's SLURMCluster, and deploy/slurm's sbatch
script for sites without jobqueue.

The ``slurm`` fixture installs Debian's slurm + munge when missing (root only), starts the
daemons with tests/remote/slurm_testbed.sh and stops them by PID at the end. Without root or
packages the tests are skipped, except in CI (``CI=true``), where they must run.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daskfarm import DataManager, Farm
from tests.conftest import DEADLINE, wait_for
from tests.remote import _tasks
from tests.remote._procs import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

TESTBED = Path(__file__).with_name("slurm_testbed.sh")
#: One single-node SLURM per machine (fixed ports, one munge socket): test sessions take turns.
LOCK_FILE = "/tmp/daskfarm-slurm-testbed.lock"


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"SLURM must run in CI, but {reason}")
    pytest.skip(reason)


def _take_lock(timeout: float = 300):
    f = open(LOCK_FILE, "w")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if time.monotonic() > deadline:
                f.close()
                _unavailable("another test session kept this machine's single-node SLURM "
                             f"busy for {timeout:g} s")
            time.sleep(0.5)


@pytest.fixture(scope="session")
def slurm():
    """A running single-node SLURM; SLURM_CONF points at it for jobqueue's sbatch/scancel."""
    if os.geteuid() != 0:
        _unavailable("a single-node SLURM needs root (slurmd and munged run as root/munge)")
    try:
        import dask_jobqueue  # noqa: F401
    except ImportError:
        _unavailable("dask-jobqueue is not installed (pip install -e '.[test]')")
    sbin = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    if shutil.which("slurmctld", path=sbin) is None or shutil.which("sbatch") is None:
        if os.environ.get("DASKFARM_INSTALL_SLURM") == "0":
            _unavailable("slurm is not installed (and DASKFARM_INSTALL_SLURM=0)")
        done = subprocess.run(["bash", str(TESTBED), "install"], capture_output=True,
                              text=True, timeout=600)
        if done.returncode:
            _unavailable(f"slurm could not be installed: {done.stderr.strip()[-500:]}")
    lock = _take_lock()
    # One fixed directory: `up` first stops daemons a crashed earlier session left there.
    directory = Path(os.environ.get("DASKFARM_SLURM_DIR", "/tmp/daskfarm-slurm-testbed"))
    previous = os.environ.get("SLURM_CONF")
    try:
        up = subprocess.run(["bash", str(TESTBED), "up", str(directory)], capture_output=True,
                            text=True, timeout=3 * DEADLINE)
        if up.returncode:
            _unavailable(f"slurm did not start: {up.stderr.strip()[-800:]}")
        os.environ["SLURM_CONF"] = str(directory / "slurm.conf")  # sbatch/squeue/scancel
        yield directory
    finally:
        subprocess.run(["bash", str(TESTBED), "down", str(directory)], capture_output=True,
                       timeout=3 * DEADLINE)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        lock.close()


def squeue() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True,
                         timeout=DEADLINE / 2, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def names_to_address(farm) -> dict[str, str]:
    workers = farm.client.scheduler_info(n_workers=-1)["workers"]
    return {str(info["name"]): address for address, info in workers.items()}


def cancel_and_replace(farm, cluster):
    """scancel the first worker job while it runs items and submit another job.

    Returns the cancelled worker's name, the items it was running, {address: pid} of the new
    job's worker.
    """
    # (no Job object is held: jobqueue's Job.close never sets its status, and SpecCluster's
    # close asserts on the Job objects still alive)
    victim_name = next(iter(cluster.workers))
    job_id = cluster.workers[victim_name].job_id
    victim = names_to_address(farm)[victim_name]
    in_flight = wait_for(lambda: farm.client.processing([victim])[victim], timeout=DEADLINE,
                         message="the victim to run items")
    subprocess.run(["scancel", job_id], timeout=DEADLINE / 2, check=True)
    before = set(names_to_address(farm))
    cluster.scale(jobs=3)  # a new job, while the cancelled one goes away
    new_name = wait_for(lambda: next(iter(set(names_to_address(farm)) - before), None),
                        timeout=2 * DEADLINE, message="the new job's worker to join")
    return victim_name, in_flight, farm.client.run(os.getpid,
                                                   workers=[names_to_address(farm)[new_name]])


def test_a_sweep_on_slurmcluster_survives_a_cancelled_worker_job(slurm, tmp_path):
    from dask_jobqueue import SLURMCluster

    n = 40
    store = tmp_path / "store"
    with SLURMCluster(cores=1, processes=1, memory="1GB", walltime="00:10:00",
                      interface="lo", log_directory=str(tmp_path / "logs"),
                      scheduler_options={"dashboard_address": ":0"},
                      job_extra_directives=["--job-name=daskfarm-test"]) as cluster:
        scaled = time.perf_counter()
        cluster.scale(jobs=2)
        with Farm(cluster) as farm:
            farm.client.wait_for_workers(2, timeout=2 * DEADLINE)
            run = farm.map(_tasks.where, range(n), batch_size=2, store=str(store),
                           progress=False)
            results, in_flight = [], None
            for result in run:
                if not results:
                    first = time.perf_counter() - scaled
                results.append(result)
                if len(results) == 6:
                    victim_name, in_flight, new_pid = cancel_and_replace(farm, cluster)
            summary = run.wait(timeout=3 * DEADLINE)
            assert victim_name not in names_to_address(farm)  # the cancelled job is gone
        assert in_flight  # items were running on the job that was cancelled
        assert (summary.done, summary.failed, summary.cancelled) == (n, 0, 0)
        assert set(new_pid.values()) & {pid for _, pid in results}  # the new job took items
    print(f"slurm (dask-jobqueue): scale(jobs=2) + Farm(cluster) to first result {first:.2f} s")

    with DataManager(store, readonly=True) as dm:
        assert len(dm) == n
        assert dm.failures() == []
        assert all(len(dm.get_all(key)) == 1 for key in dm.keys())
        assert sorted(x for x, _ in dm.values()) == list(range(n))
    wait_for(lambda: not [j for j in squeue() if "dask-worker" in j or "daskfarm-test" in j],
             timeout=DEADLINE / 2, message="the worker jobs to leave the queue")


def test_the_sbatch_recipe_runs_a_sweep_into_a_store(slurm, tmp_path):
    """deploy/slurm/farm.sbatch: scheduler, workers and the daskfarm command in one job."""
    env = {**os.environ, "PYTHON": sys.executable, "DASKFARM_WORKDIR": str(tmp_path),
           "DASKFARM_TASK": "tests.remote._tasks:square", "DASKFARM_ITEMS": "range(30)",
           "DASKFARM_STORE": str(tmp_path / "store"), "DASKFARM_INTERFACE": "lo",
           "DASKFARM_DASHBOARD_PORT": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--ntasks=3", "--output", str(tmp_path / "job-%j.out"),
         str(ROOT / "deploy" / "slurm" / "farm.sbatch")],
        capture_output=True, text=True, env=env, timeout=DEADLINE, cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]

    def finished():
        out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True,
                             timeout=DEADLINE / 2).stdout
        state = out.split("JobState=", 1)[1].split()[0] if "JobState=" in out else "?"
        return state if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING") \
            else None

    state = wait_for(finished, timeout=240, interval=0.5, message=f"job {job} to finish")
    log = (tmp_path / f"job-{job}.out").read_text(errors="replace")
    assert state == "COMPLETED", log[-3000:]
    print(f"slurm (sbatch recipe): submit to job end {time.perf_counter() - started:.1f} s")
    with DataManager(tmp_path / "store", readonly=True) as dm:
        assert sorted(dm.values()) == [x * x for x in range(30)]
    assert "30 done, 0 failed" in log


def test_the_jobqueue_recipe_runs_its_sweep(slurm, tmp_path):
    """deploy/slurm/jobqueue_farm.py, as a user runs it (adapt, lifetime, store)."""
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "slurm" / "jobqueue_farm.py"), "--jobs", "2",
         "--items", "12", "--pause", "0.01", "--interface", "lo", "--dashboard-address", ":0",
         "--walltime", "00:10:00", "--store", str(tmp_path / "store"),
         "--log-directory", str(tmp_path / "logs")],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "12 done, 0 failed" in done.stdout
    assert "--lifetime 450s --lifetime-stagger 75s" in done.stdout  # in the job script
    print(f"slurm (jobqueue recipe): whole script {time.perf_counter() - started:.1f} s; "
          + next(line for line in done.stdout.splitlines() if line.startswith("first result")))
    with DataManager(tmp_path / "store", readonly=True) as dm:
        assert len(dm) == 12
    wait_for(lambda: not squeue(), timeout=DEADLINE / 2,
             message="the recipe's jobs to leave the queue")
