"""DataManager: a store directory of shards, merged on read."""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import pathlib
import threading
import uuid
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import zict

from daskfarm.exceptions import (
    CorruptShardWarning,
    FarmClosedError,
    FarmTypeError,
    FarmValueError,
    StoreError,
)
from daskfarm.store._check import CheckReport, check_store
from daskfarm.store._format import fsync_dir, store_error
from daskfarm.store._log import cache_weight
from daskfarm.store._reads import ValueReads
from daskfarm.store._record import Record, username
from daskfarm.store._table import FieldIndex, Tables
from daskfarm.store._view import View
from daskfarm.store.session import Session

__all__ = ["DataManager"]

logger = logging.getLogger(__name__)

CACHE_BYTES = 64 * 2**20  # decoded blocks kept for point reads


class DataManager(ValueReads, Tables):
    """A result store: a directory of shards, one per writer session, merged on read.

    Every writer (a run, a process, a machine) writes its own shard file through
    :meth:`session`, so writers never share a file and need no lock, on a local disk or on
    NFS/Lustre. Reads merge every shard in the directory: copying another store's files into
    this directory merges the two. A key's value is its newest successful record (see
    :meth:`get_all` for the rule and for every record). Stray, truncated or corrupt files are
    skipped, or read up to their last intact block, with one :class:`CorruptShardWarning`
    naming each.

    Trust: listing, counting, checking, merging and resuming (``keys``, ``len``,
    ``stored_keys``, ``failed_keys``, ``check``, ``daskfarm store merge``) read only the
    shards' headers and indexes, which are JSON and msgpack, and never unpickle anything.
    Reading values and items (``[key]``, ``values``, ``items``, ``params``, ``get_all``,
    ``failures``, ``find``, ``to_dataframe``) unpickles them, and unpickling can run code:
    only copy or merge in shards from machines and people you trust.

    Parameters
    ----------
    path : str or os.PathLike
        The store directory; created if missing. Nothing in it is ever deleted or rewritten.
    readonly : bool
        Only read: no writability check, and :meth:`session` refuses.

    Raises
    ------
    StoreError
        ``path`` is a file, cannot be created, or is not writable.

    Notes
    -----
    New shards and blocks written by any process are picked up automatically: every read of
    the whole store (``keys``, ``values``, ``items``, their ``iter`` forms, ``len``,
    ``itemcount``, ``failures``, ``stored_keys``) first rescans the directory (one listing and
    one stat per shard; only new bytes are read). Point reads (``[key]``, ``in``, ``get``,
    ``get_all``, ``params``) rescan when the key is not known yet or a session of this
    manager has committed since; a value overwritten by another process since the last rescan
    shows after the next whole-store read or :meth:`refresh`. An iteration sees records
    committed while it runs.
    Thread-safe: rescans hold an instance lock.

    Examples
    --------
    >>> dm = DataManager("results")  # doctest: +SKIP
    >>> with dm.session() as s:  # doctest: +SKIP
    ...     s[dm.make_unique_key()] = (0.5, 12.0)
    >>> if dm.itemcount() < 20:  # doctest: +SKIP
    ...     pass  # top up: run 20 - dm.itemcount() more items
    >>> x, y = zip(*dm.values())  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False):
        self.path = _check_path(path)
        self.readonly = readonly
        _prepare(self.path, readonly)
        self._lock = threading.RLock()
        self._cache = zict.LRU(CACHE_BYTES, {}, weight=cache_weight)
        self._view = View()
        self._scanned = False
        self._dirty = False  # a session of ours committed since the last rescan
        self._skipped: dict[str, tuple[int, int]] = {}  # unreadable shards, by (size, mtime)
        self._warned: set[tuple[str, Any]] = set()
        self._blob_maps: dict[str, zict.Func] = {}
        self._fields: dict[str, FieldIndex] = {}  # find()'s index, per item field
        self._sessions: weakref.WeakSet[Session] = weakref.WeakSet()
        self._closed = False

    def __repr__(self) -> str:
        return f"<DataManager: {self.path}{' (closed)' if self._closed else ''}>"

    def _check_open(self) -> None:
        if self._closed:
            raise FarmClosedError(f"{self!r} is closed: open it again with "
                                  f"DataManager({str(self.path)!r})")

    # ---- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the sessions opened from this manager (committing them) and release memory.

        Idempotent; any later use raises :class:`~daskfarm.FarmClosedError`.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sessions, self._view = list(self._sessions), View()
            self._cache.clear()
        errors = []
        for s in sessions:
            try:
                s.close()
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def __enter__(self) -> DataManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writing -----------------------------------------------------------------------

    def session(self, name: str | None = None, *, run_id: Any = None, task: Any = None,
                version: Any = None, commit_interval: float = 1.0, commit_records: int = 500,
                blob_threshold: int | None = None, key_scheme: int | None = None) -> Session:
        """A writable mapping backed by a new shard of this store.

        See :class:`Session` for the parameters and the commit rule.

        Examples
        --------
        >>> with dm.session(task="sim", version=2) as s:  # doctest: +SKIP
        ...     s.put("k", 1.5, item={"x": 1})
        """
        self._check_open()
        if self.readonly:
            raise StoreError(errno.EROFS, f"{self!r} was opened with readonly=True: open "
                             f"DataManager({str(self.path)!r}) to write")
        s = Session(self.path, name, run_id=run_id, task=task, version=version,
                    commit_interval=commit_interval, commit_records=commit_records,
                    blob_threshold=blob_threshold, key_scheme=key_scheme)
        s._on_commit = self._changed
        self._sessions.add(s)
        return s

    def _changed(self) -> None:
        self._dirty = True

    def computer_session(self) -> Session:
        """Brian's per-computer session; now just a new shard (named after user and host)."""
        return self.session(username())

    def locking_session(self) -> Session:
        """Brian's locking session; now just a new shard: one writer per file needs no lock."""
        return self.session(username())

    locking_computer_session = locking_session

    @staticmethod
    def make_unique_key() -> str:
        """A new random key (a uuid4 string), as Brian's DataManager made."""
        return str(uuid.uuid4())

    # ---- refresh -----------------------------------------------------------------------

    def refresh(self) -> None:
        """Pick up shards and blocks written since the last scan (by any process)."""
        with self._lock:
            self._check_open()
            if not self._view.update(self.path, self._cache, self._skipped, self._warn):
                # A shard vanished or shrank: index the directory again from scratch.
                logger.debug("store %s changed under us; reindexing", self.path)
                self._cache.clear()
                self._blob_maps.clear()
                self._view = View(careful=self._view.careful)
                self._view.update(self.path, self._cache, self._skipped, self._warn)
            if self._view.stale:
                logger.debug("store %s stores some keys twice; reindexing carefully", self.path)
                self._view = self._view.reindexed()
            self._scanned, self._dirty = True, False

    def _warn(self, name: str, what: Any, message: str, stacklevel: int = 6) -> None:
        # stacklevel: the user's call, through refresh() and the public read method
        if (name, what) not in self._warned:
            self._warned.add((name, what))
            warnings.warn(f"{self.path / name}: {message}", CorruptShardWarning,
                          stacklevel=stacklevel)

    def _whole(self) -> View:
        self.refresh()
        return self._view

    def _point(self, key: object) -> View:
        with self._lock:
            self._check_open()
            view = self._view
            if type(key) is str and (not self._scanned or self._dirty
                                     or (key not in view.latest and key not in view.failed)):
                self.refresh()
            return self._view

    # ---- point reads -------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        view = self._point(key)
        blk, slot = view.locate(view.latest[key])
        return self._value(blk, slot)

    def __contains__(self, key: object) -> bool:
        return key in self._point(key).latest

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` if no successful record has it."""
        try:
            return self[key]
        except KeyError:
            return default

    def params(self, key: str) -> Any:
        """The item that produced the value of ``key`` (``None`` if the writer did not give it).

        Examples
        --------
        >>> dm.params(key)  # doctest: +SKIP
        {'x': 3}
        """
        view = self._point(key)
        blk, slot = view.locate(view.latest[key])
        return self._item(blk, slot)

    def get_all(self, key: str) -> list[Record]:
        """Every record stored under ``key``, in every shard, oldest first, with provenance.

        ``dm[key]`` is the value of the newest successful record: within one shard the later
        one; across shards the one with the later time (writer clocks), ties going to the
        greater shard file name. Failure records are included here but never hide a value.

        Examples
        --------
        >>> [(r.value, r.shard, r.host) for r in dm.get_all(key)]  # doctest: +SKIP
        [(1.0, '2026...a.dfshard', 'node1'), (1.1, '2026...b.dfshard', 'node2')]
        """
        view = self._point(key)
        locs = view.dups.get(key) or [
            loc for loc in (view.latest.get(key), view.failed.get(key)) if loc is not None]
        order = functools.cmp_to_key(lambda a, b: 1 if view.newer(a, b) else -1)
        return [self._record(view, loc) for loc in sorted(locs, key=order)]

    # ---- whole-store reads -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._whole().latest)

    def itemcount(self) -> int:
        """Number of keys with a successful record (Brian's top-up count); same as ``len``."""
        return len(self)

    def keys(self) -> list[str]:
        """Every key with a successful record."""
        return list(self._whole().latest)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def stored_keys(self) -> frozenset[str]:
        """A snapshot of the keys with a successful record, from the indexes alone (no value is
        unpickled); for resuming a run: ``key in dm.stored_keys()`` is O(1)."""
        return frozenset(self._whole().latest)

    def iteritems(self) -> Iterator[tuple[str, Any]]:
        """Iterate ``(key, value)`` one block at a time, without holding every value at once."""
        # chain + starmap: the per-record loop runs in C
        return itertools.chain.from_iterable(itertools.starmap(zip, self._chunks(self._whole())))

    def itervalues(self) -> Iterator[Any]:
        """Iterate the values one block at a time."""
        chunks = self._chunks(self._whole())
        return itertools.chain.from_iterable(values for _keys, values in chunks)

    def items(self) -> list[tuple[str, Any]]:
        """Every ``(key, value)``, the value being the newest successful record of the key."""
        out: list[tuple[str, Any]] = []
        for keys, values in self._chunks(self._whole()):
            out.extend(zip(keys, values))
        return out

    def values(self) -> list[Any]:
        """Every value (one per key)."""
        out: list[Any] = []
        for _keys, values in self._chunks(self._whole()):
            out.extend(values)
        return out

    def failed_keys(self) -> frozenset[str]:
        """The keys with a failure record and no successful one, from the indexes alone
        (nothing is unpickled).

        Examples
        --------
        >>> len(dm.failed_keys())  # doctest: +SKIP
        3
        """
        view = self._whole()
        return frozenset(k for k in list(view.failed) if k not in view.latest)

    def failures(self) -> list[Record]:
        """The newest failure record of every key that has no successful record."""
        view = self._whole()
        return [self._record(view, loc) for key, loc in list(view.failed.items())
                if key not in view.latest]

    def check(self) -> CheckReport:
        """Report every file of the directory: shards, and stray, truncated, corrupt or foreign
        files, and large values whose file is missing. Reads, never writes, never warns.

        Examples
        --------
        >>> print(dm.check())  # doctest: +SKIP
        results: 2 shards, 1200 records, 1 problem(s)
          ok                 1000  20261122T...dfshard  2 blocks, 41234 bytes
          truncated           200  20261122T...dfshard  incomplete block at byte 9120 of 9500; ...
        """
        self._check_open()
        return check_store(self.path)

def _check_path(path: Any) -> pathlib.Path:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise FarmTypeError(f"DataManager(path) takes the path of a store directory (a str or "
                            f"pathlib.Path), not {type(path).__name__}: e.g. "
                            "DataManager('results')")
    if not os.fspath(path):
        raise FarmValueError("DataManager('') names no directory (it would be the current "
                             "one): give the store a directory of its own, e.g. "
                             "DataManager('results')")
    return pathlib.Path(path)


def _prepare(path: pathlib.Path, readonly: bool) -> None:
    if path.exists() and not path.is_dir():
        raise StoreError(errno.ENOTDIR, f"{path} is a file, not a store directory: pass the path "
                         f"of a directory (created if missing), e.g. DataManager('{path}.data')")
    if not path.exists():
        if readonly:
            raise StoreError(errno.ENOENT, f"{path} does not exist: check the path")
        missing = [p for p in [path, *path.parents] if not p.exists()]
        try:
            path.mkdir(parents=True, exist_ok=True)
            for created in missing:  # each new name is durable only once its parent is synced
                fsync_dir(created.parent)
        except OSError as e:
            raise store_error(e, "create the store directory", path) from e
    if not readonly and not os.access(path, os.W_OK | os.X_OK):
        raise StoreError(errno.EACCES, f"{path} is not writable: make it writable (chmod u+w "
                         f"{path}), choose another path, or open it with "
                         "DataManager(path, readonly=True) to only read it")
