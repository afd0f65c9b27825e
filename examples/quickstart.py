"""Quickstart: a small simulation sweep on every core of this machine.

Runs a damped-oscillator "simulation" over a grid of parameters on a LocalCluster, shows each
task's progress in the Dask dashboard's Farm page (the link is printed), keeps every result in
a store under ./quickstart-results/ (run it twice: the second run resumes and computes
nothing), and prints a table of the results.

    python examples/quickstart.py            # small and quick
    python examples/quickstart.py --full     # a bigger grid, slower tasks
"""

import argparse
import functools
import itertools
import math
import time

from daskfarm import DataManager, Farm


def oscillate(params, report, pause=0.2):
    """Integrate x'' = -k x - c x' for a while; return the final amplitude."""
    k, c = params
    x, v, dt = 1.0, 0.0, 1e-3
    steps = 20_000
    for step in range(steps):
        v += (-k * x - c * v) * dt
        x += v * dt
        if step % 2_000 == 0:
            report(step / steps, f"k={k:.2f} c={c:.2f} x={x:+.3f}")
    time.sleep(pause)  # stands in for a longer simulation, so the panel has something to show
    return math.hypot(x, v / math.sqrt(k))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="a bigger grid and slower tasks")
    parser.add_argument("--store", default="quickstart-results", help="result directory")
    args = parser.parse_args()
    n = 12 if args.full else 5
    task = functools.partial(oscillate, pause=2.0 if args.full else 0.2)
    grid = list(itertools.product([0.5 + i for i in range(n)], [0.05 * j for j in range(n)]))

    with Farm() as farm:
        print(f"Farm panel: {farm.panel_link}")
        sweep = farm.map(task, grid, store=args.store, name="oscillate")
        summary = sweep.wait()
        print(f"{summary.done} computed, {summary.skipped} already stored, "
              f"{summary.failed} failed in {summary.elapsed:.1f} s")

    with DataManager(args.store) as dm:
        print(f"{'k':>6} {'c':>6} {'amplitude':>10}")
        for key in sorted(dm.keys(), key=dm.params)[:10]:
            k, c = dm.params(key)
            print(f"{k:6.2f} {c:6.2f} {dm[key]:10.4f}")
        print(f"... {dm.itemcount()} results in {args.store}/")
