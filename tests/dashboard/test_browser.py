"""The /farm page in headless Chromium, on real clusters.

Every task waits on a ``distributed.Event`` (reporting as it waits), so no step races the
tasks' end; every wait has a deadline. ``DASKFARM_SCREENSHOTS=1`` saves docs/img/panel*.png.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from distributed import Event

from daskfarm import Farm
from tests.conftest import DEADLINE, wait_for
from tests.dashboard import _tasks

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = os.environ.get("DASKFARM_SCREENSHOTS") == "1"
ITEMS = [f"t-{i}" for i in range(4)]


def expect(locator):
    from playwright.sync_api import expect

    return expect(locator)


@pytest.fixture
def farm():
    with Farm(n_workers=2, threads_per_worker=2) as farm:
        yield farm



def gated(release, **kwargs):
    return functools.partial(_tasks.gated, event=release.name, **kwargs)


def open_page(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    return page


def task_rows(page, text=None):
    rows = page.locator(".farm-tasks .slick-row")
    return rows if text is None else rows.filter(has_text=text)


def running_fractions(farm) -> list[float]:
    def fracs(dask_scheduler):
        plugin = dask_scheduler.plugins["daskfarm"]
        return [row.frac for run in plugin.runs.values() for rows in run.rows.values()
                for row in rows.values()]

    return farm.client.run_on_scheduler(fracs)


def key_of_item(farm, item_repr: str):
    def find(dask_scheduler):
        plugin = dask_scheduler.plugins["daskfarm"]
        return [row.key for run in plugin.runs.values() for rows in run.rows.values()
                for row in rows.values() if row.item == item_repr]

    keys = farm.client.run_on_scheduler(find)
    assert len(keys) == 1, keys
    return tuple(keys[0])


def executing_keys(farm) -> set[str]:
    threads = farm.client.run(
        lambda dask_worker: [repr(k) for k in dask_worker.active_threads.values()])
    return {key for keys in threads.values() for key in keys}


def screenshot(page, name: str) -> None:
    if SCREENSHOTS:
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(600)  # one more refresh, so the picture is settled
        page.screenshot(path=str(ROOT / "docs" / "img" / name), full_page=True)


def test_rows_progress_plot_and_read_only_view(browser, farm, release):
    sweep = farm.map(_tasks.quick, range(80), name="sweep",
                     plot=lambda item, result: (item, result))
    assert sweep.wait(timeout=2 * DEADLINE).done == 80
    run = farm.map(gated(release, speed=0.003), ITEMS, batch_size=1, name="simulate")

    page = open_page(browser, farm.panel_link)
    expect(page.locator(".farm-tasks .farm-bar")).to_have_count(4)
    expect(page.locator(".farm-summary")).to_contain_text("tasks running: 4")
    expect(page.locator(".farm-summary")).to_contain_text("controls enabled")
    for item in ITEMS:
        expect(task_rows(page, f"'{item}'")).to_have_count(1)
    expect(page.locator(".farm-runs")).to_contain_text("simulate")
    expect(page.locator(".farm-runs")).to_contain_text("finished")  # the sweep
    expect(page.locator(".farm-plot")).to_have_count(1)
    expect(page.locator("#myTopnav a[href='farm']")).to_have_count(2)  # bar + More...
    for control in ("cancel", "terminate", "suspend", "resume"):
        expect(page.locator(f".farm-{control} button")).to_have_count(1)
    # The task's message is HTML: it must show as text and never run.
    expect(page.get_by_text(_tasks.XSS, exact=True)).to_be_visible()
    assert page.evaluate("window.__xss") is None

    readonly = open_page(browser, farm.panel_link.split("?")[0])
    expect(readonly.locator(".farm-tasks .farm-bar")).to_have_count(4)
    expect(readonly.locator(".farm-summary")).to_contain_text("read-only")
    expect(readonly.get_by_text(_tasks.XSS, exact=True)).to_be_visible()
    expect(readonly.locator("button")).to_have_count(0)
    assert readonly.evaluate("window.__xss") is None

    # real progress, different per item, before the pictures are taken
    wait_for(lambda: min(running_fractions(farm), default=0) > 0.04, timeout=DEADLINE,
             message="every task to report some progress")
    screenshot(page, "panel.png")
    screenshot(readonly, "panel-readonly.png")
    readonly.close()
    page.close()
    release.set()
    assert sorted(run) == [f"{item}!" for item in ITEMS]


def test_cancel_selected_task_stops_only_that_task(browser, farm, release):
    run = farm.map(gated(release), ITEMS, batch_size=1, name="cancel-one")
    page = open_page(browser, farm.panel_link)
    expect(page.locator(".farm-tasks .farm-bar")).to_have_count(4)
    key = key_of_item(farm, "'t-1'")
    assert repr(key) in executing_keys(farm)

    task_rows(page, "'t-1'").locator(".slick-cell").first.click()
    page.locator(".farm-cancel button").click()

    expect(page.locator(".farm-control-status")).to_contain_text("Cancelled 1 task")
    wait_for(lambda: run.counts["cancelled"] == 1, message="the run to count the cancel")
    wait_for(lambda: repr(key) not in executing_keys(farm), message="the worker thread to stop")
    expect(task_rows(page, "'t-1'")).to_have_count(0)
    expect(page.locator(".farm-tasks .farm-bar")).to_have_count(3)
    assert sum(run.run_id in k for k in executing_keys(farm)) == 3  # the others go on
    screenshot(page, "panel-after-cancel.png")
    page.close()
    release.set()
    assert sorted(run) == ["t-0!", "t-2!", "t-3!"]
    assert run.counts["done"] == 3
    assert run.counts["cancelled"] == 1


def test_terminate_stops_the_run_and_the_store_keeps_what_finished(browser, farm, release,
                                                                   tmp_path):
    from daskfarm import DataManager

    store = str(tmp_path / "s")
    task = functools.partial(_tasks.gate_above, event=release.name, limit=4)
    run = farm.map(task, range(8), batch_size=1, store=store, name="terminate-me")
    wait_for(lambda: run.counts["done"] == 4, timeout=DEADLINE, message="the four quick items")
    page = open_page(browser, farm.panel_link)
    expect(page.locator(".farm-tasks .farm-bar")).to_have_count(4)

    page.locator(".farm-terminate button").click()  # the only active run

    summary = run.wait(timeout=DEADLINE)
    assert (summary.status, summary.done, summary.cancelled) == ("cancelled", 4, 4)
    expect(page.locator(".farm-runs")).to_contain_text("cancelled")
    expect(page.locator(".farm-tasks .farm-bar")).to_have_count(0)
    page.close()
    with DataManager(store) as dm:
        assert sorted(dm.values()) == [0, 1, 2, 3]


def test_suspend_and_resume_feeding(browser, farm):
    pulls: list[int] = []

    def endless():
        for i in itertools.count():
            pulls.append(i)
            yield i

    run = farm.map(functools.partial(_tasks.slow, seconds=0.3), endless(), batch_size=1,
                   name="endless")
    # results must be taken, or buffersize holds the feeder back
    consumer = threading.Thread(target=lambda: all(True for _ in run), daemon=True)
    consumer.start()
    try:
        wait_for(lambda: len(pulls) > 10, timeout=DEADLINE, message="the feeder to pull items")
        page = open_page(browser, farm.panel_link)
        expect(page.locator(".farm-runs")).to_contain_text("endless")

        page.locator(".farm-suspend button").click()
        expect(page.locator(".farm-runs")).to_contain_text("suspended")
        pulled = len(pulls)
        # in-flight items finish; no new item is pulled while suspended
        wait_for(lambda: run.counts["running"] + run.counts["pending"] == 0, timeout=DEADLINE,
                 message="the in-flight items to finish")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # a bounded observation window
            assert len(pulls) == pulled
            page.wait_for_timeout(100)

        page.locator(".farm-resume button").click()
        wait_for(lambda: len(pulls) > pulled + 5, timeout=DEADLINE, message="pulling to restart")
        expect(page.locator(".farm-runs")).not_to_contain_text("suspended")
        page.close()
    finally:
        run.cancel()
        consumer.join(timeout=DEADLINE)
    assert not consumer.is_alive()
    assert run.status == "cancelled"


# -- a remote scheduler with the preload, behind a dashboard prefix ----------------------


def _spawn(args, log: Path, env: dict) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


@pytest.fixture(params=["preload", "register"])
def remote_scheduler(request, tmp_path):
    """``dask scheduler --dashboard-prefix /dask`` and a worker, in subprocesses.

    "preload": started with ``--preload daskfarm.dashboard`` and ``DASKFARM_TOKEN``;
    "register": a plain scheduler that can import daskfarm (the Farm registers the plugin).
    """
    token = uuid.uuid4().hex if request.param == "preload" else None
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("DASKFARM_TOKEN", None)
    preload = []
    if token is not None:
        env["DASKFARM_TOKEN"] = token
        preload = ["--preload", "daskfarm.dashboard"]
    info_file = tmp_path / "scheduler.json"
    procs = [_spawn(["scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--dashboard-address", "127.0.0.1:0", "--dashboard-prefix", "/dask",
                     *preload, "--scheduler-file", str(info_file)],
                    tmp_path / "scheduler.log", env)]
    try:
        def read_info():
            try:
                return json.loads(info_file.read_text())
            except (OSError, ValueError):
                assert procs[0].poll() is None, (tmp_path / "scheduler.log").read_text()
                return None

        info = wait_for(read_info, timeout=DEADLINE, message="the scheduler to start")
        procs.append(_spawn(["worker", info["address"], "--nthreads", "2", "--nworkers", "1",
                             "--host", "127.0.0.1", "--no-dashboard"],
                            tmp_path / "worker.log", env))
        yield info["address"], info["services"]["dashboard"], token
    finally:
        for proc in reversed(procs):
            _stop(proc)


def test_remote_scheduler_behind_a_prefix(browser, remote_scheduler):
    import dask

    address, port, token = remote_scheduler
    # Dask's own setting for a dashboard behind a prefix or proxy; panel_link follows it.
    link = "{scheme}://{host}:{port}/dask/status"
    with dask.config.set({"distributed.dashboard.link": link}), Farm(address) as farm:
        farm.client.wait_for_workers(1, timeout=DEADLINE)
        base, _, given = farm.panel_link.partition("?token=")
        assert base == f"http://127.0.0.1:{port}/dask/farm"
        assert given == (token or given)
        assert len(given) >= 20
        status = urllib.request.urlopen(f"http://127.0.0.1:{port}/dask/status",
                                        timeout=DEADLINE / 2)
        assert b'href="farm"' in status.read()
        release = Event(f"release-{uuid.uuid4().hex}", client=farm.client)
        try:
            run = farm.map(gated(release), ITEMS[:2], batch_size=1, name="remote")
            page = open_page(browser, farm.panel_link)
            expect(page.locator(".farm-tasks .farm-bar")).to_have_count(2)
            expect(page.locator(".farm-summary")).to_contain_text("controls enabled")
            expect(page.locator("#myTopnav a[href='farm']")).to_have_count(2)
            page.close()
        finally:
            release.set()
        assert sorted(run) == ["t-0!", "t-1!"]
