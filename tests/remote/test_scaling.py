"""A run keeps up with a cluster that grows while it runs: scale() and adapt()."""

from __future__ import annotations

import pytest
from distributed import LocalCluster

from daskfarm import Farm
from tests.conftest import DEADLINE, wait_for
from tests.remote import _tasks

pytestmark = pytest.mark.slow


def cluster(n_workers: int) -> LocalCluster:
    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address=None)


def test_workers_added_mid_run_take_items():
    with cluster(1) as c, Farm(c) as farm:
        spans = []
        for result in farm.map(_tasks.span, range(60), batch_size=1, progress=False):
            spans.append(result)
            if len(spans) == 1:
                c.scale(3)
                wait_for(lambda: len(c.scheduler_info["workers"]) == 3, timeout=1.5 * DEADLINE,
                         message="two more workers")
    # the run started with one worker's window, and then kept all three busy
    assert _tasks.most_at_once(spans[-30:]) == 3


def test_an_adaptive_cluster_scales_up_for_a_run():
    with cluster(0) as c:
        c.adapt(minimum=0, maximum=3, interval="200ms", wait_count=5, target_duration="1s")
        with Farm(c) as farm:
            # no worker yet: the window is planned for the most the cluster may grow to,
            # so that its scheduler sees enough work to ask for them
            assert farm._capacity() == 3
            spans = list(farm.map(_tasks.span, range(60), batch_size=1, progress=False))
        assert _tasks.most_at_once(spans) >= 2
