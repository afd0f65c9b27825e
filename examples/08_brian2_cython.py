"""Brian 2's multiprocessing example "Parallel processes using Cython", on a daskfarm Farm.

Ten single-neuron simulations (``dv/dt = -v/tau``, one per tau from 5 to 14 ms) in Brian's
runtime mode with Cython code generation, one per item on the farm's workers instead of a
multiprocessing.Pool. Each worker process compiles the Cython code once and reuses Brian's
cache for the other items. ``tau`` is the task's own argument, found by Brian among the
caller's local names as in Brian's example.

    python examples/08_brian2_cython.py                  # 10 taus on local workers
    python examples/08_brian2_cython.py --taus 4 --plot taus.png
"""

import argparse
import os

import numpy as np
from brian2 import NeuronGroup, StateMonitor, ms, prefs, run

from daskfarm import Farm


def run_sim(tau):
    prefs.codegen.target = "cython"
    pid = os.getpid()
    print(f"RUNNING {pid}")
    G = NeuronGroup(1, "dv/dt = -v/tau : 1", method="exact")
    G.v = 1
    mon = StateMonitor(G, "v", record=0)
    run(100 * ms)
    print(f"FINISHED {pid}")
    return mon.t / ms, mon.v[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taus", type=int, default=10, help="how many tau values")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plot", help="save the voltage traces to this image file")
    args = parser.parse_args()
    tau_values = np.arange(args.taus) * ms + 5 * ms

    with Farm(n_workers=args.workers, dashboard=False) as farm:
        results = list(farm.map(run_sim, tau_values, ordered=True))

    for tau_value, (t, v) in zip(tau_values, results):
        exact = np.exp(-t / float(tau_value / ms))
        print(f"tau = {float(tau_value / ms):4.1f} ms: v(100 ms) = {v[-1]:.6f}, "
              f"largest difference from exp(-t/tau): {np.abs(v - exact).max():.1e}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        for tau_value, (t, v) in zip(tau_values, results):
            plt.plot(t, v, label=str(tau_value))
        plt.legend()
        plt.savefig(args.plot)
        print(f"plot in {args.plot}")


if __name__ == "__main__":
    main()
