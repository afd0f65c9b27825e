"""What an :class:`~daskfarm.compat.AppRunner`'s workers call per task: the app's clone of that
worker process, through pydidas' per-task protocol."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import cloudpickle

from daskfarm.exceptions import FarmPicklingError, FarmTypeError

# Seconds between two calls of an app's multiprocessing_carryon() while it says "not yet"
# (pydidas polls every 5 ms); each wait also checks for a cancel through report().
_CARRYON_POLL = 0.005


def copy_app(app: Any) -> Any:
    """An independent copy of ``app``: its own ``copy(clone_mode=True)`` (pydidas' apps), its
    ``copy()``, or a deep copy."""
    method = getattr(app, "copy", None)
    if callable(method):
        try:
            return method(clone_mode=True)
        except TypeError:  # a copy() without clone_mode
            return method()
    try:
        return copy.deepcopy(app)
    except Exception as exc:
        raise FarmTypeError(
            f"the app {type(app).__qualname__} cannot be copied ({type(exc).__name__}: {exc}); "
            "give it a copy() method that returns an independent copy"
        ) from exc


def has_hook(app: Any, name: str) -> bool:
    return callable(getattr(app, name, None))


class AppCall:
    """Calls ``multiprocessing_func(task)`` on the worker process's own clone of the app.

    It travels as the app's pickled bytes; the clone is built (and its
    ``multiprocessing_pre_run`` called) at the first task a worker process runs, once per
    process and run, as pydidas' ``app_processor`` does. Per task: ``multiprocessing_pre_cycle``
    and the ``multiprocessing_carryon`` gate, when the app defines them, then the function.
    """

    wants_report = True

    def __init__(self, app: Any):
        self.func = type(app)  # names the run after the app's class
        try:
            self.payload = cloudpickle.dumps(app, protocol=5)
        except Exception as exc:
            raise FarmPicklingError(
                f"the app {type(app).__qualname__} cannot be pickled to send a clone of it to "
                f"the workers: {type(exc).__name__}: {exc}. Open files, locks and clients in "
                "multiprocessing_pre_run(), which every worker's clone runs, not in __init__"
            ) from exc
        self._app = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"func": self.func, "payload": self.payload}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._app = None
        self._lock = threading.Lock()

    def _clone(self) -> Any:
        with self._lock:
            if self._app is None:
                app = cloudpickle.loads(self.payload)
                if has_hook(app, "multiprocessing_pre_run"):
                    app.multiprocessing_pre_run()
                self._app = app
            return self._app

    def __call__(self, task: Any, report: Any = None) -> Any:
        app = self._clone()
        if has_hook(app, "multiprocessing_pre_cycle"):
            app.multiprocessing_pre_cycle(task)
        if has_hook(app, "multiprocessing_carryon"):
            while not app.multiprocessing_carryon():
                if report is not None:
                    report(message=f"task {task!r}: waiting for multiprocessing_carryon()")
                time.sleep(_CARRYON_POLL)
        return app.multiprocessing_func(task)
