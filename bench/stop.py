"""Time from a cancel to an idle cluster: cooperative, hard (grace 0 and 2 s), Pool.terminate.

Two workers each run an item that would take 10 minutes. Measured, per case:

- ``stopped``: from the cancel call until no worker executes an item of the run
  (``run.cancel()`` returns then);
- ``ready``: until the cluster runs a new item (the first result of a next run);

against ``multiprocessing.Pool.terminate()`` (+ ``join()``) and a new Pool's first result,
in the same run. Median (min-max) of ``--repeat`` rounds, interleaved.

    python bench/stop.py --repeat 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time

from daskfarm import Farm, report

LONG = 600.0


def cooperative(x):
    """Reports every 0.5 s (stops at the next report after a cancel)."""
    end = time.monotonic() + LONG
    while time.monotonic() < end:
        time.sleep(0.5)
        report(None)
    return x


def silent(x):
    """Never reports: only a hard stop ends it."""
    time.sleep(LONG)
    return x


def quick(x):
    return x


def _busy(farm) -> int:
    return sum(farm.client.run(lambda dask_worker: len(dask_worker.active_threads)).values())


def farm_case(farm, task, grace: float) -> tuple[float, float]:
    sweep = farm.map(task, range(2), batch_size=1, buffersize=2, progress=False)
    deadline = time.monotonic() + 60
    while _busy(farm) < 2:
        if time.monotonic() > deadline:
            raise RuntimeError("the items did not start")
        time.sleep(0.05)
    time.sleep(0.3)  # both items well inside their loops
    t0 = time.perf_counter()
    sweep.cancel(grace=grace)
    stopped = time.perf_counter() - t0
    deadline = time.monotonic() + 120
    while len(farm.client.nthreads()) < 2:  # the scheduler's view (a LocalCluster's own
        if time.monotonic() > deadline:     # worker list can lag behind restarts)
            raise RuntimeError("the workers did not come back")
        time.sleep(0.05)
    next(iter(farm.map(quick, [0], progress=False)))
    return stopped, time.perf_counter() - t0


def pool_case() -> tuple[float, float]:
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(2)
    pool.map(quick, range(2))  # workers up
    pool.map_async(silent, range(2), chunksize=1)
    time.sleep(0.5)
    t0 = time.perf_counter()
    pool.terminate()
    pool.join()
    stopped = time.perf_counter() - t0
    with ctx.Pool(2) as fresh:
        fresh.apply(quick, (0,))
    return stopped, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cases = {"cooperative (reports every 0.5 s)": (cooperative, 30.0),
             "hard, grace 0 (never reports)": (silent, 0.0),
             "hard, grace 2 s (never reports)": (silent, 2.0)}
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    figures["Pool.terminate() (never reports)"] = []
    with Farm(n_workers=2, threads_per_worker=1, dashboard=False) as farm:
        for _ in range(args.repeat):
            for name, (task, grace) in cases.items():
                figures[name].append(farm_case(farm, task, grace))
            figures["Pool.terminate() (never reports)"].append(pool_case())

    def fmt(values: list[float]) -> str:
        return f"{statistics.median(values):6.2f} s ({min(values):.2f}-{max(values):.2f})"

    print(f"{'case':36} {'stopped':>22} {'ready again':>22}")
    for name, rows in figures.items():
        print(f"{name:36} {fmt([r[0] for r in rows]):>22} {fmt([r[1] for r in rows]):>22}")


if __name__ == "__main__":
    main()
