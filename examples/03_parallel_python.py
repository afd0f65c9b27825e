"""Parallel Python on a Dask cluster: Brian's parallelpython example (seed 001).

pp ran ``ppserver.py -a -s SECRET`` on every node and ``js.submit(howmanyspikes, (w,), ...)``
per job. Here the nodes are a Dask scheduler and its workers, and one ``farm.map`` sends the
20 weights, with the results in input order (``ordered=True``):

    dask scheduler --preload daskfarm.dashboard       # on one machine
    dask worker tcp://SCHEDULER:8786                   # on each of the others
    python examples/03_parallel_python.py tcp://SCHEDULER:8786

With no address a LocalCluster is started. pp's shared secret becomes Dask's TLS (a tls://
address and a distributed.security.Security); pp's code shipping (depfuncs, modules) is
cloudpickle's pickling by value, so the workers need daskfarm and numpy, not this script.

    python examples/03_parallel_python.py [ADDRESS] [--full]   # --full: 4000 neurons
"""

import argparse
import functools

import cloudpickle
import lifnet
import numpy as np

from daskfarm import Farm


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", nargs="?", default=None, help="tcp://host:8786 or tls://...")
    parser.add_argument("--full", action="store_true", help="4000 neurons, as the seed")
    parser.add_argument("--jobs", type=int, default=20, help="number of weights")
    args = parser.parse_args()
    cloudpickle.register_pickle_by_value(lifnet)
    howmanyspikes = functools.partial(lifnet.how_many_spikes, n=4000 if args.full else 1000,
                                      duration=100.0)

    excitatory_weight_range = np.linspace(0, 4, args.jobs)
    with Farm(args.address) as farm:
        sweep = farm.map(howmanyspikes, excitatory_weight_range, ordered=True,
                         name="howmanyspikes", progress=False)
        numspikes = list(sweep)
        summary = sweep.wait()
        workers = farm.client.nthreads()

    print(f"{'weight (mV)':>12}  {'spikes':>8}")
    for weight, n in zip(excitatory_weight_range, numspikes):
        print(f"{weight:12.2f}  {n:8d}")
    # js.print_stats()
    print(f"{summary.done} jobs on {len(workers)} workers ({sum(workers.values())} threads) "
          f"in {summary.elapsed:.1f} s, {summary.elapsed / max(summary.done, 1):.3f} s per job")


if __name__ == "__main__":
    main()
