"""Every use of distributed's worker- and scheduler-side internals outside the dashboard.

A distributed upgrade that moves these breaks this file only (the dashboard mount has its own,
``daskfarm/dashboard/_mount.py``). Each helper is tiny and documented with what it relies on.
Worker code, scheduler code and client code all call in here; the module imports only
``distributed.worker`` at import time, so a worker stays light.
"""

from __future__ import annotations

import math
import types
from typing import Any

from distributed.worker import get_worker, thread_state

__all__ = [
    "adaptive_maximum",
    "add_stream_handler",
    "call_periodically",
    "cancel_keys",
    "client_ids",
    "current_key",
    "current_task_cancelled",
    "current_worker",
    "forget_events",
    "has_handler",
    "log_worker_event",
    "periodic",
    "pop_default_client",
    "processing_on",
    "push_default_client",
    "reset_current_client",
    "restart_worker",
    "run_keys",
    "run_tasks_executing",
    "scheduler_id",
    "scheduler_rpc",
    "send_to_worker",
    "set_current_client",
    "wire_key",
    "worker_threads",
]


# Worker-side task states in which the running code's result is already thrown away.
_DEAD_STATES = frozenset({"cancelled", "released", "forgotten"})


def current_worker():
    """The Worker running the calling thread's task, or None outside a worker."""
    try:
        return get_worker()
    except ValueError:
        return None


def current_task_cancelled() -> bool:
    """True if the dask task running in this thread was cancelled or released.

    Relies on ``thread_state.key`` (set by the worker around each task) and the worker state
    machine's ``tasks`` dict: a cancelled future moves its key to "cancelled" (or drops it)
    while the thread keeps running.
    """
    running = _running_task()
    if running is None:
        return False
    tasks, key = running
    ts = tasks.get(key)
    return ts is None or ts.state in _DEAD_STATES


def _running_task():
    """``(worker.state.tasks, key)`` of the task running in this thread, or None outside one."""
    key = getattr(thread_state, "key", None)
    worker = current_worker() if key is not None else None
    return None if worker is None else (worker.state.tasks, key)


def task_cancelled_probe():
    """A check of :func:`current_task_cancelled` for a loop inside one task: a callable
    costing two lookups, for a batch runner to call between its items.

    Resolves the worker, the key and its ``TaskState`` once; the probe is then true once the
    state leaves "executing" for a dead one or the worker drops (or replaces) the key.
    """
    running = _running_task()
    if running is None:
        return _never
    tasks, key = running
    ts = tasks.get(key)
    if ts is None:
        return _always

    def probe() -> bool:
        return ts.state in _DEAD_STATES or tasks.get(key) is not ts

    return probe


def _never() -> bool:
    return False


def _always() -> bool:
    return True


def current_key() -> Any:
    """The dask key of the task running in this thread (None outside a task)."""
    return getattr(thread_state, "key", None)


def log_worker_event(topic: str, msg: dict) -> None:
    """Send ``msg`` to the scheduler on ``topic`` (fire and forget, thread-safe)."""
    worker = current_worker()
    if worker is not None:
        worker.log_event(topic, msg)


def forget_events(scheduler, topic: str) -> None:
    """Drop the events the scheduler keeps on ``topic`` (what ``get_events`` returns).

    The broker keeps the last ``distributed.admin.low-level-log-length`` events of every
    topic (1,000). A progress event carries every message of 0.2 s from one worker process,
    so 1,000 of them held 200,000 messages: 147 MiB on a scheduler after a run of 200,000
    items (bench/sched_memory.py). Relies on ``Scheduler._broker.truncate(topic)``.
    """
    broker = getattr(scheduler, "_broker", None)
    if broker is not None:
        broker.truncate(topic)


def wire_key(key: Any) -> Any:
    """A dask key in a msgpack-friendly form (tuples become lists)."""
    if isinstance(key, tuple):
        return list(key)
    return key


def call_periodically(worker, fn, interval: float) -> None:
    """Run ``fn()`` every ``interval`` seconds on the worker's event loop, until it closes.

    Thread-safe: may be called from a task thread. The callback is kept in the worker's
    ``periodic_callbacks``, which the worker stops when it closes.
    """
    from tornado.ioloop import PeriodicCallback

    def start() -> None:
        pc = PeriodicCallback(fn, interval * 1000)
        worker.periodic_callbacks[f"daskfarm-{id(fn)}"] = pc
        pc.start()

    worker.loop.add_callback(start)


