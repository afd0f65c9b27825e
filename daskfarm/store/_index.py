"""A block's index and items sections: what a scan reads, decoded without unpickling.

The index of a format-2 block is one msgpack array::

    [keys: [str], tags: bytes (u8 each), times: bytes (f64 each),
     durations: bytes (f64 each, NaN = unknown) | nil, workers: [str],
     worker of each record: bytes (u16 each, 0xFFFF = unknown) | nil,
     blob names: [[slot, name]], failures: [[slot, exc_type, message, traceback]]]

msgpack builds only str, bytes, numbers, lists and None, so a shard copied in from anywhere
cannot run code when it is listed, counted, checked, merged or resumed from. A format-1 index
is a pickle of ``(keys, tags, array("d"))``; it is read with an unpickler that admits only
``array.array``, which refuses a crafted pickle instead of running it.

Items are one byte of kind, then nothing (every item None) or a pickle of the list of items
(measured: msgpack of 1,000 dict items packs no faster and unpacks 1.3x slower than pickle).
"""

from __future__ import annotations

import io
import math
import operator
import pickle
import sys
from array import array
from itertools import repeat
from typing import Any

import msgpack

__all__ = ["Block", "decode_index", "encode_items", "pack_index"]

NO_WORKER = 0xFFFF
ITEMS_NONE, ITEMS_PICKLE = 0, 1
_BIG = sys.byteorder == "big"  # the file is little-endian; arrays are native


def _le(a: array) -> bytes:
    if _BIG:
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def _from_le(typecode: str, raw: bytes, n: int, what: str) -> array:
    a = array(typecode)
    a.frombytes(raw)
    if len(a) != n:
        raise ValueError(f"the index's {what} column has {len(a)} entries, not {n}")
    if _BIG:
        a.byteswap()
    return a


class Block:
    """Index of one committed block; its items and values stay on disk until read."""

    __slots__ = ("bad", "blobs", "clean", "durations", "fails", "keys", "length", "log",
                 "offset", "pure", "starts", "tags", "times", "version", "widx", "workers")

    def __init__(self, keys, tags, times, durations=None, workers=(), widx=None, blobs=None,
                 fails=None, version=2):
        self.keys = keys
        self.tags = tags
        self.times = times
        self.durations = durations  # array("d") with NaN for unknown, or None
        self.workers = list(workers)  # the distinct worker names of the block
        self.widx = widx  # array("H"): index into workers, NO_WORKER for unknown; or None
        self.blobs = blobs  # slot -> blob file name; None in format 1 (in the values)
        self.fails = fails  # slot -> (exc_type, message, traceback); None in format 1
        self.version = version
        self.pure = tags.count(0) == len(tags)  # only inline values: no blob, no failure
        self.clean = True  # no record here is shadowed by a newer one (set by DataManager)
        self.bad: dict[tuple[int, int], str] = {}  # (column, slot) -> module it needs
        self.log: Any = None
        self.offset = self.length = 0
        self.starts = (0, 0, 0)

    def place(self, log: Any, offset: int, starts: tuple[int, int, int]) -> None:
        """Where the block is: its log, the file offset of its payload and section ends."""
        self.log, self.offset, self.starts, self.length = log, offset, starts, starts[2]

    def duration(self, slot: int) -> float | None:
        if self.durations is None:
            return None
        d = self.durations[slot]
        return None if math.isnan(d) else d

    def worker(self, slot: int) -> str | None:
        if self.widx is None or self.widx[slot] == NO_WORKER:
            return None
        return self.workers[self.widx[slot]]


def pack_index(keys, tags: bytes, times: array, durations, workers,
               blob_names: dict[int, str], failures: dict[int, tuple]):
    """The msgpack index of a new block (see the module docstring), and its duration
    array, worker indexes and worker names (None, None, [] where nothing is known)."""
    n = len(keys)
    dur = wid = None
    names: list[str] = []
    if durations is not None and not all(map(operator.is_, durations, repeat(None))):
        dur = array("d", (math.nan if d is None else float(d) for d in durations))
    if workers is not None and not all(map(operator.is_, workers, repeat(None))):
        table: dict[str, int] = {}
        wid = array("H", (NO_WORKER if w is None else table.setdefault(str(w), len(table))
                          for w in workers))
        if len(table) >= NO_WORKER:
            raise ValueError("more than 65,534 distinct workers in one block")
        names = list(table)
    if len(tags) != n or len(times) != n:
        raise ValueError("index columns differ in length")
    blobs = [[s, name] for s, name in blob_names.items()]
    fails = [[s, *map(str, f if type(f) is tuple and len(f) == 3 else ("", f, ""))]
             for s, f in failures.items()]
    raw = msgpack.packb([keys, tags, _le(times), None if dur is None else _le(dur), names,
                         None if wid is None else _le(wid), blobs, fails],
                        use_bin_type=True, unicode_errors="surrogatepass")
    return raw, dur, wid, names


def decode_index(raw: memoryview, version: int) -> Block:
    """The Block an index describes; ValueError (or an unpickling error) if it is damaged."""
    if version < 2:
        keys, tags, times = _RestrictedUnpickler(io.BytesIO(raw)).load()
        if not (type(keys) is list and all(type(k) is str for k in keys)
                and type(tags) is bytes and type(times) is array and times.typecode == "d"):
            raise ValueError("a format-1 index that is not (keys, tags, times)")
        if not len(keys) == len(tags) == len(times):
            raise ValueError("index columns differ in length")
        return Block(keys, tags, times, version=1)
    fields = msgpack.unpackb(raw, raw=False, use_list=True, strict_map_key=True,
                             unicode_errors="surrogatepass")
    if type(fields) is not list or len(fields) < 8:
        raise ValueError("the index is not a list of 8 fields")
    keys, tags, times, dur, names, wid, blobs, fails = fields[:8]
    if type(keys) is not list or type(tags) is not bytes or type(times) is not bytes:
        raise ValueError("the index's keys, tags or times have the wrong type")
    n = len(keys)
    if len(tags) != n:
        raise ValueError("the index's keys and tags do not match")
    try:
        "".join(keys)  # every key a str: a C loop, 3x cheaper than looking at each type
    except TypeError:
        raise ValueError("the index holds a key that is not a str") from None
    block = Block(keys, tags, _from_le("d", times, n, "time"),
                  None if dur is None else _from_le("d", dur, n, "duration"),
                  names if type(names) is list else (),
                  None if wid is None else _from_le("H", wid, n, "worker"),
                  {int(s): str(name) for s, name in blobs},
                  {int(s): (str(t), str(m), str(tb)) for s, t, m, tb in fails})
    if block.widx is not None and any(i != NO_WORKER and i >= len(block.workers)
                                      for i in block.widx):
        raise ValueError("the index names a worker it does not list")
    if (block.blobs or block.fails or not block.pure) and (
            block.blobs.keys() != {s for s, t in enumerate(tags) if t == 1}
            or block.fails.keys() != {s for s, t in enumerate(tags) if t >= 128}):
        raise ValueError("the index's blob names or failures do not match its tags")
    return block


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits the one class a format-1 index holds; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "array" and name in ("array", "_array_reconstructor"):
            import array as array_module

            return getattr(array_module, name)
        raise pickle.UnpicklingError(f"a format-1 index may not name {module}.{name}")


def encode_items(items) -> bytes:
    """The items section of a new block: a kind byte, then nothing or a pickle."""
    if all(map(operator.is_, items, repeat(None))):  # not ==: an array item compares by element
        return bytes([ITEMS_NONE])
    return bytes([ITEMS_PICKLE]) + pickle.dumps(list(items), protocol=5)
