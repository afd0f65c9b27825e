"""The client's view of a run's progress: a tqdm bar in a terminal or notebook.

The bar draws the same per-run summary as the panel (done, failed, skipped and the running
tasks' fractions), refreshed by the feeder about once a second; it never sees raw events.
"""

from __future__ import annotations

import sys
from typing import Any

from daskfarm._protocol import finished_count

__all__ = ["TerminalBar", "want_bar"]


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


class TerminalBar:
    """A tqdm bar (``tqdm.auto``: a widget in notebooks) for one run."""

    def __init__(self, name: str, total: int | None, file: Any = None):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=name, unit="item", dynamic_ncols=True, file=file,
                         mininterval=0.5, smoothing=0.1)

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
