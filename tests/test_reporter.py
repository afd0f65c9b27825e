"""report(): call conventions, throttling (with a fake clock) and the cancellation check."""

from __future__ import annotations

import pytest

from daskfarm import TaskCancelled, report
from daskfarm import _distributed as _dask
from daskfarm.worker import reporter as rep


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def sent(monkeypatch):
    events = []
    clock = FakeClock()
    monkeypatch.setattr(rep, "_clock", clock)
    monkeypatch.setattr(rep._outbox, "put", events.append)
    monkeypatch.setattr(_dask, "current_task_cancelled", lambda: False)
    ctx = rep._ItemContext("run-1", ("run-1", 0), interval=1.0)
    ctx.reset(7, {"weight": 0.5})
    rep._enter(ctx)
    yield events, clock, ctx
    rep._enter(None)


def test_outside_a_task_report_does_nothing():
    assert report(0.5, "ignored") is None
    assert list(report.iter([1, 2])) == [1, 2]
    assert report.cancelled() is False


def test_first_call_is_sent_with_the_item(sent):
    events, _, _ = sent
    report(0.1, "starting")
    assert len(events) == 1
    msg = events[0]
    assert msg["run"] == "run-1"
    assert msg["key"] == ["run-1", 0]
    assert msg["i"] == 7
    assert msg["item"] == "{'weight': 0.5}"
    assert (msg["frac"], msg["msg"]) == (0.1, "starting")


def test_calls_are_throttled_to_one_per_interval(sent):
    events, clock, _ = sent
    report(0.0)
    for step in range(1, 100):
        clock.now += 0.05  # 20 calls per second
        report(step / 1000)
    # 99 calls over 4.95 s: the first plus about one per second
    assert 5 <= len(events) <= 6
    assert events[-1]["frac"] <= 0.099


def test_final_fraction_and_changed_message_go_out_early(sent):
    events, clock, _ = sent
    report(0.1, "a")
    clock.now += 0.01
    report(0.2, "a")
    assert len(events) == 1  # throttled
    clock.now += 0.2
    report(0.3, "b")  # a new message after >= 0.1 s
    assert len(events) == 2
    clock.now += 0.01
    report(1.0)  # the final report always goes out
    assert len(events) == 3
    assert events[-1]["frac"] == 1.0
    assert events[-1]["msg"] == "b"


def test_brian_call_conventions(sent):
    events, clock, _ = sent
    report(12.0, 0.25)  # Brian 1: report(elapsed, completed)
    assert events[-1]["frac"] == 0.25
    clock.now += 2
    report(14.0, 0.5, 0.0, 10.0)  # Brian 2: report(elapsed, completed, start, duration)
    assert events[-1]["frac"] == 0.5
    clock.now += 2
    report(fraction=0.75, message="kw")
    assert (events[-1]["frac"], events[-1]["msg"]) == (0.75, "kw")


def test_iter_reports_the_fraction(sent):
    events, clock, _ = sent
    out = []
    for x in report.iter(range(4)):
        out.append(x)
        clock.now += 2
    assert out == [0, 1, 2, 3]
    assert [e["frac"] for e in events] == [0.25, 0.5, 0.75, 1.0]


def test_outbox_sends_one_event_per_flush_with_the_newest_message_per_item(monkeypatch):
    sent_events = []
    monkeypatch.setattr(_dask, "log_worker_event", lambda topic, msg: sent_events.append(msg))
    box = rep._Outbox()
    box.put({"run": "r", "key": ["r", 0], "i": 0, "frac": 0.1, "msg": "", "item": "0"})
    box.put({"run": "r", "key": ["r", 0], "i": 0, "frac": 0.2, "msg": ""})
    box.put({"run": "r", "key": ["r", 1], "i": 1, "frac": 0.5, "msg": "", "item": "1"})
    box.flush()
    box.flush()  # nothing pending: nothing sent
    assert len(sent_events) == 1
    batch = sent_events[0]["batch"]
    assert [(m["i"], m["frac"], m["item"]) for m in batch] == [(0, 0.2, "0"), (1, 0.5, "1")]


def test_a_batch_probe_replaces_the_lookup_of_the_running_task(sent, monkeypatch):
    # the batch runner hands its probe of the Dask task to the item context; report() then
    # asks the probe and never looks the task up again
    _, _, ctx = sent

    def looked_up():
        raise AssertionError("report() looked the task up despite the probe")

    monkeypatch.setattr(_dask, "current_task_cancelled", looked_up)
    state = {"cancelled": False}
    ctx.task_cancelled = lambda: state["cancelled"]
    report(0.1)
    state["cancelled"] = True
    with pytest.raises(TaskCancelled, match="cancelled"):
        report(0.2)


def test_messages_are_truncated(sent):
    events, _, _ = sent
    report(0.1, "x" * 1000)
    assert len(events[0]["msg"]) == rep.MAX_MESSAGE


def test_every_call_checks_cancellation(sent, monkeypatch):
    events, _, ctx = sent
    report(0.1)
    monkeypatch.setattr(_dask, "current_task_cancelled", lambda: True)
    with pytest.raises(TaskCancelled, match="cancelled"):
        report(0.2)  # throttled, but the check still runs
    assert report.cancelled() is True
    monkeypatch.setattr(_dask, "current_task_cancelled", lambda: False)
    ctx.cancelled = True
    with pytest.raises(TaskCancelled):
        report()
    assert len(events) == 1
