"""Session fixtures of the container tests: podman set up, and the recipe's image built once.

Without root, podman, runc or debootstrap the container tests are skipped, except in CI
(``CI=true``), where they must run. ``DASKFARM_BASE_IMAGE=<image>`` builds on an existing
base (e.g. ``python:3.11-slim``) instead of bootstrapping one; each session otherwise
bootstraps its own and removes every image it made at the end.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from tests.deploy import _podman

#: Kubernetes names (pods, the store volume, the secret) are fixed: sessions take turns.
LOCK_FILE = "/tmp/daskfarm-containers.lock"
#: Where distributions put CNI plugins (Debian: /usr/lib/cni).
DNSNAME_DIRS = ("/usr/lib/cni", "/usr/libexec/cni", "/opt/cni/bin")


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"the container tests must run in CI, but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def podman_host(tmp_path_factory):
    """This machine, ready to run containers: tools present, podman configured, our turn."""
    if os.geteuid() != 0:
        _unavailable("podman runs the recipes as root here (see containers-spike.md)")
    sbin = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    missing = [tool for tool in ("podman", "podman-compose", "runc", "debootstrap", "catatonit")
               if shutil.which(tool, path=sbin) is None]
    if not any(Path(d, "dnsname").exists() for d in DNSNAME_DIRS):
        missing.append("the dnsname CNI plugin (service names)")
    if missing:
        _unavailable(f"{', '.join(missing)} not installed (.ci/run installs them)")
    directory = tmp_path_factory.mktemp("podman")
    with open(LOCK_FILE, "w") as lock:
        deadline = time.monotonic() + 600
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    _unavailable("another test session kept the containers busy for 600 s")
                time.sleep(1)
        previous = {name: os.environ.get(name) for name in ("PATH", "CONTAINERS_CONF")}
        try:
            os.environ["PATH"] = sbin  # debootstrap lives in /usr/sbin
            _podman.configure(directory)
            images_before = set(_podman.images())
            yield directory
            # kube play builds podman's pause image for its pods: gone too, if it was new
            _podman.remove_images(*(i for i in set(_podman.images()) - images_before
                                    if i.startswith("localhost/podman-pause:")))
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@pytest.fixture(scope="session")
def image(podman_host):
    """The recipe's image (deploy/compose/Dockerfile), built from this checkout."""
    session = uuid.uuid4().hex[:8]
    tag = f"localhost/daskfarm-test:{session}"
    base = os.environ.get("DASKFARM_BASE_IMAGE")
    made = [tag]
    try:
        if not base:
            base = f"localhost/daskfarm-test-base:{session}"
            made.append(base)
            _podman.build_base_image(base, podman_host)
        _podman.build_image(tag, base, podman_host)
        print(f"\ncontainers: image size {_podman.image_size(tag) / 1e6:.0f} MB, of which "
              f"the base {base} {_podman.image_size(base) / 1e6:.0f} MB")
        yield tag
    finally:
        _podman.remove_images(*made)  # the image first: it sits on the base
