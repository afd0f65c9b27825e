"""``DataManager.check()``: what every file of a store directory is, and what is wrong."""

from __future__ import annotations

import os
import pathlib
import stat
from dataclasses import dataclass

from daskfarm.exceptions import StoreFormatError
from daskfarm.store._log import Log
from daskfarm.store._record import BLOB, BLOBS_SUFFIX, SUFFIX, blobs_dir

__all__ = ["CheckEntry", "CheckReport", "check_store"]

#: Statuses that are problems; "ok" and "in-progress" (a live writer's unfinished tail) are not.
PROBLEMS = ("stray", "truncated", "corrupt", "foreign", "newer", "unreadable", "missing-blob")


@dataclass(frozen=True)
class CheckEntry:
    """One file of a store: its name, status, intact records and a detail."""

    name: str
    status: str
    records: int = 0
    detail: str = ""


@dataclass(frozen=True)
class CheckReport:
    """The result of :meth:`DataManager.check`; ``str(report)`` is a table.

    Statuses: ``ok``; ``in-progress`` (a shard whose writer is still writing its last block);
    ``truncated`` (a writer killed mid-write or a half-copied file: read up to its last intact
    block); ``corrupt`` (a block failing its checksum: read up to it); ``foreign`` (named like a
    shard but not one); ``newer`` (a shard format this daskfarm cannot read); ``stray`` (a
    file or directory that is not part of a store); ``missing-blob`` (a large value whose
    file was not copied along with its shard).
    """

    path: pathlib.Path
    entries: tuple[CheckEntry, ...]

    @property
    def problems(self) -> list[CheckEntry]:
        return [e for e in self.entries if e.status in PROBLEMS]

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        shards = [e for e in self.entries if e.name.endswith(SUFFIX)]
        lines = [f"{self.path}: {len(shards)} shards, {sum(e.records for e in shards)} records, "
                 f"{len(self.problems)} problem(s)"]
        lines += [f"  {e.status:<12} {e.records:>9}  {e.name}  {e.detail}" for e in self.entries]
        return "\n".join(lines)


def check_store(path: os.PathLike[str] | str) -> CheckReport:
    """Examine every file of the store at ``path``; reads indexes, never writes."""
    entries: list[CheckEntry] = []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        name = entry.name
        if name.startswith("."):
            continue  # hidden: a copy in progress (store merge) or the OS's own files
        if entry.is_dir():
            if not name.endswith(BLOBS_SUFFIX):
                entries.append(CheckEntry(name, "stray", detail="a directory, not part of a store"))
            continue
        if not name.endswith(SUFFIX):
            entries.append(CheckEntry(name, "stray", detail="not a daskfarm shard"))
            continue
        try:
            mode = entry.stat().st_mode  # follows a symbolic link
        except FileNotFoundError:
            if entry.is_symlink():
                entries.append(CheckEntry(name, "stray", detail="a link to a missing file"))
            continue  # removed while we looked
        if not stat.S_ISREG(mode):  # opening a FIFO would block
            entries.append(CheckEntry(name, "stray", detail="not a regular file"))
            continue
        try:
            log = Log(entry.path)
        except StoreFormatError as e:
            entries.append(CheckEntry(name, getattr(e, "reason", "foreign"), detail=str(e)))
            continue
        except FileNotFoundError:  # removed while we looked
            continue
        except OSError as e:
            entries.append(CheckEntry(name, "unreadable", detail=str(e.strerror or e)))
            continue
        records = sum(len(b.keys) for b in log.blocks)
        status, detail = "ok", f"{len(log.blocks)} blocks, {log.end} bytes"
        if log.problem:
            kind, what = log.problem
            status = "in-progress" if kind == "truncated" and log.writer_alive() else kind
            detail = f"{what}; {records} intact records"
        entries.append(CheckEntry(name, status, records, detail))
        entries.extend(_missing_blobs(log))
    return CheckReport(pathlib.Path(path), tuple(entries))


def _missing_blobs(log: Log) -> list[CheckEntry]:
    directory, out = blobs_dir(log.path), []
    for blk in log.blocks:
        if BLOB not in blk.tags:
            continue
        values = log.read_values(blk, cache=False)
        for slot, tag in enumerate(blk.tags):
            if tag == BLOB and not (directory / values[slot]).is_file():
                out.append(CheckEntry(f"{directory.name}/{values[slot]}", "missing-blob",
                                      detail=f"the value of {blk.keys[slot]!r} in {log.name}"))
    return out
