"""Live plots: a scatter of ``plot(item, result) -> (x, y)`` points for each run given ``plot=``.

The feeder sends the points to the plugin about once a second (``RunState.points``, a bounded
deque); each session streams only the points it has not sent yet. The axis labels and the
title come with the run (``map(plot=Plot(xy, x=..., y=..., title=...))``); the plots share
the page's width.
"""

from __future__ import annotations

from typing import Any

from bokeh.layouts import row
from bokeh.models import ColumnDataSource, Div
from bokeh.plotting import figure

from daskfarm.dashboard._mount import DashboardComponent
from daskfarm.scheduler.state import MAX_POINTS

#: plots shown at most (the newest runs that have one)
MAX_PLOTS = 4


class RunPlot(DashboardComponent):
    """A live scatter of one run's ``plot(item, result)`` points (the newest MAX_POINTS)."""

    def __init__(self, run: Any):
        self.run_id = run.run_id
        self.source = ColumnDataSource({"x": [], "y": []})
        labels = getattr(run, "plot_labels", None) or {}
        fig = figure(title=labels.get("title") or run.name, height=320, min_width=280,
                     sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset",
                     css_classes=["farm-plot"])
        fig.scatter("x", "y", source=self.source, size=5, alpha=0.6)
        fig.xaxis.axis_label = labels.get("x") or "x"
        fig.yaxis.axis_label = labels.get("y") or "y"
        self.root = fig
        self._last: Any = None

    def update(self, run: Any) -> None:
        points = run.points
        if not points or points[-1] is self._last:
            return
        # Points are tuples made by the plugin, so identity finds where the last send ended,
        # also after the bounded deque dropped its oldest points.
        new = []
        for point in reversed(points):
            if point is self._last:
                break
            new.append(point)
        else:
            self.source.data = {"x": [], "y": []}
        new.reverse()
        self._last = points[-1]
        xs, ys = zip(*new)
        self.source.stream({"x": list(xs), "y": list(ys)}, rollover=MAX_POINTS)


class Plots(DashboardComponent):
    """The plots of the newest runs that were given ``plot=``."""

    def __init__(self, plugin: Any):
        self.plugin = plugin
        self.plots: dict[str, RunPlot] = {}
        # an empty row would trip Bokeh's EMPTY_LAYOUT check: hold an invisible placeholder
        self._none = Div(text="", visible=False)
        self.root = row(children=[self._none], sizing_mode="stretch_width")
        self.source = None

    def update(self) -> None:
        runs = sorted((r for r in self.plugin.runs.values() if r.plot),
                      key=lambda r: -r.started)[:MAX_PLOTS]
        wanted = [r.run_id for r in runs]
        if wanted != list(self.plots):
            self.plots = {r.run_id: self.plots.get(r.run_id) or RunPlot(r) for r in runs}
            self.root.children = [p.root for p in self.plots.values()] or [self._none]
        for run in runs:
            self.plots[run.run_id].update(run)
