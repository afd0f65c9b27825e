"""Scale figures for one scheduler: its CPU per item, per Dask task and per progress event,
how the per-task cost grows with the number of workers, and the largest cluster it can feed.

Run from the repository root (about 5 minutes)::

    python bench/scale.py [--reps 3] [--items 10000] [--tasks 2000] [--workers 8,32,64]

The scheduler is a real ``dask scheduler`` subprocess (Dask's default settings, dashboard
on 127.0.0.1), so its CPU time (user + system, every thread, ``psutil``) is its own: no
client, worker or feeder shares the process. The Farm connects to it with
``Farm(address)`` and installs its plugin there, as on a cluster. Every figure is the
scheduler's CPU over the run minus its idle rate (measured just before, on the same
workers) times the run's wall time; medians of ``--reps``:

* per item, batched: ``--items`` 1 ms items with ``batch_size="auto"``, on 2 ``dask worker``
  processes x 1 thread (the tasks the scheduler saw are counted on it);
* per Dask task: ``--tasks`` no-ops with ``batch_size=1`` (one item per task, as daskfarm
  sends items of 50 ms or more), and raw Dask's ``client.map`` of the same no-ops;
* per task against the number of workers: the same at 8, 32 and 64 single-thread workers
  hosted as threads in one other process (``processes=False``'s thread workers, but with the
  scheduler still in a process of its own);
* per progress event: at the largest worker count, one item per worker for ``--seconds``,
  calling ``report(fraction, message)`` with a new message every 50 ms, against the same
  items that never report; the events are counted on the scheduler (the plugin's report()
  messages, and Dask's ``log_event`` batches that carried them), not assumed from the
  throttle (one message per item per 0.1 s at most when the message changes, one batch per
  worker every 0.2 s).

Projection: with 100 ms items (one per Dask task) and ``p`` progress events per item, one
scheduler core saturates at ``W_max = 0.1 s / (cpu_per_task(W) + p * cpu_per_event)``
workers, with the per-task cost measured at the largest worker count; the same with the
idle cost per worker (heartbeats) added to each worker's share is printed too.

The machine is shared: figures are CPU time (not wall), which noise moves less, but read them
as upper bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from distributed import as_completed

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
import _work

IDLE_SECONDS = 3.0
SETTLE = 0.5  # seconds inside each window after a run, for the last releases to arrive


# -- processes -----------------------------------------------------------------------------


def _env() -> dict:
    env = dict(os.environ)
    env.pop("DASKFARM_TOKEN", None)
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH), str(ROOT), env.get("PYTHONPATH", "")])
    return env


class DaskProcesses:
    """A ``dask scheduler`` and its workers as subprocesses on 127.0.0.1, each in a session of
    its own, stopped by PID (terminate, wait, kill). Also used by ``bench/sched_memory.py``."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.address = ""

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        with open(self.directory / log, "ab") as out:
            return subprocess.Popen([sys.executable, *args], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=_env(), start_new_session=True)

    def start_scheduler(self, extra: tuple[str, ...] = ()) -> str:
        info_file = self.directory / "scheduler.json"
        info_file.unlink(missing_ok=True)
        self.scheduler = self._spawn(
            ["-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(info_file),
             *extra], "scheduler.log")
        deadline = time.monotonic() + 60
        while True:
            try:
                self.address = json.loads(info_file.read_text())["address"]
                return self.address
            except (OSError, ValueError, KeyError):
                if self.scheduler.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the scheduler did not start:\n" + self.log()) from None
                time.sleep(0.1)

    @property
    def scheduler_pid(self) -> int:
        assert self.scheduler is not None
        return self.scheduler.pid

    def start_workers(self, n: int, nthreads: int = 1, nanny: bool = False) -> None:
        """``n`` ``dask worker`` processes."""
        for i in range(n):
            self.workers.append(self._spawn(
                ["-m", "dask", "worker", self.address, "--nthreads", str(nthreads),
                 "--name", f"proc-{len(self.workers)}", "--host", "127.0.0.1",
                 "--no-dashboard", *([] if nanny else ["--no-nanny"])], f"worker-{i}.log"))

    def start_thread_workers(self, n: int) -> None:
        """``n`` single-thread Workers in one process (``dask worker --no-nanny`` refuses
        ``--nworkers`` above 1: this script hosts them itself)."""
        self.workers.append(self._spawn([str(Path(__file__).resolve()), "--host-workers",
                                         self.address, str(n)], f"host-{n}.log"))

    def stop_workers(self) -> None:
        workers, self.workers = self.workers, []
        for proc in workers:
            stop(proc)

    def log(self) -> str:
        path = self.directory / "scheduler.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def close(self) -> None:
        try:
            self.stop_workers()
        finally:
            if self.scheduler is not None:
                stop(self.scheduler)
                self.scheduler = None

    def __enter__(self) -> DaskProcesses:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process's session, SIGKILL it 20 s later if it is still there."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=20)


