"""Scale figures for one scheduler: its CPU per item, per Dask task and per progress event,
how the per-task cost moves with the number of workers, and the largest cluster it can feed.

Run from the repository root (about 5 minutes)::

    python bench/scale.py [--reps 3] [--items 6000] [--tasks 600] [--workers 2,8,32,64]
                          [--seconds 4]

The scheduler is a real ``dask scheduler`` subprocess (Dask's default settings, dashboard on
127.0.0.1), so its CPU time is its own: no client, worker or feeder shares the process. It
is read from Linux's per-thread schedstat (nanoseconds; psutil's 10 ms ticks elsewhere). The
Farm connects with ``Farm(address)`` and installs its plugin there, as on a cluster. Each
figure is the scheduler's CPU in a window minus its idle rate (measured just before, on the
same workers) times the window; medians (min-max) of ``--reps``:

* per item, batched: a whole run of ``--items`` 1 ms items, ``batch_size="auto"``, on 2
  ``dask worker`` processes x 1 thread (the Dask tasks are counted on the scheduler);
* per Dask task: no-ops with ``batch_size=1`` (one item per task, as daskfarm sends items of
  0.2 s or more) from an endless generator, ``--tasks`` results measured after a fifth as
  many (steady state: no start-up, tail or per-run cost). Raw Dask on the same workers:
  ``raw submit`` keeps the same window (2 per worker thread) with one ``client.submit`` per
  task, as daskfarm's feeder does; ``raw stream`` replaces each finished set with one
  ``client.map`` (bench/memory.py's driver); ``raw map`` is one ``client.map`` of all and
  one gather (Dask's cheapest case, a whole run);
* against the number of workers: the same on 2, 8, 32 and 64 single-thread workers hosted in
  one other process (the thread workers of ``processes=False``, with the scheduler still in
  a process of its own; ``dask worker --no-nanny`` refuses ``--nworkers``);
* per progress event, at the largest count: one item per worker, all running, for a
  ``--seconds`` window: items that report every 50 ms with the same message (the throttle
  sends one per second: ``1/s``) or a new one (sent every 0.1 s: ``10/s``), against items
  that never report. Events are counted on the scheduler, not assumed: the plugin's report()
  messages, and the ``log_event`` batches that carried them (the workers' outbox flushes
  every 0.2 s). The in-process handler (Scheduler.log_worker_event, the broker, the plugin)
  is timed on the scheduler too, to tell it from the comm.

Projection: with 100 ms items (one per Dask task) and ``p`` progress events per item, one
scheduler core saturates at ``W_max = 0.1 s / (cpu_per_task(W) + p * cpu_per_event)``
workers, with the per-task cost measured at the largest worker count and, per event, the
cost of one log_event batch (every event in a batch of its own: an upper bound); the same
with each worker's idle cost (heartbeats) is printed too.

Read the per-task figures with the throughput next to them: at higher task rates Dask packs
more messages per comm read, so the cost per task falls. The machine is shared (CPU time
moves less than wall time under load, but read the figures as upper bounds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import psutil
from distributed import as_completed

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
import _work

IDLE_SECONDS = 2.0
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
    with contextlib.suppress(ProcessLookupError):  # the session has ended by itself
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
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
    """CPU seconds of every thread of process ``pid``: Linux's nanosecond schedstat (the
    scheduler's threads live as long as it does), else psutil's user + system (10 ms ticks,
    3x the noise on a 3 s window)."""
    total, found = 0, False
    for path in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that ended
            total += int(path.read_text().split()[0])
            found = True
    if found:
        return total / 1e9
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


def reporting_item(i, seconds, mode, n):
    """Sleep ``seconds`` in 50 ms steps; ``mode`` "1/s" reports every step with the same
    message (the throttle sends one event per second), "10/s" with a new message every step
    (sent every 0.1 s), "silent" never reports.

    The items start spread over 0.2 s, so that the first reports, which start each worker's
    outbox flush (one every 0.2 s, for the process's lifetime), are spread too: workers
    hosted in one process share one outbox, and flushes that fire together put every message
    in the first one's batch."""
    from daskfarm import report

    time.sleep(0.2 * (i % n) / n)
    end = time.monotonic() + seconds
    step = 0
    while (now := time.monotonic()) < end:
        step += 1
        frac = min(0.99, 1 - (end - now) / seconds)  # never 1.0: that one is always sent
        if mode == "1/s":
            report(frac, "running")
        elif mode == "10/s":
            report(frac, f"step {step}")
        time.sleep(0.05)
    return i


# -- measurements --------------------------------------------------------------------------


def idle_rate(pid: int, seconds: float = IDLE_SECONDS) -> float:
    """The scheduler's CPU seconds per second with nothing running."""
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.perf_counter() - t0)


