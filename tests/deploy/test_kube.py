"""deploy/kubernetes/daskfarm.yaml run for real, as far as ``podman kube play`` (4.3) goes.

Played as written: the scheduler and worker Deployments (their pods, commands, env from the
Secret, resource limits) and the PersistentVolumeClaim (a podman volume). What a cluster
does and podman cannot is done here the closest way, each named where it happens:

* ``kubectl create secret``: a podman secret of the same name and key;
* a pushed image: the recipe's image with the task code baked in, as the README says;
* ``kubectl scale``: 2 worker replicas instead of 4;
* the Service: podman has no Services, so its name becomes a DNS alias on the pods that
  its selector picks (what a ClusterIP Service gives them), its ports checked against theirs;
* ``kubectl port-forward``: the scheduler's container ports published on 127.0.0.1;
* the Job: podman 4.3 plays no Jobs, so its pod template runs as a Pod (with fewer items).

The Dask operator's DaskCluster needs a real API server and stays validated only
(test_recipes.py), as does every field podman ignores (kubernetes-validate --strict).
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from pathlib import Path

import pytest
import yaml

from tests.deploy import _checks, _podman

pytestmark = [pytest.mark.slow, pytest.mark.containers, pytest.mark.timeout(1200),
              *_checks.ONLY_PYTHON_OR_EXTRAS_DIFFER]

MANIFESTS = _podman.ROOT / "deploy" / "kubernetes" / "daskfarm.yaml"
SWEEP = [x / 10 for x in range(20)]
SWEEP_EXPR = "({'x': x / 10} for x in range(20))"


def documents() -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d
            for d in yaml.safe_load_all(MANIFESTS.read_text())}


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def selected(service: dict, docs: dict) -> list[dict]:
    """The Deployments whose pods the Service's selector picks."""
    wanted = service["spec"]["selector"].items()
    return [d for (kind, _), d in docs.items() if kind == "Deployment"
            and wanted <= d["spec"]["template"]["metadata"]["labels"].items()]


class Kube:
    """The manifests played by podman on one network, and everything made for them."""

    def __init__(self, workdir: Path, image: str):
        self.workdir = workdir
        self.image = image
        self.network = f"dfkube{uuid.uuid4().hex[:8]}"
        self.token = uuid.uuid4().hex
        self.port, self.dashboard_port = _podman.free_port(), _podman.free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        self.docs = documents()
        self.played: list[Path] = []

    def write(self, name: str, docs: list[dict]) -> Path:
        path = self.workdir / name
        path.write_text(yaml.safe_dump_all(docs))
        return path

    def cluster_documents(self) -> list[dict]:
        """The Deployments and the PVC, with the image, the scale and the port-forward."""
        forwarded = {8786: self.port, 8787: self.dashboard_port}
        out = []
        for (kind, _), doc in self.docs.items():
            if kind not in ("Deployment", "PersistentVolumeClaim"):
                continue
            doc = copy.deepcopy(doc)
            if kind == "Deployment":
                if doc["metadata"]["name"] == "daskfarm-worker":
                    doc["spec"]["replicas"] = 2
                for container in pod_spec(doc)["containers"]:
                    container["image"] = self.image
                    for port in container.get("ports", []):
                        port.update(hostIP="127.0.0.1",
                                    hostPort=forwarded[port["containerPort"]])
            out.append(doc)
        return out

    def sweep_pod(self) -> dict:
        """The Job's pod template as a Pod, with a sweep of 20 items."""
        job = self.docs["Job", "daskfarm-sweep"]
        template = copy.deepcopy(job["spec"]["template"])
        container = template["spec"]["containers"][0]
        container["image"] = self.image
        args = container["args"]
        args[args.index("--expr") + 1] = SWEEP_EXPR
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": job["metadata"]["name"], **template["metadata"]},
                "spec": template["spec"]}

    def play(self, name: str, docs: list[dict], *extra: str) -> None:
        path = self.write(name, docs)
        self.played.append(path)
        _podman.podman("kube", "play", "--network", self.network, *extra, str(path),
                       timeout=300)

    def create_secret(self) -> None:
        """kubectl create secret generic daskfarm-token --from-literal=token=..."""
        data = {"token": base64.b64encode(self.token.encode()).decode()}
        _podman.podman("secret", "create", "daskfarm-token", "-", input=json.dumps(data))

    def give_service_names(self) -> None:
        """Each Service's name resolves to its pods, as a ClusterIP Service's does."""
        for (kind, name), service in self.docs.items():
            if kind != "Service":
                continue
            for deployment in selected(service, self.docs):
                ports = {p["name"]: p["containerPort"]
                         for c in pod_spec(deployment)["containers"] for p in c.get("ports", [])}
                for port in service["spec"]["ports"]:  # an alias cannot map ports
                    assert ports[port["targetPort"]] == port["port"], port
                for pod in self.pods(deployment["metadata"]["name"]):
                    infra = _podman.podman("pod", "inspect", pod, "--format",
                                           "{{.InfraContainerID}}").stdout.strip()
                    _podman.podman("network", "disconnect", self.network, infra)
                    _podman.podman("network", "connect", "--alias", name, self.network, infra)

    def pods(self, prefix: str = "daskfarm-") -> list[str]:
        out = _podman.podman("pod", "ps", "--format", "{{.Name}}").stdout.split()
        return sorted(p for p in out if p.startswith(prefix))

    def remove_everything(self) -> None:
        for path in reversed(self.played):
            _podman.podman("kube", "down", str(path), check=False, timeout=300)
        for pod in self.pods():
            _podman.podman("pod", "rm", "-f", pod, check=False)
        _podman.podman("volume", "rm", "-f", "daskfarm-store", check=False)
        _podman.podman("secret", "rm", "daskfarm-token", check=False)
        _podman.podman("network", "rm", "-f", self.network, check=False)


