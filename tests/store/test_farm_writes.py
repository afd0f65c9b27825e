"""The store under a real Farm run: what audit finding 4 found at the store's door."""

from __future__ import annotations

import warnings

from daskfarm import DataManager


def lambda_for_three(x):
    """Returns a lambda for item 3 (it reaches the client, but plain pickle refuses it)."""
    return (lambda: x) if x == 3 else x * 2


def test_an_unpicklable_result_does_not_abort_a_run_with_a_store(farm, tmp_path):
    dm = DataManager(tmp_path / "store")
    try:
        run = farm.map(lambda_for_three, range(40), store=dm, errors="continue",
                       batch_size=1, progress=False)
        results = list(run)  # before: FarmPicklingError raised from here, 38 items stored
        assert run.status == "finished"
        assert len(results) == 40
    finally:
        dm.close()
    with DataManager(tmp_path / "store", readonly=True) as dm, warnings.catch_warnings():
        warnings.simplefilter("error")
        stored = {dm.params(k): v for k, v in dm.items()}
        (failure,) = dm.failures()
    assert stored == {x: x * 2 for x in range(40) if x != 3}
    assert (failure.item, failure.exc_type) == (3, "FarmPicklingError")
    assert "return picklable values" in failure.message
