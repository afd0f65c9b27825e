"""Turning ``Farm(address)`` into a Client, and knowing what the Farm must close.

``None`` starts a LocalCluster with settings measured to help a farm (research/perf-baseline.md):
``worker-saturation: inf`` (the farm's own window already bounds what reaches the workers, and
it is 2.6-2.9x faster on short tasks) and ``direct_to_workers`` on the client.
A string is a scheduler address; a ``Client`` or any cluster object is borrowed, never closed.

Also the preflight (:func:`preflight`): before a run's first item, every worker must be able
to import daskfarm and the task's module, and run the same Python, dask, distributed and
daskfarm as the client (``daskfarm.preflight.version-mismatch`` says how strict).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import pickle
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import dask
from distributed import Client, LocalCluster

from daskfarm import config
from daskfarm.exceptions import (
    FarmConnectionError,
    FarmError,
    FarmValueError,
    FarmWarning,
    WorkerImportError,
)

logger = logging.getLogger(__name__)

#: Dask settings for the LocalCluster a Farm starts (see the module docstring).
LOCAL_CLUSTER_CONFIG = {
    "distributed.scheduler.worker-saturation": float("inf"),
    # the farm never spills: results leave the workers as soon as a batch is done
    "distributed.worker.memory.spill": False,
}


@dataclass
class Connection:
    client: Client
    cluster: Any = None
    owns_client: bool = False
    owns_cluster: bool = False

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
        seconds = config.get_seconds("connect.timeout", timeout)
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
    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        cluster = LocalCluster(**kwargs)
        try:
            client = Client(cluster, set_as_default=False, direct_to_workers=True)
        except BaseException:
            cluster.close()
            raise
    logger.info("started a LocalCluster with %d workers at %s", n, cluster.scheduler_address)
    return Connection(client=client, cluster=cluster, owns_client=True, owns_cluster=True)


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


# -- preflight ----------------------------------------------------------------------------

#: The packages whose versions must agree between the client and every worker.
CHECKED = ("python", "dask", "distributed", "daskfarm")
VERSION_POLICIES = ("raise", "warn", "ignore")


class WorkerVersionError(WorkerImportError):
    """A worker (or the scheduler) whose Python, dask, distributed or daskfarm release differs
    from the client's.

    ``mismatches`` holds ``(process, package, its_version, client_version)`` tuples, the process
    being ``"worker tcp://..."`` or ``"scheduler tcp://..."``.
    """

    def __init__(self, message: str, mismatches: list[tuple[str, str, str, str]]):
        super().__init__(message)
        self.mismatches = mismatches


class SchedulerImportError(FarmError, ImportError):
    """A scheduler that cannot import daskfarm: it could not unpickle a farm's tasks."""


class VersionMismatchWarning(FarmWarning):
    """A worker whose versions differ from the client's at patch level only."""


def client_versions() -> dict[str, str]:
    """The versions the workers are compared with (read at call time)."""
    import distributed

    import daskfarm

    return {"python": ".".join(map(str, sys.version_info[:3])), "dask": dask.__version__,
            "distributed": distributed.__version__, "daskfarm": daskfarm.__version__}


def _release(version: str) -> tuple[int, ...] | None:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version).release
    except (InvalidVersion, TypeError):
        return None


def compare_versions(worker: dict, client: dict) -> list[tuple[str, str, str, bool]]:
    """``(package, worker_version, client_version, serious)`` for each difference.

    Serious: the first two numbers differ (Python 3.11 vs 3.12: functions pickled by value and
    bytecode do not travel; dask 2026.7 vs 2026.8: the wire protocol and daskfarm's use of
    distributed internals may differ), or a version cannot be parsed. Otherwise (3.11.7 vs
    3.11.9, 2026.8.0 vs 2026.8.1) the difference is a patch level.

    Examples
    --------
    >>> compare_versions({"dask": "2026.8.1"}, {"dask": "2026.8.0"})
    [('dask', '2026.8.1', '2026.8.0', False)]
    >>> compare_versions({"python": "3.12.1"}, {"python": "3.11.7"})
    [('python', '3.12.1', '3.11.7', True)]
    """
    out = []
    for name in CHECKED:
        theirs, ours = worker.get(name), client.get(name)
        if theirs is None or ours is None or str(theirs) == str(ours):
            continue
        a, b = _release(str(theirs)), _release(str(ours))
        serious = a is None or b is None or a[:2] != b[:2]
        out.append((name, str(theirs), str(ours), serious))
    return out


