"""Where the two cores go during a short CPU-bound run: farm.map, raw Dask batches and Pool.

    python bench/cpu_split.py [--reps 7] [--case 10ms] [--batch-size 16]

Runs one case of bench/batches.py (400 x 10 ms of CPU by default) by ``farm.map`` (its
sizer), by raw Dask (``client.submit`` of ``--batch-size``-item batches, 4 in flight, the
farm's window, on the Farm's own cluster), by ``farm.map(batch_size=--batch-size)`` (the same
batches through the farm) and by ``Pool(2).imap_unordered`` (chunksize N/8), in turn, and
accounts for the machine's CPU time over each run (wall x 2 cores): the items' own CPU, the
CPU of every other thread of the engine's processes (for the farm and raw Dask: the client
process's IO loop, which runs the scheduler, the client's comms and the nannies; the feeder
and Dask's callback thread; each worker's event loop; the task threads beyond their items),
CPU of the rest of the machine, idle time and the time the hypervisor stole. It also times a
farm run's fixed steps: ``map()`` to its first batch submitted, the preflight, and the end's
``close_run`` broadcast. Medians over ``--reps``.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import statistics
import sys
import threading
import time

import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import batches
import taskcost

import daskfarm.farm as farm_module
from daskfarm import Farm
from daskfarm.client import launch as _launch

_steps: dict = collections.defaultdict(list)  # step -> seconds, one per farm run


def _time_steps() -> None:
    """Wrap the preflight and the end of a run to time them (batches.py records the sends)."""
    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                _steps[name].append(time.perf_counter() - t0)
        return wrapper

    _launch.preflight = timed("preflight", _launch.preflight)
    farm_module.end_run = timed("close_run at the end", farm_module.end_run)
    batches._record_batches()


def _names() -> dict[int, str]:
    return {t.native_id: t.name for t in threading.enumerate()}


def _thread_cpu(procs: list[psutil.Process], names: dict[int, str],
                pool_pids: set[int]) -> dict[str, float]:
    """CPU seconds so far by kind of thread, over ``procs`` (this process first)."""
    out: dict[str, float] = collections.defaultdict(float)
    for number, proc in enumerate(procs):
        try:
            threads = proc.threads()
        except psutil.Error:
            continue
        for t in threads:
            name = names.get(t.id, "")
            if number == 0:
                kind = "client: " + (
                    "IO loop" if name == "IO loop" else
                    "feeder" if name.startswith("daskfarm-feeder") else
                    "Dask callback thread" if "Callback" in name else
                    "other threads (Pool's handlers, main)")
            elif proc.pid in pool_pids or "Dask-Default-Threads" in name:
                kind = "task threads"  # a Pool worker is one thread
            elif name == "MainThread":
                kind = "workers: event loops"
            else:
                kind = "workers: other threads and processes"
            out[kind] += t.user_time + t.system_time
        if number == 0:  # threads that ended (a run's feeder) count only in the total
            out["_client total"] = sum(proc.cpu_times()[:2])
    return out


def _machine() -> tuple[float, float, float]:
    t = psutil.cpu_times()
    return (t.user + t.nice + t.system + t.irq + t.softirq, t.idle + t.iowait, t.steal)


def _raw(client, fn, n: int, size: int) -> int:
    """Raw Dask: batches of ``size`` items, 4 tasks in flight (the farm's window)."""
    chunks = [list(range(i, min(n, i + size))) for i in range(0, n, size)]
    return taskcost.windowed_batches(client, fn, chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--case", default="10ms",
                        choices=sorted(c for c in batches.CASES if c != "1ms"))
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    fn, n, seconds = batches.CASES[args.case]
    size = args.batch_size
    _time_steps()
    engines = {
        "farm.map (sizer)": lambda farm, pool: sum(
            1 for _ in farm.map(fn, range(n), progress=False)),
        f"raw Dask, batches of {size}": lambda farm, pool: _raw(farm.client, fn, n, size),
        f"farm.map(batch_size={size})": lambda farm, pool: sum(
            1 for _ in farm.map(fn, range(n), progress=False, batch_size=size)),
        "Pool(2), chunksize N/8": lambda farm, pool: sum(
            1 for _ in pool.imap_unordered(fn, range(n), chunksize=max(1, n // 8))),
    }
    rows: dict = collections.defaultdict(list)
    starts: list = []
    me = psutil.Process()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool, Farm(n_workers=2, threads_per_worker=1) as farm:
        for run in engines.values():  # warm up: imports, first batches, the pool's workers
            run(farm, pool)
        names = _names()
        for worker_names in farm.client.run(_names).values():
            names.update(worker_names)
        _steps.clear()
        procs = [me, *me.children(recursive=True)]
        pool_pids = {p.pid for p in pool._pool}
        for _ in range(args.reps):
            for engine, run in engines.items():
                batches._sent.clear()
                m0, c0 = _machine(), _thread_cpu(procs, names, pool_pids)
                t0 = time.perf_counter()
                assert run(farm, pool) == n
                wall = time.perf_counter() - t0
                m1, c1 = _machine(), _thread_cpu(procs, names, pool_pids)
                if engine.startswith("farm.map (sizer)"):
                    starts.append(batches._sent[0][0] - t0)
                cpu = {k: c1[k] - c0.get(k, 0.0) for k in c1}
                total = cpu.pop("_client total")
                cpu["client: threads that ended during the run"] = total - sum(
                    v for k, v in cpu.items() if k.startswith("client: "))
                busy = m1[0] - m0[0]
                cpu["task threads beyond the items"] = cpu.pop("task threads", 0.0) - n * seconds
                cpu["rest of the machine"] = busy - sum(cpu.values()) - n * seconds
                cpu["idle"] = m1[1] - m0[1]
                cpu["stolen by the hypervisor"] = m1[2] - m0[2]
                rows[engine].append((wall, cpu))

    print(f"# {args.case}: {n} items of {seconds * 1e3:g} ms of CPU, medians of {args.reps}, "
          f"{os.cpu_count()} CPUs; CPU seconds per run beyond the items' {n * seconds:.2f} s")
    pool_wall = statistics.median(w for w, _ in rows["Pool(2), chunksize N/8"])
    for engine, runs in rows.items():
        wall = statistics.median(w for w, _ in runs)
        print(f"\n{engine}: {wall:.3f} s ({pool_wall / wall:.3f}x Pool), "
              f"{2 * wall:.2f} core-seconds")
        for kind in sorted({k for _, cpu in runs for k in cpu}):
            value = statistics.median(cpu.get(kind, 0.0) for _, cpu in runs)
            if abs(value) >= 0.005:
                print(f"  {kind:<32} {value:6.3f} s")
    print("\nfixed steps of a farm run (medians): "
          f"map() to the first batch sent {1e3 * statistics.median(starts):.1f} ms; " + "; ".join(
              f"{name} {1e3 * statistics.median(v):.1f} ms" for name, v in _steps.items()))


if __name__ == "__main__":
    main()
