"""``DataManager.check()``: what every file of a store directory is, and what is wrong."""

from __future__ import annotations

import io
import os
import pathlib
import pickle
from dataclasses import dataclass

from daskfarm.exceptions import StoreFormatError
from daskfarm.store._log import Log
from daskfarm.store._record import BLOB, BLOBS_SUFFIX, SUFFIX, blobs_dir
from daskfarm.store._scan import DESCRIBE, list_store

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
    file was not copied along with its shard). Not problems: ``orphan`` (large-value files
    of a writer that never committed: killed before its first commit, or not there yet),
    ``unchecked`` (a format-1 block whose large values could not be checked without
    unpickling them).
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
    """Examine every file of the store at ``path``; reads headers and indexes only (nothing
    is unpickled), never writes."""
    entries: list[CheckEntry] = []
    listed = list_store(path)
    shards = {e.name for e in listed if e.kind in ("shard", "special", "dangling")}
    for entry in listed:
        name = entry.name
        if entry.kind == "blobs":
            if name.removesuffix(BLOBS_SUFFIX) + SUFFIX not in shards:
                entries.append(_orphan(entry.path))
            continue
        if entry.kind in DESCRIBE:
            entries.append(CheckEntry(name, "stray", detail=DESCRIBE[entry.kind]))
            continue
        if entry.kind != "shard":
            continue  # removed while we looked
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
        if log.version < 2:
            detail += f", format {log.version}"
        if log.problem:
            kind, what = log.problem
            status = "in-progress" if kind == "truncated" and log.writer_alive() else kind
            detail = f"{what}; {records} intact records"
        entries.append(CheckEntry(name, status, records, detail))
        entries.extend(_missing_blobs(log))
    return CheckReport(pathlib.Path(path), tuple(entries))


def _orphan(directory: pathlib.Path) -> CheckEntry:
    files = [f for f in directory.iterdir() if f.is_file()]
    unfinished = sum(1 for f in files if f.name.startswith("."))
    size = sum(f.stat().st_size for f in files)
    detail = (f"{len(files)} large-value files ({size:,} bytes"
              f"{f', {unfinished} unfinished' if unfinished else ''}) of a writer that never "
              "committed (killed before its first commit, or still before it): no record "
              "refers to them; delete the directory once that writer is gone")
    return CheckEntry(directory.name, "orphan", detail=detail)


def _missing_blobs(log: Log) -> list[CheckEntry]:
    directory, out = blobs_dir(log.path), []
    for blk in log.blocks:
        if BLOB not in blk.tags:
            continue
        if blk.blobs is not None:
            names = blk.blobs
        else:  # format 1 keeps the names in the values: read them only if that is safe
            try:
                names = _plain_names(log, blk)
            except Exception as e:
                out.append(CheckEntry(log.name, "unchecked", detail=f"the large values of a "
                                      f"format-1 block were not checked ({e})"))
                continue
        for slot, blob in names.items():
            if not (directory / blob).is_file():
                out.append(CheckEntry(f"{directory.name}/{blob}", "missing-blob",
                                      detail=f"the value of {blk.keys[slot]!r} in {log.name}"))
    return out


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> None:
        raise pickle.UnpicklingError(f"the values name {module}.{name}")


def _plain_names(log: Log, blk) -> dict[int, str]:
    """The blob names of a format-1 block, read with an unpickler that admits no class."""
    values = _NoGlobals(io.BytesIO(log._section(blk, 1))).load()
    return {s: values[s] for s, tag in enumerate(blk.tags) if tag == BLOB}
