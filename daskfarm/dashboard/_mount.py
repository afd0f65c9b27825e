"""Every use of ``distributed.dashboard`` and Bokeh-server internals, in one place.

The Dask dashboard has no public API for adding a page. What this module relies on, measured
with distributed 2026.8 and bokeh 3.9:

- ``Scheduler.http_application`` is a ``RoutingApplication`` that asks each sub-application in
  turn, per request, so a ``BokehTornado`` added at any time serves its routes; removing it from
  ``.applications`` unmounts it.
- The dashboard's own ``BokehTornado`` carries the ``--dashboard-prefix`` (the scheduler does
  not keep it anywhere else).
- ``template_variables(scheduler)`` is memoized per scheduler and its ``pages`` / ``plots``
  lists are shared by reference with every built-in page: appending to them adds our link to
  the navigation bar of pages rendered afterwards.
- The dashboard's jinja ``env`` (``simple.html``) and ``BOKEH_THEME`` give the page the
  dashboard's own look.
- ``/individual-plots.json`` (what JupyterLab's Dask extension lists) names the paths that start
  with ``individual-`` among the ``app_paths`` (the keys of ``_applications``) of the *first*
  ``BokehTornado`` in ``.applications``: the dashboard's own. Our ``/individual-farm``
  application context is entered there too, for the listing only; our own application
  serves it.

A distributed upgrade that moves any of these breaks this file only.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import dask
from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.server.server import BokehTornado
from bokeh.server.util import create_hosts_allowlist
from distributed.dashboard.components import DashboardComponent, add_periodic_callback
from tornado.ioloop import IOLoop

__all__ = [
    "INDIVIDUAL_ROUTE",
    "ROUTE",
    "DashboardComponent",
    "Mount",
    "add_periodic_callback",
    "dress",
    "mount",
    "task_executing",
    "theme",
    "unmount",
]

logger = logging.getLogger(__name__)

#: the page's path below the dashboard prefix
ROUTE = "/farm"
#: the same page without the navigation bar, for JupyterLab's Dask extension ("Farm")
INDIVIDUAL_ROUTE = "/individual-farm"
_NAV_NAME = ROUTE.strip("/")


class Mount:
    """One mounted ``/farm`` application, as remembered on its plugin.

    ``closed`` is set when the page is unmounted: documents that were open keep their
    periodic callbacks until their session expires, so every callback and control handler
    checks it first and does nothing once the plugin that owns the state is gone.
    """

    def __init__(self, app: BokehTornado, scheduler: Any, prefix: str):
        self.app = app
        self.scheduler = scheduler
        self.prefix = prefix
        self.closed = False
        #: the dashboard application whose listing names our individual page (see the top)
        self.listed_in: Any = None
        #: table columns computed once per refresh and shared by every open session
        self.cache: dict = {}


def dashboard_prefix(scheduler: Any) -> str:
    """The dashboard's URL prefix, normalised to ``"/"`` or ``"/x/"``."""
    http = getattr(scheduler, "http_application", None)
    for app in getattr(http, "applications", ()):
        if isinstance(app, BokehTornado) and not _is_farm_app(app):
            prefix = app.prefix or ""
            break
    else:  # --no-dashboard: the HTTP server still exists, but nothing tells its prefix
        prefix = ""
    prefix = prefix.strip("/")
    return f"/{prefix}/" if prefix else "/"


def _is_farm_app(app: Any) -> bool:
    return getattr(app, "_daskfarm_panel", False)


def websocket_origins(scheduler: Any) -> list[str]:
    """host:port pairs that may open the page's websocket: the dashboard's own address.

    Browsers send ``Origin`` cross-site only, so this guards against other web pages, not
    against scripts (the token does that).
    """
    port = scheduler.http_server.port
    hosts = {"localhost", "127.0.0.1"}
    bound = getattr(scheduler.http_server, "address", None)
    if bound and bound not in ("0.0.0.0", "::", ""):
        hosts.add(bound)
    else:  # every interface: the machine's name (no DNS lookup on the scheduler's loop)
        hosts.add(socket.gethostname())
    try:
        from distributed.comm import get_address_host

        hosts.add(get_address_host(scheduler.address))
    except Exception:  # not started yet, or an exotic comm
        pass
    extra = dask.config.get("daskfarm.allow-websocket-origin", None) or []
    return create_hosts_allowlist([f"{h}:{port}" for h in sorted(hosts)] + list(extra), port)


def _template_variables(scheduler: Any) -> dict:
    from distributed.dashboard.scheduler import template_variables

    return template_variables(scheduler)


def _add_nav_link(scheduler: Any) -> None:
    try:
        tv = _template_variables(scheduler)
        if _NAV_NAME not in tv["pages"]:
            tv["pages"].append(_NAV_NAME)
        if not any(p.get("url") == _NAV_NAME for p in tv["plots"]):
            tv["plots"].append({"url": _NAV_NAME, "name": "Farm"})
    except Exception:  # an internal API: never let it stop the page itself
        logger.debug("could not add the Farm link to the dashboard navigation", exc_info=True)


def _remove_nav_link(scheduler: Any) -> None:
    try:
        tv = _template_variables(scheduler)
        while _NAV_NAME in tv["pages"]:
            tv["pages"].remove(_NAV_NAME)
        tv["plots"][:] = [p for p in tv["plots"] if p.get("url") != _NAV_NAME]
    except Exception:
        logger.debug("could not remove the Farm link", exc_info=True)


