"""Memory of the client process over an endless stream: RSS at 20k items and at 1M items.

    python bench/memory.py [--items 1000000] [--reps 3]

The client process also holds the LocalCluster's scheduler and nannies, so this is the whole
farm's memory outside the worker processes. Baseline in the same run: raw Dask with a bounded
window (one client.map per finished batch of futures, the fastest raw driver), which is what a
user without daskfarm would write; it runs on the same cluster, over fewer items (it is ~100x
slower per item), and its growth is reported per item and scaled to the same count.
"""

import argparse
import gc
import itertools
import os
import statistics
import sys

import psutil
from distributed import as_completed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _work

from daskfarm import Farm

MiB = 1024 * 1024


def rss() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / MiB


def farm_growth(farm, n_items: int) -> float:
    run = farm.map(_work.noop, itertools.count(), progress=False)
    start = None
    for i, _ in enumerate(run):
        if i == 20_000:
            start = rss()
        if i == n_items:
            break
    run.cancel()
    return rss() - start


def raw_dask_growth_per_item(client, n_items: int, window: int = 64) -> float:
    items = itertools.count()
    futures = client.map(_work.noop, [next(items) for _ in range(window)], pure=False)
    ac = as_completed(futures, loop=client.loop)
    done = 0
    start = None
    for batch in ac.batches():
        done += len(batch)
        if start is None and done >= 2_000:
            start, start_done = rss(), done
        if done >= n_items:
            break
        ac.update(client.map(_work.noop, [next(items) for _ in batch], pure=False))
    client.cancel(list(ac.futures))
    return (rss() - start) / (done - start_done)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--raw-items", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    growth, raw = [], []
    with Farm(n_workers=2) as farm:
        farm_growth(farm, 50_000)  # warm up
        for _ in range(args.reps):
            growth.append(farm_growth(farm, args.items))
            raw.append(raw_dask_growth_per_item(farm.client, args.raw_items))
    med = statistics.median(growth)
    raw_scaled = statistics.median(raw) * (args.items - 20_000)
    print(f"# client RSS growth from item 20,000 to item {args.items:,} (median of {args.reps})")
    print(f"{'engine':<34} {'growth MiB':>12} {'min-max':>16}")
    print(f"{'daskfarm farm.map(endless gen)':<34} {med:12.1f} "
          f"{min(growth):7.1f}-{max(growth):<7.1f}")
    print(f"{'raw dask window=64, scaled':<34} {raw_scaled:12.1f} "
          f"{min(raw) * (args.items - 20_000):7.1f}-{max(raw) * (args.items - 20_000):<7.1f}")
    print(f"goal < 40 MiB: {'met' if med < 40 else 'NOT met'}; "
          f"daskfarm / raw dask = {med / raw_scaled:.3f}" if raw_scaled > 0 else "")


if __name__ == "__main__":
    main()
