"""The client process dies or is interrupted: SIGKILL mid-run, Ctrl-C / SIGTERM while the
``with Farm()`` block drains, Ctrl-C pressed twice; its stderr goes away mid-run; its loop
over a run stops early.

tests/test_signals.py already covers SIGINT and SIGTERM while the script iterates a run;
these add the drain at ``with`` exit, a second Ctrl-C during the shutdown, and SIGKILL
(nothing runs in the client: only what was committed survives).
"""

from __future__ import annotations

import functools
import signal
import subprocess
import time
import warnings

import psutil
import pytest

from daskfarm import DataManager
from daskfarm.exceptions import CorruptShardWarning
from tests import _tasks as core_tasks
from tests.conftest import DEADLINE, wait_for
from tests.faults import _tasks
from tests.faults._script import N_BAR_ITEMS, N_ITEMS
from tests.faults.conftest import group_members

#: A result received by the client is committed within this many seconds: the session's
#: commit interval (1 s), checked at every put and at the feeder's ~1 s tick, plus slack for
#: two shared cores.
COMMIT_BOUND = 1.0 + 1.0 + 3.0


def stored_items(store) -> tuple[dict, list[str]]:
    """(item -> number of records under its key, the store's CorruptShardWarning messages);
    every value must be the one its item gives."""
    with DataManager(store) as dm, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        counts = {dm.params(k): len(dm.get_all(k)) for k in dm.keys()}
        values_ok = all(dm[k] == (dm.params(k), "result") for k in dm.keys())
    problems = [str(w.message) for w in caught if issubclass(w.category, CorruptShardWarning)]
    assert values_ok
    return counts, problems


@pytest.mark.slow
def test_client_sigkilled_loses_at_most_the_last_commit_and_resume_computes_the_rest(
        scripts, tmp_path, farm):
    store, marks = tmp_path / "store", tmp_path / "marks"
    script = scripts("consume", store, marks)
    script.wait_for("READY")
    script.wait_for(f"R {3 * N_ITEMS // 4}")  # well into the run, results flowing
    workers = script.children()
    killed_at = time.monotonic()
    script.proc.send_signal(signal.SIGKILL)
    assert script.finish(30) == -signal.SIGKILL
    # the workers notice that their parent died and leave
    _, alive = psutil.wait_procs(workers, timeout=DEADLINE)
    assert not alive, alive
    lines = script.out.drain(timeout=DEADLINE)  # the pipe closes once every worker has gone
    assert not group_members(script.pgid)

    received = {int(text.split()[1]): at for at, text in lines if text.startswith("R ")}
    counts, problems = stored_items(store)
    # readable: at most the block being written when the kill landed is skipped
    assert len(problems) <= 1 and all("truncated" in p for p in problems), problems
    assert set(counts.values()) == {1}
    early = {item for item, at in received.items() if at < killed_at - COMMIT_BOUND}
    assert len(early) >= 20, "the kill came too early to tell anything"
    assert early <= set(counts), f"lost results received long before the kill: " \
                                 f"{sorted(early - set(counts))}"
    executed = set(map(_item_of, _tasks.marks(marks)))
    assert set(counts) <= executed

    # a rerun with resume computes exactly the items that are not stored
    again = tmp_path / "again"
    again.mkdir()
    task = functools.partial(_tasks.paced, directory=str(again), seconds=0.01)
    summary = farm.map(task, range(N_ITEMS), store=store, name="paced", batch_size=1,
                       progress=False).wait(timeout=3 * DEADLINE)
    missing = set(range(N_ITEMS)) - set(counts)
    assert (summary.done, summary.skipped, summary.failed) == (len(missing), len(counts), 0)
    assert sorted(map(_item_of, _tasks.marks(again))) == sorted(missing)  # each once
    counts, _ = stored_items(store)
    assert sorted(counts) == list(range(N_ITEMS))
    assert set(counts.values()) == {1}  # every item stored exactly once


def _item_of(mark: str) -> int:
    return int(mark.rsplit("-", 1)[1])


@pytest.mark.slow
@pytest.mark.parametrize(("signals", "codes"), [
    ((signal.SIGINT,), (-signal.SIGINT, 130, 1)),
    ((signal.SIGTERM,), (-signal.SIGTERM, 143)),
    ((signal.SIGINT, signal.SIGINT), (-signal.SIGINT, 130, 1)),
], ids=["sigint", "sigterm", "sigint-twice"])
def test_signal_while_the_with_block_drains(scripts, tmp_path, signals, codes):
    store, marks = tmp_path / "store", tmp_path / "marks"
    script = scripts("drain", store, marks)
    script.wait_for("DRAINING")  # the with block has been left: Farm.close() drains
    workers = script.children()
    assert workers, "a LocalCluster has worker processes"
    started = time.monotonic()
    for sig in signals:
        script.proc.send_signal(sig)
        try:  # a second Ctrl-C lands while the first one's shutdown is under way
            script.proc.wait(timeout=0.3)
        except subprocess.TimeoutExpired:
            pass
    code = script.finish(60)
    assert time.monotonic() - started < 45
    lines = [text for _, text in script.out.drain(timeout=DEADLINE)]
    stderr = script.stderr()
    assert code in codes, stderr[-3000:]
    assert "CLOSED" not in lines  # the signal ended the with block, not the drain
    if signals[0] == signal.SIGINT:
        assert "KeyboardInterrupt" in stderr
    _, alive = psutil.wait_procs(workers, timeout=DEADLINE / 2)
    assert not alive, alive
    wait_for(lambda: not group_members(script.pgid), timeout=DEADLINE / 2,
             message="the script's group")
    counts, problems = stored_items(store)
    assert not problems  # a clean stop commits and closes the shard
    assert len(counts) >= 4
    assert len(counts) < N_ITEMS, "the drain was not stopped"
    assert set(counts.values()) == {1}
    assert set(counts) <= set(map(_item_of, _tasks.marks(marks)))
    with DataManager(store) as dm:
        assert dm.check().ok



@pytest.mark.slow
def test_stderr_that_goes_away_neither_stops_nor_hangs_the_run(scripts, tmp_path):
    # `python sweep.py 2>&1 | head`: once head exits, every write to stderr fails (EPIPE).
    script = scripts("bar", tmp_path / "store", tmp_path / "marks", read_stderr=False)
    script.wait_for("READY")
    script.proc.stderr.close()
    try:
        script.wait_for(f"DONE finished {N_BAR_ITEMS}", timeout=DEADLINE / 2)
        assert script.finish(30) in (0, 120)  # 120: Python could not flush stderr at exit
    finally:
        script.close()
    counts, problems = stored_items(tmp_path / "store")
    assert sorted(counts) == list(range(N_BAR_ITEMS)) and not problems


def test_breaking_out_of_the_loop_then_draining_does_not_hang(farm):
    run = farm.map(core_tasks.square, range(200), batch_size=1, progress=False)
    for i, _ in enumerate(run):
        if i == 2:
            break
    try:
        summary = run.wait(timeout=20)  # what leaving `with Farm()` does, without a deadline
    finally:
        run.cancel()
    assert (summary.status, summary.done) == ("finished", 200)
