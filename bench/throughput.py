"""farm.map against raw Dask (client.map + as_completed) and multiprocessing.Pool, same run.

    python bench/throughput.py [--reps 3]

Workloads: 2,000 sleeps of 1 ms, 400 CPU-bound items of 10 ms, 200,000 no-ops (without and
with a store). Raw Dask runs on the Farm's own cluster (the same workers and settings); Pool(2)
uses imap_unordered with chunksize=N/8, its best. Each figure is the median of --reps runs,
variants interleaved so a noisy moment hits all of them. "% of limit" is items/s over what two
cores allow (2 / item time).
"""

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time

from distributed import as_completed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _work

from daskfarm import Farm


def run_farm(farm, fn, n, store=None):
    t0 = time.perf_counter()
    count = sum(1 for _ in farm.map(fn, range(n), progress=False, store=store))
    assert count == n
    return n / (time.perf_counter() - t0)


def run_raw_dask(client, fn, n):
    t0 = time.perf_counter()
    futures = client.map(fn, range(n), pure=False)
    count = 0
    for batch in as_completed(futures, with_results=True, loop=client.loop).batches():
        count += len(batch)
    assert count == n
    del futures
    return n / (time.perf_counter() - t0)


def run_pool(pool, fn, n):
    t0 = time.perf_counter()
    count = sum(1 for _ in pool.imap_unordered(fn, range(n), chunksize=max(1, n // 8)))
    assert count == n
    return n / (time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    sleep_time = _work.measured_sleep()
    limits = {"sleep 1 ms x 2,000": 2 / sleep_time, "busy 10 ms x 400": 200.0}
    cases = [
        ("sleep 1 ms x 2,000", _work.sleep_1ms, 2000, True),
        ("busy 10 ms x 400", _work.busy_10ms, 400, True),
        ("no-op x 200,000", _work.noop, 200_000, False),
    ]
    results: dict = {}
    tmp = tempfile.mkdtemp(prefix="daskfarm-bench-")
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool, Farm(n_workers=2, threads_per_worker=1) as farm:
        for _name, fn, n, _ in cases:  # warm up: imports, first batches, pool workers
            run_farm(farm, fn, min(n, 200))
            run_pool(pool, fn, min(n, 200))
        for rep in range(args.reps):
            for name, fn, n, with_raw in cases:
                results.setdefault((name, "daskfarm"), []).append(run_farm(farm, fn, n))
                if with_raw:
                    results.setdefault((name, "raw dask"), []).append(
                        run_raw_dask(farm.client, fn, n))
                results.setdefault((name, "Pool(2) c=N/8"), []).append(run_pool(pool, fn, n))
            store = os.path.join(tmp, f"store-{rep}")
            results.setdefault(("no-op x 200,000, store=", "daskfarm"), []).append(
                run_farm(farm, _work.noop, 200_000, store=store))
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"# farm.map vs raw Dask vs Pool: median of {args.reps} (min-max), items/s, "
          f"{os.cpu_count()} CPUs")
    print(f"{'workload':<26} {'engine':<15} {'items/s':>22} {'% of limit':>11}")
    medians = {}
    for (name, engine), values in results.items():
        med = medians[(name, engine)] = statistics.median(values)
        limit = limits.get(name)
        share = f"{100 * med / limit:.0f}%" if limit else "-"
        span = f"{med:,.0f} ({min(values):,.0f}-{max(values):,.0f})"
        print(f"{name:<26} {engine:<15} {span:>22} {share:>11}")
    print()
    for name, _, _, with_raw in cases:
        farm_rate = medians[(name, "daskfarm")]
        parts = [f"{name}: daskfarm / Pool = {farm_rate / medians[(name, 'Pool(2) c=N/8')]:.2f}"]
        if with_raw:
            parts.append(f"daskfarm / raw dask = {farm_rate / medians[(name, 'raw dask')]:.2f}")
        print("; ".join(parts))


if __name__ == "__main__":
    main()
