"""The farm panel: a ``/farm`` page on the Dask dashboard.

Every :class:`~daskfarm.FarmPlugin` that starts on a scheduler where Bokeh is installed serves
``<dashboard prefix>/farm`` and adds "Farm" to the dashboard's navigation bar: its ``start``
imports this package once and calls :func:`serve`. The same page without the navigation bar,
``<dashboard prefix>/individual-farm``, is listed in ``/individual-plots.json``, so that
JupyterLab's Dask extension offers it ("Farm") to dock next to the task stream. As a
scheduler preload this package also adds the plugin itself::

    DASKFARM_TOKEN=... dask scheduler --preload daskfarm.dashboard

The control token comes from the ``DASKFARM_TOKEN`` environment variable or the
``daskfarm.token`` dask config key, and is generated otherwise (a
``Farm("tcp://scheduler:8786")`` fetches it and puts it in ``farm.panel_link``).
``daskfarm.controls: false`` makes the page read-only for everybody. The page's websocket
accepts cross-site origins only from the dashboard's own host:port; a proxy that serves it
under another host adds ``host:port`` entries to ``daskfarm.allow-websocket-origin``.

Modules: ``panel`` (the page, its tables), ``templates`` (their HTML cells), ``plots`` (live
plots), ``controls`` (admin-only buttons), ``_mount`` (every use of distributed.dashboard and
Bokeh-server internals).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import dask

from daskfarm.dashboard import _mount
from daskfarm.dashboard.panel import FarmPage, farm_doc, individual_doc

__all__ = ["FarmPage", "dask_setup", "farm_doc", "individual_doc", "serve", "unserve"]

logger = logging.getLogger(__name__)


async def serve(plugin: Any, scheduler: Any) -> _mount.Mount | None:
    """Mount the page for a starting :class:`~daskfarm.FarmPlugin` (None: no page).

    The plugin calls this once, through one guarded import; the page only reads the plugin's
    state and calls its control methods.
    """
    try:
        return await _mount.mount(plugin, scheduler, farm_doc, individual_doc)
    except Exception:  # the farm works without its page; never fail the plugin's start
        logger.warning("the /farm panel could not be mounted", exc_info=True)
        return None


def unserve(mounted: _mount.Mount | None) -> None:
    """Remove a page that :func:`serve` mounted (idempotent)."""
    _mount.unmount(mounted)


def dask_setup(scheduler: Any) -> None:
    """Preload entry point: add a :class:`~daskfarm.FarmPlugin` to a starting scheduler.

    The scheduler starts the plugin (and with it the page) after its preloads have run.
    """
    token = os.environ.get("DASKFARM_TOKEN") or dask.config.get("daskfarm.token", None)
    controls = bool(dask.config.get("daskfarm.controls", True))
    from daskfarm.scheduler.plugin import FarmPlugin

    scheduler.add_plugin(FarmPlugin(token=token or None, controls=controls))
    logger.info("daskfarm: farm panel at <dashboard>/farm (controls %s%s)",
                "on" if controls else "off",
                "" if not controls or token else "; token generated, a Farm connected to this "
                "scheduler shows it in farm.panel_link")
