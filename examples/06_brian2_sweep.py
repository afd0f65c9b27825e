"""A Brian 2 parameter sweep: Brian reports each simulation's progress into the farm panel.

The seed's network (leaky integrate-and-fire neurons, 80% excitatory) in Brian 2, swept over
excitatory weights with ``run_tasks``. The task is a class built once per worker process (with
its ``process_number``); it passes daskfarm's ``report`` to Brian 2's ``run(report=...)``, and
its ``taskname`` labels its row in the panel and the text progress. Brian 2 generates numpy
code here (``prefs.codegen.target = "numpy"``): no compiler needed.

    pip install brian2
    python examples/06_brian2_sweep.py            # 1000 neurons, 8 weights, 200 ms each
    python examples/06_brian2_sweep.py --full     # 4000 neurons, 20 weights, 1 s each
"""

import argparse

import numpy as np
from distributed import WorkerPlugin

from daskfarm import DataManager, Farm
from daskfarm.compat import run_tasks


class ImportBrian2(WorkerPlugin):
    """Brian 2 sets a Ctrl-C handler as it is imported, which Python allows only in a
    process's main thread: import it there (a worker's event loop), not in a task's thread."""

    def setup(self, worker):
        import brian2  # noqa: F401


class HowManySpikes:
    """Spike count of the network for one excitatory weight (mV)."""

    def __init__(self, neurons, duration_ms, process_number):
        import brian2

        brian2.prefs.codegen.target = "numpy"
        self.neurons, self.duration, self.process = neurons, duration_ms, process_number
        self.taskname = f"process {process_number}: starting"

    def __call__(self, weight, report):
        import brian2 as b

        self.taskname = f"process {self.process}: weight {weight:.2f} mV"
        eqs = """dv/dt = (ge+gi-(v+49*mV))/(20*ms) : volt
                 dge/dt = -ge/(5*ms) : volt
                 dgi/dt = -gi/(10*ms) : volt"""
        n, n_exc, p = self.neurons, int(0.8 * self.neurons), min(1.0, 80 / self.neurons)
        group = b.NeuronGroup(n, eqs, threshold="v>-50*mV", reset="v=-60*mV", method="exact")
        group.v = "-60*mV + 10*mV*rand()"
        exc = b.Synapses(group[:n_exc], group, on_pre="ge += w_e",
                         namespace={"w_e": weight * b.mV})
        exc.connect(p=p)
        inh = b.Synapses(group[n_exc:], group, on_pre="gi -= 9*mV")
        inh.connect(p=p)
        spikes = b.SpikeMonitor(group)
        net = b.Network(group, exc, inh, spikes)
        net.run(self.duration * b.ms, report=report, report_period=1 * b.second)
        return (weight, int(spikes.num_spikes))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the seed's sizes")
    parser.add_argument("--store", default="brian2sweep.data")
    parser.add_argument("--gui", action="store_true", help="open the panel instead of text")
    args = parser.parse_args()
    neurons, weights, duration = (4000, 20, 1000) if args.full else (1000, 8, 200)

    with Farm(dashboard=args.gui) as farm, DataManager(args.store) as dataman:
        farm.client.register_plugin(ImportBrian2())
        run_tasks(dataman, HowManySpikes, np.linspace(0.5, 3.5, weights),
                  initargs=(neurons, duration), gui=args.gui, verbose=True, farm=farm)
        for weight, count in sorted(dataman.values()):
            print(f"weight {weight:.2f} mV: {count} spikes")


if __name__ == "__main__":
    main()
