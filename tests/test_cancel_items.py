"""Cancelling single items of a batch (what the panel's "cancel selected" does)."""

from __future__ import annotations

import functools

from distributed import Event

from tests.conftest import DEADLINE

from . import _tasks
from .conftest import wait_for


def _reported(run_id, dask_scheduler=None):
    run = dask_scheduler.plugins["daskfarm"].runs[run_id]
    return [(list(key), index) for key, rows in run.rows.items() for index in rows]


def _cancel(run_id, pairs, dask_scheduler=None):
    plugin = dask_scheduler.plugins["daskfarm"]
    return plugin.cancel_items(run_id, [(tuple(key), index) for key, index in pairs])


def test_one_item_of_a_batch_is_cancelled_the_others_go_on(farm):
    gate = Event("items-gate", client=farm.client)
    gate.clear()
    task = functools.partial(_tasks.reports_until_released, event_name="items-gate")
    run = farm.map(task, range(4), batch_size=4, ordered=True, progress=False)
    client = farm.client
    try:
        _check(client, run, gate)
    finally:
        gate.set()


def _check(client, run, gate):
    reported = wait_for(lambda: client.run_on_scheduler(_reported, run.run_id),
                        timeout=DEADLINE / 2,
                        message="the first item to report")
    (key, index), = reported
    assert index == 0
    # item 0 is running, item 2 waits in the same batch: cancel both
    assert client.run_on_scheduler(_cancel, run.run_id, [(key, 0), (key, 2)]) == 2
    wait_for(lambda: any(i == 1 for _, i in client.run_on_scheduler(_reported, run.run_id)),
             timeout=DEADLINE / 2, message="item 1 to start once item 0 stopped")
    gate.set()
    assert list(run.pairs()) == [(1, 1), (3, 3)]
    assert run.counts["cancelled"] == 2
    assert run.counts["done"] == 2
