"""Large values in files of their own: a durable one-file-per-key layer and its codec.

A session composes them as ``zict.Func(dumps_oob, loads_oob, BlobFiles(directory))``.
``dumps_oob`` pickles with protocol 5 and keeps every buffer out of band, so an array of many
MB is written straight from its own memory, never copied into a pickle first; ``loads_oob``
rebuilds it over the one bytearray the file was read into (writeable, no second copy).
"""

from __future__ import annotations

import os
import pathlib
import pickle
import secrets
import struct
from collections.abc import Iterator
from typing import Any

from zict.common import ZictBase

from daskfarm.exceptions import StoreFormatError
from daskfarm.store._format import fsync_dir

__all__ = ["BlobFiles", "dumps_oob", "loads_oob"]

_MAGIC = b"DFBLOB1\n"
_COUNT = struct.Struct("<I")
_ALIGN = 64  # buffers start on a 64-byte boundary, so numpy gets aligned arrays


def _pad(n: int) -> int:
    return -n % _ALIGN


def dumps_oob(obj: Any) -> list[bytes | memoryview]:
    """Frames of a blob file: a small header, the pickle, then each buffer, aligned.

    Examples
    --------
    >>> b"".join(dumps_oob([1, 2]))[:8]
    b'DFBLOB1\\n'
    """
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]  # raw(): flat bytes of C- or F-contiguous data
    sizes = [len(data), *(r.nbytes for r in raws)]
    head = _MAGIC + _COUNT.pack(len(raws)) + struct.pack(f"<{len(sizes)}Q", *sizes)
    frames: list[bytes | memoryview] = [head + b"\0" * _pad(len(head)), data]
    for raw in raws:
        frames.append(b"\0" * _pad(sum(len(f) for f in frames)))
        frames.append(raw)
    return frames


def loads_oob(buf: bytes | bytearray | memoryview) -> Any:
    """Inverse of :func:`dumps_oob`; arrays are views into ``buf`` (writeable if it is).

    Examples
    --------
    >>> loads_oob(bytearray(b"".join(dumps_oob({"a": 1}))))
    {'a': 1}
    """
    mv = memoryview(buf).cast("B")
    if mv[:8] != _MAGIC:
        raise StoreFormatError("not a daskfarm blob (bad magic)")
    (count,) = _COUNT.unpack_from(mv, 8)
    sizes = struct.unpack_from(f"<{count + 1}Q", mv, 12)
    pos = 12 + 8 * (count + 1)
    pos += _pad(pos)
    data = mv[pos : pos + sizes[0]]
    pos += sizes[0]
    buffers = []
    for size in sizes[1:]:
        pos += _pad(pos)
        buffers.append(mv[pos : pos + size])
        pos += size
    if pos > mv.nbytes:
        raise StoreFormatError(f"truncated blob: {mv.nbytes} bytes, {pos} expected")
    return pickle.loads(data, buffers=buffers)


class BlobFiles(ZictBase[str, Any]):
    """Mutable mapping from a name to the bytes of one file, written atomically and durably.

    Each write goes to a hidden temporary file, is fsynced, then renamed over the final name
    with ``os.replace``: a reader sees the whole old file, the whole new one, or nothing.
    :meth:`flush` fsyncs the directory, after which the new names survive a crash too
    (one directory fsync per batch of files, not per file). Keys are file names
    (no ``/``, no leading dot). Values are bytes-like or a list of bytes-likes, written one
    after the other; a read returns one ``bytearray``.

    Parameters
    ----------
    directory : str or os.PathLike
        Created (with its parent fsynced) at the first write.

    Notes
    -----
    Unlike ``zict.File`` it keeps no key cache (listing reads the directory), writes
    atomically, and fsyncs. Writes of different keys from several threads are safe; two
    threads writing the same key leave one of the two values.

    Examples
    --------
    >>> d = BlobFiles("mydir")  # doctest: +SKIP
    >>> d["x"] = [b"12", b"3"]  # doctest: +SKIP
    >>> d["x"]  # doctest: +SKIP
    bytearray(b'123')
    """

    def __init__(self, directory: str | os.PathLike[str]):
        super().__init__()
        self.directory = pathlib.Path(directory)
        self._unsynced = False  # names created since the last flush

    def __repr__(self) -> str:
        return f"<BlobFiles: {self.directory}>"

    __str__ = __repr__

    @staticmethod
    def _check(key: object) -> str:
        if not isinstance(key, str):
            raise TypeError(f"blob names are str, not {type(key).__name__}")
        if not key or key.startswith(".") or "/" in key or "\\" in key or "\0" in key:
            raise ValueError(f"{key!r} is not a plain file name")
        return key

    def __setitem__(self, key: str, value: Any) -> None:
        path = self.directory / self._check(key)
        if not self.directory.is_dir():
            self.directory.mkdir(parents=True, exist_ok=True)
            fsync_dir(self.directory.parent)
        tmp = self.directory / f".{key}.{secrets.token_hex(4)}.tmp"
        frames = value if isinstance(value, (list, tuple)) else [value]
        try:
            with open(tmp, "xb") as f:
                for frame in frames:
                    f.write(frame)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._unsynced = True

    def flush(self) -> None:
        """Make the names written since the last flush durable (fsync the directory)."""
        if self._unsynced:
            fsync_dir(self.directory)
            self._unsynced = False

    def __getitem__(self, key: str) -> bytearray:
        if not isinstance(key, str):
            raise KeyError(key)
        try:
            f = open(self.directory / self._check(key), "rb")
        except (FileNotFoundError, ValueError):
            raise KeyError(key) from None
        with f:
            buf = bytearray(os.fstat(f.fileno()).st_size)
            n = f.readinto(buf)
        if n != len(buf):  # the file shrank while we read it: not one of our blobs
            raise StoreFormatError(f"{f.name} changed while it was read")
        return buf

    def __delitem__(self, key: str) -> None:
        if not isinstance(key, str):
            raise KeyError(key)
        try:
            os.remove(self.directory / self._check(key))
        except (FileNotFoundError, ValueError):
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        try:
            return (self.directory / self._check(key)).is_file()
        except (TypeError, ValueError):
            return False

    def __iter__(self) -> Iterator[str]:
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            names = []
        return (n for n in names if not n.startswith("."))

    def __len__(self) -> int:
        return sum(1 for _ in self)
