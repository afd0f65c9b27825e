"""A Brian 2 sweep in ordinary Brian style: the equations use module-level constants and a
TimedArray that the task never names in its code, only in equation strings.

Brian looks such names up in its caller's globals. A forked multiprocessing.Pool has them
because it copies the whole script; daskfarm sends a script-defined task with its script's
module-level names, so the same task runs on a LocalCluster or on remote workers that never
saw this file. ``--compare-pool`` runs the sweep on a forked Pool as well and checks that the
results are identical.

    python examples/10_brian2_constants_timedarray.py                     # local workers
    python examples/10_brian2_constants_timedarray.py tcp://host:8786     # a dask scheduler
    python examples/10_brian2_constants_timedarray.py --compare-pool
"""

import argparse
import multiprocessing

from brian2 import NeuronGroup, SpikeMonitor, TimedArray, ms, mV, prefs, run, seed

from daskfarm import Farm

# Module-level constants and a stimulus, used only inside the equation strings below.
tau_m = 10 * ms
v_rest = -70 * mV
v_threshold = -50 * mV
v_reset = -65 * mV
stimulus = TimedArray([0, 1, 0.5, 1.5, 0, 2] * mV, dt=25 * ms)
EQUATIONS = "dv/dt = (v_rest - v + gain * stimulus(t) * 10) / tau_m : volt"


def spikes_for_gain(gain):
    """Spike count and final voltage of 20 neurons driven by ``gain`` times the stimulus."""
    prefs.codegen.target = "numpy"  # no compiler needed
    seed(11)
    group = NeuronGroup(20, EQUATIONS, threshold="v > v_threshold", reset="v = v_reset",
                        method="euler")
    group.v = "v_rest + rand() * 5 * mV"
    spikes = SpikeMonitor(group)
    run(150 * ms)
    return gain, int(spikes.num_spikes), round(float(group.v[0] / mV), 6)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", nargs="?", help="a dask scheduler (default: local workers)")
    parser.add_argument("--gains", type=int, default=6, help="how many gains to sweep")
    parser.add_argument("--compare-pool", action="store_true",
                        help="run the sweep on a forked multiprocessing.Pool too")
    args = parser.parse_args()
    gains = [1.0 + 0.5 * i for i in range(args.gains)]

    with Farm(args.address, n_workers=2, dashboard=False) as farm:
        sweep = farm.map(spikes_for_gain, gains, ordered=True)  # not `run`: Brian's run()
        farm_results = list(sweep)
    for gain, count, v_end in farm_results:
        print(f"gain {gain:.1f}: {count} spikes, v = {v_end:.2f} mV")

    if args.compare_pool:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            pool_results = pool.map(spikes_for_gain, gains)
        print("same as a forked Pool:", farm_results == pool_results)


if __name__ == "__main__":
    main()