def check_versions(infos: dict[str, dict], policy: str | None = None) -> None:
    """Raise or warn about workers whose versions differ from this client's.

    ``infos`` maps ``"worker <address>"`` (or ``"scheduler <address>"``) to what
    :func:`daskfarm._execute.check_worker` returned there.
    """
    policy = config.get("preflight.version-mismatch", policy)
    if policy not in VERSION_POLICIES:
        raise FarmValueError(f"daskfarm.preflight.version-mismatch must be one of "
                             f"{', '.join(VERSION_POLICIES)}, not {policy!r}")
    if policy == "ignore":
        return
    ours = client_versions()
    serious: list[tuple[str, str, str, str]] = []
    minor: list[tuple[str, str, str, str]] = []
    for where, info in sorted(infos.items()):
        for name, theirs, mine, grave in compare_versions(info, ours):
            (serious if grave and policy == "raise" else minor).append(
                (where, name, theirs, mine))
    if serious:
        raise WorkerVersionError(
            f"{_describe(serious)}. Install the client's versions on every machine (e.g. "
            f"pip install {_pins(serious)}), or run the client in the workers' environment; "
            "to go on anyway set the dask config daskfarm.preflight.version-mismatch to "
            '"warn" (DASK_DASKFARM__PREFLIGHT__VERSION_MISMATCH=warn).', serious)
    if minor:
        warnings.warn(f"{_describe(minor)}; results should not differ, but install the same "
                      "versions everywhere to be sure", VersionMismatchWarning, stacklevel=4)


def _describe(found: list[tuple[str, str, str, str]], most: int = 4) -> str:
    by_process: dict[str, list[str]] = {}
    for where, name, theirs, mine in found:
        by_process.setdefault(where, []).append(f"{name} {theirs} (this client: {mine})")
    lines = [f"{w} has {', '.join(d)}" for w, d in list(by_process.items())[:most]]
    if len(by_process) > most:
        lines.append(f"and {len(by_process) - most} more")
    return "; ".join(lines)


def _pins(found: list[tuple[str, str, str, str]]) -> str:
    pins = sorted({f"'{name}=={mine}'" for _, name, _, mine in found if name != "python"})
    return " ".join(pins) if pins else "the same Python"


def preflight(client: Client, spec_bytes: bytes | None, identity: str = "", *,
              scheduler: bool = False) -> dict[str, dict]:
    """Check every worker now connected: daskfarm and the task import, versions agree.

    ``spec_bytes`` is the run's pickled task (None: only daskfarm and the versions);
    ``scheduler=True`` checks the scheduler too (it unpickles every task, so it needs
    daskfarm). Returns what each process reported, keyed ``"worker <address>"``; raises
    :class:`WorkerImportError`, :class:`SchedulerImportError` or :class:`WorkerVersionError`
    naming the process. Workers that join later are checked by the next run's preflight.
    """
    from daskfarm import _execute

    if spec_bytes is None:
        spec_bytes = pickle.dumps(None)  # loads anywhere: only daskfarm and versions checked
    infos: dict[str, dict] = {}
    if scheduler:
        address = client.scheduler.address
        try:
            infos[f"scheduler {address}"] = client.run_on_scheduler(_execute.check_worker,
                                                                    spec_bytes)
        except ImportError as exc:
            raise SchedulerImportError(
                f"the scheduler at {address} cannot import daskfarm ({type(exc).__name__}: "
                f"{exc}). A Dask scheduler unpickles every task, so install daskfarm "
                f"{client_versions()['daskfarm']} (the client's version) where it runs, and "
                "start it with `dask scheduler --preload daskfarm.dashboard` for the /farm panel."
            ) from exc
        except Exception as exc:  # run_on_scheduler refused (distributed.scheduler.pickle)
            logger.debug("scheduler preflight skipped: %r", exc)
    try:
        replies = client.run(_execute.check_worker, spec_bytes, on_error="return")
    except Exception as exc:  # a worker leaving mid-call, a closing client: not a verdict
        logger.debug("preflight skipped: %r", exc)
        replies = {}
    for worker, info in sorted(replies.items()):
        if isinstance(info, BaseException):
            raise WorkerImportError(
                f"worker {worker} cannot run daskfarm tasks ({type(info).__name__}: {info}); "
                f"install daskfarm {client_versions()['daskfarm']} (the client's version) on "
                "every worker"
            )
        if info.get("error"):
            module = info.get("module") or identity.rsplit(".", 1)[0]
            raise WorkerImportError(
                f"worker {worker} cannot load the task {identity!r}: {info['error']}. "
                f"Install the module {module!r} on every worker, put it on their "
                "PYTHONPATH, or send it with farm.client.upload_file(...)."
            )
        infos[f"worker {worker}"] = info
    check_versions(infos)
    return infos
