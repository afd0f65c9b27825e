"""zict-style conformance of each mapping layer the store adds, and of their composition."""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping

import numpy as np
import pytest
import zict
from zict.tests.utils_test import (
    check_bad_key_types,
    check_closing,
    check_empty_mapping,
    check_items,
    check_mapping,
)

from daskfarm.exceptions import StoreFormatError
from daskfarm.store import DataManager
from daskfarm.store._blobs import BlobFiles, dumps_oob, loads_oob
from daskfarm.store._log import Log


def check_append_only_mapping(z: MutableMapping) -> None:
    """zict's check_mapping, for a mapping that refuses deletion (records are append-only)."""
    assert type(z).__name__ in str(z)
    assert type(z).__name__ in repr(z)
    assert isinstance(z, MutableMapping)
    check_empty_mapping(z)
    z["abc"] = b"456"
    z["xyz"] = b"12"
    assert len(z) == 2
    assert z["abc"] == b"456"
    check_items(z, [("abc", b"456"), ("xyz", b"12")])
    assert "def" not in z
    assert object() not in z
    with pytest.raises(KeyError):
        z["def"]
    z.update(xyz=b"707", uvw=b"000")
    check_items(z, [("abc", b"456"), ("xyz", b"707"), ("uvw", b"000")])
    z.update([("xyz", b"654"), ("uvw", b"999")])
    z.update({"xyz": b"321"})
    z.update(iter([("foo", b"132")]))
    check_items(z, [("abc", b"456"), ("xyz", b"321"), ("uvw", b"999"), ("foo", b"132")])
    with pytest.raises(TypeError, match="append-only"):
        del z["abc"]
    assert z["abc"] == b"456"
    check_bad_key_types(z, has_del=False)


def test_blobfiles_conformance(tmp_path):
    z = BlobFiles(tmp_path / "blobs")
    check_mapping(z)
    check_bad_key_types(z)
    check_closing(z)
    # Writes go through a hidden temporary file: none is left behind.
    assert all(not n.startswith(".") for n in os.listdir(tmp_path / "blobs"))


def test_blobfiles_refuses_unsafe_names(tmp_path):
    z = BlobFiles(tmp_path)
    for name in ["", ".hidden", "a/b", "../x"]:
        with pytest.raises(ValueError, match="plain file name"):
            z[name] = b"1"
        assert name not in z


def test_func_over_blobfiles_conformance(tmp_path):
    check_mapping(zict.Func(dumps_oob, loads_oob, BlobFiles(tmp_path)))


@pytest.mark.parametrize("order", ["C", "F"])
def test_out_of_band_codec_roundtrips_arrays(order):
    a = np.asfortranarray(np.arange(60.0).reshape(3, 20)) if order == "F" else np.arange(60.0)
    value = {"a": a, "b": [np.arange(7, dtype="i2"), "text"]}
    buf = bytearray(b"".join(dumps_oob(value)))
    out = loads_oob(buf)
    np.testing.assert_array_equal(out["a"], a)
    assert out["a"].flags.writeable
    assert out["a"].flags.aligned
    assert out["b"][1] == "text"
    with pytest.raises(StoreFormatError, match="truncated"):
        loads_oob(buf[: len(buf) - 8])
    with pytest.raises(StoreFormatError, match="magic"):
        loads_oob(b"not a blob at all")


def test_log_conformance_and_persistence(tmp_path):
    path = tmp_path / "a.dfshard"
    log = Log(path, {"host": "h"})
    check_append_only_mapping(log)
    expected = dict(log.items())
    log.close()
    log.close()  # idempotent
    reread = Log(path)
    assert dict(reread.items()) == expected
    assert reread.meta == {"host": "h"}
    check_closing(reread)


def test_log_keeps_side_records_out_of_its_view(tmp_path):
    log = Log(tmp_path / "a.dfshard", {})
    log.append("k", "failure", None, 128, 1.0)
    assert "k" not in log
    log.append("k", "value", "item", 0, 2.0)
    log.flush()
    assert log["k"] == "value"
    assert log.record("k") == (0, 2.0, "item", "value")
    assert [len(b.keys) for b in Log(log.path).blocks] == [2]
    log.close()


def test_log_composes_with_zict(tmp_path):
    log = Log(tmp_path / "a.dfshard", {})
    d = zict.Func(json.dumps, json.loads, log)
    d["x"] = {"a": [1, 2]}
    assert log["x"] == '{"a": [1, 2]}'
    # Small values go to the log, large ones to their own files: the store's own split.
    big = BlobFiles(tmp_path / "big")
    sieve = zict.Sieve({"small": log, "big": big}, lambda k, v: "big" if len(v) > 100 else "small")
    sieve["s"], sieve["b"] = b"small", b"x" * 1000
    assert sieve["s"] == b"small"
    assert "b" in big
    assert "b" not in log
    log.close()
    assert Log(log.path)["s"] == b"small"


def test_session_conformance(tmp_path):
    with DataManager(tmp_path) as dm, dm.session() as s:
        check_append_only_mapping(s)
        s.flush()
        assert dict(s.items())["abc"] == b"456"
        check_closing(s)
