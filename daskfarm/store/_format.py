"""The shard file format: a header, then checksummed blocks; and the errors files raise.

Version 1, integers little-endian::

    header   magic "\\x89DFSHRD\\n" | version u16 | flags u16 | meta_len u32 | crc32(meta) u32
             | meta: JSON (host, pid, created, name, run_id, task, version, user)
    block    length u64 | crc32(length field + payload) u32 | payload
    payload  index_len u32 | items_len u64 | index | items | values
    index    pickle((keys: list[str], tags: bytes, times: array("d")))
    items    pickle(list of the items, one per record)
    values   pickle(list of the values, one per record)

One block is one commit of many records, so reading 100k records costs a few
``pickle.loads``; the index reads without unpickling any value, and the values without the
items. A scan stops at the first block that is incomplete or fails its checksum and keeps
everything before it. Nothing is ever rewritten in place: a shard only grows.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pathlib
import pickle
import struct
import zlib
from typing import Any, BinaryIO

from daskfarm.exceptions import StoreError, StoreFormatError

MAGIC = b"\x89DFSHRD\n"  # \x89 and \n break under text-mode transfer, as PNG's magic does
FORMAT_VERSION = 1

HEADER = struct.Struct("<8sHHII")
BLOCK = struct.Struct("<QI")
_PAYLOAD = struct.Struct("<IQ")
_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")

sync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync

_FIXES = {
    errno.ENOSPC: "free some disk space, or write the store elsewhere",
    errno.EDQUOT: "free some of your disk quota, or write the store elsewhere",
    errno.EACCES: "make the store directory writable (chmod u+w) or choose another path",
    errno.EPERM: "make the store directory writable (chmod u+w) or choose another path",
    errno.EROFS: "the filesystem is read-only: choose a store path on a writable one",
    errno.EIO: "the disk reported an I/O error: check the device and copy the store elsewhere",
}


def store_error(exc: OSError, action: str, path: os.PathLike[str] | str) -> StoreError:
    """A StoreError for an OSError, naming the file and the fix."""
    fix = _FIXES.get(exc.errno or 0, "check the path and the disk")
    return StoreError(exc.errno, f"cannot {action} {os.fspath(path)}: {exc.strerror or exc}; {fix}")


def format_error(path: pathlib.Path, reason: str, detail: str) -> StoreFormatError:
    """A StoreFormatError whose ``reason`` ("foreign", "newer", "corrupt") check() reports."""
    err = StoreFormatError(f"{path}: {detail}")
    err.reason = reason
    return err


def fsync_dir(path: os.PathLike[str] | str) -> None:
    """Make new names in a directory durable (a new file survives a crash only then)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories; nothing more to do there
        return
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
            os.fsync(fd)
    finally:
        os.close(fd)


class Block:
    """Index of one committed block; its items and values stay on disk until read."""

    __slots__ = ("clean", "keys", "length", "log", "offset", "pure", "starts", "tags", "times")

    def __init__(self, log, offset, length, starts, keys, tags, times):
        self.log = log
        self.offset = offset  # file offset of the payload
        self.length = length
        self.starts = starts  # payload offsets of the items, the values and the end
        self.keys = keys
        self.tags = tags
        self.times = times
        self.pure = tags.count(0) == len(tags)  # only inline values: no blob, no failure
        self.clean = True  # no record here is shadowed by a newer one (set by DataManager)


def encode_header(meta: dict[str, Any]) -> bytes:
    raw = json.dumps(meta, default=repr).encode()
    return HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(raw), zlib.crc32(raw)) + raw


def read_header(f: BinaryIO, path: pathlib.Path) -> tuple[dict[str, Any], int] | None:
    """(meta, end of header), or None if the header is incomplete (still being written?)."""
    head = f.read(HEADER.size)
    if len(head) < HEADER.size:
        if not MAGIC.startswith(head[: len(MAGIC)]):
            raise format_error(path, "foreign", "not a daskfarm shard (unknown magic)")
        return None
    magic, version, _flags, size, crc = HEADER.unpack(head)
    if magic != MAGIC or version == 0:
        raise format_error(path, "foreign", "not a daskfarm shard (unknown magic)")
    if version > FORMAT_VERSION:
        raise format_error(path, "newer", f"written in shard format {version} by a newer "
                           f"daskfarm (this one reads format {FORMAT_VERSION}): upgrade "
                           "daskfarm to read it")
    raw = f.read(size)
    if len(raw) < size:
        return None
    if zlib.crc32(raw) != crc:
        raise format_error(path, "corrupt", "shard header fails its checksum")
    return json.loads(raw), HEADER.size + size


def encode_block(keys: list[str], tags: bytes, times: Any, pitems: bytes,
                 pvalues: bytes) -> tuple[bytes, tuple[int, int, int]]:
    """The bytes of one block, and the payload offsets of its items, values and end."""
    index = pickle.dumps((keys, tags, times), protocol=5)
    payload = b"".join([_PAYLOAD.pack(len(index), len(pitems)), index, pitems, pvalues])
    head = _LENGTH.pack(len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    istart = _PAYLOAD.size + len(index)
    return head + _CRC.pack(crc) + payload, (istart, istart + len(pitems), len(payload))


def scan(f: BinaryIO, log: Any, pos: int, size: int):
    """Read the blocks from ``pos`` to ``size``: (blocks, end of the last intact block,
    problem), the problem being None or ("truncated" | "corrupt", detail)."""
    blocks: list[Block] = []
    f.seek(pos)
    while pos < size:
        head = f.read(BLOCK.size)
        n, crc = BLOCK.unpack(head) if len(head) == BLOCK.size else (None, 0)
        end = pos + BLOCK.size + (n or 0)
        if n is None or end > size:
            return blocks, pos, ("truncated", f"incomplete block at byte {pos} of {size}")
        payload = f.read(n) if n >= _PAYLOAD.size else b""
        if not payload or zlib.crc32(payload, zlib.crc32(head[: _LENGTH.size])) != crc:
            # A bad last block is a torn write; a bad block with more after it is damage.
            kind = "truncated" if end == size else "corrupt"
            return blocks, pos, (kind, f"block at byte {pos} fails its checksum")
        try:
            ilen, itlen = _PAYLOAD.unpack_from(payload)
            istart = _PAYLOAD.size + ilen
            if istart + itlen > n:
                raise ValueError("section lengths exceed the block")
            keys, tags, times = pickle.loads(memoryview(payload)[_PAYLOAD.size : istart])
            if not len(keys) == len(tags) == len(times):
                raise ValueError("index columns differ in length")
        except Exception as e:
            return blocks, pos, ("corrupt", f"block at byte {pos} has an unreadable index ({e})")
        blocks.append(Block(log, pos + BLOCK.size, n, (istart, istart + itlen, n), keys, tags,
                            times))
        pos = end
    return blocks, pos, None