def send_to_worker(scheduler, address: str, msg: dict) -> bool:
    """Send ``msg`` on the scheduler's batched stream to one worker (False if it is gone)."""
    comm = scheduler.stream_comms.get(address)
    if comm is None:
        return False
    comm.send(msg)
    return True


def add_stream_handler(worker, op: str, handler) -> None:
    """Let the scheduler call ``handler(**msg)`` on this worker with ``{"op": op, ...}``.

    ``Worker.stream_handlers`` is consulted per message, so adding one at any time works.
    """
    if op not in worker.stream_handlers:
        worker.stream_handlers[op] = handler


def scheduler_rpc(worker, op: str, **kwargs: Any) -> Any:
    """Call the scheduler handler ``op`` from a task thread and wait for the answer."""
    from distributed.utils import sync

    return sync(worker.loop, getattr(worker.scheduler, op), **kwargs)


def cancel_keys(scheduler, keys, reason: str) -> int:
    """Cancel ``keys`` on the scheduler for every client that wants them.

    ``stimulus_cancel`` returns silently for an unknown client id, so the id is taken from the
    task's own ``who_wants``; ``force=True`` cancels for every client at once and tells them
    (their futures become "cancelled").
    """
    by_client: dict[str, list] = {}
    for key in keys:
        ts = scheduler.tasks.get(key)
        if ts is None or not ts.who_wants:
            continue
        client = next(iter(ts.who_wants)).client_key
        by_client.setdefault(client, []).append(key)
    for client, client_keys in by_client.items():
        scheduler.stimulus_cancel(client_keys, client, force=True, reason=reason, msg=reason)
    return sum(len(k) for k in by_client.values())


# -- scheduler side ----------------------------------------------------------------------


def periodic(fn, interval: float):
    """Start calling ``fn()`` every ``interval`` seconds on the running event loop; errors
    are logged (``log_errors``). Returns the callback, to ``stop()`` it."""
    from distributed.utils import log_errors
    from tornado.ioloop import PeriodicCallback

    def call() -> None:
        with log_errors():
            fn()

    pc = PeriodicCallback(call, interval * 1000)
    pc.start()
    return pc


def processing_on(scheduler, key) -> str:
    """The address of the worker a task is processing on ("" if none)."""
    ts = scheduler.tasks.get(key)
    return ts.processing_on.address if ts is not None and ts.processing_on else ""


def worker_threads(scheduler) -> dict[str, int]:
    """Threads of each connected worker, by address."""
    return {address: ws.nthreads for address, ws in scheduler.workers.items()}


def client_ids(scheduler) -> set[str]:
    """Ids of the clients connected to the scheduler now."""
    return set(scheduler.clients)


def _of_run(key, run_id: str) -> bool:
    return type(key) is tuple and bool(key) and key[0] == run_id


def run_tasks_executing(worker, run_id: str) -> int:
    """Tasks of a run (keys ``(run_id, n)``) that a worker executes now (read on its loop).

    ``WorkerState.executing`` and ``long_running`` hold a task from the moment the worker
    decides to run it until the event loop has taken its outcome, cancelled tasks whose
    thread still runs included: at every instant the loop sees, a superset of the threads
    in ``Worker.active_threads`` and of the batches the batch runner counts.
    """
    state = worker.state
    return sum(1 for tasks in (state.executing, state.long_running) for ts in tasks
               if _of_run(ts.key, run_id))


def run_keys(scheduler, run_id: str) -> list:
    """Every task key of a run that the scheduler knows (keys are ``(run_id, n)``)."""
    return [k for k in scheduler.tasks if _of_run(k, run_id)]


def has_handler(name: str, dask_scheduler=None) -> bool:
    """Does the scheduler serve the handler ``name``? (``client.run_on_scheduler``.)"""
    return name in dask_scheduler.handlers


