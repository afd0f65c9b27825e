"""Reading values, items and records out of the blocks a DataManager's View indexes.

Everything here unpickles (values and items are pickles); nothing a scan does comes here.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from typing import Any

import zict

from daskfarm.exceptions import StoreError, StoreFormatError
from daskfarm.store._blobs import BlobFiles, dumps_oob, loads_oob
from daskfarm.store._log import SIDE, SLOT_BITS, Log
from daskfarm.store._record import BLOB, Record, blobs_dir
from daskfarm.store._view import View

__all__ = ["ValueReads"]


class ValueReads:
    """The value-reading half of :class:`~daskfarm.store.DataManager` (a mixin: it uses the
    manager's ``_warn`` and ``_blob_maps``)."""

    _blob_maps: dict[str, zict.Func]
    _warn: Callable[..., None]  # (shard name, what, message, stacklevel): warns once

    def _chunks(self, view: View) -> Iterator[tuple[list[str], list[Any]]]:
        """(keys, values) of the winning records, block by block."""
        blocks, latest, i = view.blocks, view.latest, 0
        while i < len(blocks):  # not a for loop: blocks committed meanwhile are read too
            blk, base = blocks[i], i << SLOT_BITS
            i += 1
            if min(blk.tags) >= SIDE:  # failures only
                continue
            values = blk.log.read_values(blk, cache=False)
            if blk.pure and blk.clean and not blk.bad:
                yield blk.keys, values
                continue
            keys, out = [], []
            for slot, key in enumerate(blk.keys):
                if latest.get(key) != base + slot:
                    continue
                if (1, slot) in blk.bad:
                    self._warn(blk.log.name, ("import", blk.bad[1, slot]),
                               f"{self._unreadable(blk, slot)}; skipped", 4)
                    continue
                if blk.tags[slot] != BLOB:
                    keys.append(key)
                    out.append(values[slot])
                    continue
                # One large value at a time: a streaming reader never holds two.
                if keys:
                    yield keys, out
                    keys, out = [], []
                name = blk.blobs[slot] if blk.blobs is not None else values[slot]
                try:
                    value = self._blob(blk.log, name, key)
                except StoreError as e:
                    self._warn(blk.log.name, ("blob", name), f"{e}; skipped", 4)
                    continue
                yield [key], [value]
            yield keys, out

    def _unreadable(self, blk: Any, slot: int, column: int = 1) -> str:
        what = "value" if column else "item"
        needs = blk.bad[column, slot]
        module = needs.rsplit(".", 1)[0]
        return (f"the {what} of {blk.keys[slot]!r} in {blk.log.name} needs {needs}, which "
                f"this Python cannot import: install the module {module!r} or put it on "
                "sys.path (run the reader where the task's code is importable)")

    def _value(self, blk: Any, slot: int) -> Any:
        values = blk.log.read_values(blk)
        if (1, slot) in blk.bad:
            raise StoreError(self._unreadable(blk, slot))
        if blk.tags[slot] != BLOB:
            return values[slot]
        name = blk.blobs[slot] if blk.blobs is not None else values[slot]
        return self._blob(blk.log, name, blk.keys[slot])

    def _item(self, blk: Any, slot: int) -> Any:
        items = blk.log.read_items(blk)
        if (0, slot) in blk.bad:
            raise StoreError(self._unreadable(blk, slot, 0))
        return items[slot]

    def _blob(self, log: Log, name: str, key: str) -> Any:
        blobs = self._blob_maps.get(log.name)
        if blobs is None:
            blobs = self._blob_maps[log.name] = zict.Func(
                dumps_oob, loads_oob, BlobFiles(blobs_dir(log.path)))
        try:
            return blobs[name]
        except KeyError:
            directory = blobs_dir(log.path)
            raise StoreError(errno.ENOENT, f"{directory / name} is missing: it holds the value of "
                             f"{key!r} in {log.name}; copy the directory {directory.name} along "
                             "with its shard") from None
        except StoreFormatError as e:
            raise StoreFormatError(f"{blobs_dir(log.path) / name}: {e}") from e

    def _record(self, view: View, loc: int) -> Record:
        blk, slot = view.locate(loc)
        meta, tag = blk.log.meta or {}, blk.tags[slot]
        common = dict(key=blk.keys[slot], item=self._item(blk, slot), task=meta.get("task"),
                      version=meta.get("version"), time=blk.times[slot], host=meta.get("host"),
                      run_id=meta.get("run_id"), shard=blk.log.name,
                      duration=blk.duration(slot), worker=blk.worker(slot))
        if tag >= SIDE:
            if blk.fails is not None:
                exc_type, message, traceback = blk.fails[slot]
            else:
                exc_type, message, traceback = blk.log.read_values(blk)[slot]
            return Record(value=None, failed=True, exc_type=exc_type, message=message,
                          traceback=traceback, **common)
        return Record(value=self._value(blk, slot), **common)
