"""daskfarm against its peers on one machine, in one run: items/s on five workloads.

    python bench/peers.py [--reps 5] [--only daskfarm,pool] [--workers 2]

Engines: daskfarm ``farm.map``; raw Dask (``client.map`` + ``as_completed`` on a LocalCluster
with the same settings); ``multiprocessing.Pool.imap_unordered``, ``ProcessPoolExecutor.map``
and Ray's ``ray.util.multiprocessing.Pool.imap_unordered``, all three with chunksize N/8 (the
best for Pool on these rows, bench/README.md); joblib on loky (``return_as=
"generator_unordered"``, its automatic batches); mpire ``imap_unordered`` (its automatic
chunks); Ray tasks (one ``ray.remote`` call per item). Workloads: no-op, 1 ms sleeps, 10 ms
and 100 ms of CPU per item, and an *endless* generator of 1 ms items of which the first
``--stream`` results are taken, then the engine is stopped; that row also counts how far
ahead of the results the engine pulled the generator (bounded memory means a bounded count;
the generator is cut at 200,000 items so an engine that reads it all cannot exhaust memory).

Engines where one item is one scheduler task (raw Dask, Ray tasks) get fewer no-ops (they are
~100x slower per item there); rates are per item either way. Raw Dask and Ray tasks stream
the endless generator through a window of 4 tasks per worker, the pattern their docs show.

Each repetition starts every engine afresh (only one engine's processes live at a time, in a
rotating order so that no engine always follows the same one), warms it up, and runs every
workload; the table shows medians over repetitions with min-max.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# Ray's and loky's workers are fresh interpreters: they find _work through PYTHONPATH
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (HERE, os.environ.get("PYTHONPATH")) if p)
import _work

CUT = 200_000  # the "endless" generator ends here, so an eager engine cannot exhaust memory


class Counted:
    """An endless-looking generator that counts what was pulled from it."""

    def __init__(self):
        self.pulled = 0

    def __iter__(self):
        for i in range(CUT):
            self.pulled += 1
            yield i


def consume(results, n: int | None = None) -> int:
    count = 0
    for _ in results:
        count += 1
        if n is not None and count >= n:
            break
    return count


# -- engines: setup, imap(fn, items, n) -> iterator of results, stream(fn, gen, n), close ------

class DaskFarm:
    name = "daskfarm"
    per_item_tasks = False

    def __init__(self, workers):
        from daskfarm import Farm

        self.farm = Farm(n_workers=workers, threads_per_worker=1)

    def imap(self, fn, items, n):
        return self.farm.map(fn, items, progress=False)

    def stream(self, fn, gen, n):
        run = self.farm.map(fn, gen, progress=False)
        count = consume(run, n)
        run.cancel()
        run.wait(timeout=60)
        return count

    def close(self):
        self.farm.close()


class RawDask:
    name = "raw Dask"
    per_item_tasks = True

    def __init__(self, workers):
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                    dashboard_address=":0", host="127.0.0.1")
        self.client = Client(self.cluster)
        self.workers = workers

    def imap(self, fn, items, n):
        from distributed import as_completed

        futures = self.client.map(fn, list(items), pure=False)
        for batch in as_completed(futures, with_results=True).batches():
            yield from (result for _, result in batch)

    def stream(self, fn, gen, n):
        from distributed import as_completed

        it = iter(gen)
        ac = as_completed(self.client.map(fn, list(itertools.islice(it, 4 * self.workers)),
                                          pure=False))
        count = 0
        for _future in ac:
            count += 1
            if count >= n:
                break
            ac.add(self.client.submit(fn, next(it), pure=False))
        self.client.cancel(list(ac.futures))
        return count

    def close(self):
        self.client.close()
        self.cluster.close()


class MPPool:
    name = "multiprocessing.Pool"
    per_item_tasks = False

    def __init__(self, workers):
        self.workers = workers
        self.pool = multiprocessing.get_context("fork").Pool(workers)

    def imap(self, fn, items, n):
        return self.pool.imap_unordered(fn, items, chunksize=max(1, n // 8))

    def stream(self, fn, gen, n):
        count = consume(self.pool.imap_unordered(fn, gen, chunksize=16), n)
        self.pool.terminate()  # it would go on reading the generator
        self.pool.join()
        self.pool = multiprocessing.get_context("fork").Pool(self.workers)
        return count

    def close(self):
        self.pool.terminate()
        self.pool.join()


class Executor:
    name = "ProcessPoolExecutor"
    per_item_tasks = False

    def __init__(self, workers):
        self.workers = workers
        self.pool = ProcessPoolExecutor(workers)

    def imap(self, fn, items, n):
        return self.pool.map(fn, items, chunksize=max(1, n // 8))

    def stream(self, fn, gen, n):
        count = consume(self.pool.map(fn, gen, chunksize=16), n)
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = ProcessPoolExecutor(self.workers)
        return count

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


class Joblib:
    name = "joblib (loky)"
    per_item_tasks = False

    def __init__(self, workers):
        from joblib import Parallel

        self.parallel = Parallel(n_jobs=workers, backend="loky",
                                 return_as="generator_unordered")

    def imap(self, fn, items, n):
        from joblib import delayed

        return self.parallel(delayed(fn)(x) for x in items)

    def stream(self, fn, gen, n):
        from joblib import delayed

        results = self.parallel(delayed(fn)(x) for x in gen)
        count = consume(results, n)
        results.close()  # joblib's generator cancels what it had dispatched
        return count

    def close(self):
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)


class Mpire:
    name = "mpire"
    per_item_tasks = False

    def __init__(self, workers):
        from mpire import WorkerPool

        self.workers = workers
        self.pool = WorkerPool(n_jobs=workers, start_method="fork", keep_alive=True)

    def imap(self, fn, items, n):
        return self.pool.imap_unordered(fn, items, iterable_len=n)

    def stream(self, fn, gen, n):
        results = self.pool.imap_unordered(fn, gen, chunk_size=16)
        count = consume(results, n)
        results.close()
        self.pool.terminate()
        self.__init__(self.workers)
        return count

    def close(self):
        self.pool.terminate()


class RayPool:
    name = "Ray util Pool"
    per_item_tasks = False

    def __init__(self, workers):
        import ray
        from ray.util.multiprocessing import Pool

        ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False)
        self.pool = Pool(workers)

    def imap(self, fn, items, n):
        return self.pool.imap_unordered(fn, items, chunksize=max(1, n // 8))

    def stream(self, fn, gen, n):
        return None  # its imap_unordered calls len(iterable): no generator, endless or not

    def close(self):
        import ray

        self.pool.terminate()
        ray.shutdown()


class RayTasks:
    name = "Ray tasks"
    per_item_tasks = True

    def __init__(self, workers):
        import ray

        ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False)
        self.workers = workers
        self.remotes: dict = {}

    def _remote(self, fn):
        import ray

        if fn not in self.remotes:
            self.remotes[fn] = ray.remote(fn)
        return self.remotes[fn]

    def imap(self, fn, items, n):
        import ray

        remote = self._remote(fn)
        pending = [remote.remote(x) for x in items]
        while pending:
            done, pending = ray.wait(pending, num_returns=min(len(pending), 64), timeout=None)
            yield from ray.get(done)

    def stream(self, fn, gen, n):
        import ray

        remote = self._remote(fn)
        it = iter(gen)
        pending = [remote.remote(x) for x in itertools.islice(it, 4 * self.workers)]
        count = 0
        while count < n:
            done, pending = ray.wait(pending, num_returns=1)
            ray.get(done)
            count += 1
            pending.append(remote.remote(next(it)))
        for ref in pending:
            ray.cancel(ref, force=True)
        return count

    def close(self):
        import ray

        ray.shutdown()


ENGINES = {"daskfarm": DaskFarm, "rawdask": RawDask, "pool": MPPool, "executor": Executor,
           "joblib": Joblib, "mpire": Mpire, "raypool": RayPool, "raytasks": RayTasks}


def workloads(workers: int, noops: int):
    sleep = _work.measured_sleep()
    return [  # (row, function, N, N for one-task-per-item engines, items/s the cores allow)
        (f"no-op x {noops:,}", _work.noop, noops, 5_000, None),
        ("sleep 1 ms x 2,000", _work.sleep_1ms, 2000, 2000, workers / sleep),
        ("busy 10 ms x 400", _work.busy_10ms, 400, 400, workers / 0.010),
        ("busy 100 ms x 40", _work.busy_100ms, 40, 40, workers / 0.100),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--noops", type=int, default=200_000)
    parser.add_argument("--stream", type=int, default=2000,
                        help="results taken from the endless generator of 1 ms items")
    parser.add_argument("--only", default=",".join(ENGINES),
                        help=f"comma-separated engines out of {','.join(ENGINES)}")
    args = parser.parse_args()
    names = args.only.split(",")
    rows = workloads(args.workers, args.noops)
    stream_row = f"endless gen, 1 ms, first {args.stream:,}"
    rates: dict = {}
    ahead: dict = {}
    loads = [os.getloadavg()[0]]
    for rep in range(args.reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for key in order:
            engine = ENGINES[key](args.workers)
            try:
                for _row, fn, n, _n_task, _ in rows:  # warm up: imports, first batches
                    consume(engine.imap(fn, range(min(n, 100)), min(n, 100)))
                for row, fn, n, n_task, _ in rows:
                    n = n_task if engine.per_item_tasks else n
                    t0 = time.perf_counter()
                    assert consume(engine.imap(fn, range(n), n)) == n
                    rates.setdefault((row, engine.name), []).append(
                        n / (time.perf_counter() - t0))
                gen = Counted()
                t0 = time.perf_counter()
                count = engine.stream(_work.sleep_1ms, gen, args.stream)
                if count is not None:
                    rates.setdefault((stream_row, engine.name), []).append(
                        count / (time.perf_counter() - t0))
                    ahead.setdefault(engine.name, []).append(gen.pulled - count)
            finally:
                engine.close()
            loads.append(os.getloadavg()[0])
            print(f"rep {rep + 1}/{args.reps} {engine.name} done", file=sys.stderr, flush=True)

    limits = {row: limit for row, _, _, _, limit in rows}
    print(f"# items/s, median of {args.reps} (min-max), {args.workers} workers, "
          f"{os.cpu_count()} CPUs; 1-min load average during the run "
          f"{min(loads):.1f}-{max(loads):.1f} (median {statistics.median(loads):.1f})")
    engines = [ENGINES[k].name for k in names]
    for row in [r for r, *_ in rows] + [stream_row]:
        print(f"\n## {row}" + (f" (the cores allow {limits[row]:,.0f}/s)"
                               if limits.get(row) else ""))
        best = max(statistics.median(rates[(row, e)]) for e in engines if (row, e) in rates)
        for e in engines:
            if (row, e) not in rates:
                print(f"{e:<22} {'-':>12}  takes no generator (calls len() on the items)")
                continue
            values = rates[(row, e)]
            med = statistics.median(values)
            extra = ""
            if limits.get(row):
                extra += f" {100 * med / limits[row]:4.0f}% of limit"
            if row == stream_row:
                extra += f"  pulled ahead: {max(ahead[e]):,}"
            print(f"{e:<22} {med:>12,.0f} ({min(values):,.0f}-{max(values):,.0f})  "
                  f"{med / best:.2f}x best{extra}")


if __name__ == "__main__":
    main()
