"""A writer session: one new shard, written by one process, committed in batches."""

from __future__ import annotations

import atexit
import logging
import numbers
import os
import pathlib
import pickle
import threading
import time
import warnings
import weakref
from collections.abc import Iterable, Iterator, MutableMapping
from itertools import repeat
from typing import Any

import zict

from daskfarm.exceptions import (
    FarmClosedError,
    FarmPicklingError,
    FarmTypeError,
    FarmValueError,
    StoreError,
)
from daskfarm.store._blobs import BlobFiles, dumps_oob, loads_oob
from daskfarm.store._format import store_error
from daskfarm.store._log import Log
from daskfarm.store._record import (
    BLOB,
    BLOBS_SUFFIX,
    FAILED,
    HOST,
    NAMESPACE,
    OK,
    PLAIN,
    SUFFIX,
    shard_stem,
    username,
)

__all__ = ["Session"]

logger = logging.getLogger(__name__)

_open_sessions: weakref.WeakSet[Session] = weakref.WeakSet()


class Session(MutableMapping[str, Any]):
    """A writable mapping backed by a new shard of a store (see :meth:`DataManager.session`).

    Records are kept in memory and committed as one checksummed block (write + fdatasync)
    when ``commit_records`` are pending or ``commit_interval`` seconds have passed since the
    last commit, checked at every put and :meth:`maybe_flush`; :meth:`flush` and
    :meth:`close` commit at once. A killed writer loses at most the records not yet
    committed. No other process ever writes this shard, so no lock is needed, on a local
    disk or on NFS/Lustre.

    Values whose top level is a buffer of ``blob_threshold`` bytes or more (a numpy array,
    bytes) are written to a file of their own at once; a value holding such a buffer deeper
    (a tuple or dict of arrays) is moved to its own file at commit. Small values cost no file.

    Parameters
    ----------
    path : str or os.PathLike
        The store directory.
    name : str, optional
        A label added to the shard's file name.
    run_id, task, version : optional
        Provenance stored once in the shard header and returned with every record (as JSON:
        other types are stored as their repr).
    commit_interval : float
        Seconds between commits while records keep arriving.
    commit_records : int
        Pending records that trigger a commit.
    blob_threshold : int, optional
        Size in bytes from which a value gets its own file (default 256 KiB).
    key_scheme : int, optional
        The version of the scheme that made the keys (``daskfarm.store.KEY_SCHEME`` for keys
        from :func:`~daskfarm.store.item_key`), stored in the shard header.

    Notes
    -----
    The methods take an instance lock, so several threads may write. A Session must not be
    used in a forked child process (it raises StoreError there): open a new one in the child.
    Results are append-only: ``del session[key]`` raises TypeError.

    Examples
    --------
    >>> with DataManager("results") as dm, dm.session() as s:  # doctest: +SKIP
    ...     s["a"] = 1.0
    ...     s.put("b", 2.0, item={"x": 2})
    ...     s.put_many([("c", {"x": 3}, 3.0), ("d", {"x": 4}, 4.0)])
    """

    blob_threshold = 256 * 1024
    # A session is a writer, equal only to itself (and kept in weak sets), not compared by
    # content as Mapping would.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __init__(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        *,
        run_id: Any = None,
        task: Any = None,
        version: Any = None,
        commit_interval: float = 1.0,
        commit_records: int = 500,
        blob_threshold: int | None = None,
        key_scheme: int | None = None,
    ):
        _check_number("commit_interval", commit_interval, 0, "seconds, e.g. 1.0")
        _check_number("commit_records", commit_records, 1, "a count, e.g. 500", integral=True)
        if blob_threshold is not None:
            _check_number("blob_threshold", blob_threshold, 0, "bytes, e.g. 262144",
                          integral=True)
        directory = pathlib.Path(path)
        stem = shard_stem(name)
        meta = {"host": HOST, "pid": os.getpid(), "created": time.time(), "name": name,
                "user": username(), "run_id": run_id, "task": task, "version": version,
                "key_scheme": key_scheme, "ns": NAMESPACE}
        self.commit_interval = float(commit_interval)
        self.commit_records = int(commit_records)
        if blob_threshold is not None:
            self.blob_threshold = int(blob_threshold)
        self._blobs = zict.Func(dumps_oob, loads_oob, BlobFiles(directory / (stem + BLOBS_SUFFIX)))
        # The log calls back through a weak reference: with no cycle, a session its owner
        # dropped is committed at once by reference counting (see __del__).
        spill = weakref.WeakMethod(self._spill)
        self._log = Log(directory / (stem + SUFFIX), meta, spill=lambda k, v: spill()(k, v),
                        spill_threshold=self.blob_threshold)
        self._lock = threading.RLock()
        self._unstorable: list[tuple[str, Any, BaseException]] = []
        self._nblobs = 0
        self._last_commit = time.monotonic()
        self._retry_at = 0.0
        self._on_commit: Any = None  # set by the DataManager that opened it
        self._pid = os.getpid()
        self._closed = False
        _open_sessions.add(self)
        logger.debug("session %s opened", self._log.path)

    @property
    def path(self) -> pathlib.Path:
        """The shard file (created at the first commit)."""
        return self._log.path

    @property
    def npending(self) -> int:
        """Records not yet committed."""
        return self._log.npending

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._log.npending} pending"
        return f"<Session: {self.path.name}, {state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise FarmClosedError(f"{self!r} is closed: open a new one with "
                                  "DataManager(path).session()")

    # ---- writing -----------------------------------------------------------------------

    def put(self, key: str, value: Any, item: Any = None, *, duration: float | None = None,
            worker: str | None = None) -> None:
        """Store one result, with the item that produced it and, optionally, how long it ran
        (seconds) and on which worker.

        Examples
        --------
        >>> s.put("k1", 0.5, item={"x": 1})  # doctest: +SKIP
        """
        with self._lock:
            self._check_open()
            tag = OK
            if type(value) not in PLAIN:
                value, tag = self._route(key, value)
            self._log.append(key, value, item, tag, time.time(), duration, worker)
            self.maybe_flush()

    def __setitem__(self, key: str, value: Any) -> None:
        self.put(key, value)

    def put_many(self, records: Iterable[tuple]) -> None:
        """Store many results; the Farm's hot path (well under 1 µs each).

        Each record is ``(key, item, value)`` or ``(key, item, value, duration, worker)``:
        ``duration`` the seconds the item ran on its worker (a float or None), ``worker``
        the worker's address or name (a str or None). Records of both shapes may be mixed.

        Values are pickled at commit, not here. A record whose value (or item) cannot be
        pickled does not stop the others: it is stored as a failure record (exception type
        ``FarmPicklingError``, the pickling error as its message) and reported by
        :meth:`pop_unstorable` after that commit, and logged as a warning.

        Examples
        --------
        >>> s.put_many([("k1", {"x": 1}, 0.5),  # doctest: +SKIP
        ...             ("k2", {"x": 2}, 0.7, 1.25, "tcp://w:1")])
        """
        with self._lock:
            self._check_open()
            now, pending, route = time.time(), self._log.pending, self._route
            keys, tags, items, values = pending.keys, pending.tags, pending.items, pending.values
            start = len(keys)
            try:
                for record in records:
                    if len(record) == 3:
                        key, item, value = record
                    else:
                        key, item, value, duration, worker = record
                        if duration is not None:
                            pending.durations[len(keys)] = duration
                        if worker is not None:
                            pending.workers[len(keys)] = worker
                    if type(key) is not str:
                        raise TypeError(f"keys must be str, not {type(key).__name__}")
                    if type(value) in PLAIN:
                        tags.append(OK)
                    else:
                        value, tag = route(key, value)
                        tags.append(tag)
                    keys.append(key)
                    items.append(item)
                    values.append(value)
            finally:
                pending.times.extend(repeat(now, len(keys) - start))
            self.maybe_flush()

    def pop_unstorable(self) -> list[tuple[str, Any, BaseException]]:
        """The records committed since the last call whose value (or item) could not be
        pickled, as ``(key, item, exception)``; each was stored as a failure record.

        Examples
        --------
        >>> s.put_many([("k", 1, lambda: 0)]); s.flush()  # doctest: +SKIP
        >>> [(k, type(e).__name__) for k, _item, e in s.pop_unstorable()]  # doctest: +SKIP
        [('k', 'PicklingError')]
        """
        with self._lock:
            out, self._unstorable = self._unstorable, []
            return out

    def put_failure(self, key: str, *, item: Any = None, exc_type: str = "", message: str = "",
                    traceback: str = "", duration: float | None = None,
                    worker: str | None = None) -> None:
        """Store a failure record: the item, the exception's type name, message and traceback.

        A failure never hides a result: readers return the newest *successful* record of a
        key, and list failures only for keys that have none.

        Examples
        --------
        >>> s.put_failure("k3", item=3, exc_type="ValueError", message="x<0")  # doctest: +SKIP
        """
        with self._lock:
            self._check_open()
            self._log.append(key, (str(exc_type), str(message), str(traceback)), item, FAILED,
                             time.time(), duration, worker)
            self.maybe_flush()

    def _route(self, key: str, value: Any) -> tuple[Any, int]:
        if type(key) is not str:
            raise TypeError(f"keys must be str, not {type(key).__name__}")
        if isinstance(value, (bytes, bytearray, memoryview)):
            size = memoryview(value).nbytes
        else:
            size = getattr(value, "nbytes", 0)
        if isinstance(size, int) and size >= self.blob_threshold:
            return self._write_blob(key, value), BLOB
        return value, OK

    def _spill(self, key: str, value: Any) -> tuple[str, int] | None:
        # Called by the log at commit for a block in which some value holds a big buffer.
        sizes: list[int] = []
        try:
            # Out of band, nothing is copied: this only measures the value's buffers.
            pickle.dumps(value, protocol=5,
                         buffer_callback=lambda b: sizes.append(memoryview(b).nbytes) or False)
        except Exception:
            return None  # the block pickling reports it
        if max(sizes, default=0) < self.blob_threshold:
            return None
        name = self._write_blob(key, value)
        self._blobs.flush()  # the log writes the block naming it right after this
        return name, BLOB

    def _write_blob(self, key: str, value: Any) -> str:
        name = f"{self._nblobs:08d}"
        self._nblobs += 1
        try:
            self._blobs[name] = value
        except OSError as e:
            raise store_error(e, f"write the value of {key!r} to", self._blobs.d.directory) from e
        except Exception as e:
            raise FarmPicklingError(f"the value of {key!r} cannot be pickled: {e!r}; return "
                                    "picklable values (numbers, arrays, tuples, dicts of "
                                    "those)") from e
        return name

    def maybe_flush(self) -> None:
        """Commit if ``commit_records`` are pending or ``commit_interval`` has passed.

        Cheap (a comparison or two) when nothing is due.
        """
        n = self._log.npending
        if n and (n >= self.commit_records
                  or time.monotonic() - self._last_commit >= self.commit_interval):
            if time.monotonic() >= self._retry_at:
                self.flush()

    def flush(self) -> None:
        """Commit every pending record now (one block, write + fdatasync).

        Raises
        ------
        StoreError
            The disk refused the write; the records stay pending and the next commit is
            tried after ``commit_interval``.

        Records that cannot be pickled do not raise: see :meth:`put_many`.
        """
        with self._lock:
            if self._closed:
                return
            try:
                self._blobs.flush()  # the blob files' names before the block naming them
                self._unstorable.extend(self._log.flush())
            except StoreError:
                self._retry_at = time.monotonic() + self.commit_interval
                raise
            finally:
                self._last_commit = time.monotonic()
                if self._on_commit is not None:
                    self._on_commit()

    def close(self) -> None:
        """Commit what is pending and close the shard; idempotent."""
        with self._lock:
            if self._closed:
                return
            try:
                try:
                    if os.getpid() == self._pid:  # a forked child's copy commits nothing
                        self.flush()
                finally:
                    self._closed = True
                    _open_sessions.discard(self)
                    self._log.close()
            except StoreError as e:
                raise StoreError(e.errno, f"{e.strerror}; {self._log.npending} records of "
                                 f"{self.path.name} were not stored") from e
            logger.debug("session %s closed", self.path)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Like an io.BufferedWriter: commit what the owner forgot, then warn about the leak.
        if getattr(self, "_closed", True) or os.getpid() != self._pid:
            return
        try:
            self.close()
            lost = ""
        except Exception as e:
            lost = f"; its last records were lost: {e}"
        warnings.warn(f"unclosed {self!r}{lost}", ResourceWarning, stacklevel=1, source=self)

    # ---- reading its own records -------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            self._check_open()
            tag, _time, _item, value = self._log.record(key)
            return self._blobs[value] if tag == BLOB else value

    def __contains__(self, key: object) -> bool:
        return key in self._log

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._log))

    def __len__(self) -> int:
        return len(self._log)

    def __delitem__(self, key: str) -> None:
        raise TypeError("results are append-only: a Session cannot delete records "
                        "(move the shard file out of the store to drop its results)")


def _check_number(name: str, value: Any, low: float, unit: str, integral: bool = False) -> None:
    kinds = numbers.Integral if integral else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise FarmTypeError(f"{name}={value!r} must be a number of {unit}, not "
                            f"{type(value).__name__}")
    if not value >= low:  # also refuses NaN
        raise FarmValueError(f"{name}={value!r} must be >= {low:g}: give {unit}")


@atexit.register
def _close_open_sessions() -> None:
    # Commit what scripts that never closed their sessions still hold (not in forked
    # children, which leave through os._exit and whose shards belong to their parent).
    for session in list(_open_sessions):
        if session._pid == os.getpid():
            try:
                session.close()
            except Exception:
                logger.exception("could not close %r at exit", session)
