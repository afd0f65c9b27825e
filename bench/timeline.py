"""Where a short-item run's time goes: each worker's busy and idle time, batch by batch.

    python bench/timeline.py [--reps 3] [--case 10ms] [--batch-size auto]

Runs ``farm.map`` over one case of bench/batches.py (400 x 10 ms of CPU, 2,000 x 1 ms
sleeps or 40 x 100 ms of CPU) on a 2-worker Farm, ``--reps`` times, and records for every
batch when its result reached the client, on which worker it ran and how long it computed
there. From these it prints, per run: the wall time against the ideal (the items' own time
over the 2 cores; for sleeps, what a 1 ms sleep really takes here), the compute time the
batches measured on the workers (above the items' CPU when other processes take the cores
from them), when each worker started its first batch and ended its last, the gaps between
its batches, and the CPU the client process's threads used (the IO loop runs the
scheduler, the client's comms and the nannies; the feeder is the farm's own thread). A
batch's start is taken as its result's arrival minus its compute time, so each gap is a
worker's idle time plus one trip of a result to the client.
"""

import argparse
import collections
import os
import pickle
import sys
import threading
import time

import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _work
from batches import CASES

from daskfarm import Farm
from daskfarm.client import feeder as _feeder
from daskfarm.client import results as _results

_finished: list = []  # (arrival, n_items, compute seconds, worker) of every batch
_feeder_cpu: list = []  # CPU seconds of each run's feeder thread


def _record() -> None:
    finished = _results.Results.finished

    def recorded(self, batch, payload):
        elapsed, values, *_, worker = pickle.loads(payload)
        _finished.append((time.perf_counter(), len(values), elapsed, worker))
        return finished(self, batch, payload)

    main = _feeder.Feeder._main

    def timed_main(self):
        try:
            main(self)
        finally:
            _feeder_cpu.append(time.thread_time())

    _results.Results.finished = recorded
    _feeder.Feeder._main = timed_main


def io_loop_cpu() -> float:
    """CPU seconds of this process's Dask IO loop thread so far."""
    ids = {t.native_id for t in threading.enumerate() if t.name == "IO loop"}
    return sum(t.user_time + t.system_time for t in psutil.Process().threads() if t.id in ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--case", default="10ms", choices=sorted(CASES))
    parser.add_argument("--batch-size", default="auto")
    args = parser.parse_args()
    fn, n, seconds = CASES[args.case]
    if args.case == "1ms":  # what a 1 ms sleep really takes here sets the limit
        seconds = _work.measured_sleep()
    size = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    _record()
    with Farm(n_workers=2, threads_per_worker=1) as farm:
        sum(1 for _ in farm.map(fn, range(min(n, 200)), progress=False))  # warm up
        for rep in range(args.reps):
            _finished.clear()
            loop0 = io_loop_cpu()
            t0 = time.perf_counter()
            count = sum(1 for _ in farm.map(fn, range(n), progress=False, batch_size=size))
            wall = time.perf_counter() - t0
            loop = io_loop_cpu() - loop0
            assert count == n
            ideal = n * seconds / 2
            compute = sum(e for _, _, e, _ in _finished)
            print(f"run {rep + 1}: {wall:.3f} s (ideal {ideal:.3f} s, {ideal / wall:.1%}); "
                  f"{len(_finished)} batches; compute on the workers {compute:.3f} s for "
                  f"{n * seconds:.3f} s of items; client CPU: IO loop {loop:.3f} s, feeder "
                  f"{_feeder_cpu[-1]:.3f} s")
            spans = collections.defaultdict(list)
            for arrival, _k, elapsed, worker in _finished:
                spans[worker].append((arrival - t0 - elapsed, arrival - t0))
            for worker, iv in sorted(spans.items()):
                iv.sort()
                gaps = [iv[i + 1][0] - iv[i][1] for i in range(len(iv) - 1)]
                print(f"  worker {worker}: first start {iv[0][0]:.3f} s, last end "
                      f"{iv[-1][1]:.3f} s, busy {sum(b - a for a, b in iv):.3f} s, "
                      f"{len(iv)} batches, gaps {sum(g for g in gaps if g > 0):.3f} s "
                      f"(largest {max(gaps, default=0):.3f} s)")


if __name__ == "__main__":
    main()
