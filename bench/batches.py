"""farm.map against Pool on short items, alternating, with every batch the farm sent.

    python bench/batches.py [--reps 5] [--cases 10ms,1ms,100ms] [--config '{"key": value}']
                            [--sizes auto,25,50,100,200] [--sizer '{"target": 1.0}']

The driver behind the "what changed" table of bench/README.md's performance round: 400
items of 10 ms of CPU, 2,000 sleeps of 1 ms, 40 items of 100 ms of CPU (and, as ``10ms-long``,
4,000 items of 10 ms: how the sizer's fixed costs per run shrink on a 20 s run), each run by
``farm.map`` and by ``Pool(2).imap_unordered`` (chunksize N/8, its best) in turn, ``--reps``
times. For each case it prints the sizes of the batches the farm sent in its first repetition,
when the last one was sent and when the run ended; then medians (all values) of items/s for
both engines, their ratio, and the CPU seconds the farm's client process (scheduler,
nannies and feeder included) and its workers used per run beyond the items' own. ``--config``
sets Dask config (JSON) before the Farm starts, to try a setting against the defaults.
``--sizes`` runs the farm once per listed ``batch_size`` ("auto" is the sizer) in each
repetition, to show what a Dask task costs the run and what a perfect batching would reach;
``--sizer`` gives the auto sizer other parameters (``daskfarm.client.batching.BatchSizer``'s
keywords: target, growth, min_seconds, first_share, tail_split), to try them against Pool.
"""

import argparse
import functools
import json
import multiprocessing
import os
import statistics
import sys
import time

import dask
import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _work

from daskfarm import Farm
from daskfarm.client import batching as _batching
from daskfarm.client import feeder as _feeder
from daskfarm.client import launch as _launch

#: name -> (task, items, seconds per item); the sleeps use no CPU
CASES = {"10ms": (_work.busy_10ms, 400, 0.010), "1ms": (_work.sleep_1ms, 2000, 0.001),
         "100ms": (_work.busy_100ms, 40, 0.100), "10ms-long": (_work.busy_10ms, 4000, 0.010)}

_sent: list = []  # (time, items) of every batch the farm submits, in this process


def _record_batches() -> None:
    submit = _feeder.Feeder._submit_batch

    def recorded(self, batch):
        _sent.append((time.perf_counter(), len(batch.items)))
        return submit(self, batch)

    _feeder.Feeder._submit_batch = recorded


def cpu_seconds(process: psutil.Process) -> tuple[float, float]:
    """CPU seconds of this process and of all its children (the farm's workers)."""
    own = sum(process.cpu_times()[:2])
    children = 0.0
    for child in process.children(recursive=True):
        try:
            children += sum(child.cpu_times()[:2])
        except psutil.Error:  # a child that just ended
            continue
    return own, children


def run_farm(farm, name, fn, n, size, rates: dict, cpu: dict, show: bool) -> None:
    """One ``farm.map`` of the case, its items/s and CPU seconds added to ``rates``/``cpu``."""
    me = psutil.Process()
    _sent.clear()
    before = cpu_seconds(me)
    t0 = time.perf_counter()
    count = sum(1 for _ in farm.map(fn, range(n), progress=False, batch_size=size))
    seconds = time.perf_counter() - t0
    after = cpu_seconds(me)
    assert count == n
    rates.setdefault((name, size), []).append(n / seconds)
    cpu.setdefault((name, size), []).append((after[0] - before[0], after[1] - before[1]))
    if show:
        print(f"{name}, batch_size={size}: {len(_sent)} batches {[k for _, k in _sent]}; "
              f"last sent at {_sent[-1][0] - t0:.2f} s, run ended at {seconds:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--cases", default="10ms,1ms")
    parser.add_argument("--config", default="{}", help="Dask config to set, as JSON")
    parser.add_argument("--sizer", default="{}",
                        help="BatchSizer keywords for batch_size='auto', as JSON")
    parser.add_argument("--sizes", default="auto",
                        help="batch sizes the farm runs with, comma-separated ('auto': the sizer)")
    args = parser.parse_args()
    cases = [(name, *CASES[name]) for name in args.cases.split(",")]
    sizes = [s if s == "auto" else int(s) for s in args.sizes.split(",")]
    _record_batches()
    sizer_kwargs = json.loads(args.sizer)
    if sizer_kwargs:
        _launch.BatchSizer = functools.partial(_batching.BatchSizer, **sizer_kwargs)
    rates: dict = {}
    cpu: dict = {}
    with dask.config.set(json.loads(args.config)):
        pool_ctx = multiprocessing.get_context("fork")
        with pool_ctx.Pool(2) as pool, Farm(n_workers=2, threads_per_worker=1) as farm:
            for _, fn, n, _ in cases:  # warm up: imports, first batches, the pool's workers
                sum(1 for _ in farm.map(fn, range(min(n, 200)), progress=False))
                sum(1 for _ in pool.imap_unordered(fn, range(min(n, 200)), chunksize=25))
            for rep in range(args.reps):
                for name, fn, n, _ in cases:
                    for size in sizes:
                        run_farm(farm, name, fn, n, size, rates, cpu, show=rep == 0)
                        t0 = time.perf_counter()
                        count = sum(1 for _ in pool.imap_unordered(fn, range(n),
                                                                   chunksize=max(1, n // 8)))
                        assert count == n
                        rates.setdefault((name, "pool"), []).append(
                            n / (time.perf_counter() - t0))
    print(f"\n# medians of {args.reps}, items/s; {os.cpu_count()} CPUs; config {args.config}; "
          f"sizer {args.sizer}")
    for name, fn, n, seconds in cases:
        pool = rates[(name, "pool")]
        items_cpu = 0.0 if fn is _work.sleep_1ms else n * seconds
        for size in sizes:
            farm = rates[(name, size)]
            client = statistics.median(c[0] for c in cpu[(name, size)])
            workers = statistics.median(c[1] for c in cpu[(name, size)]) - items_cpu
            print(f"{name}, batch_size={size}: farm {statistics.median(farm):.1f} "
                  f"{sorted(round(x) for x in farm)}  Pool {statistics.median(pool):.1f} "
                  f"({min(pool):.0f}-{max(pool):.0f})  farm/Pool "
                  f"{statistics.median(farm) / statistics.median(pool):.3f}; CPU per farm run "
                  f"beyond the items: client {client:.2f} s, workers {workers:.2f} s")


if __name__ == "__main__":
    main()