async def restart_worker(scheduler, address: str, *, reason: str, timeout: float = 1.0) -> str:
    """Kill one worker process through its nanny, which starts a new one; blame none of its
    tasks.

    The nanny gives the process ``0.8 * timeout`` seconds to close, then kills it: a thread
    stuck in a task does not hold it up for long (``Scheduler.restart_workers`` waits 4 s).
    A worker that dies makes the scheduler count every task processing on it as "suspicious",
    and a task that reaches ``distributed.scheduler.allowed-failures`` fails with KilledWorker;
    this death is ours (a hard stop), not the tasks' fault, so their counts are lowered by one
    first: the removal raises them back to where they were.
    Returns "OK", "no nanny" (nothing was done) or "gone".
    """
    from distributed.core import rpc

    ws = scheduler.workers.get(address)
    if ws is None:
        return "gone"
    if not ws.nanny:
        return "no nanny"
    for ts in ws.processing:
        ts.suspicious -= 1
    async with rpc(ws.nanny, connection_args=scheduler.connection_args) as nanny:
        await nanny.kill(timeout=timeout, reason=f"daskfarm-{reason.replace(' ', '-')}")
    return "OK"


# -- client side -------------------------------------------------------------------------


def keep_restarting_nannies(cluster) -> None:
    """Stop a SpecCluster (LocalCluster) from closing the nanny of a worker that a hard stop
    restarts.

    On every worker removal, ``SpecCluster._update_worker_status`` schedules a check
    ``distributed.deploy.lost-worker-timeout`` (15 s) later that closes the worker's nanny for
    good if no worker of that name is connected *at that instant*. Hard stops restart worker
    processes every few seconds; a check of an earlier removal that lands while a later
    restart is under way closed both nannies and left the cluster with no workers (found by
    bench/stop.py --repeat 5). The nannies of a Farm's own cluster restart their workers
    themselves, so removals only update the cluster's view (``Cluster``'s own handler).
    """
    from distributed.deploy.cluster import Cluster

    if not hasattr(cluster, "worker_spec"):  # not a SpecCluster: nothing closes nannies
        return
    cluster._update_worker_status = types.MethodType(Cluster._update_worker_status, cluster)


def scheduler_id(client) -> str | None:
    """The id of the scheduler the client is connected to, as of its last (re)connection.

    Relies on ``Client._scheduler_identity``, which the client refreshes when it connects;
    reading it sends nothing (safe while the scheduler is gone).
    """
    return (getattr(client, "_scheduler_identity", None) or {}).get("id")


def adaptive_maximum(cluster) -> int | None:
    """The worker maximum of a cluster under ``adapt()`` (None: not adaptive, or unbounded).

    Relies on ``Cluster._adaptive`` (an ``Adaptive`` with ``maximum``), set by ``adapt()``.
    """
    maximum = getattr(getattr(cluster, "_adaptive", None), "maximum", None)
    if isinstance(maximum, (int, float)) and 0 < maximum < math.inf:
        return int(maximum)
    return None


def push_default_client(client) -> int:
    """Make ``client`` the default Dask client (as ``Client()`` is); return a handle.

    Relies on ``distributed.client._global_clients`` (index -> client; the highest live index
    is the default) and ``_global_client_index``. The entry is added directly, not through
    ``_set_global_client``, which would also flip a borrowed client's ``_set_as_default``.
    """
    from distributed import client as _client

    handle = _client._global_client_index[0]
    _client._global_clients[handle] = client
    _client._global_client_index[0] += 1
    return handle


def pop_default_client(client, handle: int) -> None:
    """Undo :func:`push_default_client`: the previous default is the default again."""
    from distributed import client as _client

    if _client._global_clients.get(handle) is client:
        del _client._global_clients[handle]


def set_current_client(client) -> Any:
    """Make ``client`` the current one in this context, as ``with Client():`` does.

    Relies on ``distributed.client._current_client`` (a ContextVar that wins over the
    global default); returns the token for :func:`reset_current_client`.
    """
    from distributed import client as _client

    return _client._current_client.set(client)


def reset_current_client(token: Any) -> None:
    from distributed import client as _client

    try:
        _client._current_client.reset(token)
    except ValueError:  # entered in another context (thread): nothing of ours to undo here
        pass
