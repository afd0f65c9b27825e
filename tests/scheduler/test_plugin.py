"""The scheduler plugin's hooks, in process: distributed's ``gen_cluster`` runs a scheduler and
two workers on one event loop, and the tests call Dask and read the plugin's state directly."""

from __future__ import annotations

import asyncio

from distributed import Nanny
from distributed.utils_test import gen_cluster

from daskfarm._protocol import (
    HARD_STOP_HANDLER,
    PROGRESS_TOPIC,
    RUN_TOPIC,
    SUMMARY_TOPIC,
)
from daskfarm.scheduler.plugin import FarmPlugin
from tests.conftest import DEADLINE

RUN = "sweep-0123456789ab"


async def _plugin(c, s) -> FarmPlugin:
    await c.register_plugin(FarmPlugin(token="t"))
    return s.plugins[FarmPlugin.name]


def _start(s, client_id: str = "c") -> None:
    s.log_event(RUN_TOPIC, {"op": "start", "run": RUN, "name": "sweep", "client": client_id,
                            "total": 4, "started": 0.0, "plot": False})


def _blocked(x, event):
    event.wait(30)
    return x


@gen_cluster(client=True)
async def test_transitions_track_the_run_tasks_being_processed(c, s, a, b):
    plugin = await _plugin(c, s)
    _start(s, c.id)
    from distributed import Event

    gate = Event("gate", client=c)
    future = c.submit(_blocked, 1, gate, key=(RUN, 0))
    while (RUN, 0) not in plugin.runs[RUN].processing:
        await asyncio.sleep(0.01)
    worker, _ = plugin.runs[RUN].processing[(RUN, 0)]
    assert worker in (a.address, b.address)
    other = c.submit(_blocked, 2, gate, key="not-a-farm-key")  # ignored: not (run, n)
    await gate.set()
    assert await future == 1 and await other == 2
    while plugin.runs[RUN].processing:
        await asyncio.sleep(0.01)


@gen_cluster(client=True)
async def test_progress_events_become_rows_and_a_summary(c, s, a, b):
    plugin = await _plugin(c, s)
    _start(s, c.id)
    run = plugin.runs[RUN]
    run.processing[(RUN, 3)] = (a.address, 0.0)
    s.log_event(PROGRESS_TOPIC, {"worker": a.address, "batch": [
        {"run": RUN, "key": [RUN, 3], "i": 7, "frac": 0.25, "msg": "a quarter",
         "elapsed": 1.0, "item": "(1, 2)"},
        {"run": "unknown-run", "key": ["unknown-run", 0], "i": 0, "frac": 1.0, "msg": "",
         "elapsed": 0.0},
        {"malformed": True},
    ]})
    (row,) = run.task_rows()
    assert (row.index, row.frac, row.msg, row.item, row.worker) == (7, 0.25, "a quarter",
                                                                      "(1, 2)", a.address)
    assert plugin.events == 3
    # the plugin holds the state; the scheduler's broker keeps no copy of progress batches
    # (1,000 of them held 200,000 messages, bench/sched_memory.py)
    assert s.get_events(PROGRESS_TOPIC) == () and s.get_events(RUN_TOPIC) == ()
    plugin._publish_summary()
    summary = s.get_events(SUMMARY_TOPIC)[-1][1]
    assert summary == {"runs": {RUN: [1, 0.25]}}  # one executing task (a has 1+ threads)


@gen_cluster(client=True)
async def test_remove_worker_drops_its_tasks_and_remove_client_ends_its_runs(c, s, a, b):
    plugin = await _plugin(c, s)
    _start(s, "a-client-that-dies")
    run = plugin.runs[RUN]
    run.processing[(RUN, 0)] = (a.address, 0.0)
    run.processing[(RUN, 1)] = (b.address, 0.0)
    plugin.remove_worker(s, a.address)
    assert list(run.processing) == [(RUN, 1)]
    plugin.remove_client(s, "a-client-that-dies")
    assert run.finished is not None and run.status == "cancelled"
    assert not run.processing and not run.rows


@gen_cluster(client=True)
async def test_runs_of_clients_that_are_gone_are_ended_on_the_next_tick(c, s, a, b):
    plugin = await _plugin(c, s)
    _start(s, "never-connected")
    plugin._tick()
    assert plugin.runs[RUN].status == "cancelled"


@gen_cluster(client=True)
async def test_finished_runs_are_bounded(c, s, a, b):
    plugin = await _plugin(c, s)
    for n in range(25):
        run_id = f"run{n}-0123456789ab"
        s.log_event(RUN_TOPIC, {"op": "start", "run": run_id, "client": c.id})
        s.log_event(RUN_TOPIC, {"op": "finish", "run": run_id, "status": "finished",
                                "counts": {"done": 1}})
    assert len(plugin.runs) == 10
    assert all(r.finished is not None for r in plugin.runs.values())


@gen_cluster(client=True)
async def test_the_worker_index_is_stable_and_does_not_grow_without_bound(c, s, a, b):
    plugin = await _plugin(c, s)
    numbers = {plugin._handle_worker_index(str(w.name)) for w in (a, b)}
    assert numbers == {0, 1}
    index = plugin.worker_index
    for n in range(500):  # an adaptive cluster names every new worker anew
        index.assign(f"gone-{n}", f"tcp://10.0.0.1:{n}", s.workers.values())
        index.prune({str(a.name), str(b.name)})
    assert len(index.numbers) <= 2 + 64
    assert plugin._handle_worker_index(str(a.name)) in (0, 1)


@gen_cluster(client=True, Worker=Nanny, nthreads=[("127.0.0.1", 1)] * 2, timeout=DEADLINE)
async def test_a_hard_stop_restarts_the_worker_without_blaming_its_tasks(c, s, a, b):
    await _plugin(c, s)
    from distributed import Event

    gate = Event("hard-stop-gate", client=c)
    future = c.submit(_blocked, 5, gate, key=("bystander-run", 0), pure=False)
    while not any(ws.processing for ws in s.workers.values()):
        await asyncio.sleep(0.01)
    (address,) = [w for w, ws in s.workers.items() if ws.processing]
    ts = s.tasks[("bystander-run", 0)]
    before = ts.suspicious
    reply = await s.handlers[HARD_STOP_HANDLER](workers=[address], reason="test")
    assert reply == {address: "OK"}
    while address in s.workers:
        await asyncio.sleep(0.02)
    await gate.set()
    assert await future == 5  # rescheduled, not failed
    assert ts.suspicious == before
