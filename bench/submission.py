"""Does the way batches are sent to Dask matter? The sizer's own batches, sent four ways.

    python bench/submission.py [--reps 5] [--case 10ms] [--inproc]

First ``farm.map`` runs the case of bench/batches.py (400 x 10 ms of CPU by default) once and
records the sizes of the batches its sizer sent. Then, in turn, ``--reps`` times: raw Dask
sends those very batches 4 in flight, each result gathered as its task ends (the farm's
window: ``taskcost.windowed_batches``); raw Dask sends the first 4 the same way and, when the first
comes back, all the others in one ``client.map`` (one update-graph message; Dask's queue on
the scheduler hands them to the workers as their slots free, with no round trip to the
client between batches); ``farm.map`` itself; ``Pool(2).imap_unordered`` (chunksize N/8).
It prints items/s, the ratio to Pool and the CPU seconds the client process (scheduler,
nannies and client) and the workers spent beyond the items.

``--inproc`` has the Farm's scheduler listen on ``inproc://`` as well as TCP and its client
connect over inproc (the client and the scheduler share a process: messages between them
are then passed as Python objects, not written to a socket), to see what the client-scheduler
TCP traffic costs the run.
"""

from __future__ import annotations

import argparse
import collections
import functools
import multiprocessing
import os
import statistics
import sys
import time

import distributed
import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _work
import batches
import taskcost

from daskfarm import Farm
from daskfarm.client import connect as _connect


def _connect_over_inproc() -> None:
    """Start the Farm's scheduler on TCP (for the workers) and inproc (for its client)."""
    start = _connect._start_local

    def start_local(n, threads, processes, security, dashboard, cluster_kwargs):
        cluster_kwargs = dict(cluster_kwargs, scheduler_kwargs={
            "protocol": ["tcp", "inproc"], "host": ["127.0.0.1", None], "port": [0, None]})
        return start(n, threads, processes, security, dashboard, cluster_kwargs)

    def client(cluster, **kwargs):
        for listener in cluster.scheduler.listeners:
            if listener.contact_address.startswith("inproc://"):
                return distributed.Client(listener.contact_address, **kwargs)
        raise RuntimeError("the scheduler has no inproc listener")

    _connect._start_local = start_local
    _connect.Client = client


def _chunks(sizes: list[int]) -> list[list[int]]:
    out, start = [], 0
    for size in sizes:
        out.append(list(range(start, start + size)))
        start += size
    return out


def rest_at_once(client, fn, chunks, first: int = 4) -> int:
    """The first ``first`` batches as the farm sends them, the rest in one ``client.map``
    as soon as one has come back (when the farm knows the items' duration)."""
    task = functools.partial(_work.each, fn)
    pending = distributed.as_completed(
        [client.submit(task, chunk, pure=False) for chunk in chunks[:first]])
    done = 0
    rest = chunks[first:]
    for future in pending:
        done += len(future.result())
        if rest:
            tag = time.time_ns()  # keys in send order: the scheduler's queue keeps it
            pending.update(client.map(task, rest, pure=False,
                                      key=[f"rest-{tag}-{i:05d}" for i in range(len(rest))]))
            rest = []
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--case", default="10ms", choices=sorted(batches.CASES))
    parser.add_argument("--inproc", action="store_true",
                        help="the Farm's client talks to its scheduler over inproc://")
    args = parser.parse_args()
    fn, n, seconds = batches.CASES[args.case]
    items_cpu = 0.0 if fn is _work.sleep_1ms else n * seconds
    if args.inproc:
        _connect_over_inproc()
    batches._record_batches()
    rates: dict = collections.defaultdict(list)
    cpu: dict = collections.defaultdict(list)
    me = psutil.Process()
    with multiprocessing.get_context("fork").Pool(2) as pool, \
            Farm(n_workers=2, threads_per_worker=1) as farm:
        print(f"# the Farm's client is at {farm.client.scheduler.address}")
        for _ in range(2):  # warm up, then the sizes the sizer sends on a warm farm
            batches._sent.clear()
            assert sum(1 for _ in farm.map(fn, range(n), progress=False)) == n
        sizes = [k for _, k in batches._sent]
        chunks = _chunks(sizes)
        print(f"# {args.case}: the sizer sent {len(sizes)} batches {sizes}")
        actors = taskcost.actors_on(farm.client)
        ways = {
            "raw Dask, 4 in flight": lambda: taskcost.windowed_batches(farm.client, fn, chunks),
            "raw Dask, the rest at once": lambda: rest_at_once(farm.client, fn, chunks),
            "Dask actors, 2 calls each": lambda: taskcost.by_actors(actors, fn, chunks),
            "farm.map": lambda: sum(1 for _ in farm.map(fn, range(n), progress=False)),
            "Pool(2), chunksize N/8": lambda: sum(
                1 for _ in pool.imap_unordered(fn, range(n), chunksize=max(1, n // 8))),
        }
        for way in ways.values():
            assert way() == n
        for _ in range(args.reps):
            for name, way in ways.items():
                before = batches.cpu_seconds(me)
                t0 = time.perf_counter()
                assert way() == n
                rates[name].append(n / (time.perf_counter() - t0))
                after = batches.cpu_seconds(me)
                cpu[name].append((after[0] - before[0], after[1] - before[1] - items_cpu))
    pool_rate = statistics.median(rates["Pool(2), chunksize N/8"])
    print(f"\n# medians of {args.reps}, items/s; {os.cpu_count()} CPUs"
          f"{'; client over inproc' if args.inproc else ''}")
    for name in ways:
        rate = statistics.median(rates[name])
        line = (f"{name:<28} {rate:7.1f}/s ({min(rates[name]):.0f}-{max(rates[name]):.0f})"
                f"  {rate / pool_rate:.3f}x Pool")
        if not name.startswith("Pool"):
            line += (f"; CPU beyond the items: client "
                     f"{statistics.median(c for c, _ in cpu[name]):.2f} s, workers "
                     f"{statistics.median(w for _, w in cpu[name]):.2f} s")
        print(line)


if __name__ == "__main__":
    main()
