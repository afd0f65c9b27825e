"""Panel polish without a browser: plot labels, the process-number column, endless runs."""

from __future__ import annotations

import pytest

from daskfarm import Farm
from daskfarm.client.plot import Plot
from daskfarm.dashboard.panel import run_columns, task_columns
from daskfarm.dashboard.plots import RunPlot
from daskfarm.dashboard.templates import RUN_PROGRESS_TEMPLATE
from daskfarm.exceptions import FarmTypeError
from daskfarm.scheduler.state import RunRecord
from tests._tasks import reports_until_released, square
from tests.conftest import wait_for


def _xy(item, result):
    return item, result


# -- plot= ------------------------------------------------------------------------------


def test_plot_takes_a_function_a_mapping_or_a_plot():
    assert Plot.from_option(None) is None
    assert Plot.from_option(_xy).labels() == {"x": "x", "y": "y", "title": None}
    spec = Plot.from_option({"xy": _xy, "x": "item", "y": "square", "title": "squares"})
    assert spec.labels() == {"x": "item", "y": "square", "title": "squares"}
    assert spec(3, 9) == (3, 9)
    same = Plot(_xy, x="item")
    assert Plot.from_option(same) is same


@pytest.mark.parametrize(("plot", "match"), [
    ("x", "plot must be a function"),
    ({"x": "k"}, "takes the keys 'xy'"),
    ({"xy": _xy, "colour": "red"}, r"got \['colour', 'xy'\]"),
    ({"xy": 3}, "xy must be a function"),
    ({"xy": _xy, "y": 2}, "y label must be a str"),
    ({"xy": _xy, "title": "t" * 500}, "keep it under 200"),
])
def test_a_wrong_plot_option_says_what_plot_takes(farm, plot, match):
    with pytest.raises(FarmTypeError, match=match):
        farm.map(square, range(3), plot=plot)


def _record(run_id, dask_scheduler=None):
    run = dask_scheduler.plugins["daskfarm"].runs[run_id]
    return run.plot, run.plot_labels, list(run.points)


def test_labels_travel_to_the_panel_and_a_plain_function_still_plots(farm):
    labelled = farm.map(square, range(6), progress=False,
                        plot={"xy": _xy, "x": "item", "y": "item squared", "title": "squares"})
    labelled.wait(timeout=60)
    plain = farm.map(square, range(4), progress=False, plot=_xy)
    plain.wait(timeout=60)
    has_plot, labels, points = wait_for(
        lambda: (r := farm.client.run_on_scheduler(_record, labelled.run_id))[2] and r,
        message="the labelled run's points on the scheduler")
    assert has_plot and labels == {"x": "item", "y": "item squared", "title": "squares"}
    assert sorted(points) == [(float(i), float(i * i)) for i in range(6)]
    has_plot, labels, points = wait_for(
        lambda: (r := farm.client.run_on_scheduler(_record, plain.run_id))[2] and r,
        message="the plain run's points on the scheduler")
    assert has_plot and labels == {"x": "x", "y": "y"}
    assert len(points) == 4


def test_the_plot_has_its_labels_title_and_the_page_width():
    run = RunRecord(run_id="r-1", name="sweep", plot=True,
                    plot_labels={"x": "stiffness k", "y": "amplitude", "title": "final amplitude"})
    fig = RunPlot(run).root
    assert fig.title.text == "final amplitude"
    assert fig.xaxis[0].axis_label == "stiffness k"
    assert fig.yaxis[0].axis_label == "amplitude"
    assert fig.sizing_mode == "stretch_width"
    untitled = RunPlot(RunRecord(run_id="r-2", name="sweep", plot=True)).root
    assert untitled.title.text == "sweep" and untitled.xaxis[0].axis_label == "x"


# -- runs and tasks tables --------------------------------------------------------------


def test_an_endless_run_shows_count_rate_and_elapsed_not_a_percentage():
    from types import SimpleNamespace

    endless = RunRecord(run_id="e-1", name="endless", total=None)
    endless.counts.update(done=40, failed=2, running=3, pending=4)
    endless.rate = 4.2
    known = RunRecord(run_id="k-1", name="known", total=100)
    known.counts.update(done=40)
    cols = run_columns(SimpleNamespace(runs={"e-1": endless, "k-1": known}))
    by_name = dict(zip(cols["name"], range(2)))
    assert cols["finished"][by_name["endless"]] == 42
    assert cols["total"][by_name["endless"]] != cols["total"][by_name["endless"]]  # NaN
    # the cell reads only numeric columns: the bar with a total, the count/rate/time without
    for field in ("total", "finished", "rate", "elapsed", "value"):
        assert field in RUN_PROGRESS_TEMPLATE
    for text_field in ("msg", "item", "name", "taskname", "worker"):
        assert text_field not in RUN_PROGRESS_TEMPLATE


def _columns(dask_scheduler=None):
    plugin = dask_scheduler.plugins["daskfarm"]
    cols = task_columns(plugin)
    return list(zip(cols["worker"], cols["process"].tolist()))


def _numbers(dask_scheduler=None):
    plugin = dask_scheduler.plugins["daskfarm"]
    return {ws.address: plugin.worker_index.numbers[str(ws.name)]
            for ws in dask_scheduler.workers.values()}


def test_each_running_task_shows_its_process_number(release):
    with Farm(n_workers=2, threads_per_worker=1, dashboard=True) as farm:
        gate = type(release)(release.name, client=farm.client)
        run = farm.map(_gated, [(i, release.name) for i in range(2)], progress=False,
                       batch_size=1)
        rows = wait_for(lambda: len(r := farm.client.run_on_scheduler(_columns)) == 2 and r,
                        timeout=60, message="two running rows")
        numbers = farm.client.run_on_scheduler(_numbers)
        assert sorted(n for _, n in rows) == [0, 1]
        assert all(numbers[worker] == n for worker, n in rows)
        gate.set()
        run.wait(timeout=60)


def _gated(pair):
    x, event = pair
    return reports_until_released(x, event)
