"""The append-only log of one shard: one writer process, any number of readers.

A writer keeps records in memory and commits them all as one checksummed block (write +
fdatasync); a reader scans blocks and stops at the first incomplete or damaged one, so a
writer killed mid-write loses only the block it was writing. The file format is in
``_format``.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import pickle
import time
from array import array
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import psutil
import zict
from zict.common import ZictBase

from daskfarm.exceptions import FarmClosedError, FarmPicklingError, StoreError
from daskfarm.store._format import (
    BLOCK,
    Block,
    encode_block,
    encode_header,
    fsync_dir,
    read_header,
    scan,
    store_error,
    sync,
)
from daskfarm.store._record import HOST

__all__ = ["SIDE", "Log"]

SIDE = 128  #: records with a tag >= SIDE are kept and scanned but not in the mapping view
SLOT_BITS = 16  #: a record's location is block_number << SLOT_BITS | slot
MAX_BLOCK_RECORDS = 1 << SLOT_BITS
#: A writer on another host counts as alive this long after its shard last changed.
WRITER_GRACE = 60.0
CACHE_BYTES = 32 * 2**20

_writing: set[str] = set()  # shard paths this process has open for writing


def cache_weight(key: object, value: tuple[list, int]) -> int:
    return value[1]


class Log(ZictBase[str, Any]):
    """Append-only mapping of str keys to records, stored in one shard file.

    ``Log(path)`` opens an existing shard for reading; ``Log(path, meta)`` starts a new one for
    writing (the file is created, exclusively, at the first :meth:`flush`). ``log[key] = v``
    appends a record; ``log[key]`` is the value of the key's latest record. Records are kept
    in memory until :meth:`flush` commits them all as one checksummed block.

    Parameters
    ----------
    path : str or os.PathLike
        The shard file.
    meta : dict, optional
        Header metadata (JSON-able) of a new shard; omit it to read an existing one.
    cache : MutableMapping, optional
        Cache of decoded block sections, keyed by ``(shard name, offset, column)``; share one LRU
        among logs to bound memory. Default: a private ``zict.LRU`` of 32 MiB.
    spill : callable, optional
        ``spill(key, value) -> (value, tag) | None``, called at commit for the records of a
        block in which some value holds a pickle-5 buffer of ``spill_threshold`` bytes or
        more; it may store the value elsewhere and return a small stand-in and its tag.
    spill_threshold : int

    Notes
    -----
    Append-only: ``del log[key]`` raises TypeError. Records with a tag >= 128 (``SIDE``) are
    stored and scanned but left out of the mapping view. :meth:`flush` and :meth:`refresh`
    hold the instance lock; appends do not, so append from one thread at a time.

    Examples
    --------
    >>> log = Log("a.dfshard", {"host": "h"})  # doctest: +SKIP
    >>> log["x"] = (1.0, 2.0)  # doctest: +SKIP
    >>> log.flush()  # doctest: +SKIP
    >>> Log("a.dfshard")["x"]  # doctest: +SKIP
    (1.0, 2.0)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        meta: dict[str, Any] | None = None,
        *,
        cache: MutableMapping | None = None,
        spill: Callable[[str, Any], tuple[Any, int] | None] | None = None,
        spill_threshold: int = 2**20,
    ):
        super().__init__()
        self.path = pathlib.Path(path)
        self.name = self.path.name
        self.writable = meta is not None
        self.meta: dict[str, Any] | None = dict(meta) if meta is not None else None
        self.cache = cache if cache is not None else zict.LRU(CACHE_BYTES, {}, weight=cache_weight)
        self.blocks: list[Block] = []
        self.end = 0  # end of the last intact block: where a scan resumes
        self.problem: tuple[str, str] | None = None  # ("truncated" | "corrupt", detail)
        self.spill = spill
        self.spill_threshold = spill_threshold
        self._index: dict[str, int] | None = None  # built on first mapping access
        self._fd: int | None = None
        self._pid = os.getpid()
        self._broken: str | None = None
        self._closed = False
        self._reset_pending()
        if self.writable:
            _writing.add(os.fspath(self.path))
        else:
            self.refresh()

    def __repr__(self) -> str:
        pending = f", {self.npending} pending" if self.writable else ""
        return f"<Log: {self.path}, {len(self.blocks)} blocks{pending}>"

    __str__ = __repr__

    # ---- writing -----------------------------------------------------------------------

    def _reset_pending(self) -> None:
        self._keys: list[str] = []
        self._tags = bytearray()
        self._times = array("d")
        self._items: list[Any] = []
        self._values: list[Any] = []

    @property
    def npending(self) -> int:
        """Records appended but not yet committed."""
        return len(self._keys)

    def append(self, key: str, value: Any, item: Any = None, tag: int = 0, time: float = 0.0):
        """Append one record (kept in memory until :meth:`flush`)."""
        if type(key) is not str:
            raise TypeError(f"keys must be str, not {type(key).__name__}")
        if self._closed or not self.writable:
            raise FarmClosedError(f"{self.path.name} is closed or read-only: open a new session")
        self._keys.append(key)
        self._tags.append(tag)
        self._times.append(time)
        self._items.append(item)
        self._values.append(value)
        if self._index is not None and tag < SIDE:
            self._index[key] = -len(self._keys)

    def __setitem__(self, key: str, value: Any) -> None:
        self.append(key, value, None, 0, time.time())

    def __delitem__(self, key: str) -> None:
        raise TypeError("a shard log is append-only: records cannot be deleted")

    def flush(self) -> None:
        """Commit every pending record as one block: write, then fdatasync.

        Raises
        ------
        StoreError
            The disk refused the write (full, read-only, I/O error). The shard is cut back to
            its last intact block and the records stay pending, so a later flush retries.
        FarmPicklingError
            Some records could not be pickled: they are dropped, the others are committed.
        """
        with self.lock:
            if not self._keys:
                return
            if os.getpid() != self._pid:
                raise StoreError(f"{self.path} was opened by process {self._pid}, not this one "
                                 "(a fork): open a new session in the child process")
            if self._broken:
                raise StoreError(self._broken)
            dropped: list[tuple[str, BaseException]] = []
            chunks = [self._encode(lo, min(lo + MAX_BLOCK_RECORDS, self.npending), dropped)
                      for lo in range(0, self.npending, MAX_BLOCK_RECORDS)]
            data = b"".join(c[0] for c in chunks)
            fd = self._open_for_append()
            try:
                _write_all(fd, data)
                sync(fd)
            except OSError as e:
                self._cut_back(fd)
                raise store_error(e, f"commit {self.npending} records to", self.path) from e
            pos = self.end
            for raw, blk in chunks:
                blk.offset = pos + BLOCK.size
                pos += len(raw)
                self.blocks.append(blk)
            self.end = pos
            self._reset_pending()
            self._index = None if dropped else self._index
            if self._index is not None:
                self._index_blocks(self._index, len(self.blocks) - len(chunks))
        if dropped:
            keys = ", ".join(repr(k) for k, _ in dropped[:5])
            raise FarmPicklingError(
                f"{len(dropped)} record(s) could not be pickled and were not stored (keys "
                f"{keys}): {dropped[0][1]!r}; the other records were committed to {self.name}. "
                "Return picklable values (numbers, arrays, tuples, dicts of those)."
            ) from dropped[0][1]

    def _encode(self, lo: int, hi: int, dropped: list) -> tuple[bytes, Block]:
        keys, tags, times = self._keys[lo:hi], self._tags[lo:hi], self._times[lo:hi]
        items, values = self._items[lo:hi], self._values[lo:hi]
        threshold = self.spill_threshold if self.spill else None
        try:
            pitems = pickle.dumps(items, protocol=5)
            pvalues, big = _dumps_values(values, threshold)
        except Exception:
            # Find the culprits one record at a time and keep the rest of the block.
            good = []
            for i in range(len(keys)):
                try:
                    pickle.dumps((items[i], values[i]), protocol=5)
                    good.append(i)
                except Exception as e:
                    dropped.append((keys[i], e))
            keys, items = [keys[i] for i in good], [items[i] for i in good]
            values = [values[i] for i in good]
            tags, times = bytearray(tags[i] for i in good), array("d", (times[i] for i in good))
            pitems = pickle.dumps(items, protocol=5)
            pvalues, big = _dumps_values(values, threshold)
        if big:
            for i, (key, value) in enumerate(zip(keys, values)):
                moved = self.spill(key, value)
                if moved is not None:
                    values[i], tags[i] = moved
            pvalues, _ = _dumps_values(values, None)
        raw, starts = encode_block(keys, bytes(tags), times, pitems, pvalues)
        return raw, Block(self, 0, starts[2], starts, keys, bytes(tags), times)

    def _open_for_append(self) -> int:
        if self._fd is not None:
            return self._fd
        head = encode_header(self.meta)
        try:
            # O_EXCL: a name collision fails instead of overwriting someone's shard.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except OSError as e:
            raise store_error(e, "create shard", self.path) from e
        try:
            _write_all(fd, head)  # a short write would leave a header no reader accepts
            sync(fd)
        except OSError as e:
            os.close(fd)
            self.path.unlink(missing_ok=True)  # our own empty file, nothing stored in it
            raise store_error(e, "create shard", self.path) from e
        fsync_dir(self.path.parent)
        self._fd, self.end = fd, len(head)
        return fd

    def _cut_back(self, fd: int) -> None:
        # A half-written block would hide every later block from readers: remove it.
        try:
            os.ftruncate(fd, self.end)
        except OSError as e:
            self._broken = (f"{self.path} could not be cut back to its last intact block after a "
                            f"write error ({e}); it stays readable, but open a new session to "
                            "write more")

    def close(self) -> None:
        """Commit what is pending and release the file; idempotent."""
        with self.lock:
            if self._closed:
                return
            try:
                if self.writable and os.getpid() == self._pid:
                    self.flush()
            finally:
                self._closed = True
                _writing.discard(os.fspath(self.path))
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None

    def __del__(self) -> None:
        # A finaliser cannot raise; a Session owning this log warns about the leak itself.
        with contextlib.suppress(Exception):
            self.close()

    # ---- reading -----------------------------------------------------------------------

    def refresh(self) -> list[Block]:
        """Scan blocks appended since the last scan; return the new ones."""
        with self.lock:
            with open(self.path, "rb") as f:
                if self.meta is None:
                    header = read_header(f, self.path)
                    if header is None:
                        self.problem = ("truncated", "incomplete header")
                        return []
                    self.meta, self.end = header
                new, self.end, self.problem = scan(f, self, self.end, os.fstat(f.fileno()).st_size)
            self.blocks.extend(new)
            if self._index is not None:
                self._index_blocks(self._index, len(self.blocks) - len(new))
            return new

    def read_items(self, blk: Block, cache: bool = True) -> list:
        """The items of a committed block, one per record."""
        return self._read(blk, 0, cache)

    def read_values(self, blk: Block, cache: bool = True) -> list:
        """The values of a committed block, one per record."""
        return self._read(blk, 1, cache)

    def _read(self, blk: Block, column: int, cache: bool) -> list:
        key = (self.name, blk.offset, column)
        if cache and (hit := self.cache.get(key)) is not None:
            return hit[0]
        start, stop = blk.starts[column], blk.starts[column + 1]
        with open(self.path, "rb") as f:
            f.seek(blk.offset + start)
            data = f.read(stop - start)
        out = pickle.loads(data)
        if cache:
            self.cache[key] = (out, len(data))
        return out

    def writer_alive(self) -> bool:
        """Whether the process that writes this shard may still be writing it."""
        meta = self.meta or {}
        if meta.get("host") == HOST and isinstance(meta.get("pid"), int):
            pid = meta["pid"]
            if pid == os.getpid():
                return os.fspath(self.path) in _writing
            try:
                proc = psutil.Process(pid)
                # A zombie is dead; a process younger than the shard is a reused pid.
                return (proc.status() != psutil.STATUS_ZOMBIE
                        and proc.create_time() <= meta.get("created", 0) + 1)
            except psutil.Error:
                return False
        try:
            return time.time() - self.path.stat().st_mtime < WRITER_GRACE
        except OSError:
            return False

    # ---- mapping view ------------------------------------------------------------------

    def _index_blocks(self, index: dict[str, int], first: int) -> None:
        for b in range(first, len(self.blocks)):
            blk, base = self.blocks[b], b << SLOT_BITS
            for slot, (key, tag) in enumerate(zip(blk.keys, blk.tags)):
                if tag < SIDE:
                    index[key] = base + slot

    def _ensure_index(self) -> dict[str, int]:
        if self._index is None:
            index: dict[str, int] = {}
            self._index_blocks(index, 0)
            for i, (key, tag) in enumerate(zip(self._keys, self._tags)):
                if tag < SIDE:
                    index[key] = -1 - i
            self._index = index
        return self._index

    def record(self, key: str) -> tuple[int, float, Any, Any]:
        """(tag, time, item, value) of the key's latest record in the mapping view."""
        loc = self._ensure_index()[key]
        if loc < 0:
            i = -1 - loc
            return self._tags[i], self._times[i], self._items[i], self._values[i]
        blk, slot = self.blocks[loc >> SLOT_BITS], loc & (MAX_BLOCK_RECORDS - 1)
        item, value = self.read_items(blk)[slot], self.read_values(blk)[slot]
        return blk.tags[slot], blk.times[slot], item, value

    def __getitem__(self, key: str) -> Any:
        if type(key) is not str:
            raise KeyError(key)
        return self.record(key)[3]

    def __contains__(self, key: object) -> bool:
        return key in self._ensure_index()

    def __iter__(self) -> Iterator[str]:
        return iter(self._ensure_index())

    def __len__(self) -> int:
        return len(self._ensure_index())


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``: a nearly full disk may take it in several short writes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _dumps_values(values: list, threshold: int | None) -> tuple[bytes, bool]:
    """Pickle a block's values; with a threshold, also say whether one holds a large buffer."""
    if threshold is None:
        return pickle.dumps(values, protocol=5), False
    big = False

    def callback(buf: pickle.PickleBuffer) -> bool:
        nonlocal big
        if memoryview(buf).nbytes >= threshold:
            big = True
            return False  # out of band: not copied now, the caller spills and pickles again
        return True

    return pickle.dumps(values, protocol=5, buffer_callback=callback), big
