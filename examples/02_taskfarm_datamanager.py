"""Task farm and DataManager: Brian's taskfarm example (seed 004) with ``run_tasks``.

``find_rate(k, duration, report)`` simulates identical leaky integrate-and-fire neurons driven
by a constant input k (dV/dt = (k - V) / 10 ms, threshold 1, reset 0) and returns
``(k, rate)``. The results go to a DataManager directory; the script tops the store up to
--number results (run it again: nothing is computed; interrupt it: the next run does the rest),
then plots rate against input with the theory curve, as a Bokeh HTML file.

    python examples/02_taskfarm_datamanager.py            # 1 s simulated per input
    python examples/02_taskfarm_datamanager.py --full     # the seed's 30 s
"""

import argparse

import numpy as np
from bokeh.plotting import figure, save
from numpy.random import rand

from daskfarm import DataManager
from daskfarm.compat import run_tasks


def find_rate(k, duration, report, neurons=1000):
    """(k, firing rate in Hz) of the neurons over ``duration`` seconds."""
    dt, tau = 1e-4, 1e-2
    steps = int(duration / dt)
    v = np.zeros(neurons)
    count = np.zeros(neurons)
    for step in range(steps):
        v += dt * (k - v) / tau
        fired = v > 1
        v[fired] = 0
        count += fired
        if step % 1000 == 0:
            report(step / steps)
    return (k, count.mean() / duration)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20, help="results to have in the store")
    parser.add_argument("--store", default="taskfarmexample.data")
    parser.add_argument("--html", default="taskfarmexample.html")
    parser.add_argument("--full", action="store_true", help="simulate 30 s per input")
    parser.add_argument("--no-gui", action="store_true", help="text progress, no panel")
    args = parser.parse_args()
    duration = 30.0 if args.full else 1.0

    N = args.number
    with DataManager(args.store) as dataman:
        if dataman.itemcount() < N:
            M = N - dataman.itemcount()
            # tuples are expanded: find_rate(k, duration, report=...)
            run_tasks(dataman, find_rate, [(k, duration) for k in rand(M) * 19 + 1],
                      gui=not args.no_gui)
        X, Y = zip(*dataman.values())

    k = np.linspace(1.01, 20, 400)
    fig = figure(title="Firing rate against input", x_axis_label="k",
                 y_axis_label="Firing rate (Hz)", width=700, height=450)
    fig.line(k, 1 / (0.01 * np.log(k / (k - 1))), color="gray", legend_label="theory")
    fig.scatter(X, Y, size=7, legend_label=f"{len(X)} simulations")
    fig.legend.location = "top_left"
    save(fig, filename=args.html, resources="cdn", title="taskfarm example")
    print(f"{len(X)} results in {args.store}; plot in {args.html}")


if __name__ == "__main__":
    main()
