"""Memory of a long-lived remote scheduler: 200,000 items with progress, then 60 short runs.

Run from the repository root (about 3 minutes)::

    python bench/sched_memory.py [--items 200000] [--item-seconds 0.0002] [--runs 60]
                                 [--rounds 4] [--settle 15] [--raw-runs 60] [--trace]

A real ``dask scheduler --preload daskfarm.dashboard`` subprocess (the farm plugin and the
/farm page, as a cluster would run it) and 2 ``dask worker`` processes (1 thread, with
nannies) on 127.0.0.1; the Farm connects with ``Farm(address)``. The scheduler's RSS
(``psutil``, after a ``gc.collect()`` on the scheduler) is read:

1. ``start``: after a warm-up of one short run of each kind below;
2. ``big run``: after one run of ``--items`` short items (``--item-seconds``, batched by
   daskfarm), each calling ``report()`` once: the first call of an item is always sent, so
   every item's message reaches the scheduler, in one batch per worker process every 0.2 s;
3. ``60 runs``, ``120 runs``, ...: after each of ``--rounds`` rounds of ``--runs`` runs of 100
   items, in turn: no-ops; 5 ms items that report every millisecond, with a ``plot=``;
   100 ms items reporting every 20 ms, cancelled (``run.cancel()``) after their first
   results. Later rounds tell bounded history from a leak: Dask keeps the last 1,000 events
   per topic and the last 100 computations, which take about 150 runs to fill;
4. ``settled``: ``--settle`` seconds later, idle;
5. ``raw Dask``: after ``--raw-runs`` runs of raw ``client.map`` of 100 no-ops + gather on the
   same scheduler, for a per-run figure to compare with;
6. ``events cut``: a diagnosis, after the broker's kept ``daskfarm-progress`` events are
   dropped (``truncate``): how much of the growth they hold.

Besides RSS, each row shows Python's allocated blocks (``sys.getallocatedblocks()``: freed
objects leave RSS up but lower the blocks) and what the scheduler holds that could grow:
Dask tasks, the farm plugin's run records (live ones, and the finished ones it keeps:
``KEEP_FINISHED`` = 10 in ``daskfarm/scheduler/state.py``, by count, not by time, each with
up to ``MAX_POINTS`` plot points), the events Dask's broker keeps per topic
(``distributed.admin.low-level-log-length``, 1,000 per topic) and the progress messages
inside those kept events, task prefixes and Dask's computations.

Goal: the scheduler's growth from ``start`` to after the first 60 runs <= 40 MiB (the growth
after every round and ``settled`` is printed too). ``--trace`` runs tracemalloc on the
scheduler and prints the allocation sites that grew most at each checkpoint (slower: a
diagnosis, not a figure).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from functools import partial

import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _work
from scale import DaskProcesses, wait_workers

from daskfarm import _distributed
from daskfarm._protocol import PROGRESS_TOPIC

MiB = 1024 * 1024
SHORT = 100  # items per short run


# -- tasks (pickled by value from __main__) ------------------------------------------------


def tick(i, seconds):
    from daskfarm import report

    report(0.5, f"item {i}")
    time.sleep(seconds)
    return i


def stepping(i, seconds, every):
    """Sleep ``seconds`` in steps of ``every``, reporting each step."""
    from daskfarm import report

    end = time.monotonic() + seconds
    while (now := time.monotonic()) < end:
        report(1 - (end - now) / seconds, f"{i}: {end - now:.3f} s left")
        time.sleep(every)
    return i


def plot_xy(item, value):
    return item, value


# -- what the scheduler holds --------------------------------------------------------------


def _held(dask_scheduler) -> dict:
    """After a gc.collect(): counts of what the scheduler keeps."""
    import gc
    import sys

    gc.collect()
    plugin = dask_scheduler.plugins.get("daskfarm")
    broker = getattr(dask_scheduler, "_broker", None)
    topics = dict(broker._topics) if broker is not None else {}
    progress = topics.get("daskfarm-progress")
    runs = getattr(plugin, "runs", {})
    return {
        "tasks": len(dask_scheduler.tasks),
        "runs": sum(r.finished is None for r in runs.values()),
        "finished": sum(r.finished is not None for r in runs.values()),
        "rows": sum(len(by_index) for r in runs.values() for by_index in r.rows.values()),
        "points": sum(len(r.points) for r in runs.values()),
        "events": sum(len(t.events) for t in topics.values()),
        "progress_msgs": sum(len(msg.get("batch", ())) for _, msg in progress.events
                             if isinstance(msg, dict)) if progress is not None else 0,
        "prefixes": len(dask_scheduler.task_prefixes),
        "computations": len(dask_scheduler.computations),
        "blocks": sys.getallocatedblocks(),
    }


def _trace_start(dask_scheduler) -> None:
    import tracemalloc

    tracemalloc.start()
    dask_scheduler._bench_snapshot = tracemalloc.take_snapshot()


def _trace_top(dask_scheduler, limit: int = 4) -> list[str]:
    """The allocation sites that grew most since _trace_start (Python objects still held)."""
    import tracemalloc

    stats = tracemalloc.take_snapshot().compare_to(dask_scheduler._bench_snapshot, "lineno")
    return [f"{s.size_diff / 2**20:+.1f} MiB {s.traceback[0].filename.split('site-packages/')[-1]}"
            f":{s.traceback[0].lineno}" for s in stats[:limit]]


def _drop_progress_events(dask_scheduler) -> None:
    _distributed.forget_events(dask_scheduler, PROGRESS_TOPIC)


def checkpoint(name: str, client, pid: int, rows: list, trace: bool) -> None:
    time.sleep(1.0)  # the workers' last progress batches (every 0.2 s) and releases arrive
    held = client.run_on_scheduler(_held)
    rss = psutil.Process(pid).memory_info().rss / MiB
    rows.append((name, rss, held))
    print(f"  {name:12} RSS {rss:7.1f} MiB  " + " ".join(f"{k}={v}" for k, v in held.items()),
          flush=True)
    if trace and name != "start":
        for line in client.run_on_scheduler(_trace_top):
            print(f"      {line}", flush=True)


# -- workloads -------------------------------------------------------------------------------


def short_run(farm, k: int) -> str:
    # one name per kind: each new name is a new task prefix, which Dask's scheduler keeps
    kind = ("plain", "progress", "cancelled")[k % 3]
    if kind == "plain":
        summary = farm.map(_work.noop, range(SHORT), progress=False, name=kind).wait()
        assert summary.done == SHORT, summary
    elif kind == "progress":
        summary = farm.map(partial(stepping, seconds=0.005, every=0.001), range(SHORT),
                           plot=plot_xy, progress=False, name=kind).wait()
        assert summary.done == SHORT, summary
    else:
        run = farm.map(partial(stepping, seconds=0.1, every=0.02), range(SHORT),
                       batch_size=1, progress=False, name=kind)
        first = list(itertools.islice(run, 4))
        assert len(first) == 4, first
        run.cancel()
        summary = run.wait()
        assert summary.cancelled > 0, summary
    return kind


def raw_run(client) -> None:
    futures = client.map(_work.noop, range(SHORT), pure=False)
    client.gather(futures)
    del futures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--item-seconds", type=float, default=0.0002,
                        help="each big-run item sleeps this long after its report()")
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=4,
                        help="rounds of --runs short runs (the first is the goal's)")
    parser.add_argument("--settle", type=float, default=15.0)
    parser.add_argument("--raw-runs", type=int, default=60)
    parser.add_argument("--trace", action="store_true",
                        help="tracemalloc on the scheduler: where the growth is (slower)")
    args = parser.parse_args()

    from daskfarm import Farm

    rows: list = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-sched-memory-") as tmp, \
            DaskProcesses(tmp) as procs:
        address = procs.start_scheduler(("--preload", "daskfarm.dashboard"))
        pid = procs.scheduler_pid
        procs.start_workers(2, nanny=True)
        with Farm(address) as farm:
            client = farm.client
            wait_workers(client, 2)
            print(f"# dask scheduler pid {pid} (--preload daskfarm.dashboard); "
                  "2 dask worker processes x 1 thread, with nannies", flush=True)
            for k in range(3):  # warm up: one short run of each kind
                short_run(farm, k)
            if args.trace:
                client.run_on_scheduler(_trace_start)
            checkpoint("start", client, pid, rows, args.trace)

            t0 = time.perf_counter()
            summary = farm.map(partial(tick, seconds=args.item_seconds), range(args.items),
                               progress=False, name="big").wait()
            seconds = time.perf_counter() - t0
            assert summary.done == args.items, summary
            print(f"  {args.items:,} items with report() in {seconds:.1f} s "
                  f"({args.items / seconds:,.0f}/s)", flush=True)
            checkpoint("big run", client, pid, rows, args.trace)

            for r in range(args.rounds):
                t0 = time.perf_counter()
                for k in range(args.runs):
                    short_run(farm, k)
                print(f"  {args.runs} short runs in {time.perf_counter() - t0:.1f} s", flush=True)
                checkpoint(f"{(r + 1) * args.runs} runs", client, pid, rows, args.trace)

            time.sleep(args.settle)
            checkpoint("settled", client, pid, rows, args.trace)

            t0 = time.perf_counter()
            for _ in range(args.raw_runs):
                raw_run(client)
            print(f"  {args.raw_runs} raw Dask runs in {time.perf_counter() - t0:.1f} s",
                  flush=True)
            checkpoint("raw Dask", client, pid, rows, args.trace)

            # diagnosis, not part of the goal: what Dask's broker keeps of the progress events
            client.run_on_scheduler(_drop_progress_events)
            checkpoint("events cut", client, pid, rows, args.trace)
    elapsed = time.perf_counter() - t_start

    names = [name for name, _, _ in rows]
    rss = {name: value for name, value, _ in rows}
    blocks = {name: held["blocks"] for name, _, held in rows}
    base = rss["start"]
    print()
    print(f"# scheduler RSS, MiB, and Python's allocated blocks ({elapsed:.0f} s)")
    print(f"{'checkpoint':12} {'RSS':>7} {'growth':>7} {'blocks':>11}  held on the scheduler")
    for name, value, held in rows:
        print(f"{name:12} {value:7.1f} {value - base:+7.1f} {held['blocks'] - blocks['start']:+11,}"
              f"  tasks {held['tasks']}, runs {held['runs']} live + {held['finished']} kept, "
              f"events {held['events']} ({held['progress_msgs']:,} progress messages), "
              f"plot points {held['points']:,}, prefixes {held['prefixes']}, "
              f"computations {held['computations']}")
    print()
    print(f"big run: {rss['big run'] - base:+.1f} MiB "
          f"({(rss['big run'] - base) * MiB / args.items:+.0f} B per item)")
    previous = "big run"
    for name in names[2:2 + args.rounds]:
        print(f"{name}: {rss[name] - rss[previous]:+.1f} MiB "
              f"({(rss[name] - rss[previous]) * 1024 / args.runs:+.1f} KiB per run)")
        previous = name
    print(f"raw Dask runs: {rss['raw Dask'] - rss['settled']:+.1f} MiB "
          f"({(rss['raw Dask'] - rss['settled']) * 1024 / max(args.raw_runs, 1):+.1f} KiB "
          f"per run)")
    dropped = blocks["events cut"] - blocks["raw Dask"]
    print(f"progress events dropped from the broker: {dropped:+,} blocks, RSS "
          f"{rss['events cut'] - rss['raw Dask']:+.1f} MiB (freed memory stays in the process)")
    first = names[2]
    growth = rss[first] - base
    print(f"growth, start to after the first {args.runs} short runs: {growth:+.1f} MiB; "
          f"goal <= 40 MiB: {'met' if growth <= 40 else 'NOT met'}")
    last = names[1 + args.rounds]
    print(f"after all {args.rounds * args.runs} short runs and {args.settle:g} s idle: "
          f"{rss['settled'] - base:+.1f} MiB; the last round grew "
          f"{(rss[last] - rss[names[args.rounds]]) * 1024 / args.runs:+.1f} KiB per run")


if __name__ == "__main__":
    main()
