"""Four processes write 50,000 results each into one store at once, as four farm scripts
sharing a store directory do (tests/store/test_processes.py has 4 x 20,000 with a commit per
batch; these use the Farm's own write path: ``put_many`` per finished batch and the default
commit rule, one commit per second or 500 records)."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings

import pytest

from daskfarm import DataManager
from tests.conftest import DEADLINE
from tests.faults.conftest import env_with_repo

pytestmark = pytest.mark.slow

N, WRITERS = 50_000, 4

#: ``python -c WRITER store prefix n``: results arrive in batches of 1 to 97 records, as
#: finished batches do, and are committed by the session's own rule.
WRITER = """
import sys
from daskfarm import DataManager

store, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with DataManager(store) as dm, dm.session(prefix, run_id=prefix, task="load") as s:
    i, size = 0, 1
    while i < n:
        hi = min(n, i + size)
        s.put_many((f"{prefix}-{j}", {"i": j}, (j, prefix)) for j in range(i, hi))
        i, size = hi, size % 97 + 1
print("done", flush=True)
"""


def test_four_processes_write_50k_results_each_into_one_store(tmp_path):
    store = tmp_path / "store"
    prefixes = [f"w{j}" for j in range(WRITERS)]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store), p, str(N)],
                              env=env_with_repo(), stdout=subprocess.PIPE, text=True)
             for p in prefixes]
    try:
        seen = [0]
        deadline = time.monotonic() + 150
        with DataManager(store) as dm, warnings.catch_warnings():
            warnings.simplefilter("error")  # a reader never meets a damaged shard
            while any(p.poll() is None for p in procs):
                assert time.monotonic() < deadline, "the writers did not finish in time"
                seen.append(len(dm))
                assert seen[-1] >= seen[-2]  # committed records never disappear
                time.sleep(0.05)  # pace the reader; the writers' progress is the condition
        outputs = [p.communicate(timeout=DEADLINE)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=DEADLINE / 2)
    assert [p.returncode for p in procs] == [0] * WRITERS
    assert all(out.strip() == "done" for out in outputs)

    with DataManager(store) as dm, warnings.catch_warnings():
        warnings.simplefilter("error")
        keys = dm.stored_keys()
        assert len(keys) == len(dm) == N * WRITERS
        assert keys == {f"{p}-{i}" for p in prefixes for i in range(N)}
        values = sorted(dm.itervalues())
        assert values == sorted((i, p) for p in prefixes for i in range(N))
        assert dm.params("w3-49999") == {"i": 49999}
        assert [r.value for r in dm.get_all("w1-12345")] == [(12345, "w1")]
        report = dm.check()
        assert report.ok
        assert sum(e.records for e in report.entries) == N * WRITERS
    assert len(set(seen)) > 2, "the reader never saw the store grow"
