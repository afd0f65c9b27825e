"""``Farm``: a cluster to run tasks on, and ``map`` to stream items through them."""

from __future__ import annotations

import logging
import threading
import urllib.parse
import warnings
from collections.abc import Iterable
from typing import Any

from daskfarm import _distributed, config
from daskfarm._protocol import (
    CONTROL_TOPIC,
    INFO_HANDLER,
    SUMMARY_TOPIC,
    Control,
    Star,
)
from daskfarm.client.connect import capacity, connect
from daskfarm.client.launch import end_run, start_run
from daskfarm.client.options import MapOptions
from daskfarm.client.preflight import preflight
from daskfarm.client.sigterm import catch_sigterm, restore_sigterm
from daskfarm.exceptions import FarmClosedError
from daskfarm.run import Run
from daskfarm.scheduler.plugin import FarmPlugin

logger = logging.getLogger(__name__)

__all__ = ["Farm"]


class Farm:
    """A task farm on a Dask cluster: this machine's cores, or a scheduler anywhere.

    Parameters
    ----------
    address : None, str, distributed.Client or cluster object
        ``None`` starts a LocalCluster on this machine (dashboard on 127.0.0.1, a free port).
        A string such as ``"tcp://host:8786"`` or ``"tls://host:8786"`` connects to a running
        scheduler. A ``Client`` or a cluster object (LocalCluster, dask-jobqueue's
        SLURMCluster, SSHCluster, ...) is used as it is; a Farm never closes a cluster or
        client it did not create.
    n_workers : int, optional
        For a LocalCluster: ``None`` or ``0`` = one worker per CPU, ``-k`` = all but k CPUs,
        ``k > 0`` = k workers (Brian's ``poolsize`` rule).
    threads_per_worker : int, optional
        Threads in each LocalCluster worker process.
    processes : bool, optional
        LocalCluster workers in processes (True) or threads of this process.
    security : distributed.security.Security, optional
        TLS settings (``Security(tls_ca_file=..., ...)`` or ``Security.temporary()``), passed
        to the LocalCluster, or to the client of a ``tls://`` address or a cluster object.
    dashboard : bool, optional
        Start the LocalCluster's dashboard (and with it the farm panel).
    controls : bool, optional
        Offer the panel's cancel / terminate / suspend buttons (to holders of the token).
    timeout : float or str, optional
        How long to wait for a remote scheduler (seconds, or a string such as ``"30s"``).
    **cluster_kwargs
        More LocalCluster arguments.

    Every argument left ``None`` takes its value from the Dask config (``daskfarm.local.*``,
    ``daskfarm.controls``, ``daskfarm.connect.timeout``; see ``daskfarm/daskfarm.yaml``).

    Raises
    ------
    FarmConnectionError
        No scheduler answered at ``address`` within ``timeout``.
    WorkerImportError
        A worker of a remote cluster cannot import daskfarm.
    SchedulerImportError
        The scheduler cannot import daskfarm (it must: it unpickles the farm's tasks).
    WorkerVersionError
        A worker runs another Python, dask, distributed or daskfarm release than this client.

    Notes
    -----
    Connecting to a scheduler or cluster that is not this Farm's own checks the workers
    already connected, and every :meth:`map` checks all workers again before its first item:
    they must import daskfarm and the task's module, and their versions must agree with the
    client's. A different Python ``major.minor`` or a different dask, distributed or
    daskfarm release (the first two numbers) raises :class:`WorkerVersionError`; a patch
    level difference warns (:class:`VersionMismatchWarning`). The dask config key
    ``daskfarm.preflight.version-mismatch`` (``raise``, ``warn``, ``ignore``) changes this.

    Workers may leave at any time (walltime, scale-down, a crash): Dask runs their unfinished
    tasks elsewhere, and each item is still stored once.

    While open, a Farm is the default Dask client, as ``Client()`` is: ``dask.compute``,
    ``distributed.as_completed`` and ``get_client()`` use its cluster. Inside
    ``with Farm() as farm:`` it wins over an enclosing ``with Client():``; when it closes, the
    previous default client is the default again.

    Examples
    --------
    >>> from daskfarm import Farm
    >>> def square(x):
    ...     return x * x
    >>> with Farm(n_workers=2) as farm:                       # doctest: +SKIP
    ...     print(sorted(farm.map(square, range(5))))
    [0, 1, 4, 9, 16]

    On a running scheduler, over TLS, or on a batch system through dask-jobqueue:

    >>> farm = Farm("tls://head:8786", security=Security(tls_ca_file="ca.pem",
    ...             tls_client_cert="cert.pem", tls_client_key="key.pem"))  # doctest: +SKIP
    >>> cluster = SLURMCluster(cores=1, memory="2GB", walltime="01:00:00")  # doctest: +SKIP
    >>> cluster.adapt(maximum_jobs=20)                                    # doctest: +SKIP
    >>> with Farm(cluster) as farm:                                       # doctest: +SKIP
    ...     farm.map(simulate, params, store="results/").wait()
    """

    def __init__(self, address: Any = None, *, n_workers: int | None = None,
                 threads_per_worker: int | None = None, processes: bool | None = None,
                 security: Any = None, dashboard: bool | None = None,
                 controls: bool | None = None, timeout: float | str | None = None,
                 **cluster_kwargs: Any):
        self._closed = True  # until connected: a failed __init__ has nothing to close
        self._lock = threading.Lock()
        self._runs: dict[str, Run] = {}
        self._engines: dict[str, tuple] = {}  # run id -> (RunState, Feeder)
        self._owned_stores: list = []
        self._panel_path: str | None = None
        self._current_tokens: list = []  # one per `with` block (Farm.__enter__)
        self._conn = connect(address, n_workers=n_workers, threads_per_worker=threads_per_worker,
                             processes=processes, security=security, dashboard=dashboard,
                             timeout=timeout, cluster_kwargs=cluster_kwargs)
        self.client = self._conn.client
        try:
            if not self._conn.owns_cluster:  # daskfarm and versions where it will run
                preflight(self.client, None, scheduler=True)
            self._token, self._plugin = self._install_plugin(config.get("controls", controls))
            self.client.subscribe_topic(SUMMARY_TOPIC, self._on_summary)
            self.client.subscribe_topic(CONTROL_TOPIC, self._on_control)
        except BaseException:
            self._conn.close()
            raise
        self._closed = False
        self._previous_sigterm = catch_sigterm()
        # the default client while open, as Client() is: dask.compute, as_completed and
        # get_client() use the farm's workers; the previous default returns at close
        self._default_handle = _distributed.push_default_client(self.client)

    # -- connection ------------------------------------------------------------------------

    def _install_plugin(self, controls: bool) -> tuple[str | None, bool]:
        client = self.client
        if not self._conn.owns_cluster:
            try:  # preloaded (dask scheduler --preload daskfarm.dashboard) or registered before
                if client.run_on_scheduler(_distributed.has_handler, name=INFO_HANDLER):
                    info = client.sync(getattr(client.scheduler, INFO_HANDLER))
                    self._panel_path = info.get("panel_path")
                    # controls=False here: this Farm's link carries no token, whatever the
                    # scheduler's own setting (it was started by somebody else)
                    return (info.get("token") if controls else None), True
            except Exception:
                logger.debug("no daskfarm plugin on the scheduler yet", exc_info=True)
        try:
            client.register_plugin(FarmPlugin(controls=controls,
                                              page=not self._conn.no_dashboard))
            info = client.sync(getattr(client.scheduler, INFO_HANDLER))
            self._panel_path = info.get("panel_path")
            return info.get("token"), True
        except Exception as exc:
            logger.warning(
                "the scheduler at %s cannot load daskfarm's plugin (%s: %s): runs go on, "
                "without per-task progress or the /farm panel. Start the scheduler with "
                "`dask scheduler --preload daskfarm.dashboard` to have them.",
                client.scheduler.address, type(exc).__name__, exc,
            )
            return None, False

    def _on_summary(self, event: tuple) -> None:
        # Runs on the client's event loop: set flags only, never block.
        _, msg = event
        for run_id, (executing, fractions) in msg.get("runs", {}).items():
            engine = self._engines.get(run_id)
            if engine is not None:
                engine[0].set_remote(int(executing), float(fractions))

    def _on_control(self, event: tuple) -> None:
        # Runs on the client's event loop: set flags only, never block.
        _, msg = event
        engine = self._engines.get(msg.get("run"))
        if engine is None:
            return
        state = engine[0]
        action = msg.get("action")
        if action == Control.TERMINATE:
            state.request_cancel(config.get_seconds("cancel-grace"))
        elif action == Control.SUSPEND:
            state.suspend()
        elif action == Control.RESUME:
            state.resume()
        elif action == Control.TIMEOUT and isinstance(msg.get("key"), (list, tuple)):
            state.note_timeout(tuple(msg["key"]), int(msg.get("i", -1)),
                               float(msg.get("seconds") or 0.0))

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard's address, or None without a dashboard."""
        try:
            return self.client.dashboard_link
        except Exception:
            return None

    @property
    def panel_link(self) -> str | None:
        """The farm panel (``/farm`` on the dashboard), with the control token if any.

        Treat it as a password: whoever opens it can stop runs. None without a dashboard, or
        when the scheduler cannot load daskfarm's plugin (and so serves no panel).
        """
        link = self.dashboard_link
        # the plugin reports the page's path (it knows --dashboard-prefix, which the client
        # does not), or None when it mounted no page
        path = self._panel_path
        if not link or not self._plugin or not path:
            return None
        base = link.rsplit("/status", 1)[0] if link.endswith("/status") else link.rstrip("/")
        parts = urllib.parse.urlsplit(base)
        url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        return f"{url}?token={self._token}" if self._token else url

    @property
    def nthreads(self) -> int:
        """Total worker threads in the cluster now."""
        try:
            return max(1, sum(self.client.nthreads().values()))
        except Exception:
            return 1

    # -- mapping ---------------------------------------------------------------------------

    def map(self, task: Any, items: Iterable | None, *, store: Any = None,
            numitems: int | None = None, ordered: bool = False, buffersize: int | None = None,
            batch_size: int | str | None = None, retries: int | None = None,
            errors: str | None = None, progress: Any = None, name: str | None = None,
            version: Any = None, resume: bool = True, initargs: Iterable = (),
            initkwds: dict | None = None, plot: Any = None,
            timeout: float | str | None = None) -> Run:
        """Run ``task`` over every item of ``items``, streaming; return the :class:`Run`.

        Parameters
        ----------
        task : callable or class
            A function ``task(item)``, or a class instantiated once per worker process with
            ``initargs``/``initkwds`` (and ``process_number=`` if ``__init__`` takes it) and
            then called per item. If it accepts ``report``, the progress reporter is passed.
        items : iterable or None
            Any iterable, also an endless generator: items are pulled lazily. ``None`` starts
            an empty run fed with :meth:`Run.add` and ended with :meth:`Run.close_input`.
        store : DataManager or path, optional
            Where each result is written as it arrives.
        numitems : int, optional
            The number of items, for progress and ETA when ``len(items)`` does not work.
        ordered : bool
            Yield results in input order instead of completion order.
        buffersize : int, optional
            The most items in flight or finished but not yet taken. Default: two batches per
            worker thread.
        batch_size : "auto" or int, optional
            Items per Dask task. "auto" measures item durations and groups short items.
        retries : int, optional
            Extra attempts for an item whose task raises (or times out).
        errors : {"raise", "continue"}, optional
            Stop at the first failure and raise it, or record failures and go on.
        progress : "auto", bool, optional
            A terminal/notebook progress bar ("auto": when attached to one).
        name, version : optional
            The task's identity in store keys (default: its qualified name).
        resume : bool
            Skip items whose result is already in ``store``.
        initargs, initkwds : optional
            Constructor arguments of a class task.
        plot : callable, Plot or mapping, optional
            ``plot(item, result) -> (x, y)``, drawn live in the panel; with axis labels and a
            title, ``Plot(xy, x="k", y="amplitude", title=...)`` or the same as a mapping,
            ``{"xy": xy, "x": "k", "y": "amplitude"}`` (see :class:`~daskfarm.client.plot.Plot`).
        timeout : float or str, optional
            Seconds (or a string such as ``"10 minutes"``) an item may run, counted from its
            start on a worker; an item that runs longer fails with
            :class:`~daskfarm.ItemTimeoutError`: at its next ``report()``, or, if it does not
            report, by a restart of its worker process after the grace period
            (``daskfarm.cancel-grace``). Default: no limit.

        Every option left ``None`` takes its value from the Dask config (``daskfarm.buffersize``,
        ``daskfarm.batch-size``, ``daskfarm.retries``, ``daskfarm.errors``,
        ``daskfarm.progress``, ``daskfarm.timeout``); ``daskfarm.report-interval`` and
        ``daskfarm.store.*`` set the progress throttle and how often the store commits.

        Returns
        -------
        Run

        Raises
        ------
        WorkerImportError
            A worker cannot import daskfarm or the task's module (before the first item).
        WorkerVersionError
            A worker's Python, dask, distributed or daskfarm differs from the client's.

        Examples
        --------
        >>> with Farm() as farm:                                      # doctest: +SKIP
        ...     for result in farm.map(simulate, params, store="results/"):
        ...         print(result)
        """
        return self._map(task, items, Star.NEVER, store=store, numitems=numitems,
                         ordered=ordered, buffersize=buffersize, batch_size=batch_size,
                         retries=retries, errors=errors, progress=progress, name=name,
                         version=version, resume=resume, initargs=initargs, initkwds=initkwds,
                         plot=plot, timeout=timeout)

    def starmap(self, task: Any, items: Iterable | None, **kwargs: Any) -> Run:
        """Like :meth:`map`, with each item (a tuple) expanded into positional arguments.

        Examples
        --------
        >>> farm.starmap(pow, [(2, 3), (3, 2)], ordered=True)   # doctest: +SKIP
        """
        return self._map(task, items, Star.ALWAYS, **kwargs)

    def _map(self, task: Any, items: Iterable | None, star: Star, **options: Any) -> Run:
        """``map`` with a choice of how items are passed (compat's run_tasks: Star.TUPLES)."""
        self._check_open()
        opts = MapOptions.resolve(Star(star), **options)
        run, state, feeder = start_run(self, task, items, opts)
        with self._lock:
            self._check_open()
            self._runs[run.run_id] = run
            self._engines[run.run_id] = (state, feeder)
            feeder.start()
        logger.debug("run %s started", run.run_id)
        return run

    def _capacity(self) -> int:
        """Worker threads to size a run's in-flight window for (see client.connect.capacity)."""
        return capacity(self.client, self._conn.cluster)

    def _end_run(self, run_id: str, session: Any) -> None:
        """Called by the feeder as the run ends: close its shard and the workers' copies."""
        end_run(self.client, run_id, session)

    # -- lifecycle -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise FarmClosedError("this Farm is closed; create a new Farm() to run more tasks")

    @property
    def runs(self) -> list[Run]:
        """Every run started on this Farm, oldest first."""
        return list(self._runs.values())

    def close(self, *, cancel: bool = False) -> None:
        """Drain (or, with ``cancel=True``, cancel) every run, then release the cluster.

        Idempotent. A failure that a drained run raised and nobody saw is raised here, after
        everything is closed. Ctrl-C during the drain cancels the runs and still closes.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        error: BaseException | None = None
        try:
            for run in list(self._runs.values()):
                state = self._engines[run.run_id][0]
                if cancel or state.suspended or (state.input_open() and not run.done):
                    # a suspended run, or one whose input is still open, cannot be drained:
                    # it would wait for ever
                    if not cancel and state.input_open():
                        logger.warning("run %s still took items (add()) when the Farm "
                                       "closed: cancelled; call close_input() to let it "
                                       "finish", run.name)
                    run.cancel()
                else:
                    try:
                        run.wait()
                    except Exception as exc:
                        error = error or exc
        except BaseException:
            for state, _ in self._engines.values():
                state.request_cancel(0)  # a second Ctrl-C: stop hard
            raise
        finally:
            self._shutdown()
        if error is not None:
            raise error

    def _shutdown(self) -> None:
        for state, _ in self._engines.values():
            state.request_cancel(0)
        for _, feeder in self._engines.values():
            feeder.join(timeout=30)
        for topic in (SUMMARY_TOPIC, CONTROL_TOPIC):
            try:
                self.client.unsubscribe_topic(topic)
            except Exception:
                pass
        while self._current_tokens:
            _distributed.reset_current_client(self._current_tokens.pop())
        _distributed.pop_default_client(self.client, self._default_handle)
        for dm in self._owned_stores:
            try:
                dm.close()
            except Exception:  # already raised by its run; the cluster must close anyway
                logger.warning("closing the store %s failed", dm.path, exc_info=True)
        self._conn.close()
        restore_sigterm(self._previous_sigterm)
        logger.debug("farm closed")

    def __enter__(self) -> Farm:
        self._check_open()
        # as `with Client():` does: inside the block the farm wins over an enclosing client
        self._current_tokens.append(_distributed.set_current_client(self.client))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn("unclosed Farm: use `with Farm() as farm:` or call farm.close()",
                          ResourceWarning, stacklevel=1)

    def _repr_html_(self) -> str:
        from daskfarm.client.html import farm_html

        return farm_html(self, cluster=self._conn.cluster, closed=self._closed)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._runs)} runs"
        return f"<Farm {self.client.scheduler.address if not self._closed else ''} {state}>"