class Meter:
    """The scheduler's CPU and counters between ``start()`` and ``stop()``."""

    def __init__(self, client, pid: int, idle: float):
        self.client, self.pid, self.idle = client, pid, idle

    def start(self) -> None:
        self.before = counters(self.client)
        self.c0, self.t0 = cpu_seconds(self.pid), time.perf_counter()

    def stop(self) -> dict:
        """``cpu``: beyond the idle rate; ``rate``: CPU seconds per second, idle included."""
        cpu, wall = cpu_seconds(self.pid) - self.c0, time.perf_counter() - self.t0
        after = counters(self.client)
        out = {k: after[k] - self.before[k] for k in after}
        out.update(cpu=cpu - self.idle * wall, rate=cpu / wall, wall=wall)
        return out


def batched_run(farm, meter: Meter, n: int) -> dict:
    """A whole run of ``n`` 1 ms items with a known total (ramp and tail included)."""
    meter.start()
    summary = farm.map(_work.sleep_1ms, range(n), progress=False).wait()
    time.sleep(SETTLE)
    assert summary.done == n, summary
    return meter.stop()


def farm_tasks(farm, meter: Meter, warm: int, n: int) -> dict:
    """No-ops, one per Dask task, from an endless generator: the tasks from result ``warm``
    to result ``warm + n`` (the steady state: no start-up, no tail, no per-run cost)."""
    run = farm.map(_work.noop, itertools.count(), batch_size=1, progress=False)
    for i, _ in enumerate(run):
        if i == warm:
            meter.start()
        elif i == warm + n:
            out = meter.stop()
            break
    run.cancel()
    return out


def raw_stream(client, meter: Meter, warm: int, n: int, window: int, each: bool) -> dict:
    """Raw Dask fed as a stream: ``window`` no-ops in flight, each finished set gathered and
    replaced, by one ``client.submit`` per task (``each``, as daskfarm's feeder submits each
    Dask task) or by one ``client.map`` per set (bench/memory.py's driver); measured as
    farm_tasks."""
    items = itertools.count()

    def submit(k: int) -> list:
        if each:
            return [client.submit(_work.noop, next(items), pure=False) for _ in range(k)]
        return client.map(_work.noop, [next(items) for _ in range(k)], pure=False)

    ac = as_completed(submit(window))
    done, out = 0, None
    for batch in ac.batches():
        client.gather(batch)
        if done < warm <= done + len(batch):
            meter.start()
        done += len(batch)
        if done >= warm + n:
            out = meter.stop()
            break
        ac.update(submit(len(batch)))
    client.cancel(list(ac.futures))
    return out


def raw_map(client, meter: Meter, n: int) -> dict:
    """Raw Dask's cheapest case: one ``client.map`` of ``n`` no-ops and one gather."""
    meter.start()
    futures = client.map(_work.noop, range(n), pure=False)
    client.gather(futures)
    del futures
    time.sleep(SETTLE)
    return meter.stop()


