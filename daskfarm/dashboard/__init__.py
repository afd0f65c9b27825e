"""The farm panel: a ``/farm`` page on the Dask dashboard.

Importing this package registers the page with :class:`~daskfarm.FarmPlugin`: every
FarmPlugin that starts on a scheduler serves ``<dashboard prefix>/farm`` and adds "Farm" to
the dashboard's navigation bar (``FarmPlugin.start`` imports this package). As a scheduler
preload it also adds the plugin itself::

    DASKFARM_TOKEN=... dask scheduler --preload daskfarm.dashboard

The control token comes from the ``DASKFARM_TOKEN`` environment variable or the
``daskfarm.token`` dask config key, and is generated otherwise (a
``Farm("tcp://scheduler:8786")`` fetches it and puts it in ``farm.panel_link``).
``daskfarm.controls: false`` makes the page read-only for everybody. The page's websocket
accepts cross-site origins only from the dashboard's own host:port; a proxy that serves it
under another host adds ``host:port`` entries to ``daskfarm.allow-websocket-origin``.

Modules: ``panel`` (the page, its tables), ``plots`` (live plots), ``controls`` (admin-only
buttons), ``_mount`` (every use of distributed.dashboard and Bokeh-server internals).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import dask

from daskfarm.dashboard import _mount
from daskfarm.dashboard.panel import FarmPage, farm_doc
from daskfarm.progress import plugin as _plugin

__all__ = ["FarmPage", "dask_setup", "farm_doc"]

logger = logging.getLogger(__name__)


async def _mount_panel(plugin: Any, scheduler: Any) -> None:
    try:
        await _mount.mount(plugin, scheduler, farm_doc)
    except Exception:  # the farm works without its page; never fail the plugin's start
        logger.warning("the /farm panel could not be mounted", exc_info=True)


async def _unmount_panel(plugin: Any) -> None:
    _mount.unmount(plugin)


def _register_hooks() -> None:
    # By module and name, so that a re-imported module does not add its hooks twice.
    def present(hooks: list, fn: Any) -> bool:
        return any(getattr(h, "__module__", None) == fn.__module__
                   and getattr(h, "__name__", None) == fn.__name__ for h in hooks)

    if not present(_plugin._START_HOOKS, _mount_panel):
        _plugin._START_HOOKS.append(_mount_panel)
    if not present(_plugin._CLOSE_HOOKS, _unmount_panel):
        _plugin._CLOSE_HOOKS.append(_unmount_panel)


_register_hooks()


def dask_setup(scheduler: Any) -> None:
    """Preload entry point: add a :class:`~daskfarm.FarmPlugin` to a starting scheduler.

    The scheduler starts the plugin (and with it the page) after its preloads have run.
    """
    token = os.environ.get("DASKFARM_TOKEN") or dask.config.get("daskfarm.token", None)
    controls = bool(dask.config.get("daskfarm.controls", True))
    scheduler.add_plugin(_plugin.FarmPlugin(token=token or None, controls=controls))
    logger.info("daskfarm: farm panel at <dashboard>/farm (controls %s%s)",
                "on" if controls else "off",
                "" if not controls or token else "; token generated, a Farm connected to this "
                "scheduler shows it in farm.panel_link")
