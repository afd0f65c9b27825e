"""``map(plot=...)``: the live plot's points function, its axis labels and its title.

``plot=`` takes a function ``plot(item, result) -> (x, y)`` (as before), a :class:`Plot`, or
a mapping with the same fields (``{"xy": f, "x": "k", "y": "amplitude", "title": ...}``).
The function runs in the user's process, on each result as it arrives; only the points and
the labels travel to the scheduler, which draws them on the panel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from daskfarm.exceptions import FarmTypeError

__all__ = ["Plot"]

#: the longest label the panel draws (labels travel to the scheduler with the run)
MAX_LABEL = 200
_FIELDS = ("xy", "x", "y", "title")


@dataclass(frozen=True)
class Plot:
    """A live plot of a run's results, with axis labels and a title.

    Parameters
    ----------
    xy : callable
        ``xy(item, result) -> (x, y)``: one point per result.
    x, y : str, optional
        The axis labels (default ``"x"`` and ``"y"``).
    title : str, optional
        The plot's title (default: the run's name).

    Examples
    --------
    >>> plot = Plot(lambda params, amplitude: (params[0], amplitude),
    ...             x="stiffness k", y="amplitude")
    >>> plot((2.0, 0.1), 0.5)
    (2.0, 0.5)
    >>> Plot.from_option({"xy": plot.xy, "y": "amplitude"}).labels()
    {'x': 'x', 'y': 'amplitude', 'title': None}

    In :meth:`Farm.map <daskfarm.Farm.map>`, either form works:

    >>> farm.map(simulate, grid, plot=plot)                               # doctest: +SKIP
    >>> farm.map(simulate, grid, plot={"xy": xy, "x": "k", "y": "rate"})  # doctest: +SKIP
    """

    xy: Callable[[Any, Any], tuple]
    x: str = "x"
    y: str = "y"
    title: str | None = None

    def __post_init__(self) -> None:
        if not callable(self.xy):
            raise FarmTypeError(
                f"plot's xy must be a function xy(item, result) -> (x, y), not {self.xy!r}")
        for name in ("x", "y", "title"):
            value = getattr(self, name)
            if value is None and name == "title":
                continue
            if not isinstance(value, str):
                raise FarmTypeError(f"plot's {name} label must be a str, not {value!r}")
            if len(value) > MAX_LABEL:
                raise FarmTypeError(f"plot's {name} label has {len(value)} characters; keep "
                                    f"it under {MAX_LABEL}")

    def __call__(self, item: Any, result: Any) -> tuple:
        return self.xy(item, result)

    def labels(self) -> dict:
        """The labels the panel draws: ``{"x": ..., "y": ..., "title": ...}``."""
        return {"x": self.x, "y": self.y, "title": self.title}

    @classmethod
    def from_option(cls, plot: Any) -> Plot | None:
        """``map(plot=)``'s value as a Plot (None stays None).

        Raises
        ------
        FarmTypeError
            Not a function, a Plot or a mapping of its fields; or a mapping with other keys.
        """
        if plot is None or isinstance(plot, Plot):
            return plot
        if isinstance(plot, Mapping):
            unknown = sorted(str(k) for k in plot if k not in _FIELDS)
            if unknown or "xy" not in plot:
                raise FarmTypeError(
                    f"plot={{...}} takes the keys 'xy' (a function (item, result) -> (x, y), "
                    f"required), 'x', 'y' and 'title' (labels); got {sorted(map(str, plot))}")
            return cls(**plot)
        if callable(plot):
            return cls(plot)
        raise FarmTypeError(
            f"plot must be a function plot(item, result) -> (x, y), a daskfarm.Plot(xy, x=..., "
            f"y=..., title=...) or a mapping of those fields, not {plot!r}")
