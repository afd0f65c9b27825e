"""Multiple runs with a GUI: Brian's multiple_runs_with_gui example (seed 000) on a farm.

An endless stream of random excitatory weights goes through a spiking-network simulation
(numpy leaky integrate-and-fire neurons with the seed's equations, see lifnet.py). Each run
reports its progress from inside the simulation loop. The farm panel in the browser replaces
the Tk window: one row per running simulation, how long it has run and how long it still
needs, the weight-against-spike-count scatter growing as results arrive (``plot=``), and a
Terminate button. Unless terminated, the example stops after --results results or --minutes.

    python examples/01_multiple_runs_with_gui.py           # 1000 neurons, 4 s simulated
    python examples/01_multiple_runs_with_gui.py --full    # the seed's 4000 neurons, 4 s
"""

import argparse
import functools
import time
import webbrowser

import cloudpickle
import lifnet
import numpy as np

from daskfarm import Farm


def weights():
    """Random excitatory weights (mV), for ever."""
    rng = np.random.default_rng()
    while True:
        yield float(rng.random() * 3.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the seed's network size")
    parser.add_argument("--results", type=int, default=50, help="stop after this many")
    parser.add_argument("--minutes", type=float, default=5.0, help="stop after this long")
    parser.add_argument("--workers", type=int, default=None, help="default: one per CPU")
    parser.add_argument("--no-browser", action="store_true", help="only print the link")
    args = parser.parse_args()
    n, duration = (4000, 4000.0) if args.full else (1000, 4000.0)
    # lifnet.py sits next to this script, not on the workers: send its code along (pp's
    # "depfuncs"), so the example also runs on a remote cluster.
    cloudpickle.register_pickle_by_value(lifnet)
    how_many_spikes = functools.partial(lifnet.how_many_spikes, n=n, duration=duration)

    with Farm(n_workers=args.workers) as farm:
        print("Simulation control:", farm.panel_link)
        if not args.no_browser:
            webbrowser.open(farm.panel_link)
        sweep = farm.map(how_many_spikes, weights(), name="how_many_spikes", progress=False,
                         plot={"xy": lambda weight, nspikes: (weight, nspikes),
                               "x": "weight (mV)", "y": "spike count"})
        start = time.monotonic()
        for i, (weight, nspikes) in enumerate(sweep.pairs(), 1):
            elapsed = time.monotonic() - start
            print(f"Computed {i} results, time taken: {int(elapsed)}s "
                  f"(weight {weight:.2f} mV: {nspikes} spikes)")
            if i >= args.results or elapsed > 60 * args.minutes:
                sweep.cancel()  # what the panel's Terminate button does
                break
        else:  # the endless run ended: Terminate was pressed in the panel
            print("Terminated simulation processes")


if __name__ == "__main__":
    main()
