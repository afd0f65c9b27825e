"""A discrete-event model of the feeder and Dask, to try batch-sizing rules without a cluster.

    python bench/sizer_model.py [--seeds 8]

Models what bench/timeline.py measures: ``threads`` one-thread workers, each holding two
tasks (Dask's ``worker-saturation`` 1.1: one running, one waiting); a task costs ``cost``
seconds of its worker's time besides its items (Dask's per-task CPU taken from the cores);
a message between the client and a worker takes ``latency`` seconds; item durations vary by
``noise`` (uniform, +-share) and optionally slow down by a factor late in the run. The feeder
part is the real one: :class:`daskfarm.client.batching.BatchSizer` with the feeder's window
rules (two batches per thread, the start's ramp not counted once measured, the room in
items). Efficiency is the items' time over the threads divided by the model's makespan.

Rules compared: the sizer as shipped (guided self-scheduling tail), fixed batch sizes (what
perfect knowledge of the items would reach), and a *planned* tail: the client tracks which
worker runs which batch (a result names its worker; a batch sent when a worker freed a slot
is taken to run there next, in submission order) and sizes a worker's next batch so that all
workers end together, from each one's committed work; and *split*: batches of the sizer's
size without the tail, and a running batch asked to stop early once a thread is about to run
dry, its unstarted items sent again (item-level stealing, see :class:`SplitModel`). The
model is a guide, not a measure:
it leaves out the scheduler's own queue and the client's CPU, and on uniform 10 ms items it
reads about 0.015 above bench/batches.py.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from daskfarm.client.batching import BatchSizer

CASES = ((400, 0.01), (2000, 0.001), (40, 0.1), (4000, 0.01), (100, 0.01), (400, 0.03))
SCENARIOS = ({}, {"slow": (0.5, 2.0)}, {"noise": 0.5}, {"threads": 4}, {"slow": (0.8, 3.0)},
             {"cost": 0.008})


class Model:
    """One run of ``n`` items of about ``seconds`` each (see the module docstring)."""

    def __init__(self, sizer: BatchSizer, n: int, seconds: float, *, threads: int = 2,
                 cost: float = 0.005, latency: float = 0.008, noise: float = 0.05,
                 slow: tuple | None = None, seed: int = 0, planned: bool = False):
        rng = random.Random(seed)
        self.durations = [seconds * (1 + noise * (2 * rng.random() - 1)) for _ in range(n)]
        if slow is not None:  # from this share of the items on, each takes `factor` times more
            share, factor = slow
            for i in range(int(n * share), n):
                self.durations[i] *= factor
        self.sizer, self.n, self.threads = sizer, n, threads
        self.cost, self.latency, self.planned = cost, latency, planned
        self.pulled = self.tasks = self.done = 0
        self.end = 0.0
        self.in_flight: dict[int, tuple[int, float]] = {}  # batch -> (items, seconds of work)
        self.ramp: set[int] = set()
        self.queued = [[] for _ in range(threads)]  # batches on each worker, running first
        self.waiting: list[int] = []  # batches at the scheduler, no worker slot free
        self.events: list = []
        self.order = itertools.count()
        self.runs_on: dict[int, int] = {}  # the planned tail's guess of each batch's worker
        self.last_free = [0.0] * threads  # when each worker last returned a batch

    def _push(self, t: float, kind: str, *args) -> None:
        heapq.heappush(self.events, (t, next(self.order), kind, args))

    def _planned_size(self, worker: int, now: float, remaining: int, size: int) -> int:
        per_item = self.sizer.per_item
        committed = [0.0] * self.threads
        unknown = 0.0
        for b, (items, _) in self.in_flight.items():
            w = self.runs_on.get(b)
            if w is None:
                unknown += items * per_item
            else:
                committed[w] += items * per_item
        for w in range(self.threads):
            mine = sorted(b for b in self.in_flight if self.runs_on.get(b) == w)
            if mine and w != worker:  # its oldest batch has run since it last returned one
                committed[w] -= min(self.in_flight[mine[0]][0] * per_item, now - self.last_free[w])
        end = (sum(committed) + unknown + remaining * per_item) / self.threads
        return max(1, min(size, math.ceil((end - committed[worker]) / per_item)))

    def _fill(self, now: float, freed: int | None = None) -> None:
        sizer, threads = self.sizer, self.threads
        first = True
        while self.pulled < self.n:
            counted = len(self.in_flight) - (len(self.ramp) if sizer.per_item else 0)
            if counted >= sizer.window(threads):
                return
            room = sizer.item_window(threads) - sum(k for k, _ in self.in_flight.values())
            if room <= 0:
                return
            remaining = self.n - self.pulled
            plan = self.planned and sizer.per_item is not None and freed is not None and first
            size = sizer.next_size(threads=threads, remaining=None if plan else remaining,
                                   cap=room, busy=bool(self.in_flight),
                                   batches=len(self.in_flight))
            if size == 0:
                return
            if plan:
                size = self._planned_size(freed, now, remaining, size)
                if remaining - size < sizer.smallest():
                    size = remaining
            size = min(size, remaining)
            work = sum(self.durations[self.pulled:self.pulled + size])
            self.pulled += size
            b = self.tasks
            self.tasks += 1
            self.in_flight[b] = (size, work)
            if sizer.per_item is None:
                self.ramp.add(b)
            if freed is not None and first:
                self.runs_on[b] = freed  # the freed slot takes it
            first = False
            self._push(now + self.latency, "arrive", b)

    def _dispatch(self, now: float) -> None:
        while self.waiting:
            free = [w for w in range(self.threads) if len(self.queued[w]) < 2]
            if not free:
                return
            w = min(free, key=lambda w: len(self.queued[w]))
            self.queued[w].append(self.waiting.pop(0))
            if len(self.queued[w]) == 1:
                self._start(w, now)

    def _start(self, w: int, now: float) -> None:
        b = self.queued[w][0]
        self._push(now + self.in_flight[b][1] + self.cost, "finish", w, b)

    def run(self) -> tuple[float, int]:
        """(efficiency, Dask tasks)."""
        self._fill(0.0)
        while self.events:
            now, _, kind, args = heapq.heappop(self.events)
            getattr(self, f"_on_{kind}")(now, *args)
        assert self.done == self.n
        return sum(self.durations) / self.threads / self.end, self.tasks

    def _on_arrive(self, now: float, b: int) -> None:
        self.waiting.append(b)
        self._dispatch(now)

    def _on_finish(self, now: float, w: int, b: int) -> None:
        self.queued[w].pop(0)
        if self.queued[w]:
            self._start(w, now)
        self._dispatch(now)
        self._push(now + self.latency, "result", w, b)

    def _on_result(self, now: float, w: int, b: int) -> None:
        """The result of batch ``b`` reaches the client."""
        items, work = self.in_flight.pop(b)
        self.ramp.discard(b)
        self.sizer.observe(items, work)
        self.runs_on.pop(b, None)
        self.last_free[w] = now
        if not any(v == w for v in self.runs_on.values()):
            unknown = sorted(x for x in self.in_flight if x not in self.runs_on)
            if unknown:  # the worker runs the oldest batch not placed yet
                self.runs_on[unknown[0]] = w
        self.done += items
        self.end = now
        self._fill(now, w)

class SplitModel(Model):
    """The *split* rule: batches of the sizer's size, without the shrinking tail; once
    nothing is left to send and a slot cannot be refilled (a thread will soon run dry), the
    client asks the running batch with the most work left to stop after the item it runs;
    its unstarted items return with its result and go out again, a batch per thread. One
    request at a time; the client is taken to know how long each batch has run (progress
    events could tell it). Batches waiting on a worker behind a running one are not split:
    Dask would have to take them back first."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ranges: dict[int, tuple[int, int]] = {}  # batch -> its items [lo, hi)
        self.running: dict[int, tuple[int, float]] = {}  # worker -> (batch, start)
        self.version: dict[int, int] = {}  # batch -> the finish event that counts
        self.given_back: dict[int, tuple[int, int]] = {}  # batch -> items it returns unrun
        self.rest: list[tuple[int, int]] = []  # item ranges to send before new items
        self.asked: int | None = None
        self.splits = 0

    def _fill(self, now: float, freed: int | None = None) -> None:
        sizer, threads = self.sizer, self.threads
        while self.rest or self.pulled < self.n:
            counted = len(self.in_flight) - (len(self.ramp) if sizer.per_item else 0)
            if counted >= sizer.window(threads):
                break
            if self.rest:
                lo, hi = self.rest.pop(0)
            else:
                room = sizer.item_window(threads) - sum(k for k, _ in self.in_flight.values())
                if room <= 0:
                    break
                size = sizer.next_size(threads=threads, remaining=None, cap=room,
                                       busy=bool(self.in_flight), batches=len(self.in_flight))
                if size == 0:
                    break
                remaining = self.n - self.pulled
                if remaining - size < sizer.smallest():
                    size = remaining
                lo, hi = self.pulled, self.pulled + min(size, remaining)
                self.pulled = hi
            b = self.tasks
            self.tasks += 1
            self.ranges[b] = (lo, hi)
            self.in_flight[b] = (hi - lo, sum(self.durations[lo:hi]))
            if sizer.per_item is None:
                self.ramp.add(b)
            self._push(now + self.latency, "arrive", b)
        self._maybe_split(now)

    def _maybe_split(self, now: float) -> None:
        if self.asked is not None or self.rest or self.pulled < self.n:
            return
        if len(self.in_flight) >= self.sizer.window(self.threads) or not self.running:
            return
        left, b = max((self.in_flight[b][1] - (now - t0), b) for b, t0 in self.running.values())
        if left > 4 * self.sizer.min_seconds:
            self.asked = b
            self._push(now + self.latency, "split", b)

    def _on_split(self, now: float, b: int) -> None:
        started = [t0 for w, (x, t0) in self.running.items() if x == b]
        lo, hi = self.ranges[b]
        if not started:
            self.asked = None
            return
        t, c = started[0], lo  # the item running now is c
        while c < hi and t + self.durations[c] <= now:
            t += self.durations[c]
            c += 1
        if hi - (c + 1) < 2:
            self.asked = None
            return
        keep = c + 1  # it stops after the item it runs
        self.ranges[b] = (lo, keep)
        self.given_back[b] = (keep, hi)
        work = sum(self.durations[lo:keep])
        self.in_flight[b] = (keep - lo, work)
        self.version[b] = self.version.get(b, 0) + 1
        self.splits += 1
        w = next(w for w, (x, _) in self.running.items() if x == b)
        self._push(started[0] + work + self.cost, "finish", w, b, self.version[b])

    def _start(self, w: int, now: float) -> None:
        b = self.queued[w][0]
        self.running[w] = (b, now)
        self.version.setdefault(b, 0)
        self._push(now + self.in_flight[b][1] + self.cost, "finish", w, b, self.version[b])

    def _on_finish(self, now: float, w: int, b: int, version: int = 0) -> None:
        if version != self.version[b]:
            return  # the batch was split: it ends earlier
        self.running.pop(w, None)
        super()._on_finish(now, w, b)

    def _on_result(self, now: float, w: int, b: int) -> None:
        if b in self.given_back:  # its unstarted items, in one batch per thread
            lo, hi = self.given_back.pop(b)
            parts = min(self.threads, hi - lo)
            cuts = [lo + (hi - lo) * k // parts for k in range(parts + 1)]
            self.rest.extend(itertools.pairwise(cuts))
        if self.asked == b:
            self.asked = None
        super()._on_result(now, w, b)

def table(label: str, make, seeds: int) -> None:
    means = []
    for scenario in SCENARIOS:
        cells = []
        for n, seconds in CASES:
            runs = [make(n, seconds, seed, scenario).run() for seed in range(seeds)]
            eff = sum(e for e, _ in runs) / seeds
            means.append(eff)
            cells.append(f"{eff:.3f} ({sum(k for _, k in runs) / seeds:.0f})")
        print(f"{label:<14} {str(scenario) or '{}':<22} " + "  ".join(cells))
    print(f"{label:<14} mean {sum(means) / len(means):.3f}, worst {min(means):.3f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args()
    print("efficiency (Dask tasks), mean over seeds; columns: "
          + ", ".join(f"{n} x {s * 1e3:g} ms" for n, s in CASES) + "\n")
    table("shipped", lambda n, s, seed, kw: Model(BatchSizer(), n, s, seed=seed, **kw),
          args.seeds)
    table("planned tail", lambda n, s, seed, kw: Model(BatchSizer(), n, s, seed=seed,
                                                       planned=True, **kw), args.seeds)
    table("split", lambda n, s, seed, kw: SplitModel(BatchSizer(), n, s, seed=seed, **kw),
          args.seeds)
    table("split, 1 s", lambda n, s, seed, kw: SplitModel(BatchSizer(target=1.0), n, s,
                                                         seed=seed, **kw), args.seeds)
    for size in (50, 100):
        table(f"fixed {size}", lambda n, s, seed, kw, size=size: Model(
            BatchSizer(size), n, s, seed=seed, **kw), args.seeds)


if __name__ == "__main__":
    main()
