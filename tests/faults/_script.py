"""A farm script for the signal and client-kill tests: ``python -m tests.faults._script``.

``MODE STORE MARKS`` where MODE is:

``consume``
    Iterate a run of 400 paced items, printing ``R <item>`` for every result received.
``drain``
    Start a run and leave the ``with Farm()`` block without iterating: the Farm drains it.
    ``DRAINING`` is printed once a few results are stored.

``bar``
    A run with a terminal progress bar (on stderr, which the test closes), printing
    ``DONE <status> <done>`` when it ends.

``READY`` is printed once the run is going. Every result is stored in STORE; every execution
leaves a marker file in MARKS.
"""

from __future__ import annotations

import functools
import itertools
import sys

from daskfarm import Farm
from tests.faults import _tasks

N_ITEMS = 400
N_BAR_ITEMS = 10


def main(mode: str, store: str, marks: str) -> None:
    with Farm(n_workers=2, dashboard=False) as farm:
        if mode == "consume":
            task = functools.partial(_tasks.paced, directory=marks, seconds=0.05)
            run = farm.map(task, range(N_ITEMS), store=store, batch_size=1, name="paced",
                           progress=False)
            for i, (item, _) in enumerate(run.pairs()):
                print(f"R {item}", flush=True)
                if i == 3:
                    print("READY", flush=True)
        elif mode == "drain":
            task = functools.partial(_tasks.paced, directory=marks, seconds=0.05)
            run = farm.map(task, range(N_ITEMS), store=store, batch_size=1, name="paced",
                           progress=False)
            run.on_result(functools.partial(_announce, itertools.count(1)))
            print("READY", flush=True)
        elif mode == "bar":
            task = functools.partial(_tasks.paced, directory=marks, seconds=0.3)
            run = farm.map(task, range(N_BAR_ITEMS), store=store, batch_size=1, name="paced",
                           progress=True)
            for i, _ in enumerate(run):
                if i == 0:
                    print("READY", flush=True)
            summary = run.summary()
            print(f"DONE {summary.status} {summary.done}", flush=True)
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    print("CLOSED", flush=True)


def _announce(counter, item, result) -> None:
    if next(counter) == 4:
        print("DRAINING", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
