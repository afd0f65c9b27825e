"""The panel for JupyterLab's Dask extension: listed in /individual-plots.json, over HTTP."""

from __future__ import annotations

import json
import urllib.request

import pytest
from bokeh.client import pull_session
from distributed import Client, LocalCluster

from daskfarm.dashboard import _mount
from daskfarm.scheduler.plugin import FarmPlugin

TOKEN = "s3cret-token"


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode()


def listing(base: str) -> dict:
    status, body = fetch(f"{base}/individual-plots.json")
    assert status == 200
    return json.loads(body)


@pytest.fixture(params=["", "/dask"], ids=["no-prefix", "prefix"])
def cluster(request):
    kwargs = {"scheduler_kwargs": {"http_prefix": request.param}} if request.param else {}
    with LocalCluster(n_workers=0, processes=False, dashboard_address="127.0.0.1:0",
                      **kwargs) as cluster, Client(cluster, set_as_default=False) as client:
        base = f"http://127.0.0.1:{cluster.scheduler.http_server.port}{request.param}"
        yield cluster.scheduler, client, base


def test_the_panel_is_listed_served_and_unlisted(cluster):
    scheduler, client, base = cluster
    assert "Individual Farm" not in listing(base)
    client.register_plugin(FarmPlugin(token=TOKEN))
    plots = listing(base)
    # the name and path JupyterLab's Dask extension shows and loads (below the dashboard URL)
    assert plots["Individual Farm"] == "/individual-farm"
    assert plots["Individual Task Stream"] == "/individual-task-stream"  # Dask's own stay
    status, page = fetch(base + plots["Individual Farm"])
    assert status == 200 and "bokeh" in page
    assert 'href="farm"' not in page and "navbar" not in page  # a pane: no navigation bar
    _, full = fetch(f"{base}/farm")
    assert 'href="farm"' in full  # the /farm page keeps the dashboard's navigation

    # re-registering replaces the page and keeps one listing entry, that serves
    with pytest.warns(UserWarning, match="already"):
        client.register_plugin(FarmPlugin(token="second"))
    plots = listing(base)
    assert list(plots).count("Individual Farm") == 1
    assert fetch(base + plots["Individual Farm"])[0] == 200

    client.sync(scheduler.plugins["daskfarm"].close)
    assert "Individual Farm" not in listing(base)


def test_the_pane_is_the_live_page_and_read_only_without_the_token(cluster):
    _, client, base = cluster
    client.register_plugin(FarmPlugin(token=TOKEN))
    url = f"{base}/individual-farm"
    with pull_session(url=url) as session:
        doc = session.document
        assert doc.get_model_by_name("farm-tasks") is not None
        assert doc.get_model_by_name("farm-runs") is not None
        assert doc.get_model_by_name("farm-summary") is not None
        assert "read-only" in doc.get_model_by_name("farm-summary").text
    with pull_session(url=url, arguments={"token": TOKEN}) as session:
        assert "controls enabled" in session.document.get_model_by_name("farm-summary").text


def test_without_a_dashboard_page_the_farm_app_lists_itself():
    # `dask scheduler --no-dashboard --preload daskfarm.dashboard`: ours is the only Bokeh app
    with LocalCluster(n_workers=0, processes=False, dashboard_address="127.0.0.1:0") as cl, \
            Client(cl, set_as_default=False) as client:
        http = cl.scheduler.http_application
        dashboards = [a for a in http.applications if not _mount._is_farm_app(a)]
        for app in dashboards:
            http.applications.remove(app)
        try:
            client.register_plugin(FarmPlugin(token=TOKEN))
            base = f"http://127.0.0.1:{cl.scheduler.http_server.port}"
            bokeh_pages = {k: v for k, v in listing(base).items() if "/statics/" not in v}
            assert bokeh_pages == {"Individual Farm": "/individual-farm"}
            assert fetch(f"{base}/individual-farm")[0] == 200
        finally:
            http.applications[:0] = dashboards
