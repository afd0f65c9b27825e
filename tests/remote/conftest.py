"""A real scheduler (``--preload daskfarm.dashboard``) and two workers in subprocesses."""

from __future__ import annotations

import uuid

import pytest
from distributed import Client

from tests.conftest import DEADLINE
from tests.remote._procs import DaskProcesses, dask_env

#: A module only some workers can import (it lives in a directory on their PYTHONPATH).
EXT_MODULE = "daskfarm_scaleout_ext"
EXT_SOURCE = '''
def triple(x):
    return 3 * x
'''


@pytest.fixture(scope="session")
def ext_dir(tmp_path_factory):
    """A directory holding EXT_MODULE, for the workers (and a test) to put on their path."""
    directory = tmp_path_factory.mktemp("ext")
    (directory / f"{EXT_MODULE}.py").write_text(EXT_SOURCE)
    return directory


@pytest.fixture(scope="module")
def remote(tmp_path_factory, ext_dir):
    """``dask scheduler --preload daskfarm.dashboard`` (with a known token) + 2 workers."""
    procs = DaskProcesses(tmp_path_factory.mktemp("remote"))
    procs.token = uuid.uuid4().hex
    procs.worker_env = dask_env([str(ext_dir)])
    try:
        procs.start_scheduler(token=procs.token)
        for name in ("w1", "w2"):
            procs.start_worker(name)
        wait_for_workers(procs, 2)
        yield procs
    finally:
        procs.close()


def wait_for_workers(procs: DaskProcesses, n: int, security=None, timeout: float = 90) -> None:
    with Client(procs.address, security=security, timeout=DEADLINE / 2,
                set_as_default=False) as client:
        try:
            client.wait_for_workers(n, timeout=timeout)
        except TimeoutError:
            logs = "\n".join(procs.log(f"worker-{name}")[-2000:] for name in procs.workers)
            raise AssertionError(f"{n} workers did not connect in {timeout} s:\n{logs}") from None


def worker_names(procs: DaskProcesses, security=None) -> set[str]:
    with Client(procs.address, security=security, timeout=DEADLINE / 2,
                set_as_default=False) as client:
        return {str(w["name"]) for w in client.scheduler_info(n_workers=-1)["workers"].values()}
