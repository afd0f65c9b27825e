"""Shards in format 1, byte for byte as daskfarm wrote them before format 2 (its header,
block heads and pickled index), for the tests that old shards still read and that a crafted
one cannot run code."""

from __future__ import annotations

import json
import os
import pickle
import struct
import time
import zlib
from array import array

MAGIC = b"\x89DFSHRD\n"


def header_v1(meta: dict) -> bytes:
    raw = json.dumps(meta).encode()
    return struct.pack("<8sHHII", MAGIC, 1, 0, len(raw), zlib.crc32(raw)) + raw


def block_v1(index: bytes, items: bytes, values: bytes) -> bytes:
    payload = struct.pack("<IQ", len(index), len(items)) + index + items + values
    head = struct.pack("<Q", len(payload))
    return head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload


def write_v1_shard(path, records, meta=None) -> None:
    """A format-1 shard of one block: ``records`` are ``(key, item, value)``."""
    keys = [k for k, _, _ in records]
    index = pickle.dumps((keys, bytes(len(keys)), array("d", [time.time()] * len(keys))),
                         protocol=5)
    items = pickle.dumps([i for _, i, _ in records], protocol=5)
    values = pickle.dumps([v for _, _, v in records], protocol=5)
    meta = meta or {"host": "oldhost", "pid": 1, "created": 0.0, "task": "old", "version": 1,
                    "run_id": "r1"}
    with open(path, "wb") as f:
        f.write(header_v1(meta) + block_v1(index, items, values))
    os.utime(path, (time.time() - 3600,) * 2)


class Touch:
    """Unpickling this creates the directory ``path``: a stand-in for a shard that runs code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))