@pytest.fixture(scope="module")
def kube(image, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("kube")
    task_image = f"{image}-tasks"
    _podman.build_task_image(task_image, image, _checks.task_dir(workdir / "tasks"))
    cluster = Kube(workdir, task_image)
    try:
        with _podman.timed("kube play, to a ready scheduler with 2 workers"):
            _podman.podman("network", "create", cluster.network)
            cluster.create_secret()
            cluster.play("cluster.yaml", cluster.cluster_documents(), "--start=false")
            cluster.give_service_names()
            for pod in cluster.pods():
                _podman.podman("pod", "start", pod, timeout=300)
            _checks.wait_until_serving(f"{cluster.dashboard}/health")
            _checks.wait_for_workers(cluster.address, 2)
        yield cluster
    finally:
        cluster.remove_everything()
        _podman.remove_images(task_image)


def test_the_deployments_run_with_the_secret_the_volume_and_the_panel(kube):
    assert kube.pods() == ["daskfarm-scheduler-pod-0", "daskfarm-worker-pod-0",
                           "daskfarm-worker-pod-1"]
    scheduler = "daskfarm-scheduler-pod-0-scheduler"
    env = _podman.podman("exec", scheduler, "printenv", "DASKFARM_TOKEN").stdout.strip()
    assert env == kube.token  # from the Secret
    probe = pod_spec(kube.docs["Deployment", "daskfarm-scheduler"])["containers"][0]
    _checks.wait_until_serving(f"{kube.dashboard}{probe['readinessProbe']['httpGet']['path']}")
    mounts = json.loads(_podman.podman("inspect", "daskfarm-worker-pod-0-worker", "--format",
                                       "{{json .Mounts}}").stdout)
    assert {(m["Name"], m["Destination"]) for m in mounts} >= {("daskfarm-store", "/data")}
    _checks.check_panel(kube.dashboard, kube.token)


def test_the_sweep_jobs_pod_stores_its_results_on_the_claim(kube):
    container = "daskfarm-sweep-client"
    with _podman.timed("kube sweep, the Job's pod with 20 items"):
        kube.play("sweep.yaml", [kube.sweep_pod()])
        status = _podman.podman("wait", container, timeout=600).stdout.strip()
    logs = _podman.podman("logs", container, check=False)
    assert status == "0", logs.stdout[-2000:] + logs.stderr[-2000:]
    store = _podman.volume_path("daskfarm-store") / "results"
    _checks.check_simulate_store(store, SWEEP)
    assert {path.stat().st_uid for path in store.iterdir()} == {1000}  # the image's user


def test_a_farm_through_the_port_forward_loses_no_item_to_a_killed_worker(kube, monkeypatch):
    monkeypatch.syspath_prepend(str(kube.workdir / "tasks"))
    store = _podman.volume_path("daskfarm-store") / "from-host"
    _checks.sweep_killing_a_worker(kube.address, "daskfarm-worker-pod-0-worker", store)


def test_kube_down_leaves_nothing_running(kube):
    with _podman.timed("kube down"):
        for path in reversed(kube.played):
            _podman.podman("kube", "down", str(path), timeout=300)
    assert kube.pods() == []
    names = [n for n in _podman.containers() if n.startswith("daskfarm-")]
    assert names == []
