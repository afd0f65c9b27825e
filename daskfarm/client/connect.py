"""Turning ``Farm(address)`` into a Client, and knowing what the Farm must close.

``None`` starts a LocalCluster with ``direct_to_workers`` on the client and Dask's default
``worker-saturation`` (1.1). Measured here, ``inf`` was 2.6-2.9x faster with one
item per task, but a farm batches short items: with batches, ``inf`` let the scheduler pile
several batches onto one worker while the other idled, and measured 53% of the 2-core limit on
10 ms items against 78% at 1.1 (bench/README.md).
A string is a scheduler address; a ``Client`` or any cluster object is borrowed, never closed.

The LocalCluster's workers start without running the client's script (multiprocessing's
spawn would run it in every worker, with all its imports, before the worker could work: start-up
that grew with the script's imports times the workers). They import it only if a pickle needs
it (daskfarm.worker.lazymain); bench/README.md has the start-up figures.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dask
from distributed import Client, LocalCluster

from daskfarm import _distributed, config
from daskfarm._protocol import MAIN_PATH_ENV
from daskfarm.client.guard import check_main_guard
from daskfarm.client.options import check_seconds
from daskfarm.exceptions import (
    FarmConnectionError,
    FarmValueError,
)

logger = logging.getLogger(__name__)

#: Dask settings for the LocalCluster a Farm starts (see the module docstring).
LOCAL_CLUSTER_CONFIG = {
    # the farm never spills: results leave the workers as soon as a batch is done
    "distributed.worker.memory.spill": False,
}

#: Settings a Farm's own LocalCluster uses (``daskfarm.local.quiet``, on by default) where
#: the user's Dask config did not change them.
#: Distributed's defaults wake the scheduler and every worker 50 times a second (the tick),
#: sample system metrics twice a second and check worker memory ten times a second: about
#: 0.1 of a core on an idle 2-core farm, taken from the tasks. These keep the dashboard's
#: graphs and the memory limit alive at a fraction of that. The statistical profiler
#: (the dashboard's Profile page) samples every running task 100 times a second, which cost
#: 3% of the tasks' own CPU time on 10 ms items (bench/README.md); set
#: ``distributed.worker.profile.enabled: true`` to have it back.
QUIET_DEFAULTS = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "500ms",
}


def local_cluster_config() -> dict:
    """The Dask settings to start a Farm's LocalCluster with: :data:`LOCAL_CLUSTER_CONFIG`,
    and with ``daskfarm.local.quiet`` each of :data:`QUIET_DEFAULTS` where the user's config
    still holds Dask's default."""
    settings = dict(LOCAL_CLUSTER_CONFIG)
    if not config.get("local.quiet"):
        return settings
    shipped = dask.config.merge(*dask.config.defaults)
    for key, quiet in QUIET_DEFAULTS.items():
        current = dask.config.get(key, None)
        if current is not None and current == dask.config.get(key, None, config=shipped):
            settings[key] = quiet
    return settings


@dataclass
class Connection:
    client: Client
    cluster: Any = None
    owns_client: bool = False
    owns_cluster: bool = False
    #: the Farm's own LocalCluster started without a dashboard: no farm page either
    no_dashboard: bool = False

    def close(self) -> None:
        if self.owns_client:
            self.client.close()
        if self.owns_cluster and self.cluster is not None:
            self.cluster.close()


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_n_workers(n_workers: int | None) -> int:
    """Brian's pool-size rule: None/0 = one per CPU, -k = all but k CPUs, k > 0 = k."""
    cpus = cpu_count()
    if n_workers is None or n_workers == 0:
        return cpus
    if not isinstance(n_workers, int):
        raise FarmValueError(f"n_workers must be an integer, not {n_workers!r}")
    n = n_workers if n_workers > 0 else cpus + n_workers
    if n < 1:
        raise FarmValueError(
            f"n_workers={n_workers} leaves no worker on this machine's {cpus} CPUs; use "
            f"n_workers=0 (all CPUs), a negative number above -{cpus}, or a positive count"
        )
    return n


def connect(address: Any, *, n_workers: int | None = None, threads_per_worker: int | None = None,
            processes: bool | None = None, security: Any = None, dashboard: bool | None = None,
            timeout: float | str | None = None, cluster_kwargs: dict | None = None) -> Connection:
    """A :class:`Connection` for ``Farm(address)``; arguments left None come from the config
    (``daskfarm.local.*`` for a LocalCluster, ``daskfarm.connect.timeout``)."""
    if address is None:
        return _start_local(config.get("local.n-workers", n_workers),
                            config.get("local.threads-per-worker", threads_per_worker),
                            config.get("local.processes", processes), security,
                            config.get("local.dashboard", dashboard), cluster_kwargs or {})
    if cluster_kwargs:
        raise FarmValueError(
            f"{', '.join(sorted(cluster_kwargs))}: LocalCluster arguments, but Farm(address) "
            "connects to an existing cluster; configure the workers where they are started"
        )
    if isinstance(address, Client):
        return Connection(client=address)
    if isinstance(address, str):
        seconds = check_seconds("timeout", "connect.timeout", timeout, allow_none=False)
        return Connection(client=_client_for_address(address, security, seconds),
                          owns_client=True)
    if hasattr(address, "scheduler_address"):
        try:
            client = Client(address, security=security, set_as_default=False,
                            direct_to_workers=False)
        except OSError as exc:
            raise FarmConnectionError(
                f"cannot connect to the cluster {address!r} at {address.scheduler_address}: "
                f"{exc}. Is it running?"
            ) from exc
        return Connection(client=client, cluster=address, owns_client=True)
    raise FarmValueError(
        f"Farm(address={address!r}) is not something to connect to: pass None (a LocalCluster "
        "on this machine), a scheduler address such as 'tcp://host:8786', a distributed.Client "
        "or a Dask cluster object"
    )