def theme(doc: Any) -> None:
    """Give ``doc`` the dashboard's Bokeh theme (individual pages have no template)."""
    try:
        from distributed.dashboard.components.scheduler import BOKEH_THEME

        doc.theme = BOKEH_THEME
    except Exception:
        logger.debug("dashboard theme unavailable", exc_info=True)


def dress(doc: Any, scheduler: Any, prefix: str, title: str) -> None:
    """Give ``doc`` the dashboard's template (navigation bar included) and theme."""
    doc.title = title
    try:
        from distributed.dashboard.components.scheduler import BOKEH_THEME, env

        doc.template = env.get_template("simple.html")
        doc.template_variables.update({"prefix": prefix, **_template_variables(scheduler)})
        doc.theme = BOKEH_THEME
    except Exception:  # plain Bokeh page rather than no page
        logger.debug("dashboard template unavailable", exc_info=True)


async def mount(plugin: Any, scheduler: Any, make_doc: Any,
                make_individual: Any = None) -> Mount | None:
    """Serve ``make_doc(plugin, mount, doc)`` at ``<prefix>/farm`` on the scheduler's server,
    and ``make_individual`` (the same, for JupyterLab) at ``<prefix>/individual-farm``.

    Any farm page mounted before (by a plugin that was replaced) is removed first, so
    re-registering the plugin replaces the page instead of leaving the old one in front.
    """
    http = getattr(scheduler, "http_application", None)
    if http is None or getattr(scheduler, "http_server", None) is None:
        logger.debug("scheduler has no HTTP server: no /farm page")
        return None
    prefix = dashboard_prefix(scheduler)
    # A foreign /farm application (a plugin object we never saw close) would stay in front.
    for app in list(http.applications):
        if _is_farm_app(app):
            _remove_app(http, app)
    kwargs = dict(dask.config.get("distributed.scheduler.dashboard.bokeh-application"))
    kwargs.pop("allow_websocket_origin", None)  # ["*"] by default: ours is the dashboard's own
    record: dict = {}
    handler = FunctionHandler(lambda doc: make_doc(plugin, record["mount"], doc))
    routes = {ROUTE: Application(handler)}
    if make_individual is not None:
        routes[INDIVIDUAL_ROUTE] = Application(
            FunctionHandler(lambda doc: make_individual(plugin, record["mount"], doc)))
    from distributed.dashboard.core import DaskBokehTornado

    app = DaskBokehTornado(
        routes,
        prefix=prefix,
        use_index=False,
        absolute_url="",
        extra_websocket_origins=websocket_origins(scheduler),
        **kwargs,
    )
    app._daskfarm_panel = True
    record["mount"] = mounted = Mount(app, scheduler, prefix)
    http.add_application(app)
    app.initialize(IOLoop.current())
    app.start()
    _add_nav_link(scheduler)
    if make_individual is not None:
        mounted.listed_in = _list_individual(http, app)
    logger.debug("farm panel mounted at %s%s", prefix, ROUTE.lstrip("/"))
    return mounted


def unmount(mounted: Mount | None) -> None:
    """Remove a mounted page from the scheduler's HTTP server (idempotent)."""
    if mounted is None or mounted.closed:
        return
    mounted.closed = True
    http = getattr(mounted.scheduler, "http_application", None)
    if http is not None:
        _remove_app(http, mounted.app)
    _unlist_individual(mounted)
    if not any(_is_farm_app(a) for a in getattr(http, "applications", ())):
        _remove_nav_link(mounted.scheduler)
    logger.debug("farm panel unmounted")


def _list_individual(http: Any, app: Any) -> Any:
    """Name ``/individual-farm`` in ``/individual-plots.json``; return the listing app."""
    try:
        listing = next((a for a in http.applications if isinstance(a, BokehTornado)), None)
        if listing is None or listing is app:
            return None  # --no-dashboard: ours is the first, and lists itself
        listing._applications[INDIVIDUAL_ROUTE] = app._applications[INDIVIDUAL_ROUTE]
        return listing
    except Exception:  # an internal API: the page works without the listing
        logger.debug("could not list the farm page for JupyterLab", exc_info=True)
        return None


def _unlist_individual(mounted: Mount) -> None:
    listing, mounted.listed_in = mounted.listed_in, None
    if listing is None:
        return
    try:
        ours = mounted.app._applications.get(INDIVIDUAL_ROUTE)
        if listing._applications.get(INDIVIDUAL_ROUTE) is ours:
            del listing._applications[INDIVIDUAL_ROUTE]
    except Exception:
        logger.debug("could not remove the farm page from the JupyterLab listing",
                     exc_info=True)


def _remove_app(http: Any, app: Any) -> None:
    try:
        http.applications.remove(app)
    except ValueError:
        pass
    try:
        app.stop()
    except Exception:
        logger.debug("stopping the old panel application failed", exc_info=True)
    # Open sessions would keep their websocket (and a frozen page); close them.
    for connection in list(getattr(app, "_clients", ())):
        try:
            connection._socket.close()
        except Exception:
            pass


def task_executing(scheduler: Any, key: Any, address: str) -> bool:
    """True if the task ``key`` executes on the worker at ``address`` now.

    ``WorkerState.executing`` comes with each worker heartbeat: tasks queued on a worker
    (``processing`` on the scheduler) are not in it.
    """
    ts = scheduler.tasks.get(key)
    ws = scheduler.workers.get(address)
    return ts is not None and ws is not None and ts in ws.executing


def session_arguments(doc: Any) -> dict[str, list[bytes]]:
    """The URL arguments of the request that opened this document's session."""
    try:
        return doc.session_context.request.arguments
    except AttributeError:  # a document outside a server session (tests, bench)
        return {}

