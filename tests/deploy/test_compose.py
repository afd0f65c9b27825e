"""deploy/compose run for real: podman-compose brings the recipe up on this machine.

The compose file is used as it is (in a copy of deploy/compose); the test sets only what a
user sets in ``.env`` (the token, the image's name, free host ports) and adds one module to
the recipe's ``tasks/``. podman-compose 1.0 networks work here (a bridge network per project, with
service-name DNS from the dnsname plugin), so the services find each other as
``scheduler`` the way Docker Compose's do. Its gaps, none of which the recipe relies on:
it starts ``depends_on`` services without waiting for ``service_healthy`` (the workers
retry until the scheduler answers), it runs healthchecks only on request (the test runs
the scheduler's), ``profiles`` are ignored (``up`` also runs the client's ``--help`` once)
and ``down`` leaves the project's network behind (the test removes it).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid

import pytest

from tests.conftest import wait_for
from tests.deploy import _checks, _podman

pytestmark = [pytest.mark.slow, pytest.mark.containers, pytest.mark.timeout(1200),
              *_checks.ONLY_PYTHON_OR_EXTRAS_DIFFER]

COMPOSE_DIR = _podman.ROOT / "deploy" / "compose"
SWEEP = [x / 10 for x in range(20)]


class Compose:
    """One project of the recipe, run by podman-compose from a copy of deploy/compose."""

    def __init__(self, directory, image):
        self.directory = directory
        self.project = f"dftest{uuid.uuid4().hex[:8]}"
        self.token = uuid.uuid4().hex
        self.port, self.dashboard_port = _podman.free_port(), _podman.free_port()
        self.env = {**os.environ, "DASKFARM_TOKEN": self.token, "DASKFARM_IMAGE": image,
                    "DASKFARM_PORT": str(self.port),
                    "DASKFARM_DASHBOARD_PORT": str(self.dashboard_port)}
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"

    def __call__(self, *args, timeout=300, check=True):
        return _podman.run(["podman-compose", "-p", self.project, *args], timeout=timeout,
                           check=check, cwd=self.directory, env=self.env)

    def container(self, service, index=1):
        return f"{self.project}_{service}_{index}"

    def containers(self):
        return _podman.containers(f"label=io.podman.compose.project={self.project}")

    def remove_everything(self):
        """What a failed test may leave: containers, the volume, the network."""
        for name in self.containers():
            _podman.podman("rm", "-f", name, check=False)
        _podman.podman("volume", "rm", "-f", f"{self.project}_store", check=False)
        _podman.podman("network", "rm", "-f", f"{self.project}_default", check=False)


@pytest.fixture(scope="module")
def compose(image, tmp_path_factory):
    # the recipe's directory at the same place in a copy of the tree (build: context ../..)
    directory = tmp_path_factory.mktemp("checkout") / "deploy" / "compose"
    shutil.copytree(COMPOSE_DIR, directory, ignore=shutil.ignore_patterns("tasks", ".env"))
    _checks.task_dir(directory / "tasks")
    project = Compose(directory, image)
    try:
        with _podman.timed("compose up, to healthy with 2 workers"):
            project("up", "-d", "--no-build")
            wait_for_health(project)
            _checks.wait_for_workers(project.address, 2)
        yield project
    finally:
        project.remove_everything()


def wait_for_health(project: Compose, timeout: float = 180) -> None:
    """The recipe's own healthcheck passes (podman runs it only on request here)."""
    scheduler = project.container("scheduler")
    wait_for(lambda: not _podman.podman("healthcheck", "run", scheduler, check=False).returncode,
             timeout=timeout, interval=1, message="the scheduler's healthcheck to pass")


def test_up_starts_a_healthy_scheduler_with_the_panel_and_two_workers(compose):
    names = compose.containers()
    for service in (compose.container("scheduler"), compose.container("worker", 1),
                    compose.container("worker", 2)):
        assert service in names
    state = _podman.podman("inspect", compose.container("scheduler"), "--format",
                           "{{.State.Health.Status}}").stdout.strip()
    assert state == "healthy"
    _checks.check_panel(compose.dashboard, compose.token)


def test_daskfarm_run_in_the_client_container_stores_on_the_volume(compose):
    with _podman.timed("compose sweep, `run --rm client daskfarm run` of 20 items"):
        done = compose("run", "--rm", "client", "daskfarm", "run", "mymodel:simulate",
                       "--expr", "({'x': x / 10} for x in range(20))",
                       "--scheduler", "tcp://scheduler:8786", "--store", "/data/results",
                       "--no-progress")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert sorted(line["item"]["x"] for line in lines) == SWEEP
    store = _podman.volume_path(f"{compose.project}_store") / "results"
    _checks.check_simulate_store(store, SWEEP)
    # written by the image's unprivileged user, on the volume
    assert {path.stat().st_uid for path in store.iterdir()} == {1000}
    # the client container is gone (--rm); the services still run
    assert compose.container("worker", 1) in compose.containers()


def test_a_farm_on_the_host_loses_no_item_to_a_killed_worker_container(compose, monkeypatch):
    monkeypatch.syspath_prepend(str(compose.directory / "tasks"))
    store = _podman.volume_path(f"{compose.project}_store") / "from-host"
    _checks.sweep_killing_a_worker(compose.address, compose.container("worker", 1), store)


def test_down_leaves_nothing_running(compose):
    with _podman.timed("compose down"):
        compose("down", "-v")
    assert compose.containers() == []
    volumes = _podman.podman("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert f"{compose.project}_store" not in volumes