def _start_local(n_workers, threads_per_worker, processes, security, dashboard,
                 cluster_kwargs) -> Connection:
    n = resolve_n_workers(n_workers)
    check_main_guard(processes=bool(processes))  # one clear error, not a flood per worker
    kwargs = {
        "n_workers": n,
        "threads_per_worker": threads_per_worker,
        "processes": processes,
        "dashboard_address": "127.0.0.1:0" if dashboard else None,
    }
    if processes:
        # in-process workers talk over inproc://, where a host makes the scheduler fail
        kwargs["host"] = "127.0.0.1"
    if security is not None:
        kwargs["security"] = security
    kwargs.update(cluster_kwargs)
    with dask.config.set(local_cluster_config()), workers_skip_script():
        cluster = LocalCluster(**kwargs)
        _distributed.keep_restarting_nannies(cluster)  # hard stops restart workers
        try:
            client = Client(cluster, set_as_default=False, direct_to_workers=True)
        except BaseException:
            cluster.close()
            raise
    logger.info("started a LocalCluster with %d workers at %s", n, cluster.scheduler_address)
    return Connection(client=client, cluster=cluster, owns_client=True, owns_cluster=True,
                      no_dashboard=not dashboard)


@contextlib.contextmanager
def workers_skip_script() -> Iterator[None]:
    """Worker processes spawned meanwhile do not run the client's script at start.

    Spawn runs the parent's ``__main__`` in the child by its file path, unless the module's
    spec is named ``__main__`` (as for ``python -m pkg``), in which case it runs nothing: the
    spec says so while the cluster starts its workers, and the script's path goes to the
    environment for the rare worker that needs it later. A worker process restarted after
    this (a hard stop) runs the script as spawn always did.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None or getattr(main, "__spec__", None) is not None:
        yield  # an interactive session, or python -m: spawn runs no script anyway
        return
    import importlib.machinery

    os.environ[MAIN_PATH_ENV] = os.path.abspath(path)
    main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    try:
        yield
    finally:
        main.__spec__ = None


def _probe(address: str, security: Any, timeout: float) -> None:
    """Ask the address for its identity, with a deadline on every step.

    ``Client(address)`` waits forever on a port that accepts connections but never answers
    (an HTTP server, a stuck process); this probe turns that into a prompt error.
    """
    import asyncio

    from distributed.comm import connect as comm_connect
    from distributed.security import Security
    from distributed.utils import wait_for

    async def probe() -> Any:
        # no Security given: Dask's own (distributed.comm.tls.* config), as Client would use
        args = (security or Security()).get_connection_args("client")
        comm = await comm_connect(address, timeout=timeout, **args)
        try:
            await wait_for(comm.write({"op": "identity", "reply": True}), timeout)
            return await wait_for(comm.read(), timeout)
        finally:
            comm.abort()

    async def bounded() -> Any:
        return await asyncio.wait_for(probe(), 2 * timeout)

    # a fresh thread: asyncio.run cannot run inside a notebook's own event loop
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="daskfarm-probe")
    try:
        answer = pool.submit(asyncio.run, bounded()).result(timeout=3 * timeout + 5)
    finally:
        pool.shutdown(wait=False)
    if not isinstance(answer, dict) or answer.get("type") != "Scheduler":
        raise ValueError(f"it answered {str(answer)[:80]!r}, which is not a Dask scheduler")


def _client_for_address(address: str, security: Any, timeout: float) -> Client:
    from distributed.security import Security

    if address.startswith("tls://") and (security or Security()).get_connection_args(
            "client").get("ssl_context") is None:
        raise FarmConnectionError(
            f"{address!r} is a TLS scheduler, and no certificates were given: pass "
            "security=distributed.security.Security(tls_ca_file='ca.pem', "
            "tls_client_cert='cert.pem', tls_client_key='key.pem', require_encryption=True) "
            "(the daskfarm command: --tls-ca-file, --tls-cert, --tls-key), or set Dask's "
            "distributed.comm.tls.* config"
        )
    try:
        _probe(address, security, timeout)
        return Client(address, security=security, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, concurrent.futures.TimeoutError) as exc:
        raise FarmConnectionError(
            f"cannot reach a Dask scheduler at {address!r} within {timeout:g} s ({exc}). Check "
            "that `dask scheduler` runs there and that the address and port are right (the "
            "scheduler port, usually 8786, not the dashboard's 8787); for a TLS scheduler pass "
            "security=distributed.security.Security(...)."
        ) from exc
    except ValueError as exc:
        raise FarmConnectionError(
            f"{address!r} is not a scheduler address ({exc}); use 'tcp://host:8786' or "
            "'tls://host:8786' for the scheduler of a running `dask scheduler`"
        ) from exc


def capacity(client: Client, cluster: Any) -> int:
    """Worker threads to size a run's in-flight window for.

    The threads connected now; for a cluster with ``adapt()``, at least its maximum, so that
    its scheduler sees enough queued work to scale up (a window sized to the workers of the
    moment would keep an adaptive cluster at its minimum).
    """
    try:
        threads = client.nthreads()
    except Exception:  # a closing client: the run is ending anyway
        return 1
    total = max(1, sum(threads.values()))
    maximum = _distributed.adaptive_maximum(cluster)
    if maximum is not None:
        total = max(total, maximum * max(threads.values(), default=1))
    return total
