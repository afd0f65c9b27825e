"""Podman for the container tests: its settings, a local Debian base image, the recipe's image.

How podman runs on these machines (shared/research/containers-spike.md): as root, with runc
and cgroupfs, and without default ulimits (runc may not raise RLIMIT_NOFILE in a sandbox).
No registry is reachable, so the base image is bootstrapped from the Debian mirror apt uses,
and pip inside the build reaches PyPI with this machine's CA bundle.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "compose" / "Dockerfile"

#: Replaces every containers.conf for the podman processes the tests start (CONTAINERS_CONF).
CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""
#: What the base image adds to debootstrap's minimal Debian: Python with venv, CA certificates.
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

#: Seconds each step took this session (printed as it ends; quoted in deploy/README.md).
TIMES: dict[str, float] = {}


@contextlib.contextmanager
def timed(step: str):
    """Record how long the block took under ``step`` and print it (shown with ``pytest -s``)."""
    started = time.perf_counter()
    yield
    TIMES[step] = time.perf_counter() - started
    print(f"\ncontainers: {step} {TIMES[step]:.1f} s")


def podman(*args: str, timeout: float = 120, check: bool = True,
           input: str | None = None) -> subprocess.CompletedProcess:
    """Run ``podman ARGS``; on failure raise with its output (the only useful diagnosis)."""
    return run(["podman", *args], timeout=timeout, check=check, input=input)


def run(command: list[str], *, timeout: float = 120, check: bool = True, cwd=None,
        env=None, input: str | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=env, input=input)
    if check and done.returncode:
        raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def configure(directory: Path) -> None:
    """Point every podman this process starts (podman-compose's too) at CONTAINERS_CONF."""
    conf = directory / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    os.environ["CONTAINERS_CONF"] = str(conf)


def debian_mirror_and_suite() -> tuple[str, str]:
    """The Debian mirror apt is configured with and this machine's release (or bookworm)."""
    suite = "bookworm"
    release = Path("/etc/os-release")
    if release.exists():
        fields = dict(line.split("=", 1) for line in release.read_text().splitlines()
                      if "=" in line)
        if fields.get("ID") == "debian" and fields.get("VERSION_CODENAME"):
            suite = fields["VERSION_CODENAME"].strip('"')
    sources = [*Path("/etc/apt").glob("sources.list.d/*.sources"), Path("/etc/apt/sources.list")]
    for source in sources:
        if source.exists():
            found = re.search(r"(?:URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(\S+/debian)/?\s",
                              source.read_text(), re.M)
            if found:
                return found.group(1), suite
    return "http://deb.debian.org/debian", suite


def build_base_image(tag: str, workdir: Path) -> None:
    """A minimal Debian with Python, from debootstrap, imported as image ``tag``."""
    mirror, suite = debian_mirror_and_suite()
    rootfs = workdir / "rootfs"
    with timed("base image (debootstrap + import)"), contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, rootfs, ignore_errors=True)
        run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", suite,
             str(rootfs), mirror], timeout=900)
        # what an image never needs: downloaded packages, apt lists, docs, translations
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc",
                     "usr/share/man", "usr/share/locale"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            done = subprocess.run(["podman", "import", "-", tag], stdin=tar.stdout,
                                  capture_output=True, text=True, timeout=600)
        finally:
            tar.stdout.close()
            tar.wait(timeout=600)
        if done.returncode:
            raise AssertionError(f"podman import failed: {done.stderr[-2000:]}")


def client_constraints() -> list[str]:
    """``name==version`` for every package ``pip install daskfarm`` brings, as installed here.

    The image gets the client's versions, so that a Farm on the host and the workers in the
    containers agree (distributed warns about every difference).
    """
    pins, seen = [], set()
    todo: list[tuple[str, frozenset]] = [("daskfarm", frozenset())]
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if canonicalize_name(name) != "daskfarm":
            pins.append(f"{canonicalize_name(name)}=={dist.version}")
        for line in dist.requires or []:
            requirement = Requirement(line)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in (*extras, ""))
            if wanted:
                todo.append((requirement.name, frozenset(requirement.extras)))
    return sorted(set(pins))


def build_image(tag: str, base: str, workdir: Path) -> None:
    """deploy/compose/Dockerfile on ``base``, from the repository checkout, as ``tag``."""
    constraints = workdir / "constraints.txt"
    constraints.write_text("\n".join(client_constraints()) + "\n")
    mounts = ["-v", f"{constraints}:/tmp/constraints.txt:ro"]
    if HOST_CA_BUNDLE.exists():  # this machine's CA bundle (it may carry a proxy's CA)
        mounts += ["-v", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    with timed("image build"):
        podman("build", "--network", "host", *mounts,
               "--ignorefile", str(DOCKERFILE.with_name("Dockerfile.dockerignore")),
               "--build-arg", f"BASE={base}", "--build-arg", "CONSTRAINTS=/tmp/constraints.txt",
               "-f", str(DOCKERFILE), "-t", tag, str(ROOT), timeout=900)


def build_task_image(tag: str, image: str, tasks: Path) -> None:
    """What the Kubernetes README asks for: the image with the task code baked in."""
    with tempfile.TemporaryDirectory() as context:
        shutil.copytree(tasks, Path(context) / "tasks")
        (Path(context) / "Containerfile").write_text(f"FROM {image}\nCOPY tasks/ /app/\n")
        podman("build", "-t", tag, context, timeout=300)


def image_size(tag: str) -> int:
    return int(podman("image", "inspect", tag, "--format", "{{.Size}}").stdout.strip())


def images() -> list[str]:
    out = podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    return [line for line in out.splitlines() if line.strip()]


def remove_images(*tags: str) -> None:
    for tag in tags:
        podman("rmi", "-f", tag, check=False, timeout=300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def container_ip(name: str) -> str:
    networks = json.loads(podman("inspect", name, "--format",
                                 "{{json .NetworkSettings.Networks}}").stdout)
    return next(n["IPAddress"] for n in networks.values() if n.get("IPAddress"))


def containers(*filters: str) -> list[str]:
    """Names of the containers (running or not) matching every ``--filter``."""
    args = [arg for f in filters for arg in ("--filter", f)]
    out = podman("ps", "-a", *args, "--format", "{{.Names}}").stdout
    return [line for line in out.splitlines() if line.strip()]


def volume_path(name: str) -> Path:
    return Path(podman("volume", "inspect", name, "--format", "{{.Mountpoint}}").stdout.strip())
