"""A script that runs a farm with a store until it is interrupted (used by test_signals)."""

import sys

from daskfarm import Farm
from tests import _tasks

if __name__ == "__main__":
    store = sys.argv[1]
    with Farm(n_workers=2, dashboard=False) as farm:
        run = farm.map(_tasks.slow_item, range(10_000), store=store, batch_size=1,
                       progress=False)
        for i, _ in enumerate(run):
            if i == 3:
                print("READY", flush=True)