def host_workers(address: str, n: int) -> None:
    """The body of ``--host-workers``: ``n`` single-thread Workers on one event loop."""
    from distributed import Worker

    async def main():
        workers = [Worker(address, nthreads=1, host="127.0.0.1", dashboard=False,
                          name=f"thread-{i}", memory_limit=0) for i in range(n)]
        await asyncio.gather(*workers)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await stopping.wait()
        await asyncio.gather(*(w.close() for w in workers), return_exceptions=True)

    asyncio.run(main())


def wait_workers(client, n: int, timeout: float = 120) -> None:
    """Until the scheduler sees exactly ``n`` workers."""
    deadline = time.monotonic() + timeout
    while len(client.nthreads()) != n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(client.nthreads())} workers, waiting for {n}")
        time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


# -- what the scheduler counts ---------------------------------------------------------------


def _counters(dask_scheduler) -> dict:
    """Progress messages the farm plugin handled, ``daskfarm-progress`` log_event batches,
    and tasks that reached memory (every prefix's cumulative count)."""
    plugin = dask_scheduler.plugins.get("daskfarm")
    topic = getattr(dask_scheduler, "_broker", None)
    topic = topic._topics.get("daskfarm-progress") if topic is not None else None
    return {
        "messages": getattr(plugin, "events", 0),
        "batches": topic.count if topic is not None else 0,
        "tasks": sum(tp.state_counts.get("memory", 0)
                     for tp in dask_scheduler.task_prefixes.values()),
    }


def counters(client) -> dict:
    return client.run_on_scheduler(_counters)


# -- tasks (pickled by value from __main__) ------------------------------------------------


def reporting_item(i, seconds, reporting):
    from daskfarm import report

    end = time.monotonic() + seconds
    step = 0
    while (now := time.monotonic()) < end:
        step += 1
        if reporting:  # a new message every 50 ms; never 1.0 (that one is always sent)
            report(min(0.99, 1 - (end - now) / seconds), f"step {step}")
        time.sleep(0.05)
    return i


# -- measurements --------------------------------------------------------------------------


def idle_rate(pid: int, seconds: float = IDLE_SECONDS) -> float:
    """The scheduler's CPU seconds per second with nothing running."""
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.perf_counter() - t0)


def window(farm, pid: int, idle: float, body) -> dict:
    """Run ``body()``; the scheduler's CPU beyond its idle rate, the wall time, and what the
    scheduler counted meanwhile."""
    before = counters(farm.client)
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    body()
    time.sleep(SETTLE)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - c0
    after = counters(farm.client)
    out = {k: after[k] - before[k] for k in after}
    out.update(cpu=cpu - idle * wall, raw_cpu=cpu, wall=wall)
    return out


def farm_run(farm, task, items, **kwargs):
    def body():
        summary = farm.map(task, items, progress=False, **kwargs).wait()
        assert summary.done == len(items), summary
    return body


def raw_map(client, n: int):
    """Raw Dask, the cheapest way: one ``client.map`` of every task."""
    def body():
        futures = client.map(_work.noop, range(n), pure=False)
        client.gather(futures)
        del futures[:]
    return body


