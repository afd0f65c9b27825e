"""The preflight: before a run's first item, can every worker run it?

Every worker (and, for a cluster the Farm did not start, the scheduler) must be able to import
daskfarm and the task's module, and run the same Python, dask, distributed and daskfarm as the
client: Dask's maintainers count mismatched software among their users' most common errors. A
different release (the first two version numbers) raises :class:`WorkerVersionError`; a
patch-level difference warns; ``daskfarm.preflight.version-mismatch`` (raise, warn, ignore)
changes that.
"""

from __future__ import annotations

import logging
import pickle
import sys
import warnings

import dask
from distributed import Client

from daskfarm import config
from daskfarm.exceptions import (
    FarmValueError,
    SchedulerImportError,
    VersionMismatchWarning,
    WorkerImportError,
    WorkerVersionError,
)

logger = logging.getLogger(__name__)

#: The packages whose versions must agree between the client and every worker.
CHECKED = ("python", "dask", "distributed", "daskfarm")
VERSION_POLICIES = ("raise", "warn", "ignore")


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
    :func:`daskfarm.worker.execute.check_worker` returned there.
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
    from daskfarm.worker import execute

    if spec_bytes is None:
        spec_bytes = pickle.dumps(None)  # loads anywhere: only daskfarm and versions checked
    infos: dict[str, dict] = {}
    if scheduler:
        address = client.scheduler.address
        try:
            infos[f"scheduler {address}"] = client.run_on_scheduler(execute.check_worker,
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
        replies = client.run(execute.check_worker, spec_bytes, on_error="return")
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
