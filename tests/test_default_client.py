"""A Farm is the default Dask client while it is open, as ``Client()`` is."""

from __future__ import annotations

import dask
import pytest
from distributed import Client, LocalCluster, as_completed, default_client, get_worker

from daskfarm import Farm
from tests._tasks import square


def _worker_address():
    return get_worker().address


def _default():
    try:
        return default_client()
    except ValueError:  # "No clients found"
        return None


def test_dask_compute_and_as_completed_use_the_farm(farm):
    workers = set(farm.client.scheduler_info()["workers"])
    assert default_client() is farm.client
    # dask.delayed runs on the farm's workers, not in the local threaded scheduler
    where = dask.delayed(_worker_address)().compute()
    assert where in workers
    (total,) = dask.compute(dask.delayed(sum)([dask.delayed(square)(i) for i in range(5)]))
    assert total == 30
    futures = farm.client.map(square, range(6))
    assert sorted(f.result() for f in as_completed(futures)) == [0, 1, 4, 9, 16, 25]


def test_the_previous_default_comes_back(farm):
    before = _default()  # the module's farm
    assert before is farm.client
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as own:
        assert default_client() is own
        with Farm(cluster) as farm:  # a cluster: the Farm's own client is the default
            assert default_client() is farm.client is not own
            workers = set(farm.client.scheduler_info()["workers"])
            assert dask.delayed(_worker_address)().compute() in workers
        assert default_client() is own
        with Farm(own) as farm:  # a client: it is the default, and stays open afterwards
            assert default_client() is own
            assert sorted(farm.map(square, range(4))) == [0, 1, 4, 9]
        assert default_client() is own
        assert own.status == "running"
        assert dask.delayed(square)(3).compute() == 9
    assert _default() is before


def test_a_closed_farm_is_no_longer_the_default(farm):
    farm.close()  # the module's farm: now no client at all is open
    with pytest.raises(ValueError, match="No clients found"):
        default_client()
    with Farm(n_workers=1) as other:
        assert default_client() is other.client
    with pytest.raises(ValueError, match="No clients found"):
        default_client()