def raw_stream(client, n: int, window: int):
    """Raw Dask as a stream is fed: ``window`` tasks in flight, one ``client.submit`` per
    finished one (as daskfarm's feeder submits each batch)."""
    def body():
        ac = as_completed([client.submit(_work.noop, i, pure=False)
                           for i in range(min(window, n))])
        submitted = min(window, n)
        for _ in ac:
            if submitted < n:
                ac.add(client.submit(_work.noop, submitted, pure=False))
                submitted += 1
    return body


def per_task_round(farm, pid: int, tasks: int) -> dict:
    idle = idle_rate(pid)
    farm_w = window(farm, pid, idle, farm_run(farm, _work.noop, range(tasks), batch_size=1))
    stream_w = window(farm, pid, idle, raw_stream(farm.client, tasks, 2 * farm.nthreads))
    map_w = window(farm, pid, idle, raw_map(farm.client, tasks))
    return {"idle": idle, "farm": farm_w["cpu"] / farm_w["tasks"],
            "stream": stream_w["cpu"] / stream_w["tasks"], "map": map_w["cpu"] / map_w["tasks"],
            "farm_rate": farm_w["tasks"] / farm_w["wall"]}


def progress_round(farm, pid: int, n_items: int, seconds: float) -> dict:
    idle = idle_rate(pid)
    out = {}
    for mode in ("silent", "report"):
        from functools import partial

        task = partial(reporting_item, seconds=seconds, reporting=mode == "report")
        out[mode] = window(farm, pid, idle,
                           farm_run(farm, task, range(n_items), batch_size=1,
                                    buffersize=n_items, name=f"scale-{mode}"))
    extra = out["report"]["cpu"] - out["silent"]["cpu"]
    messages = out["report"]["messages"] - out["silent"]["messages"]
    batches = out["report"]["batches"] - out["silent"]["batches"]
    return {"per_message": extra / messages, "per_batch": extra / max(batches, 1),
            "messages": messages, "batches": batches, "wall": out["report"]["wall"],
            "extra": extra}


# -- main ------------------------------------------------------------------------------------


