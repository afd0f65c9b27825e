"""The shards of a store directory and their merged index: which record wins for each key.

Rule: a key's value is its newest *successful* record. Newest means, within one shard, the
later record (append order); across shards, the later record time (the writers' clocks),
ties broken by the greater shard file name (which starts with the shard's creation time).
Failure records never hide a value: they are listed for keys that have no successful record.
"""

from __future__ import annotations

import pathlib
from collections import Counter
from collections.abc import Callable, MutableMapping
from typing import Any

from daskfarm.exceptions import StoreFormatError
from daskfarm.store._index import Block
from daskfarm.store._log import MAX_BLOCK_RECORDS, SIDE, SLOT_BITS, Log
from daskfarm.store._scan import DESCRIBE, list_store

__all__ = ["View"]

MASK = MAX_BLOCK_RECORDS - 1


class View:
    """Index over the blocks of many logs; a location is ``block_number << 16 | slot``.

    Adding blocks only appends and updates in place, so an iteration over ``blocks`` sees
    records committed while it runs; a full rebuild builds a new View instead and leaves
    iterations over the old one consistent.

    A new View is optimistic: it assumes every key is stored once and inserts whole blocks
    with one ``dict.update``. When the dict grows by less than a block's size, a key was
    stored twice: :meth:`add` returns False and the caller reindexes with :meth:`careful`,
    which checks each block for known keys first (measured: the check costs about a third
    of the index build).
    """

    def __init__(self, careful: bool = False) -> None:
        self.careful = careful
        self.stale = False  # an optimistic add met a duplicate: reindex with reindexed()
        self.logs: dict[str, Log] = {}
        self.blocks: list[Block] = []
        self.latest: dict[str, int] = {}  # key -> newest successful record
        self.failed: dict[str, int] = {}  # key -> newest failure record
        self.dups: dict[str, list[int]] = {}  # key -> every record, for keys with several

    def update(self, directory: pathlib.Path, cache: MutableMapping,
               skipped: dict[str, tuple[int, int]], warn: Callable[[str, Any, str], None]) -> bool:
        """Index the shards and blocks written since the last update.

        ``skipped`` remembers unreadable shards by (size, mtime) so they are not reread;
        ``warn(name, what, message)`` reports a problem. False if a known shard vanished or
        shrank: the caller must start again with a new View.
        """
        entries = list_store(directory)
        if not self.logs.keys() <= {e.name for e in entries}:
            return False
        for entry in entries:
            name, st = entry.name, entry.stat
            if entry.kind == "vanished":
                if name in self.logs:
                    return False  # a shard we had vanished: start again
                continue  # removed since the listing: nothing to read
            if entry.kind in DESCRIBE:
                key = "stray" if entry.kind.startswith("stray") else entry.kind
                fix = "" if entry.kind == "dangling" else " (move it out of the store directory)"
                warn(name, key, f"{DESCRIBE[entry.kind]}; skipped{fix}")
                continue
            if entry.kind != "shard":
                continue
            log = self.logs.get(name)
            try:
                if log is None:
                    if skipped.get(name) == (st.st_size, st.st_mtime_ns):
                        continue
                    log = Log(entry.path, cache=cache)
                    skipped.pop(name, None)
                    self.logs[name] = log
                    self.stale |= not self.add(log.blocks)
                elif st.st_size < log.end:
                    return False
                elif st.st_size > log.end or log.problem:
                    self.stale |= not self.add(log.refresh())
            except StoreFormatError as e:
                self.logs.pop(name, None)
                skipped[name] = (st.st_size, st.st_mtime_ns)
                warn(name, e.reason, f"{e}; skipped")
                continue
            except FileNotFoundError:
                if name in self.logs:
                    return False
                continue
            except OSError as e:
                # No permission, an I/O error: skip it, read the others, and try it again at
                # the next rescan (a chmod does not change what `skipped` compares).
                kept = "; the records read from it before are kept" if log is not None else ""
                warn(name, ("unreadable", e.errno),
                     f"cannot be read ({e.strerror or e}); skipped{kept}")
                continue
            if log.problem:
                kind, detail = log.problem
                if kind != "truncated" or not log.writer_alive():
                    records = sum(len(b.keys) for b in log.blocks)
                    warn(name, (kind, log.end), f"{kind} shard ({detail}); read up to its last "
                         f"intact block ({records} records)")
        return True

    def locate(self, loc: int) -> tuple[Block, int]:
        return self.blocks[loc >> SLOT_BITS], loc & MASK

    def newer(self, a: int, b: int) -> bool:
        """Whether the record at ``a`` was written after the one at ``b``."""
        (ba, sa), (bb, sb) = self.locate(a), self.locate(b)
        if ba.log is bb.log:
            return a > b
        ta, tb = ba.times[sa], bb.times[sb]
        if ta != tb:
            return ta > tb
        return ba.log.name > bb.log.name

    def add(self, blocks: list[Block]) -> bool:
        """Index blocks; False if an optimistic view met a duplicate and must be reindexed."""
        latest, failed = self.latest, self.failed
        for n, blk in enumerate(blocks):
            base = len(self.blocks) << SLOT_BITS
            self.blocks.append(blk)
            keys = blk.keys
            if blk.pure and (not failed or failed.keys().isdisjoint(keys)):
                if not self.careful:
                    before = len(latest)
                    latest.update(zip(keys, range(base, base + len(keys))))
                    if len(latest) - before == len(keys):
                        continue
                    self.blocks.extend(blocks[n + 1 :])
                    return False
                if latest.keys().isdisjoint(keys):
                    before = len(latest)
                    latest.update(zip(keys, range(base, base + len(keys))))
                    if len(latest) - before != len(keys):  # a key written twice in this block
                        self._inblock_dups(blk, base)
                    continue
            for slot, (key, tag) in enumerate(zip(keys, blk.tags)):
                self._add_one(key, base + slot, failed if tag >= SIDE else latest)
        return True

    def reindexed(self) -> View:
        """A careful View of the same blocks, in the same order."""
        view = View(careful=True)
        view.logs = self.logs
        for blk in self.blocks:
            blk.clean = True
        view.add(self.blocks)
        return view

    def _add_one(self, key: str, loc: int, table: dict[str, int]) -> None:
        if key in self.dups:
            self.dups[key].append(loc)
        else:
            prev = self.latest.get(key, self.failed.get(key))
            if prev is not None:
                self.dups[key] = [prev, loc]
        cur = table.get(key)
        if cur is None or self.newer(loc, cur):
            if cur is not None:
                self.locate(cur)[0].clean = False
            table[key] = loc
        else:
            self.locate(loc)[0].clean = False

    def _inblock_dups(self, blk: Block, base: int) -> None:
        blk.clean = False
        for key, count in Counter(blk.keys).items():
            if count > 1:
                self.dups[key] = [base + s for s, k in enumerate(blk.keys) if k == key]
