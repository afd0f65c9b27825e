"""What users pass to ``map``: checked once, into one :class:`MapOptions`.

Every option left ``None`` takes its value from the Dask config (``daskfarm.<key>``); every
check raises a FarmError that names the option and what it accepts.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterable, Sized
from dataclasses import dataclass, field
from typing import Any

from daskfarm import config
from daskfarm._protocol import Star
from daskfarm.client.plot import Plot
from daskfarm.exceptions import FarmTypeError, FarmValueError


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


def check_map_options(*, name: Any, store: Any, initkwds: Any, numitems: Any) -> None:
    """Reject options of the wrong kind at ``map()``, before a run starts."""
    if name is not None and not isinstance(name, str):
        raise FarmTypeError(f"name must be a str (the task's name in store keys), not {name!r}")
    if store is not None and not isinstance(store, (str, os.PathLike)):
        from daskfarm.store import DataManager

        if not isinstance(store, DataManager):
            raise FarmTypeError(
                f"store must be a DataManager or a directory path, not {type(store).__name__}"
            )
    if initkwds is not None and not isinstance(initkwds, dict):
        raise FarmTypeError(f"initkwds must be a dict of keyword arguments, not {initkwds!r}")
    if numitems is not None and (isinstance(numitems, bool) or not isinstance(numitems, int)
                                 or numitems < 0):
        raise FarmValueError(f"numitems must be a whole number >= 0 (or None), not {numitems!r}")


def check_init_arguments(task: Any, initargs: tuple, initkwds: dict,
                         process_number: bool) -> None:
    """A class task's ``__init__`` must take ``initargs``/``initkwds`` (it is called on the
    workers only: a mismatch would fail every item there)."""
    if not inspect.isclass(task):
        if initargs or initkwds:
            raise FarmTypeError(
                f"initargs/initkwds are for class tasks, but {qualified_name(task)} is a "
                "function; pass its fixed arguments with functools.partial(task, ...)"
            )
        return
    try:
        signature = inspect.signature(task)
    except (TypeError, ValueError):  # a class implemented in C: nothing to check
        return
    kwds = dict(initkwds)
    if process_number:
        kwds["process_number"] = 0
    try:
        signature.bind(*initargs, **kwds)
    except TypeError as exc:
        raise FarmTypeError(
            f"{task.__name__}{signature} cannot take initargs={initargs!r}, "
            f"initkwds={initkwds!r} ({exc}); its __init__ is called with them once per worker "
            "process"
        ) from None


def check_errors_option(errors: Any) -> str:
    if errors not in ("raise", "continue"):
        raise FarmValueError(
            f"errors={errors!r} is not an option: use errors='raise' (stop at the first failure) "
            "or errors='continue' (record failures and go on)"
        )
    return errors


def check_seconds(name: str, key: str, value: Any, *, allow_none: bool) -> float | None:
    """A duration option (seconds or a string such as "30s"), from the config if None."""
    value = config.get(key, value)
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        raise FarmValueError(f"{name} must be a number of seconds or a string such as '30s', "
                             f"not {value!r}")
    try:
        seconds = float(value) if isinstance(value, (int, float)) else \
            config.get_seconds(key, value)
    except (KeyError, TypeError, ValueError) as exc:
        raise FarmValueError(
            f"{name}={value!r} is not a duration: give seconds (e.g. 30) or a string such as "
            f"'30s' or '2 minutes' ({exc})"
        ) from None
    if not seconds > 0:
        raise FarmValueError(f"{name} must be more than 0 seconds, not {value!r}")
    return seconds


@dataclass(frozen=True)
class MapOptions:
    """The options of one ``map``/``starmap`` call, resolved and checked once."""

    star: Star = Star.NEVER
    store: Any = None
    numitems: int | None = None
    ordered: bool = False
    buffersize: int | None = None
    batch_size: int | str = "auto"
    retries: int = 0
    errors: str = "raise"
    progress: Any = "auto"
    name: str | None = None
    version: Any = None
    resume: bool = True
    initargs: tuple = ()
    initkwds: dict = field(default_factory=dict)
    plot: Any = None
    timeout: float | None = None

    @classmethod
    def resolve(cls, star: Star, *, store: Any = None, numitems: int | None = None,
                ordered: bool = False, buffersize: int | None = None,
                batch_size: int | str | None = None, retries: int | None = None,
                errors: str | None = None, progress: Any = None, name: str | None = None,
                version: Any = None, resume: bool = True, initargs: Iterable = (),
                initkwds: dict | None = None, plot: Any = None,
                timeout: float | str | None = None) -> MapOptions:
        """Fill in the configured defaults and check every option."""
        check_map_options(name=name, store=store, initkwds=initkwds,
                          numitems=numitems)
        errors = check_errors_option(config.get("errors", errors))
        buffersize = check_positive("buffersize", config.get("buffersize", buffersize))
        batch_size = config.get("batch-size", batch_size)
        if batch_size != "auto":
            batch_size = check_positive("batch_size", batch_size)
        retries = config.get("retries", retries)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise FarmValueError(f"retries must be a whole number >= 0, not {retries!r}")
        if not isinstance(resume, bool):
            raise FarmTypeError(f"resume must be True or False, not {resume!r}")
        if not isinstance(ordered, bool):
            raise FarmTypeError(f"ordered must be True or False, not {ordered!r}")
        if isinstance(initargs, (str, bytes)) or not isinstance(initargs, Iterable):
            raise FarmTypeError(f"initargs must be a tuple of positional arguments, not "
                                f"{initargs!r}")
        return cls(star=star, store=store, numitems=numitems, ordered=ordered,
                   buffersize=buffersize, batch_size=batch_size, retries=retries,
                   errors=errors, progress=config.get("progress", progress), name=name,
                   version=version, resume=resume, initargs=tuple(initargs),
                   initkwds=dict(initkwds or {}), plot=Plot.from_option(plot),
                   timeout=check_seconds("timeout", "timeout", timeout, allow_none=True))

    def total(self, items: Any) -> int | None:
        """The number of items when known: ``numitems``, or ``len(items)``."""
        if items is None:
            return None
        if self.numitems is not None:
            return self.numitems
        return len(items) if isinstance(items, Sized) else None


def check_items(items: Any) -> None:
    if items is not None and not isinstance(items, Iterable):
        raise FarmTypeError(
            f"items must be an iterable (a list, a range, a generator...), not "
            f"{type(items).__name__}; to run one item, pass [item]"
        )
