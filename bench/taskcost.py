"""What one Dask task costs, sent all at once or a few at a time, through farm.map, and
what a call to a Dask actor costs instead.

    python bench/taskcost.py [--reps 5] [--tasks 1000]

On the Farm's own 2-worker cluster, ``--tasks`` no-op tasks go out five ways, interleaved
``--reps`` times: raw ``client.map`` of all of them and one ``client.gather`` (Dask's cheapest
way); raw ``client.submit`` keeping 4 tasks in flight (a thread's worth of farm: one running
and one waiting per worker) and 8, each result gathered as it comes; and ``farm.map`` with
``batch_size=1`` (one Dask task per item, the farm's window of 2 per thread); and as calls
to one Dask actor per worker, 2 in flight each (a call goes from the client to the worker
and back, with no task and no scheduler in between). Per task it
prints the wall time and the CPU of the client process (which runs the scheduler, the
client's comms and the nannies) and of the workers. A farm's batches are always sent a few
at a time, so the windowed rows, not the bulk row, are what a batch costs it.
"""

import argparse
import collections
import functools
import os
import queue
import statistics
import sys
import threading
import time

import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _work

from daskfarm import Farm


def bulk(farm, n):
    client = farm.client
    client.gather(client.map(_work.noop, range(n), pure=False))


def windowed(client, fn, args, window) -> list:
    """``client.submit(fn, arg)`` for each of ``args``, ``window`` tasks in flight, each
    result gathered as its task finishes; the results, in the order they came."""
    done: queue.SimpleQueue = queue.SimpleQueue()
    pending = iter(args)
    in_flight = set()
    results = []

    def send(k):
        for _ in range(k):
            arg = next(pending, _END)
            if arg is _END:
                return
            future = client.submit(fn, arg, pure=False)
            in_flight.add(future)
            future.add_done_callback(done.put)

    send(window)
    while in_flight:
        finished = [done.get(timeout=60)]
        while not done.empty():
            finished.append(done.get())
        results.extend(client.gather(finished))
        in_flight.difference_update(finished)
        send(window - len(in_flight))
    return results


_END = object()


def windowed_batches(client, fn, chunks, window: int = 4) -> int:
    """``fn`` over each list of ``chunks`` as one raw Dask task (``_work.each``), through
    :func:`windowed`; the number of items done."""
    results = windowed(client, functools.partial(_work.each, fn), chunks, window)
    return sum(len(r) for r in results)


class BatchRunner:
    """A Dask actor that runs a batch in its worker's actor thread."""

    run = staticmethod(_work.each)


def by_actors(actors, fn, chunks, depth: int = 2) -> int:
    """Each actor runs batches from one shared queue, ``depth`` calls in flight."""
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for chunk in chunks:
        todo.put(chunk)
    counts: list[int] = []

    def drive(actor):
        in_flight: collections.deque = collections.deque()
        done = 0
        while True:
            while len(in_flight) < depth:
                try:  # not empty() then get(): another driver may take the last batch between
                    chunk = todo.get_nowait()
                except queue.Empty:
                    break
                in_flight.append(actor.run(fn, chunk))
            if not in_flight:
                break
            done += len(in_flight.popleft().result(timeout=60))
        counts.append(done)

    threads = [threading.Thread(target=drive, args=(actor,)) for actor in actors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


def farm_map(farm, n):
    assert sum(1 for _ in farm.map(_work.noop, range(n), progress=False, batch_size=1)) == n


_actors: dict = {}  # id(client) -> its actors, one per worker, made on the first call


def actors_on(client) -> list:
    """One :class:`BatchRunner` actor on each of the client's workers."""
    if id(client) not in _actors:
        _actors[id(client)] = [
            client.submit(BatchRunner, actor=True, workers=[address], pure=False).result()
            for address in client.scheduler_info()["workers"]]
    return _actors[id(client)]


def actor_calls(farm, n):
    actors = actors_on(farm.client)
    assert by_actors(actors, _work.noop, [[i] for i in range(n)]) == n


def cpu(processes):
    out = []
    for p in processes:
        try:
            out.append(sum(p.cpu_times()[:2]))
        except psutil.NoSuchProcess:
            out.append(0.0)
    return out


def measure(fn, n):
    me = psutil.Process()
    processes = [me, *me.children(recursive=True)]
    before = cpu(processes)
    t0 = time.perf_counter()
    fn(n)
    wall = time.perf_counter() - t0
    used = [b - a for a, b in zip(before, cpu(processes))]
    return wall / n * 1e3, used[0] / n * 1e3, sum(used[1:]) / n * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    ways = {
        "raw client.map, all at once": bulk,
        "raw client.submit, 4 in flight":
            lambda farm, n: windowed(farm.client, _work.noop, range(n), 4),
        "raw client.submit, 8 in flight":
            lambda farm, n: windowed(farm.client, _work.noop, range(n), 8),
        "farm.map, batch_size=1": farm_map,
        "Dask actor calls, 2 in flight each": actor_calls,
    }
    figures: dict = {name: [] for name in ways}
    with Farm(n_workers=2, threads_per_worker=1) as farm:
        for fn in ways.values():  # warm up: imports, connections
            fn(farm, 50)
        for rep in range(args.reps):
            for name, fn in ways.items():
                figures[name].append(measure(lambda n, fn=fn: fn(farm, n), args.tasks))
            print(f"rep {rep + 1}/{args.reps} done", flush=True)
    print(f"\n# ms per no-op task, median of {args.reps} (min-max); {args.tasks} tasks, "
          f"2 one-thread workers, {os.cpu_count()} CPUs")
    print(f"{'way':<34} {'wall':>17} {'client CPU':>17} {'workers CPU':>17}")
    for name, rows in figures.items():
        cells = []
        for column in zip(*rows):
            cells.append(f"{statistics.median(column):.2f} ({min(column):.2f}-{max(column):.2f})")
        print(f"{name:<34} " + " ".join(f"{c:>17}" for c in cells))


if __name__ == "__main__":
    main()
