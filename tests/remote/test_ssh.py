"""deploy/ssh/ssh_farm.py for real: an sshd on 127.0.0.1 (a free port, a key made for the
test), ``distributed.SSHCluster`` through it, a sweep into a store.

Skipped without root, Debian's openssh-server or asyncssh (the CI script installs them).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from daskfarm import DataManager
from tests.conftest import DEADLINE, wait_for
from tests.remote._procs import ROOT, stop

pytestmark = pytest.mark.slow

SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """An sshd for root on 127.0.0.1:<free port>, keys only; (port, client key)."""
    daemon, keygen = shutil.which("sshd", path=SBIN), shutil.which("ssh-keygen", path=SBIN)
    if os.geteuid() != 0 or daemon is None or keygen is None:
        pytest.skip("needs root and Debian's openssh-server (apt-get install openssh-server)")
    pytest.importorskip("asyncssh", reason="SSHCluster needs asyncssh (pip install asyncssh)")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)],
                       check=True, timeout=DEADLINE / 2)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    port = free_port()
    (d / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile {d}/sshd.pid
LogLevel ERROR
""")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
    with open(d / "sshd.log", "wb") as log:
        proc = subprocess.Popen([daemon, "-D", "-e", "-f", str(d / "sshd_config")],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: accepts(port) or proc.poll() is not None, timeout=DEADLINE / 2,
                 message="sshd to listen")
        assert proc.poll() is None, (d / "sshd.log").read_text()
        yield port, d / "client_key"
    finally:
        stop(proc)


def test_the_ssh_recipe_runs_a_sweep(sshd, tmp_path):
    port, key = sshd
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "ssh" / "ssh_farm.py"), "127.0.0.1", "127.0.0.1",
         "--workers-per-host", "2", "--ssh-port", str(port), "--ssh-user", "root",
         "--ssh-key", str(key), "--no-known-hosts", "--interface", "lo",
         "--dashboard-address", "127.0.0.1:0", "--items", "20", "--pause", "0.01",
         "--store", str(tmp_path / "store")],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "20 done, 0 failed" in done.stdout
    panel = next(line for line in done.stdout.splitlines() if line.startswith("panel: "))
    assert "/farm?token=" in panel
    print(f"ssh recipe: whole script {time.perf_counter() - started:.1f} s; "
          + next(line for line in done.stdout.splitlines() if line.startswith("first result")))
    with DataManager(tmp_path / "store", readonly=True) as dm:
        assert len(dm) == 20
