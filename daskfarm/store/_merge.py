"""Merging stores: copy another store's shards (and their large values) into this one.

Only files are copied, after reading the source's headers and indexes (``check_store``):
nothing is unpickled. Reading the merged store later does unpickle the copied values, so
merge only stores from machines and people you trust.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from dataclasses import dataclass, field

from daskfarm.exceptions import FarmValueError, StoreError
from daskfarm.store._check import check_store
from daskfarm.store._format import fsync_dir, store_error
from daskfarm.store._record import SUFFIX, blobs_dir

__all__ = ["MergeReport", "merge_store"]


@dataclass
class MergeReport:
    """What :func:`merge_store` did.

    Attributes
    ----------
    copied, updated, kept : int
        Shards new in the destination, shards whose destination copy was shorter and was
        replaced, and shards already there whole.
    records : int
        Intact records in the shards copied or updated.
    skipped : list of (str, str)
        Files of the source not copied, with the reason (not a shard, foreign, newer).
    in_progress : list of str
        Shards still being written in the source: merge again when their run is over.
    """

    copied: int = 0
    updated: int = 0
    kept: int = 0
    records: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)


def merge_store(source: os.PathLike[str] | str, dest: os.PathLike[str] | str) -> MergeReport:
    """Copy every shard of the store ``source`` into the store ``dest``.

    A shard already in ``dest`` is kept, or replaced when the source's copy has grown.
    Each file is copied to a hidden temporary name, fsynced and renamed into place, and the
    directory is fsynced, so a crash leaves either the whole copy or none; large values go
    before the shard that names them. ``source`` is not changed. Hidden files (copies in
    progress, temporary files of a killed writer) are never copied.

    Reads only headers and indexes (nothing is unpickled); reading ``dest`` afterwards
    unpickles the copied values, so only merge stores you trust.

    Examples
    --------
    >>> report = merge_store("laptop-results", "results")  # doctest: +SKIP
    >>> report.copied, report.records  # doctest: +SKIP
    (3, 12000)
    """
    from daskfarm.store.manager import DataManager

    source, dest = pathlib.Path(source), pathlib.Path(dest)
    if not source.is_dir():
        raise StoreError(2, f"no store directory {source}: check the path")
    if source.resolve() == (dest.resolve() if dest.exists() else dest.absolute()):
        raise FarmValueError(f"cannot merge {source} into itself: give two different stores")
    report = check_store(source)
    DataManager(dest).close()  # creates DEST, or says why it cannot be written
    out = MergeReport()
    for entry in report.entries:
        if not entry.name.endswith(SUFFIX) or entry.status in ("foreign", "newer", "stray"):
            if entry.status in ("stray", "foreign", "newer"):
                out.skipped.append((entry.name, entry.status))
            continue
        src_file, dst_file = source / entry.name, dest / entry.name
        try:
            size = src_file.stat().st_size
        except FileNotFoundError:
            continue  # removed since the check
        existing = dst_file.stat().st_size if dst_file.exists() else None
        if existing is not None and existing >= size:
            out.kept += 1
            continue
        blobs = blobs_dir(src_file)
        if blobs.is_dir():  # large values first: a reader never sees a shard without them
            _copy_blobs(blobs, dest / blobs.name)
        _copy_durably(src_file, dst_file)
        out.copied += existing is None
        out.updated += existing is not None
        out.records += entry.records
        if entry.status == "in-progress":
            out.in_progress.append(entry.name)
    return out


def _copy_blobs(src: pathlib.Path, dst: pathlib.Path) -> None:
    if not dst.is_dir():
        dst.mkdir()
        fsync_dir(dst.parent)
    for f in src.iterdir():
        # hidden: a blob a killed writer had not finished (its .tmp), never referenced
        if f.is_file() and not f.name.startswith(".") and not (dst / f.name).exists():
            _copy_durably(f, dst / f.name, sync_dir=False)
    fsync_dir(dst)


def _copy_durably(src: pathlib.Path, dst: pathlib.Path, sync_dir: bool = True) -> None:
    tmp = dst.with_name(f".{dst.name}.merging-{os.getpid()}")
    try:
        shutil.copyfile(src, tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dst)
    except OSError as e:
        raise store_error(e, f"copy {src} to", dst) from e
    finally:
        tmp.unlink(missing_ok=True)
    if sync_dir:
        fsync_dir(dst.parent)
