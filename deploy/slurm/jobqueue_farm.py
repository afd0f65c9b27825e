#!/usr/bin/env python3
"""A sweep on SLURM with dask-jobqueue: each worker is a batch job that comes and goes.

    pip install 'daskfarm[deploy]'          # dask-jobqueue, in the environment the jobs use
    python deploy/slurm/jobqueue_farm.py --jobs 20 --store results/

Run it on a login node (or in a small job of its own): the scheduler lives in this process
and the workers connect back to it. ``adapt()`` submits up to ``--jobs`` worker jobs while
items remain and cancels them when the queue runs dry; every worker retires on its own a few
minutes before its walltime (``--lifetime``), and the farm resubmits whatever a leaving worker
was running, so every item is computed and stored exactly once. Interrupt and run it again:
items already in the store are skipped.

Replace ``simulate`` and ``parameters`` with your own (or import them from your package,
installed where the jobs run).
"""

from __future__ import annotations

import argparse
import math
import time


def simulate(params, report=None):
    """A stand-in for a real simulation: a few seconds of work per parameter set.

    It takes ``report``, so the farm passes its progress reporter (shown in the /farm panel).
    """
    total = 0.0
    steps = range(params.get("steps", 10))
    for step in report.iter(steps) if report is not None else steps:
        total += math.sin(params["x"] * step)
        time.sleep(params.get("pause", 0.1))
    return total


def parameters(n: int, pause: float):
    for i in range(n):
        yield {"x": i / n, "steps": 10, "pause": pause}


def walltime_minutes(walltime: str) -> float:
    """'HH:MM:SS' (or 'MM:SS', 'D-HH:MM:SS') in minutes."""
    days, _, clock = walltime.rpartition("-")
    parts = [float(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    h, m, s = parts
    return (float(days or 0) * 24 + h) * 60 + m + s / 60


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=4, help="the most worker jobs at once")
    p.add_argument("--cores", type=int, default=1, help="cores (worker threads) per job")
    p.add_argument("--memory", default="2GB", help="memory per job")
    p.add_argument("--walltime", default="01:00:00", help="walltime per worker job")
    p.add_argument("--queue", help="partition (sbatch -p)")
    p.add_argument("--account", help="account to charge (sbatch -A)")
    p.add_argument("--interface", help="network interface for Dask, e.g. ib0")
    p.add_argument("--store", default="results", help="the result store directory")
    p.add_argument("--items", type=int, default=100, help="parameter sets to run")
    p.add_argument("--pause", type=float, default=0.1, help="seconds per simulation step")
    p.add_argument("--dashboard-address", default=":8787")
    p.add_argument("--log-directory", default="slurm-logs")
    args = p.parse_args(argv)

    from dask_jobqueue import SLURMCluster

    from daskfarm import Farm

    # retire gracefully some minutes before the batch system would kill the job
    minutes = walltime_minutes(args.walltime)
    margin = min(5.0, minutes / 4)
    cluster = SLURMCluster(
        cores=args.cores, processes=1, memory=args.memory, walltime=args.walltime,
        queue=args.queue, account=args.account, interface=args.interface,
        log_directory=args.log_directory,
        scheduler_options={"dashboard_address": args.dashboard_address},
        worker_extra_args=["--lifetime", f"{int((minutes - margin) * 60)}s",
                           "--lifetime-stagger", f"{int(margin * 30)}s"],
    )
    cluster.adapt(minimum_jobs=1, maximum_jobs=args.jobs)
    with cluster, Farm(cluster) as farm:
        print(f"panel: {farm.panel_link}", flush=True)
        print(f"job script:\n{cluster.job_script()}", flush=True)
        started = time.monotonic()
        run = farm.map(simulate, parameters(args.items, args.pause), numitems=args.items,
                       store=args.store, name="simulate")
        for i, _ in enumerate(run):
            if i == 0:
                print(f"first result after {time.monotonic() - started:.1f} s", flush=True)
        summary = run.wait()
        print(f"{summary.done} done, {summary.failed} failed, {summary.skipped} skipped "
              f"in {summary.elapsed:.1f} s; results in {args.store}/", flush=True)


if __name__ == "__main__":
    main()
