"""Panel polish and the notebook cards in headless Chromium, on a real cluster.

An endless run shows count, rate and elapsed (no percentage), the tasks table has a Process
column, a ``plot=`` with labels reaches the browser's plot with them and spans the page, the
JupyterLab pane (``/individual-farm``) renders, and the Farm's and the Run's HTML cards draw.
``DASKFARM_SCREENSHOTS=1`` saves docs/img/panel-endless.png, panel-individual.png and
repr-cards.png.
"""

from __future__ import annotations

import functools
import itertools
import re

import pytest

from daskfarm import Farm
from tests.conftest import wait_for
from tests.dashboard import _tasks
from tests.dashboard.test_browser import expect, open_page, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ENDLESS_CELL = re.compile(r"^\d[\d,]* finished, \d+\.\d+/s, \d+:\d\d$")


@pytest.fixture
def farm():
    with Farm(n_workers=2, threads_per_worker=1) as farm:
        yield farm


def _amplitude(item, result):
    return item, result


def _axis_labels(page) -> list[str]:
    # the axes are drawn on a canvas: read their labels from the page's Bokeh models
    return page.evaluate("""() => {
        const labels = [];
        for (const doc of Bokeh.documents)
            for (const m of doc._all_models.values())
                if (m.axis_label !== undefined && m.axis_label !== null) labels.push(m.axis_label);
        return labels.sort();
    }""")


def _plot_titles(page) -> list[str]:
    return page.evaluate("""() => {
        const titles = [];
        for (const doc of Bokeh.documents)
            for (const m of doc._all_models.values())
                if (m.type === "Title" && m.text) titles.push(m.text);
        return titles.sort();
    }""")


def _processes(farm) -> dict[str, int]:
    def numbers(dask_scheduler):
        plugin = dask_scheduler.plugins["daskfarm"]
        return sorted(plugin.worker_index.numbers.values())

    return farm.client.run_on_scheduler(numbers)


def test_endless_run_process_column_and_labelled_wide_plot(browser, farm, release):
    labelled = farm.map(_tasks.quick, range(60), name="amplitudes", progress=False,
                        plot={"xy": _amplitude, "x": "drive strength", "y": "amplitude",
                              "title": "amplitude against drive"})
    assert labelled.wait(timeout=120).done == 60
    # an endless stream: the first items finish, the rest wait on the gate and report
    endless = start_endless(farm, release, limit=6)
    try:
        check_endless_page(browser, farm, endless)
    finally:
        endless.cancel(grace=0)
        release.set()


def start_endless(farm, release, limit):
    """An endless stream: the first ``limit`` items finish, the rest wait on the gate."""
    endless = farm.map(functools.partial(_tasks.gate_above, event=release.name, limit=limit),
                       itertools.count(), name="endless", batch_size=1, progress=False,
                       buffersize=4 * limit)
    endless.on_result(lambda item, result: None)  # taken as they come: the feeder goes on
    wait_for(lambda: endless.counts["done"] >= limit, timeout=60,
             message=f"{limit} endless items done")
    return endless


def check_endless_page(browser, farm, endless):
    page = open_page(browser, farm.panel_link)
    runs = page.locator(".farm-runs")
    expect(runs).to_contain_text("endless")
    cell = page.locator(".farm-runs .farm-endless")
    expect(cell).to_have_count(1)
    expect(cell).to_have_text(ENDLESS_CELL)
    endless_row = page.locator(".farm-runs .slick-row").filter(has_text="endless")
    expect(endless_row).to_have_count(1)
    expect(endless_row.locator(".farm-bar")).to_have_count(0)  # no made-up percentage
    assert "%" not in endless_row.inner_text()
    expect(endless_row).to_contain_text("endless")  # the Total column
    finished_row = page.locator(".farm-runs .slick-row").filter(has_text="amplitudes")
    expect(finished_row.locator(".farm-bar")).to_contain_text("100%")

    # the tasks table: a Process column with each running task's worker number
    expect(page.locator(".farm-tasks .slick-header-column", has_text="Process")).to_have_count(1)
    expect(page.locator(".farm-tasks .slick-row")).to_have_count(2)
    header = page.locator(".farm-tasks .slick-header-column").all_inner_texts()
    column = [h.strip() for h in header].index("Process")
    shown = sorted(int(row.locator(".slick-cell").nth(column).inner_text())
                   for row in page.locator(".farm-tasks .slick-row").all())
    assert shown == _processes(farm) == [0, 1]

    # the plot: its labels and title reached the browser, and it spans the page
    expect(page.locator(".farm-plot")).to_have_count(1)
    assert _axis_labels(page) == ["amplitude", "drive strength"]
    assert "amplitude against drive" in _plot_titles(page)
    width = page.locator(".farm-plot").bounding_box()["width"]
    assert width > 0.8 * page.viewport_size["width"], width
    screenshot(page, "panel-endless.png")

    # the JupyterLab pane: the same tables, no navigation bar, read-only without the token
    base = farm.dashboard_link.rsplit("/status", 1)[0]
    pane = browser.new_page(viewport={"width": 760, "height": 900})
    pane.goto(f"{base}/individual-farm")
    expect(pane.locator(".farm-tasks .slick-row")).to_have_count(2)
    expect(pane.locator(".farm-runs .farm-endless")).to_have_count(1)
    expect(pane.locator(".farm-summary")).to_contain_text("read-only")
    expect(pane.locator("#myTopnav")).to_have_count(0)
    expect(pane.locator("button")).to_have_count(0)
    screenshot(pane, "panel-individual.png")
    pane.close()
    page.close()


def test_the_notebook_cards_draw(browser, farm, release):
    done = farm.map(_tasks.quick, range(20), name="sweep", progress=False)
    done.wait(timeout=60)
    endless = start_endless(farm, release, limit=3)
    gated = farm.map(functools.partial(_tasks.gated, event=release.name), range(6),
                     name="simulate", batch_size=1, progress=False)
    try:
        wait_for(lambda: gated.counts["running"] >= 1, timeout=60, message="a running item")
        draw_cards(browser, farm, done, gated, endless)
    finally:
        endless.cancel(grace=0)
        gated.cancel(grace=0)
        release.set()


def draw_cards(browser, farm, done, gated, endless):
    cards = "".join(f'<div class="card" style="margin: 16px 0;">{html}</div>' for html in (
        farm._repr_html_(), done._repr_html_(), gated._repr_html_(), endless._repr_html_()))
    page = browser.new_page(viewport={"width": 900, "height": 800})
    page.set_content(f'<html><body style="font-family: sans-serif; font-size: 13px;">'
                     f"{cards}</body></html>")
    expect(page.locator(".card")).to_have_count(4)
    expect(page.locator(".card").nth(0)).to_contain_text("LocalCluster")
    expect(page.locator(".card").nth(0).locator("a")).to_have_count(2)  # dashboard, panel
    expect(page.locator(".card").nth(1)).to_contain_text("20 / 20 (100%)")
    expect(page.locator(".card").nth(2)).to_contain_text("Status: running")
    expect(page.locator(".card").nth(3)).to_contain_text("Items: endless")
    assert "%" not in page.locator(".card").nth(3).inner_text()
    # the bars are drawn to scale: full for the finished run
    bar = page.locator(".card").nth(1).locator("div[style*='width: 100.0%']")
    expect(bar).to_have_count(1)
    screenshot(page, "repr-cards.png")
    page.close()
