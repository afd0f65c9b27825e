"""The client's view of a run's progress: a tqdm bar in a terminal or notebook.

The bar draws the same per-run summary as the panel (done, failed, skipped and the running
tasks' fractions), refreshed by the feeder about once a second; it never sees raw events.

In a notebook kernel the bar is tqdm's widget when ipywidgets is installed
(``pip install daskfarm[notebook]``) and tqdm's text bar otherwise. The choice is made here
rather than by ``tqdm.auto``, which warns ("IProgress not found") in a kernel without
ipywidgets: a missing optional widget is not something to warn about on every run.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from daskfarm._protocol import finished_count

__all__ = ["TerminalBar", "bar_class", "want_bar"]


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def want_bar(progress: Any) -> bool:
    """Decide whether ``progress=`` asks for a bar (``"auto"``: a terminal or a notebook)."""
    if progress == "auto":
        stream = sys.stderr
        return bool(getattr(stream, "isatty", lambda: False)()) or _in_notebook()
    return bool(progress)


def _has_widgets() -> bool:
    try:
        return importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):  # a stub in sys.modules, a broken install
        return False


def bar_class() -> tuple[type, bool]:
    """The tqdm class to draw with, and whether it is the notebook widget.

    Examples
    --------
    >>> cls, widget = bar_class()   # in a terminal (or a test): tqdm's text bar
    >>> cls.__module__, widget
    ('tqdm.std', False)
    """
    if _in_notebook() and _has_widgets():
        from tqdm.notebook import tqdm as widget_tqdm

        return widget_tqdm, True
    from tqdm.std import tqdm as text_tqdm

    return text_tqdm, False


class TerminalBar:
    """A tqdm bar for one run: a widget in notebooks with ipywidgets, text elsewhere."""

    def __init__(self, name: str, total: int | None, file: Any = None):
        tqdm, widget = bar_class()
        # a notebook's text output has no terminal width to follow: a fixed one reads well
        width = {"ncols": 100} if _in_notebook() and not widget else {"dynamic_ncols": True}
        self._bar = tqdm(total=total, desc=name, unit="item", file=file, mininterval=0.5,
                         smoothing=0.1, **width)

    def update(self, state: Any) -> None:
        """Redraw from a :class:`~daskfarm.client.state.RunState`."""
        counts = state.counts()
        finished = finished_count(counts)
        bar = self._bar
        total = state.total
        if total != bar.total:
            bar.total = total
        bar.n = finished
        bar.set_postfix(done=counts["done"], failed=counts["failed"],
                        skipped=counts["skipped"], running=counts["running"], refresh=False)
        bar.refresh()

    def close(self, state: Any) -> None:
        self.update(state)
        self._bar.close()

    def abandon(self) -> None:
        """Stop drawing for good (its stream failed): close() would write, and fail, again."""
        self._bar.disable = True