def med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def span(rows: list[dict], key: str, scale: float = 1e6, spec: str = ".0f") -> str:
    values = [r[key] * scale for r in rows]
    return (f"{statistics.median(values):{spec}} "
            f"({min(values):{spec}}-{max(values):{spec}})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--items", type=int, default=10_000, help="1 ms items, batched")
    parser.add_argument("--tasks", type=int, default=2_000, help="no-ops with batch_size=1")
    parser.add_argument("--workers", default="8,32,64",
                        help="thread-worker counts (the 2-worker row uses 2 processes)")
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="length of each item of the progress runs")
    parser.add_argument("--host-workers", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.host_workers:
        host_workers(args.host_workers[0], int(args.host_workers[1]))
        return
    counts = [int(w) for w in args.workers.split(",") if w]

    from daskfarm import Farm

    batched, per_task, progress = [], {}, []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, DaskProcesses(tmp) as procs:
        address = procs.start_scheduler()
        pid = procs.scheduler_pid
        procs.start_workers(2)
        with Farm(address) as farm:
            wait_workers(farm.client, 2)
            farm.map(_work.sleep_1ms, range(500), progress=False).wait()  # warm up
            farm.map(_work.noop, range(200), batch_size=1, progress=False).wait()
            print(f"# scheduler {address} (pid {pid}); 2 dask worker processes x 1 thread",
                  flush=True)
            per_task[2] = []
            for rep in range(args.reps):
                idle = idle_rate(pid)
                w = window(farm, pid, idle, farm_run(farm, _work.sleep_1ms, range(args.items)))
                batched.append({"per_item": w["cpu"] / args.items, "tasks": w["tasks"],
                                "idle": idle, "wall": w["wall"]})
                per_task[2].append(per_task_round(farm, pid, args.tasks))
                print(f"  rep {rep + 1}: idle {100 * idle:.1f} % of a core; batched "
                      f"{1e6 * batched[-1]['per_item']:.1f} us/item in {w['tasks']} tasks; "
                      f"batch_size=1 {1e6 * per_task[2][-1]['farm']:.0f} us/task, raw "
                      f"{1e6 * per_task[2][-1]['raw']:.0f} us/task", flush=True)
            procs.stop_workers()
            wait_workers(farm.client, 0)
            for n in counts:
                procs.start_thread_workers(n)
                wait_workers(farm.client, n)
                farm.map(_work.noop, range(4 * n), batch_size=1, progress=False).wait()
                print(f"# {n} single-thread workers in one process", flush=True)
                per_task[n] = []
                for rep in range(args.reps):
                    per_task[n].append(per_task_round(farm, pid, args.tasks))
                    r = per_task[n][-1]
                    print(f"  rep {rep + 1}: idle {100 * r['idle']:.1f} % of a core; "
                          f"batch_size=1 {1e6 * r['farm']:.0f} us/task "
                          f"({r['farm_rate']:.0f} tasks/s), raw {1e6 * r['raw']:.0f} us/task",
                          flush=True)
                if n == counts[-1]:
                    for rep in range(args.reps):
                        progress.append(progress_round(farm, pid, n, args.seconds))
                        r = progress[-1]
                        print(f"  progress rep {rep + 1}: {r['messages']} messages in "
                              f"{r['batches']} batches, +{r['extra']:.2f} s CPU: "
                              f"{1e6 * r['per_message']:.0f} us/message", flush=True)
                procs.stop_workers()
                wait_workers(farm.client, 0)

    largest = max(per_task)
    print()
    print(f"# scheduler CPU beyond idle, us, median (min-max) of {args.reps}")
    print(f"{'figure':58} {'daskfarm':>16} {'raw Dask':>16}")
    print(f"{'per item, 1 ms items, batch_size=auto, 2 workers':58} "
          f"{span(batched, 'per_item', spec='.2f'):>16} {'-':>16}")
    print(f"{'  (Dask tasks per run of ' + format(args.items, ',') + ' items)':58} "
          f"{statistics.median(b['tasks'] for b in batched):>16.0f} {'-':>16}")
    for n, rows in per_task.items():
        label = f"per Dask task, batch_size=1, {n} workers" + (
            " (processes)" if n == 2 else " (threads)")
        print(f"{label:58} {span(rows, 'farm'):>16} {span(rows, 'raw'):>16}")
    if progress:
        print(f"{'per progress event (report() message), ' + str(largest) + ' workers':58} "
              f"{span(progress, 'per_message'):>16} {'-':>16}")
        print(f"{'  per log_event batch that carried them':58} "
              f"{span(progress, 'per_batch'):>16} {'-':>16}")
        print(f"{'  messages per batch':58} "
              f"{statistics.median(r['messages'] / r['batches'] for r in progress):>16.2f}"
              f" {'-':>16}")
    print()
    print("idle scheduler CPU, % of a core: " + ", ".join(
        f"{n} workers {100 * med(rows, 'idle'):.1f}" for n, rows in per_task.items()))
    print("daskfarm / raw Dask per task: " + ", ".join(
        f"{n} workers {med(rows, 'farm') / med(rows, 'raw'):.2f}x"
        for n, rows in per_task.items()))
    first = min(per_task)
    print(f"per-task cost, {largest} vs {first} workers: "
          f"{med(per_task[largest], 'farm') / med(per_task[first], 'farm'):.2f}x (daskfarm), "
          f"{med(per_task[largest], 'raw') / med(per_task[first], 'raw'):.2f}x (raw Dask)")
    if progress:
        task = med(per_task[largest], "farm")
        event = med(progress, "per_message")
        idle_per_worker = med(per_task[largest], "idle") / largest
        print()
        print(f"# projection: 100 ms items, one per Dask task; per-task cost measured at "
              f"{largest} workers ({1e6 * task:.0f} us), per event {1e6 * event:.0f} us, "
              f"idle {1e6 * idle_per_worker:.0f} us/s per worker")
        for p in (0, 1):
            w_max = 0.1 / (task + p * event)
            w_idle = 1.0 / (10 * (task + p * event) + idle_per_worker)
            print(f"  p={p} event per item: one scheduler core feeds W_max = 0.1 s / "
                  f"({1e6 * task:.0f} us + {p} x {1e6 * event:.0f} us) = {w_max:,.0f} workers "
                  f"({w_idle:,.0f} with each worker's idle heartbeat cost)")


if __name__ == "__main__":
    main()
