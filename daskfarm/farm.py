"""``Farm``: a cluster to run tasks on, and ``map`` to stream items through them."""

from __future__ import annotations

import inspect
import logging
import re
import signal
import threading
import urllib.parse
import uuid
import warnings
from collections.abc import Iterable, Sized
from typing import Any

from daskfarm import _execute
from daskfarm._batching import BatchSizer
from daskfarm._connect import connect
from daskfarm._stream import Feeder
from daskfarm.exceptions import (
    FarmClosedError,
    FarmTypeError,
    FarmValueError,
    WorkerImportError,
)
from daskfarm.progress.plugin import CONTROL_TOPIC, SUMMARY_TOPIC, FarmPlugin
from daskfarm.progress.views import TerminalBar, want_bar
from daskfarm.run import Run, check_errors_option

logger = logging.getLogger(__name__)

__all__ = ["Farm"]


class Farm:
    """A task farm on a Dask cluster: this machine's cores, or a scheduler anywhere.

    Parameters
    ----------
    address : None, str, distributed.Client or cluster object
        ``None`` starts a LocalCluster on this machine (dashboard on 127.0.0.1, a free port).
        A string such as ``"tcp://host:8786"`` connects to a running scheduler. A ``Client``
        or a cluster object (LocalCluster, dask-jobqueue's SLURMCluster, ...) is used as it
        is; a Farm never closes a cluster or client it did not create.
    n_workers : int, optional
        For a LocalCluster: ``None`` or ``0`` = one worker per CPU, ``-k`` = all but k CPUs,
        ``k > 0`` = k workers (Brian's ``poolsize`` rule).
    threads_per_worker : int
        Threads in each LocalCluster worker process.
    processes : bool
        LocalCluster workers in processes (True) or threads of this process.
    security : distributed.security.Security, optional
        TLS settings, passed to the cluster or the client.
    dashboard : bool
        Start the LocalCluster's dashboard (and with it the farm panel).
    controls : bool
        Offer the panel's cancel / terminate / suspend buttons (to holders of the token).
    timeout : float
        Seconds to wait for a remote scheduler.
    **cluster_kwargs
        More LocalCluster arguments.

    Examples
    --------
    >>> from daskfarm import Farm
    >>> def square(x):
    ...     return x * x
    >>> with Farm(n_workers=2) as farm:                       # doctest: +SKIP
    ...     print(sorted(farm.map(square, range(5))))
    [0, 1, 4, 9, 16]
    """

    def __init__(self, address: Any = None, *, n_workers: int | None = None,
                 threads_per_worker: int = 1, processes: bool = True, security: Any = None,
                 dashboard: bool = True, controls: bool = True, timeout: float = 10.0,
                 **cluster_kwargs: Any):
        self._closed = True  # until connected: a failed __init__ has nothing to close
        self._lock = threading.Lock()
        self._runs: dict[str, Run] = {}
        self._owned_stores: list = []
        self._panel_path: str | None = None
        self._conn = connect(address, n_workers=n_workers, threads_per_worker=threads_per_worker,
                             processes=processes, security=security, dashboard=dashboard,
                             timeout=timeout, cluster_kwargs=cluster_kwargs)
        self.client = self._conn.client
        try:
            self._token, self._plugin = self._install_plugin(controls)
            self.client.subscribe_topic(SUMMARY_TOPIC, self._on_summary)
            self.client.subscribe_topic(CONTROL_TOPIC, self._on_control)
        except BaseException:
            self._conn.close()
            raise
        self._closed = False
        self._previous_sigterm = _catch_sigterm()

    # -- connection ------------------------------------------------------------------------

    def _install_plugin(self, controls: bool) -> tuple[str | None, bool]:
        client = self.client
        if not self._conn.owns_cluster:
            try:  # preloaded (dask scheduler --preload daskfarm.dashboard) or registered before
                info = client.sync(client.scheduler.daskfarm_info)
                self._panel_path = info.get("panel_path")
                return info.get("token"), True
            except Exception:
                pass
        try:
            client.register_plugin(FarmPlugin(controls=controls))
            info = client.sync(client.scheduler.daskfarm_info)
            self._panel_path = info.get("panel_path")
            return info.get("token"), True
        except Exception as exc:
            logger.warning(
                "the scheduler at %s cannot load daskfarm's plugin (%s: %s): runs work, but "
                "without per-task progress or the /farm panel. Install daskfarm where the "
                "scheduler runs, or start it with `dask scheduler --preload daskfarm.dashboard`.",
                client.scheduler.address, type(exc).__name__, exc,
            )
            return None, False

    def _on_summary(self, event: tuple) -> None:
        _, msg = event
        for run_id, (processing, fractions) in msg.get("runs", {}).items():
            run = self._runs.get(run_id)
            if run is not None:
                run._remote = (int(processing), float(fractions))

    def _on_control(self, event: tuple) -> None:
        # Runs on the client's event loop: set flags only, never block.
        _, msg = event
        run = self._runs.get(msg.get("run"))
        if run is None:
            return
        action = msg.get("action")
        if action == "terminate":
            run._request_cancel()
        elif action == "suspend":
            run.suspend()
        elif action == "resume":
            run.resume()

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

        Treat it as a password: whoever opens it can stop runs.
        """
        link = self.dashboard_link
        if not link:
            return None
        base = link.rsplit("/status", 1)[0] if link.endswith("/status") else link.rstrip("/")
        path = self._panel_path  # knows --dashboard-prefix, which the client does not
        if path:
            parts = urllib.parse.urlsplit(base)
            url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        else:
            url = f"{base}/farm"
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
            batch_size: int | str = "auto", retries: int = 0, errors: str = "raise",
            progress: Any = "auto", name: str | None = None, version: Any = None,
            resume: bool = True, initargs: Iterable = (), initkwds: dict | None = None,
            plot: Any = None) -> Run:
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
        batch_size : "auto" or int
            Items per Dask task. "auto" measures item durations and groups short items.
        retries : int
            Extra attempts for an item whose task raises.
        errors : {"raise", "continue"}
            Stop at the first failure and raise it, or record failures and go on.
        progress : "auto", bool
            A terminal/notebook progress bar ("auto": when attached to one).
        name, version : optional
            The task's identity in store keys (default: its qualified name).
        resume : bool
            Skip items whose result is already in ``store``.
        initargs, initkwds : optional
            Constructor arguments of a class task.
        plot : callable, optional
            ``plot(item, result) -> (x, y)``, drawn live in the panel.

        Returns
        -------
        Run

        Examples
        --------
        >>> with Farm() as farm:                                      # doctest: +SKIP
        ...     for result in farm.map(simulate, params, store="results/"):
        ...         print(result)
        """
        return self._map(task, items, _execute.STAR_NEVER, store=store, numitems=numitems,
                         ordered=ordered, buffersize=buffersize, batch_size=batch_size,
                         retries=retries, errors=errors, progress=progress, name=name,
                         version=version, resume=resume, initargs=initargs, initkwds=initkwds,
                         plot=plot)

    def starmap(self, task: Any, items: Iterable | None, **kwargs: Any) -> Run:
        """Like :meth:`map`, with each item (a tuple) expanded into positional arguments.

        Examples
        --------
        >>> farm.starmap(pow, [(2, 3), (3, 2)], ordered=True)   # doctest: +SKIP
        """
        return self._map(task, items, _execute.STAR_ALWAYS, **kwargs)

    def _map(self, task, items, star, *, store=None, numitems=None, ordered=False,
             buffersize=None, batch_size="auto", retries=0, errors="raise", progress="auto",
             name=None, version=None, resume=True, initargs=(), initkwds=None, plot=None) -> Run:
        self._check_open()
        _check_task(task)
        if items is not None and not isinstance(items, Iterable):
            raise FarmTypeError(
                f"items must be an iterable (a list, a range, a generator...), not "
                f"{type(items).__name__}; to run one item, pass [item]"
            )
        check_errors_option(errors)
        buffersize = _check_positive("buffersize", buffersize)
        if batch_size != "auto":
            batch_size = _check_positive("batch_size", batch_size)
        if not isinstance(retries, int) or retries < 0:
            raise FarmValueError(f"retries must be a whole number >= 0, not {retries!r}")
        total = numitems
        if total is None and isinstance(items, Sized):
            total = len(items)
        identity = name or _qualified_name(task)
        run_id = f"{_safe(identity.rsplit('.', 1)[-1])}-{uuid.uuid4().hex[:12]}"
        spec = _execute.make_spec(task, star=star, initargs=initargs, initkwds=initkwds,
                                  retries=retries, report_interval=1.0)
        spec_bytes = _execute.dumps_spec(spec)
        self._preflight(spec_bytes, identity)

        dm = self._open_store(store)
        session = stored = None
        if dm is not None:
            stored = dm.stored_keys() if resume else None
            session = dm.session(run_id=run_id, task=identity, version=version)
        run = Run(run_id=run_id, name=name or identity.rsplit(".", 1)[-1], total=total,
                  ordered=ordered, buffersize=buffersize, errors=errors,
                  input_open=items is None)
        if items is None:
            run._total = None
        bar = TerminalBar(run.name, total) if want_bar(progress) else None
        fixed = None if batch_size == "auto" else batch_size
        sizer = BatchSizer(fixed)
        feeder = Feeder(run, client=self.client, items=items, spec_bytes=spec_bytes,
                        identity=f"{identity}:{version!r}", store_session=session,
                        stored_keys=stored, sizer=sizer, threads=self.nthreads, retries=retries,
                        progress_bar=bar, plot=plot, farm_plugin=self._plugin)
        feeder.on_end = lambda: self._end_run(run, session, spec.is_class)
        run._feeder = feeder
        with self._lock:
            self._check_open()
            self._runs[run_id] = run
            feeder.start()
        logger.debug("run %s started (%s)", run_id, identity)
        return run

    def _preflight(self, spec_bytes: bytes, identity: str) -> None:
        """Check that every worker can load the task before the first item is sent."""
        try:
            infos = self.client.run(_execute.check_worker, spec_bytes, on_error="return")
        except Exception as exc:
            logger.debug("preflight skipped: %r", exc)
            return
        for worker, info in infos.items():
            if isinstance(info, BaseException):
                raise WorkerImportError(
                    f"worker {worker} cannot run daskfarm tasks ({type(info).__name__}: {info}); "
                    "install daskfarm (same version as this client) on every worker"
                )
            if info.get("error"):
                module = info.get("module") or identity.rsplit(".", 1)[0]
                raise WorkerImportError(
                    f"worker {worker} cannot load the task {identity!r}: {info['error']}. "
                    f"Install the module {module!r} on every worker, put it on their "
                    "PYTHONPATH, or send it with farm.client.upload_file(...)."
                )

    def _open_store(self, store: Any):
        if store is None:
            return None
        from daskfarm.store import DataManager

        if isinstance(store, DataManager):
            return store
        dm = DataManager(store)
        self._owned_stores.append(dm)
        return dm

    def _end_run(self, run: Run, session: Any, is_class: bool) -> None:
        """Called by the feeder as the run ends: close its shard and the workers' copies."""
        if session is not None:
            session.close()
        if self._closed_client():
            return
        try:
            self.client.run(_execute.close_run, run.run_id, on_error="ignore")
        except Exception:
            logger.debug("could not tell the workers that run %s ended", run.run_id,
                         exc_info=True)

    def _closed_client(self) -> bool:
        return self.client.status in ("closing", "closed")

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
                if cancel or run.status == "suspended":
                    # a suspended run cannot be drained: it would wait forever
                    run.cancel()
                else:
                    try:
                        run.wait()
                    except Exception as exc:
                        error = error or exc
        except BaseException:
            for run in self._runs.values():
                run._request_cancel()
            raise
        finally:
            self._shutdown()
        if error is not None:
            raise error

    def _shutdown(self) -> None:
        for run in self._runs.values():
            run._request_cancel()
        for run in self._runs.values():
            if run._feeder is not None and run._feeder.is_alive():
                run._feeder.join(timeout=30)
        for topic in (SUMMARY_TOPIC, CONTROL_TOPIC):
            try:
                self.client.unsubscribe_topic(topic)
            except Exception:
                pass
        for dm in self._owned_stores:
            dm.close()
        self._conn.close()
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        logger.debug("farm closed")

    def __enter__(self) -> Farm:
        self._check_open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn("unclosed Farm: use `with Farm() as farm:` or call farm.close()",
                          ResourceWarning, stacklevel=1)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._runs)} runs"
        return f"<Farm {self.client.scheduler.address if not self._closed else ''} {state}>"


def _sigterm(signum, frame):
    # Python's default SIGTERM ends the process on the spot, losing the store's last second
    # of results; as SystemExit it unwinds `with Farm()` like Ctrl-C does.
    raise SystemExit(128 + signum)


def _catch_sigterm():
    """Turn SIGTERM into SystemExit while a Farm is open, if nobody else handles it."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None
    signal.signal(signal.SIGTERM, _sigterm)
    return signal.SIG_DFL


def _check_task(task: Any) -> None:
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


def _check_positive(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise FarmValueError(
            f"{name} must be a positive whole number (or None for the default), not {value!r}"
        )
    return value


def _qualified_name(task: Any) -> str:
    module = getattr(task, "__module__", None) or "task"
    qualname = getattr(task, "__qualname__", None) or type(task).__qualname__
    return f"{module}.{qualname}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text)[:40] or "task"
