"""Brian 2's multiprocessing examples "Parallel processes using standalone mode" (and its joblib
variant), on a daskfarm Farm.

Each simulation is compiled to C++ by Brian's standalone device. As in Brian's example, every
worker process builds in its own directory (here ``standalone<process number>``, a stable
0..n-1 index of the worker that a class task receives) and calls ``device.reinit()`` after each
run, so processes never share build files and a directory only recompiles what changed.
Standalone code cannot call Python during the run, so daskfarm's ``report`` cannot be passed to
``run()``: ``report="text"`` prints Brian's own progress lines to the worker's output.

    python examples/09_brian2_standalone.py                    # 10 taus, builds in ./standalone*
    python examples/09_brian2_standalone.py --taus 4 --build-dir /tmp/builds
"""

import argparse
import os
from time import time as wall_time

import numpy as np
from brian2 import Network, NeuronGroup, StateMonitor, device, ms, set_device

from daskfarm import Farm


class StandaloneSim:
    """One C++ standalone build directory per worker process."""

    def __init__(self, build_dir, process_number):
        self.directory = os.path.join(build_dir, f"standalone{process_number}")

    def __call__(self, tau):
        set_device("cpp_standalone", directory=self.directory)
        G = NeuronGroup(1, "dv/dt = -v/tau : 1", method="euler")
        G.v = 1
        mon = StateMonitor(G, "v", record=0)
        net = Network()
        net.add(G, mon)
        net.run(100 * ms, report="text")
        res = (mon.t / ms, mon.v[0])
        device.reinit()
        return res


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taus", type=int, default=10, help="how many tau values")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--build-dir", default=".", help="where the standalone* builds go")
    args = parser.parse_args()
    start_time = wall_time()
    tau_values = np.arange(args.taus) * ms + 5 * ms

    with Farm(n_workers=args.workers, dashboard=False) as farm:
        sims = farm.map(StandaloneSim, tau_values, initargs=(os.path.abspath(args.build_dir),),
                        ordered=True)
        results = list(sims)
    print(f"Done in {wall_time() - start_time:10.3f}")

    for tau_value, (t, v) in zip(tau_values, results):
        tau = float(tau_value / ms)
        euler = (1 - 0.1 / tau) ** np.arange(len(t))  # forward Euler with dt = 0.1 ms
        print(f"tau = {tau:4.1f} ms: v(100 ms) = {v[-1]:.6f}, "
              f"largest difference from forward Euler: {np.abs(v - euler).max():.1e}")


if __name__ == "__main__":
    main()
