"""The first results of an endless input: how soon they come, and how far the farm pulls ahead.

    python bench/stream.py [--reps 3]

On a 2-worker Farm, ``farm.map`` over an endless generator (bench/peers.py's counted
generator and daskfarm engine); the first N results are taken, then the run is cancelled and
waited for (the time counts all of it, as a caller breaking out of the loop would see it).
Workloads: 1 ms sleeps (first 2,000, as the endless row of bench/peers.py) and 10 ms of CPU
per item (first 400 and first 1,600: 2 s and 8 s of the two cores, long enough for a stream's
batches to reach the 0.5 s target). Prints the median items/s with min-max and how many
items were pulled beyond the N taken.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _work
from peers import Counted, DaskFarm

CASES = (("sleep 1 ms, first 2,000", _work.sleep_1ms, 2000),
         ("busy 10 ms, first 400", _work.busy_10ms, 400),
         ("busy 10 ms, first 1,600", _work.busy_10ms, 1600))


def take(engine: DaskFarm, fn, n: int) -> tuple[float, int]:
    """Items/s for the first ``n`` results (cancel and wait included), and the pull beyond."""
    gen = Counted()
    t0 = time.perf_counter()
    got = engine.stream(fn, gen, n)
    assert got == n
    return n / (time.perf_counter() - t0), gen.pulled - n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    rates: dict = {name: [] for name, _, _ in CASES}
    ahead: dict = {name: [] for name, _, _ in CASES}
    engine = DaskFarm(2)  # bench/peers.py's engine: farm.map, then cancel and wait
    try:
        for _, fn, _ in CASES:  # warm up: imports, first batches
            take(engine, fn, 100)
        for _ in range(args.reps):
            for name, fn, n in CASES:
                rate, beyond = take(engine, fn, n)
                rates[name].append(rate)
                ahead[name].append(beyond)
    finally:
        engine.close()
    print(f"# endless input, median of {args.reps} (min-max), 2 workers, {os.cpu_count()} CPUs")
    for name, _, _ in CASES:
        r = rates[name]
        print(f"{name:<26} {statistics.median(r):8,.0f}/s ({min(r):,.0f}-{max(r):,.0f})  "
              f"pulled beyond: {statistics.median(ahead[name]):,.0f}")


if __name__ == "__main__":
    main()
