"""Real ``dask scheduler`` / ``dask worker`` subprocesses on 127.0.0.1, stopped by their PIDs.

Each process runs in its own session (process group), so that killing one ``dask worker``
kills its nanny and worker process together and nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import DEADLINE, wait_for

ROOT = Path(__file__).resolve().parents[2]


def dask_env(pythonpath: list[str] | None = None, token: str | None = None) -> dict:
    """The environment of a dask subprocess: the repository (and ``pythonpath``) importable,
    ``DASKFARM_TOKEN`` set to ``token`` (and unset without one)."""
    env = dict(os.environ)
    env.pop("DASKFARM_TOKEN", None)
    if token:
        env["DASKFARM_TOKEN"] = token
    env["PYTHONPATH"] = os.pathsep.join([*(pythonpath or []), str(ROOT)])
    return env


class DaskProcesses:
    """A scheduler and workers in subprocesses, with their logs in ``directory``."""

    def __init__(self, directory: Path, tls: dict | None = None):
        self.directory = Path(directory)
        self.tls = tls  # {"ca": path, "cert": path, "key": path}
        self.scheduler: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self.address = ""
        self.dashboard_port = 0
        self.worker_env: dict | None = None  # start_worker's default environment
        self.token: str | None = None

    def _tls_args(self) -> list[str]:
        if not self.tls:
            return []
        return ["--tls-ca-file", str(self.tls["ca"]), "--tls-cert", str(self.tls["cert"]),
                "--tls-key", str(self.tls["key"])]

    def _spawn(self, args: list[str], log: str, env: dict) -> subprocess.Popen:
        with open(self.directory / log, "wb") as out:
            return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True)

    def log(self, name: str) -> str:
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_scheduler(self, *, preload: bool = True, token: str | None = None,
                        extra: list[str] = (), env: dict | None = None) -> str:
        env = env or dask_env(token=token)
        info_file = self.directory / "scheduler.json"
        args = ["scheduler", "--host", "127.0.0.1", "--port", "0",
                "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(info_file),
                *(["--protocol", "tls"] if self.tls else []), *self._tls_args(), *extra]
        if preload:
            args += ["--preload", "daskfarm.dashboard"]
        self.scheduler = self._spawn(args, "scheduler.log", env)

        def read_info():
            try:
                return json.loads(info_file.read_text())
            except (OSError, ValueError):
                assert self.scheduler.poll() is None, self.log("scheduler")
                return None

        info = wait_for(read_info, timeout=1.5 * DEADLINE, message="the scheduler to start")
        self.address = info["address"]
        self.dashboard_port = info["services"].get("dashboard", 0)
        return self.address

    def start_worker(self, name: str, *, env: dict | None = None, nthreads: int = 1,
                     nanny: bool = False) -> subprocess.Popen:
        args = ["worker", self.address, "--nthreads", str(nthreads), "--name", name,
                "--host", "127.0.0.1", "--no-dashboard", *self._tls_args()]
        if not nanny:
            args.append("--no-nanny")
        env = env or self.worker_env or dask_env()
        proc = self.workers[name] = self._spawn(args, f"worker-{name}.log", env)
        return proc

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker's whole process group: no goodbye to the scheduler."""
        proc = self.workers.pop(name)
        _signal(proc, signal.SIGKILL)
        proc.wait(timeout=DEADLINE / 2)

    def stop_worker(self, name: str) -> None:
        stop(self.workers.pop(name))

    def alive(self) -> bool:
        procs = [self.scheduler, *self.workers.values()]
        return all(p is not None and p.poll() is None for p in procs)

    def close(self) -> None:
        for name in list(self.workers):
            self.stop_worker(name)
        if self.scheduler is not None:
            stop(self.scheduler)
            self.scheduler = None


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL it after 20 s."""
    if proc.poll() is None:
        _signal(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)
            proc.wait(timeout=20)
