"""Farm panel benchmark: the /farm page and the progress path with 1,000 reporting tasks.

Run from the repository root (about 2 minutes)::

    python bench/panel.py [--reps 3] [--tasks 1000] [--seconds 10]

Part 1, the component: ``FarmPage.update()`` on fake state holding 1,000 running tasks, all
of which reported since the last refresh (the worst case), including the PATCH-DOC message
that a Bokeh server builds for each open session.

Part 2, live: a Farm on a LocalCluster (2 worker processes x tasks/2 threads) runs one item
per thread; each item sleeps for ``--seconds`` and, in the reporting modes, calls
``report(fraction, "t=<send time>")`` once a second (about 1,000 events/s in all). Three
modes, repetitions interleaved so that noise hits every mode alike:

* ``baseline``: the tasks never call report(), no page open;
* ``report``: the tasks report, no page open;
* ``report+page``: the tasks report and the page is open in headless Chromium.

Measured in the middle of each run (all tasks running):

* scheduler CPU: CPU time of the scheduler's event-loop thread / wall time (the Farm's
  client shares that thread and costs the same in every mode); progress cost = the
  difference to ``baseline``;
* loop lag: how late a 50 ms timer on the scheduler's loop fires (p50 / p99 / max);
* update: wall and CPU time of each ``FarmPage.update()`` of the open session (server side;
  wall time includes waiting for the GIL and for the shared cores);
* panel behind: in the browser, now minus the send time of the newest message in the table
  (report -> scheduler -> page refresh -> websocket -> browser), and the median row's age
  (which adds the 1 s report interval).

Figures are medians over the repetitions (the machine is shared: read them as upper bounds).
Goal: panel <= 1 s behind; progress <= 5 % of a core.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import statistics
import sys
import threading
import time
from functools import partial

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

PROBE_MS = 50


# -- the task (pickled by value from __main__) ------------------------------------------


def bench_task(i, report, seconds, reporting):
    time.sleep((i % 10) / 10)  # spread the reports over the second
    end = time.time() + seconds
    step = 0
    while time.time() < end:
        step += 1
        if reporting:
            report(min(0.99, step / seconds), f"t={time.time():.3f}")
        time.sleep(1.0)
    return i


# -- part 1 ------------------------------------------------------------------------------


def fake_plugin(n):
    from daskfarm.scheduler.plugin import FarmPlugin
    from daskfarm.scheduler.state import RunRecord, TaskRow

    plugin = FarmPlugin(token="bench")
    now = time.time()
    run = RunRecord(run_id="bench-0123456789ab", name="bench", total=10 * n)
    run.started = now - 60
    for b in range(n):
        key = (run.run_id, b)
        run.processing[key] = (f"tcp://10.0.0.{b % 8}:4000", now - 5)
        run.rows[key] = {b: TaskRow(key=key, index=b, item=repr(b), worker=run.processing[key][0],
                                    frac=0.5, msg="start", elapsed=5.0, updated=now)}
    plugin.runs[run.run_id] = run
    return plugin, run


def component(n, ticks=20):
    """Median ms of one refresh with every row changed: update() and its PATCH-DOC."""
    from bokeh.document import Document
    from bokeh.protocol import Protocol

    from daskfarm.dashboard.panel import FarmPage

    plugin, run = fake_plugin(n)
    page = FarmPage(plugin, admin=True)
    doc = Document()
    doc.add_root(page.root)
    protocol = Protocol()
    events = []
    doc.on_change(events.append)
    update_ms, patch_ms, patch_kb = [], [], []
    for tick in range(ticks):
        for rows in run.rows.values():
            for row in rows.values():
                row.frac = (row.frac + 0.001) % 1
                row.msg = f"tick {tick} row {row.index}"
                row.updated = time.time()
        page.tasks.shared.clear()
        events.clear()
        t0 = time.perf_counter()
        page.update()
        t1 = time.perf_counter()
        size = 0
        for event in events:
            msg = protocol.create("PATCH-DOC", [event])
            size += len(msg.content_json) + sum(len(b.to_bytes()) for b in msg.buffers)
        t2 = time.perf_counter()
        update_ms.append(1000 * (t1 - t0))
        patch_ms.append(1000 * (t2 - t1))
        patch_kb.append(size / 1024)
    return statistics.median(update_ms), statistics.median(patch_ms), statistics.median(patch_kb)


# -- part 2 ------------------------------------------------------------------------------


def install_probe(dask_scheduler, interval_ms):
    from tornado.ioloop import PeriodicCallback

    state = {"last": time.perf_counter(), "lags": [], "thread": threading.get_ident()}

    def tick():
        now = time.perf_counter()
        state["lags"].append(max(0.0, now - state["last"] - interval_ms / 1000))
        state["last"] = now

    pc = PeriodicCallback(tick, interval_ms)
    pc.start()
    dask_scheduler._bench_probe = (state, pc)
    return state["thread"]


def probe_count(dask_scheduler):
    return len(dask_scheduler._bench_probe[0]["lags"])


def probe_lags(dask_scheduler, start):
    return dask_scheduler._bench_probe[0]["lags"][start:]


PANEL_AGE_JS = """() => {
  const src = Bokeh.documents[0].get_model_by_name('farm-tasks-source');
  const msgs = src.data.get ? src.data.get('msg') : src.data.msg;
  const now = Date.now() / 1000, ts = [];
  for (const m of msgs) if (m.startsWith('t=')) ts.push(parseFloat(m.slice(2)));
  if (!ts.length) return null;
  ts.sort((a, b) => a - b);
  return [now - ts[ts.length - 1], now - ts[Math.floor(ts.length / 2)], ts.length];
}"""


def expire_sessions(dask_scheduler):
    # A closed tab's Bokeh session keeps refreshing until it expires (15 s by default):
    # expire it now, so that it does not count in the next mode.
    mount = dask_scheduler.plugins["daskfarm"]._mount
    for context in mount.app._applications.values():
        for session in list(context.sessions):
            session.request_expiration()


def thread_cpu(ident):
    return time.clock_gettime(time.pthread_getcpuclockid(ident))


def live_run(farm, mode, n, seconds, browser, update_times):
    reporting = mode != "baseline"
    task = partial(bench_task, seconds=seconds, reporting=reporting)
    ident = farm._bench_thread
    run = farm.map(task, range(n), batch_size=1, name=f"bench-{mode}", progress=False)
    page = None
    if mode == "report+page":
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(farm.panel_link)
    time.sleep(3.5)  # every task started (the slowest start takes ~1 s)
    probe_start = farm.client.run_on_scheduler(probe_count)
    updates_start = len(update_times)
    cpu0, wall0 = thread_cpu(ident), time.perf_counter()
    ages = []
    window_end = time.monotonic() + max(2.0, seconds - 5.0)
    while time.monotonic() < window_end:
        if page is not None:
            age = page.evaluate(PANEL_AGE_JS)
            if age is not None and age[2] >= 0.9 * n:
                ages.append(age)
            page.wait_for_timeout(500)
        else:
            time.sleep(0.5)
    cpu = (thread_cpu(ident) - cpu0) / (time.perf_counter() - wall0)
    lags = sorted(farm.client.run_on_scheduler(probe_lags, start=probe_start))
    updates = update_times[updates_start:]
    if page is not None:
        page.close()
        farm.client.run_on_scheduler(expire_sessions)
        deadline = time.monotonic() + 15
        seen = -1
        while len(update_times) != seen and time.monotonic() < deadline:
            seen = len(update_times)
            time.sleep(1.5)
    summary = run.wait(timeout=seconds + 120)
    assert summary.done == n, summary
    return {
        "cpu": 100 * cpu,
        "lag50": 1000 * lags[len(lags) // 2],
        "lag99": 1000 * lags[int(0.99 * (len(lags) - 1))],
        "lagmax": 1000 * lags[-1],
        "update": 1000 * statistics.median(u[0] for u in updates) if updates else None,
        "updatemax": 1000 * max(u[0] for u in updates) if updates else None,
        "updatecpu": 1000 * statistics.median(u[1] for u in updates) if updates else None,
        "newest": statistics.median(a[0] for a in ages) if ages else None,
        "newestmax": max(a[0] for a in ages) if ages else None,
        "median_row": statistics.median(a[1] for a in ages) if ages else None,
    }


def open_browser():
    path = shutil.which("chromium")
    if path is None:
        return None, None
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=path, headless=True, args=[
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"])
    return pw, browser


def fmt(value, spec=".1f"):
    return "-" if value is None else format(value, spec)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    import dask

    from daskfarm import Farm
    from daskfarm.dashboard import panel

    print(f"part 1: FarmPage.update() with {args.tasks} running tasks, every row changed")
    comp = [component(args.tasks) for _ in range(args.reps)]
    print(f"  update {statistics.median(c[0] for c in comp):.1f} ms + PATCH-DOC "
          f"{statistics.median(c[1] for c in comp):.1f} ms per session "
          f"({statistics.median(c[2] for c in comp):.0f} KiB) per refresh "
          f"(every {panel.REFRESH_MS} ms); medians of {args.reps}")

    update_times: list[tuple[float, float]] = []
    original = panel.FarmPage.update

    def timed_update(self):
        t0, c0 = time.perf_counter(), time.thread_time()
        original(self)
        update_times.append((time.perf_counter() - t0, time.thread_time() - c0))

    panel.FarmPage.update = timed_update
    modes = ["baseline", "report", "report+page"]
    pw, browser = open_browser()
    if browser is None:
        modes.remove("report+page")
        print("chromium not found: the report+page mode is skipped")
    results: dict[str, list[dict]] = {m: [] for m in modes}
    workers = 2
    with dask.config.set({"distributed.admin.tick.limit": "10s"}), \
            Farm(n_workers=workers, threads_per_worker=args.tasks // workers) as farm:
        farm._bench_thread = farm.client.run_on_scheduler(install_probe, interval_ms=PROBE_MS)
        print(f"part 2: {args.tasks} tasks on {workers} worker processes, {args.seconds:g} s "
              f"each, {args.reps} repetitions of {', '.join(modes)}")
        for rep in range(args.reps):
            for mode in modes:
                results[mode].append(live_run(farm, mode, args.tasks, args.seconds, browser,
                                              update_times))
                r = results[mode][-1]
                print(f"  rep {rep + 1} {mode:12s} cpu {r['cpu']:5.1f} %  lag p99 "
                      f"{r['lag99']:6.1f} ms  newest {fmt(r['newest'], '.2f')} s", flush=True)
    if browser is not None:
        browser.close()
        pw.stop()

    def med(mode, key):
        values = [r[key] for r in results[mode] if r[key] is not None]
        return statistics.median(values) if values else None

    print()
    header = (f"{'mode':12s} {'sched CPU %':>11s} {'loop lag p50/p99/max ms':>24s} "
              f"{'update ms: wall (max) / CPU':>28s} "
              f"{'panel behind s: newest (max) / median row':>42s}")
    print(header)
    print("-" * len(header))
    for mode in modes:
        lag = f"{fmt(med(mode, 'lag50'))}/{fmt(med(mode, 'lag99'))}/{fmt(med(mode, 'lagmax'))}"
        update = (f"{fmt(med(mode, 'update'))} ({fmt(med(mode, 'updatemax'))}) / "
                  f"{fmt(med(mode, 'updatecpu'))}")
        behind = (f"{fmt(med(mode, 'newest'), '.2f')} ({fmt(med(mode, 'newestmax'), '.2f')}) / "
                  f"{fmt(med(mode, 'median_row'), '.2f')}")
        print(f"{mode:12s} {fmt(med(mode, 'cpu')):>11s} {lag:>24s} {update:>28s} {behind:>42s}")
    base = med("baseline", "cpu")
    print()
    for mode in modes[1:]:
        print(f"progress cost ({mode}): {med(mode, 'cpu') - base:+.1f} % of a core "
              f"(goal <= 5 %)")
    if "report+page" in modes:
        print(f"panel behind (newest message): {fmt(med('report+page', 'newest'), '.2f')} s, "
              f"worst sample {fmt(med('report+page', 'newestmax'), '.2f')} s (goal <= 1 s)")


if __name__ == "__main__":
    main()
