"""What each entry of a store directory is: the one classifier reads and ``check()`` share."""

from __future__ import annotations

import os
import pathlib
import stat
from dataclasses import dataclass

from daskfarm.store._format import store_error
from daskfarm.store._record import BLOBS_SUFFIX, SUFFIX

__all__ = ["DESCRIBE", "Entry", "list_store"]

#: What a reader says about an entry that is not part of the store (``check()`` says "stray").
DESCRIBE = {
    "stray-dir": "a directory that is not part of a daskfarm store",
    "stray": "not a daskfarm shard (a stray file)",
    "dangling": "a symbolic link to a missing file",
    "special": "not a regular file (a FIFO, socket or device)",
}


@dataclass(frozen=True)
class Entry:
    """One entry of a store directory.

    ``kind``: ``shard`` (a regular file named ``*.dfshard``, ``stat`` set), ``blobs`` (a
    directory of large values), ``vanished`` (removed while listed), or one of
    :data:`DESCRIBE`'s kinds.
    """

    name: str
    kind: str
    path: pathlib.Path
    stat: os.stat_result | None = None


def list_store(directory: os.PathLike[str] | str) -> list[Entry]:
    """Every entry of a store directory, sorted by name; hidden ones (a copy in progress,
    the OS's own files) are left out."""
    try:
        found = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as e:
        raise store_error(e, "list the store", directory) from e
    out = []
    for entry in found:
        name, path = entry.name, pathlib.Path(entry.path)
        if name.startswith("."):
            continue
        if entry.is_dir():
            out.append(Entry(name, "blobs" if name.endswith(BLOBS_SUFFIX) else "stray-dir", path))
            continue
        if not name.endswith(SUFFIX):
            out.append(Entry(name, "stray", path))
            continue
        try:
            st = entry.stat()  # follows a symbolic link
        except FileNotFoundError:
            out.append(Entry(name, "dangling" if entry.is_symlink() else "vanished", path))
            continue
        # opening a FIFO would block every reader for ever
        out.append(Entry(name, "shard" if stat.S_ISREG(st.st_mode) else "special", path, st))
    return out
