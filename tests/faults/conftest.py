"""Fault-test fixtures: scripts and dask processes in their own process groups, a tiny tmpfs.

Every process a test starts runs in a session of its own, so that teardown can SIGKILL the
whole group (a script and its LocalCluster's workers, a ``dask worker`` and its nanny) and
nothing else; every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import DEADLINE, wait_for

ROOT = Path(__file__).resolve().parents[2]


def env_with_repo(*extra: str) -> dict:
    """The environment of a subprocess: this checkout (and ``extra``) importable."""
    path = os.pathsep.join([*extra, str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path.rstrip(os.pathsep)}


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of the process group ``pgid``."""
    alive = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return alive


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group that ``proc`` leads, and reap ``proc``."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=DEADLINE / 2)
    except subprocess.TimeoutExpired:  # pragma: no cover - a kernel that ignores SIGKILL
        pass


class Lines:
    """The lines a process prints, read by a thread, each with its arrival time."""

    def __init__(self, stream):
        self.queue: queue.Queue = queue.Queue()
        self.seen: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.queue.put((time.monotonic(), line.rstrip("\n")))
        self.queue.put(None)

    def _take(self, timeout: float) -> tuple[float, str] | None:
        entry = self.queue.get(timeout=timeout)
        if entry is not None:
            self.seen.append(entry)
        return entry

    def wait_for(self, text: str, timeout: float) -> None:
        """Read until a line equals ``text``; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                entry = self._take(max(left, 0.001))
            except queue.Empty:
                entry = ()
            if entry is None:
                raise AssertionError(f"the process ended before printing {text!r}")
            if entry and entry[1] == text:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout} s")

    def drain(self, timeout: float = 30) -> list[tuple[float, str]]:
        """Every line until the stream closes (the process and its children ended)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._take(max(deadline - time.monotonic(), 0.001)) is None:
                    return self.seen
            except queue.Empty:
                raise AssertionError(f"the output did not end within {timeout} s") from None


class Script:
    """``python -m tests.faults._script MODE STORE MARKS`` in a process group of its own."""

    def __init__(self, mode: str, store: Path, marks: Path, read_stderr: bool = True):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults._script", mode, str(store), str(marks)],
            cwd=ROOT, env=env_with_repo(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        self.pgid = self.proc.pid
        self.out = Lines(self.proc.stdout)
        # read_stderr=False: the test holds the pipe's read end (to close it, say)
        self.err = Lines(self.proc.stderr) if read_stderr else None

    def wait_for(self, text: str, timeout: float = 90) -> None:
        try:
            self.out.wait_for(text, timeout)
        except AssertionError as e:
            self.proc.poll()
            raise AssertionError(f"{e}; exit code {self.proc.returncode}; stderr:\n"
                                 f"{self.stderr()[-3000:]}") from None

    def stderr(self) -> str:
        """What the script wrote to stderr so far."""
        if self.err is None:
            return "(not read)"
        while True:
            try:
                if self.err._take(0.001) is None:
                    break
            except queue.Empty:
                break
        return "\n".join(line for _, line in self.err.seen)

    def finish(self, timeout: float = 60) -> int:
        """Wait for the script to exit; its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the script did not exit within {timeout} s") from None

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def close(self) -> None:
        """Kill the script's group, then close its pipes once the readers have finished."""
        kill_group(self.proc)
        for lines, stream in ((self.out, self.proc.stdout), (self.err, self.proc.stderr)):
            if lines is not None:
                lines.thread.join(timeout=DEADLINE / 2)
            stream.close()


@pytest.fixture
def scripts():
    """Start farm scripts with ``scripts(mode, store, marks)``; their groups die at teardown."""
    started: list[Script] = []

    def start(mode: str, store: Path, marks: Path, **kwargs) -> Script:
        marks.mkdir(exist_ok=True)
        script = Script(mode, store, marks, **kwargs)
        started.append(script)
        return script

    yield start
    for script in started:
        script.close()


# -- a remote cluster: `dask scheduler` + `dask worker` on 127.0.0.1 ---------------------


class DaskCluster:
    """A scheduler and one worker (nanny + worker process) as subprocesses."""

    def __init__(self, directory: Path, nthreads: int = 2):
        self.directory = directory
        self.env = env_with_repo()
        info = directory / "scheduler.json"
        self.scheduler = self._spawn(["scheduler", "--host", "127.0.0.1", "--port", "0",
                                      "--no-dashboard", "--scheduler-file", str(info)],
                                     "scheduler")
        self.worker: subprocess.Popen | None = None

        def read_info():
            try:
                return json.loads(info.read_text())
            except (OSError, ValueError):
                assert self.scheduler.poll() is None, self.log("scheduler")
                return None

        self.address = wait_for(read_info, timeout=1.5 * DEADLINE,
                                message="the scheduler")["address"]
        self.start_worker(nthreads)

    def start_worker(self, nthreads: int = 2) -> None:
        self.worker = self._spawn(["worker", self.address, "--nthreads", str(nthreads),
                                   "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard"],
                                  "worker")

    def restart_scheduler(self) -> None:
        """SIGKILL the scheduler and start a new one at the same address at once."""
        kill_group(self.scheduler)
        port = self.address.rsplit(":", 1)[1]
        self.scheduler = self._spawn(["scheduler", "--host", "127.0.0.1", "--port", port,
                                      "--no-dashboard"], "scheduler-2")

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen:
        with open(self.directory / f"{name}.log", "wb") as log:
            return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=self.env, cwd=self.directory, start_new_session=True)

    def log(self, name: str) -> str:
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def close(self) -> None:
        for proc in (self.worker, self.scheduler):
            if proc is not None:
                kill_group(proc)


@pytest.fixture
def dask_cluster(tmp_path):
    """A fresh ``dask scheduler`` + ``dask worker`` pair (tests here kill them)."""
    directory = tmp_path / "dask"
    directory.mkdir()
    cluster = DaskCluster(directory)
    try:
        yield cluster
    finally:
        cluster.close()


# -- a tiny filesystem that fills up -----------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs mounted by the test (needs root); skipped where it cannot be made."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs",
                           str(mount)], capture_output=True, text=True, timeout=DEADLINE / 2)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip()}); the injected full "
                    "disk of tests/store/test_damage.py covers the store alone")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=DEADLINE / 2)
