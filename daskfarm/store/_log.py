"""The append-only log of one shard: one writer process, any number of readers.

A writer keeps records in memory and commits them all as one checksummed block (write +
fdatasync); a reader scans blocks and stops at the first incomplete or damaged one, so a
writer killed mid-write loses only the block it was writing. The file format is in
``_format``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import psutil
import zict
from zict.common import ZictBase

from daskfarm.exceptions import FarmClosedError, StoreError
from daskfarm.store._commit import SIDE, Pending, encode_block, write_all
from daskfarm.store._format import (
    BLOCK,
    FORMAT_VERSION,
    encode_header,
    fsync_dir,
    read_header,
    scan,
    store_error,
    sync,
)
from daskfarm.store._index import ITEMS_NONE, Block
from daskfarm.store._pickles import loads_block
from daskfarm.store._record import BLOB, HOST, NAMESPACE

__all__ = ["SIDE", "Log"]

SLOT_BITS = 16  #: a record's location is block_number << SLOT_BITS | slot
MAX_BLOCK_RECORDS = 1 << SLOT_BITS
#: A writer on another host counts as alive this long after its shard last changed.
WRITER_GRACE = 60.0
CACHE_BYTES = 32 * 2**20

logger = logging.getLogger(__name__)

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
        self.version = FORMAT_VERSION  # of the file; read from the header of an existing one
        self.pending = Pending()  # records appended but not committed
        self._index: dict[str, int] | None = None  # committed records, built on first access
        self._fd: int | None = None
        self._dir_unsynced = False  # the new shard's name is not durable yet
        self._pid = os.getpid()
        self._broken: str | None = None
        self._closed = False
        if self.writable:
            _writing.add(os.fspath(self.path))
        else:
            self.refresh()

    def __repr__(self) -> str:
        pending = f", {self.npending} pending" if self.writable else ""
        return f"<Log: {self.path}, {len(self.blocks)} blocks{pending}>"

    __str__ = __repr__

    # ---- writing -----------------------------------------------------------------------

    @property
    def npending(self) -> int:
        """Records appended but not yet committed."""
        return len(self.pending)

    def append(self, key: str, value: Any, item: Any = None, tag: int = 0, time: float = 0.0,
               duration: float | None = None, worker: str | None = None) -> None:
        """Append one record (kept in memory until :meth:`flush`)."""
        if type(key) is not str:
            raise TypeError(f"keys must be str, not {type(key).__name__}")
        if self._closed or not self.writable:
            raise FarmClosedError(f"{self.path.name} is closed or read-only: open a new session")
        self.pending.append(key, tag, time, item, value, duration, worker)

    def __setitem__(self, key: str, value: Any) -> None:
        self.append(key, value, None, 0, time.time())

    def __delitem__(self, key: str) -> None:
        raise TypeError("a shard log is append-only: records cannot be deleted")

    def flush(self) -> list[tuple[str, Any, BaseException]]:
        """Commit every pending record as one block: write, then fdatasync.

        Safe against an exception at any point (a full disk, Ctrl-C, SIGTERM): either the
        whole commit is in the file and the records are no longer pending, or the file is
        cut back to its last intact block and every record is still pending, so a later
        flush stores each record once.

        Returns
        -------
        list of (key, item, exception)
            The records that could not be pickled: each was stored as a failure record
            (exception type ``FarmPicklingError``) instead, the others as they were.

        Raises
        ------
        StoreError
            The disk refused the write (full, read-only, I/O error). The shard is cut back to
            its last intact block and the records stay pending, so a later flush retries.
        """
        with self.lock:
            pending = self.pending
            if not pending.trim():
                return []
            if os.getpid() != self._pid:
                raise StoreError(f"{self.path} was opened by process {self._pid}, not this one "
                                 "(a fork): open a new session in the child process")
            if self._broken:
                raise StoreError(self._broken)
            unstorable: list[tuple[str, Any, BaseException]] = []
            chunks = [encode_block(pending.columns(lo, lo + MAX_BLOCK_RECORDS), self.spill,
                                   self.spill_threshold, unstorable)
                      for lo in range(0, len(pending), MAX_BLOCK_RECORDS)]
            fd = self._open_for_append()
            start, nblocks = self.end, len(self.blocks)
            try:
                if self._dir_unsynced:
                    fsync_dir(self.path.parent)
                    self._dir_unsynced = False
                # The position comes from the file: bytes past the last commit are what an
                # interrupted commit left, and go before anything is appended.
                if os.fstat(fd).st_size != start:
                    os.ftruncate(fd, start)
                write_all(fd, [frame for frames, _, _ in chunks for frame in frames])
                sync(fd)
                pos = start
                for _frames, nbytes, blk in chunks:
                    blk.place(self, pos + BLOCK.size, blk.starts)
                    pos += nbytes
                self.blocks.extend(blk for _, _, blk in chunks)
                self.end = pos
                self.pending = Pending()  # the commit point: one assignment
            except BaseException as e:
                if self.pending is pending:  # not committed: leave no trace of it
                    del self.blocks[nblocks:]
                    self.end = start
                    self._cut_back(fd)
                    if isinstance(e, OSError) and not isinstance(e, StoreError):
                        raise store_error(e, f"commit {len(pending)} records to",
                                          self.path) from e
                raise
            self._index = None  # rebuilt from the blocks at the next mapping read
        for key, _item, exc in unstorable:
            logger.warning("%s: the value of %r cannot be pickled (%r): stored as a failure "
                           "record", self.name, key, exc)
        return unstorable

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
            write_all(fd, [head])  # a short write would leave a header no reader accepts
            sync(fd)
        except BaseException as e:
            os.close(fd)
            self.path.unlink(missing_ok=True)  # our own empty file, nothing stored in it
            if isinstance(e, OSError):
                raise store_error(e, "create shard", self.path) from e
            raise
        self._fd, self.end, self._dir_unsynced = fd, len(head), True
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
                size = os.fstat(f.fileno()).st_size
                if self.meta is None:
                    header = read_header(f, self.path, size)
                    if header is None:
                        self.problem = ("truncated", "incomplete header")
                        return []
                    self.meta, self.end, self.version = header
                new, self.end, self.problem = scan(f, self, self.end, size, self.version)
            self.blocks.extend(new)
            if self._index is not None:
                self._index_blocks(self._index, len(self.blocks) - len(new))
            return new

    def read_items(self, blk: Block, cache: bool = True) -> list:
        """The items of a committed block, one per record."""
        return self._read(blk, 0, cache)

    def read_values(self, blk: Block, cache: bool = True) -> list:
        """The values of a committed block, one per record (None for blobs and failures
        in format 2: :attr:`Block.blobs` and :attr:`Block.fails` hold those)."""
        return self._read(blk, 1, cache)

    def _section(self, blk: Block, column: int) -> bytes:
        start, stop = blk.starts[column], blk.starts[column + 1]
        with open(self.path, "rb") as f:
            f.seek(blk.offset + start)
            return f.read(stop - start)

    def _read(self, blk: Block, column: int, cache: bool) -> list:
        key = (self.name, blk.offset, column)
        if cache and (hit := self.cache.get(key)) is not None:
            return hit[0]
        data = self._section(blk, column)
        if column == 0 and blk.version >= 2 and data[0] == ITEMS_NONE:
            out = [None] * len(blk.keys)
        else:
            out, bad = loads_block(memoryview(data)[1:] if column == 0 and blk.version >= 2
                                   else data)
            for slot, needs in bad.items():
                blk.bad[column, slot] = needs
        if cache:
            self.cache[key] = (out, len(data))
        return out

    def writer_alive(self) -> bool:
        """Whether the process that writes this shard may still be writing it."""
        meta = self.meta or {}
        # The same host name and pid in another container (or after a reboot) is another
        # process: compare the pid only within the same boot and pid namespace.
        same = meta.get("ns", NAMESPACE) == NAMESPACE
        if meta.get("host") == HOST and isinstance(meta.get("pid"), int) and same:
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
        """Key -> location of its latest committed record in the view (pending ones are
        looked up in :attr:`pending`, a few hundred at most)."""
        if self._index is None:
            index: dict[str, int] = {}
            self._index_blocks(index, 0)
            self._index = index
        return self._index

    def _pending_keys(self) -> dict[str, int]:
        p = self.pending
        return {k: i for i, (k, t) in enumerate(zip(p.keys, p.tags)) if t < SIDE}

    def record(self, key: str) -> tuple[int, float, Any, Any]:
        """(tag, time, item, value) of the key's latest record in the mapping view; the value
        of a blob record is the blob's file name."""
        p = self.pending
        for i in range(len(p) - 1, -1, -1):
            if p.keys[i] == key and p.tags[i] < SIDE:
                return p.tags[i], p.times[i], p.items[i], p.values[i]
        loc = self._ensure_index()[key]
        blk, slot = self.blocks[loc >> SLOT_BITS], loc & (MAX_BLOCK_RECORDS - 1)
        tag = blk.tags[slot]
        item = self.read_items(blk)[slot]
        if tag == BLOB and blk.blobs is not None:
            return tag, blk.times[slot], item, blk.blobs[slot]
        return tag, blk.times[slot], item, self.read_values(blk)[slot]

    def __getitem__(self, key: str) -> Any:
        if type(key) is not str:
            raise KeyError(key)
        return self.record(key)[3]

    def __contains__(self, key: object) -> bool:
        return key in self._ensure_index() or key in self._pending_keys()

    def __iter__(self) -> Iterator[str]:
        return iter({**self._ensure_index(), **self._pending_keys()})

    def __len__(self) -> int:
        return len({**self._ensure_index(), **self._pending_keys()})


