"""daskfarm's settings in the Dask configuration, under ``daskfarm.``.

The defaults live in ``daskfarm.yaml`` next to this module (each key described in
``daskfarm-schema.yaml``) and are loaded with :func:`dask.config.update_defaults` when daskfarm
is imported, so anything the user set wins: a YAML file in ``~/.config/dask/``,
``dask.config.set(...)``, or an environment variable read when dask starts::

    DASK_DASKFARM__BATCH_SIZE=10
    DASK_DASKFARM__CONNECT__TIMEOUT=30s
    DASK_DASKFARM__STORE__COMMIT_INTERVAL=5s

Every keyword argument of :class:`~daskfarm.Farm` and :meth:`~daskfarm.Farm.map` that has a
key here defaults to ``None``, meaning "take the configured value" (the dask-jobqueue habit).
Nothing is ever written to the user's configuration directory.

Examples
--------
>>> import dask
>>> from daskfarm import config
>>> config.get("batch-size")
'auto'
>>> with dask.config.set({"daskfarm.batch-size": 10}):
...     config.get("batch-size"), config.get("batch-size", 5)
(10, 5)
"""

from __future__ import annotations

import pathlib
from typing import Any

import dask
import dask.config
import yaml
from dask.utils import parse_timedelta

__all__ = ["DEFAULTS_FILE", "SCHEMA_FILE", "get", "get_seconds"]

DEFAULTS_FILE = pathlib.Path(__file__).with_name("daskfarm.yaml")
SCHEMA_FILE = pathlib.Path(__file__).with_name("daskfarm-schema.yaml")

with open(DEFAULTS_FILE, encoding="utf-8") as _f:
    _defaults = yaml.safe_load(_f)

dask.config.update_defaults(_defaults)


def get(key: str, override: Any = None) -> Any:
    """``override`` if it is not None, else the configured ``daskfarm.<key>``."""
    if override is not None:
        return override
    return dask.config.get(f"daskfarm.{key}")


def get_seconds(key: str, override: Any = None) -> float:
    """Like :func:`get`, for a duration: a number of seconds or a string such as ``"30s"``.

    Examples
    --------
    >>> get_seconds("connect.timeout", "2 minutes")
    120.0
    """
    value = get(key, override)
    seconds = parse_timedelta(value, default="seconds")
    return float(seconds)
