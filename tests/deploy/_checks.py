"""What the compose and the Kubernetes tests both check on a running recipe."""

from __future__ import annotations

import http.client
import math
import shutil
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from distributed import Client, Event
from distributed.comm import get_address_host

from daskfarm import DataManager, Farm
from tests.conftest import DEADLINE, wait_for
from tests.deploy import _podman

HERE = Path(__file__).resolve().parent

#: The image has Debian's Python (its patch release may differ from the client's) and only what
#: `pip install daskfarm` brings (a client with pandas sees it missing there). Both warn; only
#: those warnings are ignored, never a difference in dask, distributed or daskfarm.
ONLY_PYTHON_OR_EXTRAS_DIFFER = [
    pytest.mark.filterwarnings(
        r"ignore:(?s)Mismatched versions found(?!.*\| (dask|distributed|msgpack|cloudpickle"
        r"|tornado|toolz|numpy) ):distributed.versions.VersionMismatchWarning"),
    pytest.mark.filterwarnings(
        r"ignore:(?s)(?!.*(dask|distributed|daskfarm) \S+ \(this client).*has python"
        r":daskfarm.exceptions.VersionMismatchWarning"),
]
RECIPE_TASKS = _podman.ROOT / "deploy" / "compose" / "tasks"


def task_dir(directory: Path) -> Path:
    """The recipe's tasks/ plus this suite's gated task, as a user adds their own module."""
    shutil.copytree(RECIPE_TASKS, directory)
    shutil.copy(HERE / "farm_gate.py", directory / "farm_gate.py")
    return directory


def wait_for_workers(address: str, n: int, timeout: float = 120) -> None:
    with Client(address, timeout=DEADLINE, set_as_default=False) as client:
        client.wait_for_workers(n, timeout=timeout)


def wait_until_serving(url: str, timeout: float = 120) -> None:
    def answers():
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError):
            return False
    wait_for(answers, timeout=timeout, interval=0.5, message=f"{url} to answer")


def check_panel(dashboard: str, token: str) -> None:
    """/farm over HTTP; its Bokeh session read-only without the token, with controls with it."""
    from bokeh.client import pull_session
    from bokeh.models import Button

    with urllib.request.urlopen(f"{dashboard}/farm", timeout=DEADLINE / 2) as page:
        assert page.status == 200
        assert b"bokeh" in page.read().lower()
    with urllib.request.urlopen(f"{dashboard}/status", timeout=DEADLINE / 2) as page:
        assert b'href="farm"' in page.read()  # the navigation bar links the panel
    # a browser sends its page's Origin: the published host port must be accepted
    assert websocket_status(dashboard, origin=dashboard) == 101
    assert websocket_status(dashboard, origin="http://evil.example") == 403
    for arguments, buttons in ((None, 0), ({"token": "wrong"}, 0), ({"token": token}, 4)):
        with pull_session(url=f"{dashboard}/farm", arguments=arguments) as session:
            doc = session.document
            assert doc.get_model_by_name("farm-tasks") is not None
            found = [m for m in doc.models if isinstance(m, Button)]
            assert len(found) == buttons, (arguments, found)


def websocket_status(dashboard: str, origin: str) -> int:
    """The status of the panel's websocket handshake for a page served from ``origin``."""
    url = urllib.parse.urlsplit(dashboard)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=DEADLINE / 2)
    try:
        conn.request("GET", "/farm/ws", headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": origin})
        return conn.getresponse().status
    finally:
        conn.close()


def simulated(x: float) -> float:
    """What tasks/mymodel.simulate returns as ``y`` for ``x``."""
    return sum(math.sin(x * step) for step in range(20))


def check_simulate_store(store: Path, xs: list[float]) -> None:
    """Every x of a mymodel sweep stored once, with the right result."""
    with DataManager(store, readonly=True) as dm:
        assert len(dm) == len(xs)
        assert dm.failures() == []
        assert all(len(dm.get_all(key)) == 1 for key in dm.keys())
        stored = sorted((r["x"], r["y"]) for r in dm.values())
    assert [x for x, _ in stored] == sorted(xs)
    assert all(math.isclose(y, simulated(x)) for x, y in stored)


def sweep_killing_a_worker(address: str, victim_container: str, store: Path,
                           n: int = 12) -> None:
    """Farm(address) from this host; one worker's container is killed while it runs items.

    The farm's items are gated on an Event, so the kill lands while the victim holds items;
    every item must still be stored exactly once.
    """
    import farm_gate  # from the task directory, on sys.path (the containers have it in /app)

    victim_host = _podman.container_ip(victim_container)
    with _podman.timed(f"host Farm, {n} gated items, a worker killed"), Farm(address) as farm:
        event = Event(f"release-{uuid.uuid4().hex}", client=farm.client)
        try:
            run = farm.map(farm_gate.gated, [{"x": x, "event": event.name} for x in range(n)],
                           store=str(store), batch_size=1, name="gated", progress=False)

            def victim_busy():
                return next((w for w, keys in farm.client.processing().items()
                             if keys and get_address_host(w) == victim_host), None)
            victim = wait_for(victim_busy, timeout=2 * DEADLINE, message="the victim to hold items")
            _podman.podman("kill", victim_container)
            wait_for(lambda: victim not in farm.client.scheduler_info(n_workers=-1)["workers"],
                     timeout=2 * DEADLINE, message="the scheduler to drop the killed worker")
        finally:
            event.set()
        summary = run.wait(timeout=300)
    assert (summary.done, summary.failed, summary.cancelled) == (n, 0, 0)
    with DataManager(store, readonly=True) as dm:
        assert len(dm) == n
        assert dm.failures() == []
        assert all(len(dm.get_all(key)) == 1 for key in dm.keys())
        assert sorted(dm.values()) == sorted(x * x for x in range(n))
