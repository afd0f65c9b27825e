"""farm.map against Pool on short items, alternating, with every batch the farm sent.

    python bench/batches.py [--reps 5] [--cases 10ms,1ms,100ms] [--config '{"key": value}']

The driver behind the "what changed" table of bench/README.md's performance round: 400
items of 10 ms of CPU, 2,000 sleeps of 1 ms, 40 items of 100 ms of CPU, each run by
``farm.map`` and by ``Pool(2).imap_unordered`` (chunksize N/8, its best) in turn, ``--reps``
times. For each case it prints the sizes of the batches the farm sent in its first repetition,
when the last one was sent and when the run ended; then medians (all values) of items/s for
both engines, their ratio, and the CPU seconds the farm's client process (scheduler,
nannies and feeder included) and its workers used per run beyond the items' own. ``--config``
sets Dask config (JSON) before the Farm starts, to try a setting against the defaults.
"""

import argparse
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
from daskfarm.client import feeder as _feeder

CASES = {"10ms": (_work.busy_10ms, 400), "1ms": (_work.sleep_1ms, 2000),
         "100ms": (_work.busy_100ms, 40)}

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--cases", default="10ms,1ms")
    parser.add_argument("--config", default="{}", help="Dask config to set, as JSON")
    args = parser.parse_args()
    cases = [(name, *CASES[name]) for name in args.cases.split(",")]
    _record_batches()
    me = psutil.Process()
    rates: dict = {}
    cpu: dict = {}
    with dask.config.set(json.loads(args.config)):
        pool_ctx = multiprocessing.get_context("fork")
        with pool_ctx.Pool(2) as pool, Farm(n_workers=2, threads_per_worker=1) as farm:
            for _, fn, n in cases:  # warm up: imports, first batches, the pool's workers
                sum(1 for _ in farm.map(fn, range(min(n, 200)), progress=False))
                sum(1 for _ in pool.imap_unordered(fn, range(min(n, 200)), chunksize=25))
            for rep in range(args.reps):
                for name, fn, n in cases:
                    _sent.clear()
                    before = cpu_seconds(me)
                    t0 = time.perf_counter()
                    count = sum(1 for _ in farm.map(fn, range(n), progress=False))
                    seconds = time.perf_counter() - t0
                    after = cpu_seconds(me)
                    assert count == n
                    rates.setdefault((name, "farm"), []).append(n / seconds)
                    cpu.setdefault(name, []).append((after[0] - before[0],
                                                     after[1] - before[1]))
                    if rep == 0:
                        print(f"{name}: {len(_sent)} batches {[k for _, k in _sent]}; last sent "
                              f"at {_sent[-1][0] - t0:.2f} s, run ended at {seconds:.2f} s")
                    t0 = time.perf_counter()
                    count = sum(1 for _ in pool.imap_unordered(fn, range(n),
                                                               chunksize=max(1, n // 8)))
                    rates.setdefault((name, "pool"), []).append(n / (time.perf_counter() - t0))
    print(f"\n# medians of {args.reps}, items/s; {os.cpu_count()} CPUs; config {args.config}")
    for name, _fn, n in cases:
        farm, pool = rates[(name, "farm")], rates[(name, "pool")]
        items_cpu = n * {"10ms": 0.010, "100ms": 0.100}.get(name, 0.0)  # sleeps use none
        client = statistics.median(c[0] for c in cpu[name])
        workers = statistics.median(c[1] for c in cpu[name]) - items_cpu
        print(f"{name}: farm {statistics.median(farm):.1f} {sorted(round(x) for x in farm)}  "
              f"Pool {statistics.median(pool):.1f} {sorted(round(x) for x in pool)}  "
              f"farm/Pool {statistics.median(farm) / statistics.median(pool):.3f}; CPU per "
              f"farm run beyond the items: client {client:.2f} s, workers {workers:.2f} s")


if __name__ == "__main__":
    main()