def per_task_round(farm, pid: int, tasks: int) -> dict:
    client = farm.client
    meter = Meter(client, pid, idle_rate(pid))
    warm = max(100, tasks // 5)
    f = farm_tasks(farm, meter, warm, tasks)
    time.sleep(SETTLE)
    window = 2 * farm.nthreads  # daskfarm's default buffersize with one item per task
    e = raw_stream(client, meter, warm, tasks, window, each=True)
    time.sleep(SETTLE)
    s = raw_stream(client, meter, warm, tasks, window, each=False)
    time.sleep(SETTLE)
    m = raw_map(client, meter, tasks)
    return {"idle": meter.idle, "farm": f["cpu"] / f["tasks"], "rate": f["tasks"] / f["wall"],
            "submit": e["cpu"] / e["tasks"], "stream": s["cpu"] / s["tasks"],
            "map": m["cpu"] / m["tasks"]}


PROGRESS_MODES = ("silent", "1/s", "10/s")


def _handler_cost(dask_scheduler, run_id: str, n: int, per_batch: int) -> float:
    """Thread CPU seconds of one in-process ``Scheduler.log_worker_event`` of a progress batch
    (the broker, then FarmPlugin.log_event) for a live task of ``run_id``; no comm."""
    key = next(k for k in dask_scheduler.tasks if type(k) is tuple and k[0] == run_id)
    worker = next(iter(dask_scheduler.workers))
    t0 = time.thread_time()
    for _ in range(n):
        batch = [{"run": run_id, "key": list(key), "i": key[1], "frac": 0.5, "msg": "running",
                  "elapsed": 1.0} for _ in range(per_batch)]
        dask_scheduler.log_worker_event(worker, "daskfarm-progress", {"batch": batch})
    return (time.thread_time() - t0) / n


def progress_round(farm, pid: int, n_items: int, seconds: float) -> dict:
    """One item per worker, silent, reporting at 1/s and at 10/s: the scheduler's CPU rate
    while every item runs, and the messages and log_event batches it received meanwhile."""
    rates = {}
    for mode in PROGRESS_MODES:
        meter = Meter(farm.client, pid, 0.0)
        task = partial(reporting_item, seconds=seconds + 2.5, mode=mode, n=n_items)
        run = farm.map(task, range(n_items), batch_size=1, buffersize=n_items,
                       progress=False, name=f"scale-{mode.replace('/', '-')}")
        deadline = time.monotonic() + 30
        while run.counts["running"] < n_items and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # every item past its spread start
        meter.start()
        time.sleep(seconds)
        rates[mode] = meter.stop()
        if mode == "1/s":
            handler = [farm.client.run_on_scheduler(_handler_cost, run_id=run.run_id, n=2000,
                                                    per_batch=k) for k in (1, 10)]
        summary = run.wait()
        assert summary.done == n_items, summary
    out = {}
    for mode in PROGRESS_MODES[1:]:
        w = rates[mode]
        extra = (w["rate"] - rates["silent"]["rate"]) * w["wall"]
        out[mode] = {"extra": extra, "messages": w["messages"], "batches": w["batches"],
                     "per_message": extra / max(w["messages"], 1),
                     "per_batch": extra / max(w["batches"], 1)}
    out["handler_batch"] = handler[0]
    out["handler_message"] = (handler[1] - handler[0]) / 9
    return out


# -- main ------------------------------------------------------------------------------------


def us(values: list[float], spec: str = ".0f") -> str:
    """Median (min-max), in microseconds."""
    values = [1e6 * v for v in values]
    return f"{statistics.median(values):{spec}} ({min(values):{spec}}-{max(values):{spec}})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--items", type=int, default=6_000, help="1 ms items, batched")
    parser.add_argument("--tasks", type=int, default=600,
                        help="no-ops with batch_size=1, measured after a fifth as many")
    parser.add_argument("--workers", default="2,8,32,64",
                        help="thread-worker counts (plus a row of 2 worker processes)")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="length of each item of the progress runs")
    parser.add_argument("--host-workers", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.host_workers:
        host_workers(args.host_workers[0], int(args.host_workers[1]))
        return
    counts = [int(w) for w in args.workers.split(",") if w]

    from daskfarm import Farm

    batched: list[dict] = []
    per_task: dict[int | str, list[dict]] = {"2p": []}
    progress: list[dict] = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, DaskProcesses(tmp) as procs:
        address = procs.start_scheduler()
        pid = procs.scheduler_pid
        procs.start_workers(2)
        with Farm(address) as farm:
            client = farm.client
            wait_workers(client, 2)
            farm.map(_work.sleep_1ms, range(500), progress=False).wait()  # warm up
            farm.map(_work.noop, range(200), batch_size=1, progress=False).wait()
            print(f"# dask scheduler pid {pid}; 2 dask worker processes x 1 thread", flush=True)
            for rep in range(args.reps):
                idle = idle_rate(pid)
                w = batched_run(farm, Meter(client, pid, idle), args.items)
                batched.append({"per_item": w["cpu"] / args.items, "tasks": w["tasks"]})
                r = per_task_round(farm, pid, args.tasks)
                per_task["2p"].append(r)
                print(f"  rep {rep + 1}: idle {100 * idle:.1f} % of a core; "
                      f"{args.items:,} 1 ms items {1e6 * batched[-1]['per_item']:.1f} us/item "
                      f"in {w['tasks']} tasks; per task: {round_line(r)}", flush=True)
            procs.stop_workers()
            wait_workers(client, 0)
            for n in counts:
                procs.start_thread_workers(n)
                wait_workers(client, n)
                farm.map(_work.noop, range(4 * n), batch_size=1, progress=False).wait()
                print(f"# {n} single-thread workers hosted in one process", flush=True)
                per_task[n] = []
                for rep in range(args.reps):
                    r = per_task_round(farm, pid, args.tasks)
                    per_task[n].append(r)
                    print(f"  rep {rep + 1}: idle {100 * r['idle']:.1f} % of a core; per task: "
                          f"{round_line(r)}", flush=True)
                if n == max(counts):
                    # sets the phases of the workers' outbox flushes (see reporting_item)
                    farm.map(partial(reporting_item, seconds=1.0, mode="10/s", n=n), range(n),
                             batch_size=1, buffersize=n, progress=False).wait()
                    for rep in range(args.reps):
                        r = progress_round(farm, pid, n, args.seconds)
                        progress.append(r)
                        print(f"  progress rep {rep + 1}, {args.seconds:g} s: " + "; ".join(
                            f"{mode}: {r[mode]['messages']} messages in {r[mode]['batches']} "
                            f"batches, +{r[mode]['extra']:.3f} s CPU"
                            for mode in PROGRESS_MODES[1:]), flush=True)
                procs.stop_workers()
                wait_workers(client, 0)
    elapsed = time.perf_counter() - t_start
    report_figures(args, batched, per_task, progress, elapsed)


def round_line(r: dict) -> str:
    return (f"daskfarm {1e6 * r['farm']:.0f} us ({r['rate']:.0f}/s), raw submit "
            f"{1e6 * r['submit']:.0f}, raw stream {1e6 * r['stream']:.0f}, raw map "
            f"{1e6 * r['map']:.0f}")


def report_figures(args, batched: list, per_task: dict, progress: list, elapsed: float) -> None:
    threads = [n for n in per_task if n != "2p"]
    largest = max(threads) if threads else "2p"
    smallest = min(threads) if threads else "2p"
    dash = "-"

    def label(n) -> str:
        return "2 worker processes" if n == "2p" else f"{n} thread workers"

    def med(n, key: str) -> float:
        return statistics.median(r[key] for r in per_task[n])

    print()
    print(f"# scheduler CPU beyond idle, us, median (min-max) of {args.reps}; {elapsed:.0f} s")
    columns = ("daskfarm", "raw submit", "raw stream", "raw map")
    header = f"{'figure':48}" + "".join(f" {c:>17}" for c in columns)
    print(header)
    print("-" * len(header))

    def line(name: str, *cells: str) -> None:
        cells = cells + (dash,) * (len(columns) - len(cells))
        print(f"{name:48}" + "".join(f" {c:>17}" for c in cells))

    line("per item, 1 ms items, batch_size=auto, 2 procs",
         us([b["per_item"] for b in batched], ".2f"))
    tasks = statistics.median(b["tasks"] for b in batched)
    line("  items per Dask task", f"{args.items / tasks:.0f}")
    for n, rows in per_task.items():
        line("per Dask task, batch_size=1, " + label(n),
             *(us([r[k] for r in rows]) for k in ("farm", "submit", "stream", "map")))
    if progress:
        for mode in PROGRESS_MODES[1:]:
            rows = [r[mode] for r in progress]
            ratio = statistics.median(r["messages"] / max(r["batches"], 1) for r in rows)
            line(f"per progress event, {mode} per item ({ratio:.1f}/batch)",
                 us([r["per_message"] for r in rows]))
            line("  per log_event batch", us([r["per_batch"] for r in rows]))
        line("  in-process handler, per batch (no comm)",
             us([r["handler_batch"] for r in progress], ".1f"))
        line("  in-process handler, per further message",
             us([r["handler_message"] for r in progress], ".1f"))
    print()
    print("idle scheduler, % of a core: " + ", ".join(
        f"{label(n)} {100 * med(n, 'idle'):.1f}" for n in per_task))
    print("daskfarm tasks/s in the measured window: " + ", ".join(
        f"{label(n)} {med(n, 'rate'):.0f}" for n in per_task))
    print("daskfarm / raw submit per task: " + ", ".join(
        f"{label(n)} {med(n, 'farm') / med(n, 'submit'):.2f}x" for n in per_task))
    if largest != smallest:
        print(f"per task, {largest} vs {smallest} thread workers: " + ", ".join(
            f"{c} {med(largest, k) / med(smallest, k):.2f}x"
            for c, k in zip(columns, ("farm", "submit", "stream", "map"))))
    if not progress:
        return
    task = med(largest, "farm")
    # one log_event batch per event: what a worker sends when each of its flushes (every
    # 0.2 s) carries one message; 100 ms items with p=1 put about two in a batch
    event = statistics.median(r["10/s"]["per_batch"] for r in progress)
    idle_worker = ((med(largest, "idle") - med(smallest, "idle")) / (largest - smallest)
                   if largest != smallest else med(largest, "idle") / largest)
    print()
    print(f"# projection, 100 ms items, one per Dask task: per task {1e6 * task:.0f} us "
          f"(daskfarm, batch_size=1, {label(largest)}); per event {1e6 * event:.0f} us "
          f"(one log_event batch, the 10/s row: each event in a batch of its own, an upper "
          f"bound); idle {1e6 * idle_worker:.0f} us/s per extra worker ({smallest} to "
          f"{largest} thread workers)")
    for p in (0, 1):
        cost = task + p * event
        print(f"  p={p}: W_max = 0.1 s / ({1e6 * task:.0f} + {p} x {1e6 * event:.0f} us) "
              f"= {0.1 / cost:.0f} workers; with the idle cost per worker: "
              f"{1 / (10 * cost + idle_worker):.0f}")


if __name__ == "__main__":
    main()
