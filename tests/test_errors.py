"""Bad input gets a clear error of the right type, naming the fix."""

from __future__ import annotations

import socket
import sys
import threading
import time

import pytest

from daskfarm import (
    Farm,
    FarmClosedError,
    FarmConnectionError,
    FarmPicklingError,
    FarmTypeError,
    FarmValueError,
    StoreError,
    WorkerImportError,
)

from . import _tasks


def test_non_callable_task(farm):
    with pytest.raises(FarmTypeError, match="function or a class"):
        farm.map(42, [1, 2])


def test_class_without_call(farm):
    class NoCall:
        pass

    with pytest.raises(FarmTypeError, match="__call__"):
        farm.map(NoCall, [1])


def test_non_iterable_items(farm):
    with pytest.raises(FarmTypeError, match="iterable"):
        farm.map(_tasks.square, 5)


@pytest.mark.parametrize("value", [0, -1, 2.5, "10"])
def test_bad_buffersize(farm, value):
    with pytest.raises(FarmValueError, match="buffersize must be a positive whole number"):
        farm.map(_tasks.square, [1], buffersize=value)


def test_bad_batch_size_and_retries(farm):
    with pytest.raises(FarmValueError, match="batch_size"):
        farm.map(_tasks.square, [1], batch_size=0)
    with pytest.raises(FarmValueError, match="retries"):
        farm.map(_tasks.square, [1], retries=-1)


def test_unknown_errors_option(farm):
    with pytest.raises(FarmValueError, match="errors='continue'"):
        farm.map(_tasks.square, [1], errors="maybe")


def test_unpicklable_task(farm):
    with pytest.raises(FarmPicklingError, match="cannot be pickled"):
        farm.map(_tasks.HoldsALock(), [1])


def test_unpicklable_item(farm):
    run = farm.map(_tasks.noop, [1, threading.Lock()], batch_size=2, progress=False)
    with pytest.raises(FarmPicklingError, match=r"item <unlocked _thread\.lock"):
        list(run)


def test_store_path_that_is_a_file(farm, tmp_path):
    path = tmp_path / "results.txt"
    path.write_text("not a store")
    with pytest.raises(StoreError):
        farm.map(_tasks.square, [1], store=path)
    assert path.read_text() == "not a store"


def test_worker_cannot_import_the_task_module(farm, tmp_path, monkeypatch):
    (tmp_path / "only_on_the_client.py").write_text("def f(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import only_on_the_client

    try:
        with pytest.raises(WorkerImportError, match="only_on_the_client") as info:
            farm.map(only_on_the_client.f, [1])
        assert "tcp://127.0.0.1" in str(info.value)
        assert "PYTHONPATH" in str(info.value)
    finally:
        sys.modules.pop("only_on_the_client", None)


def test_closed_farm_refuses_reuse_and_close_is_idempotent():
    farm = Farm(n_workers=1, dashboard=False)
    farm.close()
    farm.close()
    with pytest.raises(FarmClosedError, match="new Farm"):
        farm.map(_tasks.square, [1])
    with pytest.raises(FarmClosedError):
        farm.__enter__()


def test_unreachable_scheduler_fails_fast():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(FarmConnectionError, match=f"127.0.0.1:{port}"):
        Farm(f"tcp://127.0.0.1:{port}", timeout=2)
    assert time.monotonic() - start < 30


def test_address_that_is_not_a_scheduler():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        with pytest.raises(FarmConnectionError, match="scheduler"):
            Farm(f"tcp://127.0.0.1:{port}", timeout=2)
        with pytest.raises(FarmConnectionError, match="not a scheduler address"):
            Farm("http:/nonsense", timeout=2)
    finally:
        server.close()


def test_bad_address_type_and_worker_count():
    with pytest.raises(FarmValueError, match="connect to"):
        Farm(address=3.5)
    with pytest.raises(FarmValueError, match="n_workers"):
        Farm(n_workers=-1000)
