"""The deploy/ recipes validated offline: the compose file against the compose spec, the
Kubernetes manifests against the API schemas (the Dask operator's DaskCluster can only be
checked this way: it needs a real API server), and the scripts of every recipe parse.

What runs for real: compose and the plain Kubernetes manifests in podman containers
(test_compose.py, test_kube.py), local, slurm and ssh in tests/remote/ (test_tls.py,
test_slurm.py, test_ssh.py).
"""

from __future__ import annotations

import copy
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import DEADLINE

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
MANIFESTS = DEPLOY / "kubernetes" / "daskfarm.yaml"
DASKCLUSTER = DEPLOY / "kubernetes" / "daskcluster.yaml"


def tool(name: str) -> str:
    """The CLI ``name`` installed next to this Python, or on PATH; skip without it."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def test_every_recipe_has_a_readme_and_is_in_the_table():
    table = (DEPLOY / "README.md").read_text()
    for recipe in ("local", "compose", "slurm", "kubernetes", "ssh"):
        assert (DEPLOY / recipe / "README.md").stat().st_size > 500, recipe
        assert f"[`{recipe}/`]({recipe}/)" in table


@pytest.mark.parametrize("script", sorted(
    str(p.relative_to(ROOT)) for p in [*DEPLOY.rglob("*.sh"), *DEPLOY.rglob("*.sbatch"),
                                       ROOT / "tests" / "remote" / "slurm_testbed.sh"]))
def test_shell_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True,
                          timeout=DEADLINE / 2)
    assert done.returncode == 0, done.stderr
    if shutil.which("shellcheck"):
        done = subprocess.run(["shellcheck", "-S", "warning", str(ROOT / script)],
                              capture_output=True, text=True, timeout=DEADLINE)
        assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("script", sorted(str(p.relative_to(ROOT)) for p in DEPLOY.rglob("*.py")))
def test_python_scripts_compile_and_answer_help(script, tmp_path):
    py_compile.compile(str(ROOT / script), cfile=str(tmp_path / "x.pyc"), doraise=True)
    if "tasks" not in script:
        done = subprocess.run([sys.executable, str(ROOT / script), "--help"],
                              capture_output=True, text=True, timeout=2 * DEADLINE)
        assert done.returncode == 0, done.stderr
        assert "usage" in done.stdout.lower()


# -- Docker Compose ------------------------------------------------------------------------

def check_compose(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                           str(path)], capture_output=True, text=True, timeout=2 * DEADLINE)


def test_the_compose_file_follows_the_compose_spec(tmp_path):
    done = check_compose(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr
    # the validator really looks: a broken copy fails
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["scheduler"]["ports"] = 8786
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(broken))
    assert check_compose(tmp_path / "compose.yaml").returncode == 1


def test_the_compose_services_wire_the_farm():
    spec = yaml.safe_load(COMPOSE.read_text())  # resolves the x-daskfarm anchor
    services = spec["services"]
    scheduler, worker, client = services["scheduler"], services["worker"], services["client"]
    assert scheduler["command"][:2] == ["dask", "scheduler"]
    assert "daskfarm.dashboard" in scheduler["command"]
    assert "${DASKFARM_TOKEN:?" in scheduler["environment"]["DASKFARM_TOKEN"]
    assert all(p.startswith("127.0.0.1:") for p in scheduler["ports"])
    assert worker["command"][:3] == ["dask", "worker", "tcp://scheduler:8786"]
    assert worker["depends_on"]["scheduler"]["condition"] == "service_healthy"
    for service in (scheduler, worker, client):
        assert service["image"] == "${DASKFARM_IMAGE:-daskfarm:latest}"
        assert "store:/data" in service["volumes"]
        assert "./tasks:/app:ro" in service["volumes"]
        assert service["build"]["dockerfile"] == "deploy/compose/Dockerfile"
    assert (COMPOSE.parent / scheduler["build"]["context"]).resolve() == ROOT
    assert "store" in spec["volumes"]
    assert (COMPOSE.parent / "tasks" / "mymodel.py").is_file()


def test_the_dockerfile_installs_only_what_pip_installs():
    text = (DEPLOY / "compose" / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [" ".join(line.split()) for line in text.splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[:2] == ["ARG BASE=python:3.11-slim", "FROM ${BASE}"]  # any base builds it
    runs = [line for line in lines if line.startswith("RUN")]
    assert runs[0] == ('RUN python3 -m venv /opt/venv && pip install '
                       '${CONSTRAINTS:+--constraint "$CONSTRAINTS"} /src && rm -rf /src')
    assert not any("apt" in line or "conda" in line for line in runs)
    for line in lines:
        if line.startswith("COPY"):
            *sources, _ = line.split()[1:]
            for source in sources:  # the build context is the repository root
                assert (ROOT / source).exists(), source
    ignore = (DEPLOY / "compose" / "Dockerfile.dockerignore").read_text()
    for kept in ("!pyproject.toml", "!README.md", "!LICENSE", "!daskfarm/"):
        assert kept in ignore
    assert lines[-1] == 'CMD ["dask", "scheduler", "--preload", "daskfarm.dashboard"]'


# -- Kubernetes ------------------------------------------------------------------------------

def test_the_kubernetes_manifests_validate_strictly(tmp_path):
    done = subprocess.run([tool("kubernetes-validate"), "--strict", str(MANIFESTS)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for kind in ("deployment/daskfarm-scheduler", "service/daskfarm-scheduler",
                 "deployment/daskfarm-worker", "persistentvolumeclaim/daskfarm-store",
                 "job/daskfarm-sweep"):
        assert f"passed for resource {kind}" in done.stdout + done.stderr
    # the validator really looks: an unknown field fails --strict
    docs = list(yaml.safe_load_all(MANIFESTS.read_text()))
    broken = copy.deepcopy(docs[0])
    broken["spec"]["template"]["spec"]["containers"][0]["bogusField"] = 1
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    failed = subprocess.run(
        [tool("kubernetes-validate"), "--strict", str(tmp_path / "broken.yaml")],
        capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1


def test_the_manifests_wire_the_farm():
    docs = {(d["kind"], d["metadata"]["name"]): d
            for d in yaml.safe_load_all(MANIFESTS.read_text())}
    scheduler = docs["Deployment", "daskfarm-scheduler"]["spec"]["template"]["spec"]
    container = scheduler["containers"][0]
    assert "daskfarm.dashboard" in container["args"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "daskfarm-token"
    worker = docs["Deployment", "daskfarm-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert "tcp://daskfarm-scheduler:8786" in worker["args"]
    job = docs["Job", "daskfarm-sweep"]["spec"]["template"]["spec"]["containers"][0]
    assert job["args"][:2] == ["daskfarm", "run"]
    assert "tcp://daskfarm-scheduler:8786" in job["args"]
    assert docs["PersistentVolumeClaim", "daskfarm-store"]["spec"]["accessModes"] == \
        ["ReadWriteMany"]


def test_the_daskcluster_resource_holds_valid_pod_and_service_specs():
    kv = pytest.importorskip("kubernetes_validate")
    resource = yaml.safe_load(DASKCLUSTER.read_text())
    assert (resource["apiVersion"], resource["kind"]) == ("kubernetes.dask.org/v1", "DaskCluster")
    spec = resource["spec"]
    version = kv.latest_version()
    for role in ("scheduler", "worker"):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"daskfarm-{role}"},
               "spec": spec[role]["spec"]}
        kv.validate(pod, version, strict=True)
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "daskfarm"},
               "spec": spec["scheduler"]["service"]}
    kv.validate(service, version, strict=True)
    assert "daskfarm.dashboard" in spec["scheduler"]["spec"]["containers"][0]["args"]
    assert isinstance(spec["worker"]["replicas"], int)
