"""The spiking network of Brian's multiprocessing examples, in plain numpy (used by 01 and 03).

Leaky integrate-and-fire neurons, 80% excitatory and 20% inhibitory, random connections:

    dv/dt  = (ge + gi - (v + 49 mV)) / (20 ms)      threshold -50 mV, reset -60 mV
    dge/dt = -ge / (5 ms)
    dgi/dt = -gi / (10 ms)

Brian's version has 4000 neurons with connection probability 0.02; a smaller network keeps
about the same number of inputs per neuron (80) by raising the probability.
"""

import numpy as np

DT = 0.1  # ms


def how_many_spikes(excitatory_weight, n=4000, duration=100.0, report=None, seed=None):
    """Spikes fired by the network in ``duration`` ms, for an excitatory weight in mV.

    ``report(fraction)`` (daskfarm's reporter, say) is called as the simulation goes.
    """
    rng = np.random.default_rng(seed)
    n_exc = int(0.8 * n)
    p = min(1.0, 0.02 * 4000 / n)
    # connected[i, j]: neuron i projects to neuron j
    connected = rng.random((n, n), dtype=np.float32) < p
    v = -60.0 + 10.0 * rng.random(n)
    ge = np.zeros(n)
    gi = np.zeros(n)
    steps = int(duration / DT)
    nspikes = 0
    for step in range(steps):
        v += DT * (ge + gi - (v + 49.0)) / 20.0
        ge -= DT * ge / 5.0
        gi -= DT * gi / 10.0
        fired = np.flatnonzero(v > -50.0)
        if fired.size:
            v[fired] = -60.0
            nspikes += fired.size
            exc, inh = fired[fired < n_exc], fired[fired >= n_exc]
            ge += excitatory_weight * connected[exc].sum(axis=0)
            gi += -9.0 * connected[inh].sum(axis=0)
        if report is not None and step % 200 == 0:
            report(step / steps)
    return nspikes
