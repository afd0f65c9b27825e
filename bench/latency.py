"""Start-up, first-result latency, and the cost of report() calls.

    python bench/latency.py [--reps 5]

1. Farm() start-up to the first result of a no-op, against a raw LocalCluster + Client with the
   same workers (dashboard on, port 0), in the same run, interleaved.
2. The first result of a 1 s task after farm.map() is called, on a started Farm (and raw
   client.submit on the same cluster).
3. report() cost per call inside a task: one task alone calling report(i / n) 200,000 times,
   and 1,000 tasks running (2 workers x 500 threads) each calling it in a tight loop
   (throttled: at most one event per item per second; with 500 threads a worker's GIL makes
   that figure swing several times over between runs).
"""

import argparse
import os
import statistics
import sys
import time

from distributed import Client, LocalCluster

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _work

from daskfarm import Farm


def farm_startup() -> float:
    t0 = time.perf_counter()
    with Farm(n_workers=2) as farm:
        next(iter(farm.map(_work.noop, [1], progress=False)))
        elapsed = time.perf_counter() - t0
    return elapsed


def raw_startup() -> float:
    t0 = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as c, \
            Client(c) as client:
        client.submit(_work.noop, 1).result()
        elapsed = time.perf_counter() - t0
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    farm_startup(), raw_startup()  # warm imports and the OS caches
    farm_t, raw_t = [], []
    for _ in range(args.reps):
        farm_t.append(farm_startup())
        raw_t.append(raw_startup())
    first, raw_first, costs = [], [], []
    with Farm(n_workers=2) as farm:
        for _ in range(args.reps):
            t0 = time.perf_counter()
            run = farm.map(_work.sleep_1s, [1], progress=False)
            next(iter(run))
            first.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            farm.client.submit(_work.sleep_1s, 1, pure=False).result()
            raw_first.append(time.perf_counter() - t0)
    alone = []
    with Farm(n_workers=1, threads_per_worker=1) as farm:
        for _ in range(args.reps):
            alone.extend(farm.map(_work.report_loop, [200_000], batch_size=1, progress=False))
    with Farm(n_workers=2, threads_per_worker=500) as farm:
        for _ in range(max(1, args.reps // 2)):
            run = farm.map(_work.report_loop, [20_000] * 1000, batch_size=1, progress=False)
            costs.append(statistics.median(run))

    def row(name, values, unit="s", scale=1.0):
        med = statistics.median(values) * scale
        print(f"{name:<52} {med:9.3f} {unit} ({min(values) * scale:.3f}-"
              f"{max(values) * scale:.3f})")

    print(f"# start-up and latency, medians of {args.reps} (min-max)")
    row("Farm() + first no-op result + close", farm_t)
    row("LocalCluster + Client + first result + close", raw_t)
    ratio = statistics.median(farm_t) / statistics.median(raw_t)
    print(f"{'ratio (goal <= 1.1)':<52} {ratio:9.2f}")
    row("first result of a 1 s task after farm.map()", first)
    row("first result of a 1 s task, raw client.submit", raw_first)
    row("report() per call, one task alone", alone, "us", 1e6)
    row("report() per call, 1,000 tasks running (goal <= 5)", costs, "us", 1e6)


if __name__ == "__main__":
    main()
