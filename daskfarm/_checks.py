"""Checks of what users pass to ``Farm`` and ``map``, and the signal handling a Farm installs."""

from __future__ import annotations

import inspect
import re
import signal
import threading
from typing import Any

from daskfarm.exceptions import FarmTypeError, FarmValueError


def _sigterm(signum, frame):
    # Python's default SIGTERM ends the process on the spot, losing the store's last second
    # of results; as SystemExit it unwinds `with Farm()` like Ctrl-C does.
    raise SystemExit(128 + signum)


def catch_sigterm():
    """Turn SIGTERM into SystemExit while a Farm is open, if nobody else handles it."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None
    signal.signal(signal.SIGTERM, _sigterm)
    return signal.SIG_DFL


def check_task(task: Any) -> None:
    if inspect.isclass(task):
        if not any("__call__" in vars(k) for k in task.__mro__ if k is not object):
            raise FarmTypeError(
                f"the class {task.__name__} has no __call__ method: a class task is "
                "instantiated once per worker and then called per item, so define "
                "__call__(self, item)"
            )
        return
    if not callable(task):
        raise FarmTypeError(
            f"task must be a function or a class, not {type(task).__name__} ({task!r}); pass "
            "the function itself, e.g. farm.map(simulate, items), not simulate(...)"
        )


def check_positive(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise FarmValueError(
            f"{name} must be a positive whole number (or None for the default), not {value!r}"
        )
    return value


def qualified_name(task: Any) -> str:
    module = getattr(task, "__module__", None) or "task"
    qualname = getattr(task, "__qualname__", None) or type(task).__qualname__
    return f"{module}.{qualname}"


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text)[:40] or "task"


def check_map_options(*, name: Any, store: Any, plot: Any, initkwds: Any, numitems: Any) -> None:
    """Reject options of the wrong kind at ``map()``, before a run starts."""
    import os

    if name is not None and not isinstance(name, str):
        raise FarmTypeError(f"name must be a str (the task's name in store keys), not {name!r}")
    if store is not None and not isinstance(store, (str, os.PathLike)):
        from daskfarm.store import DataManager

        if not isinstance(store, DataManager):
            raise FarmTypeError(
                f"store must be a DataManager or a directory path, not {type(store).__name__}"
            )
    if plot is not None and not callable(plot):
        raise FarmTypeError(f"plot must be a function plot(item, result) -> (x, y), not {plot!r}")
    if initkwds is not None and not isinstance(initkwds, dict):
        raise FarmTypeError(f"initkwds must be a dict of keyword arguments, not {initkwds!r}")
    if numitems is not None and (isinstance(numitems, bool) or not isinstance(numitems, int)
                                 or numitems < 0):
        raise FarmValueError(f"numitems must be a whole number >= 0 (or None), not {numitems!r}")
