"""The shard file format: a header, then checksummed blocks; and the errors files raise.

Version 2 (written now), integers little-endian::

    header   magic "\\x89DFSHRD\\n" | version u16 | flags u16 | meta_len u32 | crc32(meta) u32
             | crc32(the 20 bytes before) u32 | meta: JSON (host, pid, created, name, run_id,
             task, version, user, key_scheme, ns)
    block    length u64 | crc32(length field) u32 | crc32(payload) u32 | payload
    payload  index_len u32 | items_len u64 | index | items | values
    index    msgpack (see ``_index``): keys, tags, times, durations, workers, blob names,
             failure details; never a pickle
    items    one byte of kind, then nothing (no items), a pickle, or msgpack columns
    values   pickle(list of the values, one per record)

Version 1 (still read) has a 20-byte header without its own checksum, a 12-byte block head
``length u64 | crc32(length field + payload) u32``, a pickled index (read with an unpickler
that admits nothing but ``array.array``) and pickled items.

Scanning, listing, counting, checking, merging and resuming read only headers and indexes,
so they never unpickle anything a shard holds; items and values are pickles, read only when
asked for. A scan stops at the first block that is incomplete or fails its checksum and keeps
everything before it. Nothing is ever rewritten in place: a shard only grows.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import struct
import zlib
from typing import Any, BinaryIO

from daskfarm.exceptions import StoreError, StoreFormatError
from daskfarm.store._index import Block, decode_index

MAGIC = b"\x89DFSHRD\n"  # \x89 and \n break under text-mode transfer, as PNG's magic does
FORMAT_VERSION = 2

HEADER_V1 = struct.Struct("<8sHHII")
HEADER = struct.Struct("<8sHHIII")
BLOCK_V1 = struct.Struct("<QI")
BLOCK = struct.Struct("<QII")
_PAYLOAD = struct.Struct("<IQ")
_LENGTH = struct.Struct("<Q")
#: A header's JSON is a few hundred bytes; a length beyond this is damage, not a big header.
MAX_META = 1 << 20

sync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync

_FIXES = {
    errno.ENOSPC: "free some disk space, or write the store elsewhere",
    # not every platform has EDQUOT (Windows does not): a missing name must not break import
    getattr(errno, "EDQUOT", -1): "free some of your disk quota, or write the store elsewhere",
    errno.EACCES: "make the store directory writable (chmod u+w) or choose another path",
    errno.EPERM: "make the store directory writable (chmod u+w) or choose another path",
    errno.EROFS: "the filesystem is read-only: choose a store path on a writable one",
    errno.EIO: "the disk reported an I/O error: check the device and copy the store elsewhere",
}
#: What a filesystem answers when it cannot fsync a directory at all: nothing to make durable.
_NO_DIR_SYNC = {errno.EINVAL, errno.EBADF, errno.EISDIR, getattr(errno, "ENOTSUP", -1),
                getattr(errno, "EOPNOTSUPP", -1)}


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
    """Make new names in a directory durable (a new file survives a crash only then).

    Raises
    ------
    StoreError
        The disk failed the fsync (EIO, ENOSPC): the new names may not survive a crash.
        A filesystem that cannot fsync directories at all (EINVAL) is not an error.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories; nothing more to do there
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _NO_DIR_SYNC:
            raise store_error(e, "make the new files durable in", path) from e
    finally:
        os.close(fd)


def encode_header(meta: dict[str, Any]) -> bytes:
    raw = json.dumps(meta, default=repr).encode()
    fixed = HEADER_V1.pack(MAGIC, FORMAT_VERSION, 0, len(raw), zlib.crc32(raw))
    return fixed + struct.pack("<I", zlib.crc32(fixed)) + raw


def read_header(f: BinaryIO, path: pathlib.Path,
                size: int) -> tuple[dict[str, Any], int, int] | None:
    """(meta, end of header, format version), or None if the header is incomplete (still
    being written?)."""
    head = f.read(HEADER.size)
    if len(head) < HEADER_V1.size or head[:8] != MAGIC:
        if len(head) < len(MAGIC) and MAGIC.startswith(head):
            return None
        if head[:8] != MAGIC:
            raise format_error(path, "foreign", "not a daskfarm shard (unknown magic)")
        return None
    _magic, version, _flags, n, crc = HEADER_V1.unpack_from(head)
    if version == 0:
        raise format_error(path, "foreign", "not a daskfarm shard (unknown magic)")
    if version > FORMAT_VERSION:
        raise format_error(path, "newer", f"written in shard format {version} by a newer "
                           f"daskfarm (this one reads formats 1 to {FORMAT_VERSION}): upgrade "
                           "daskfarm to read it")
    if version >= 2:
        if len(head) < HEADER.size:
            return None
        if zlib.crc32(head[: HEADER_V1.size]) != HEADER.unpack(head)[5]:
            raise format_error(path, "corrupt", "shard header fails its checksum")
        start = HEADER.size
    else:
        start = HEADER_V1.size
    if n > MAX_META:  # format 1 has no checksum over the length: a flip shows here
        raise format_error(path, "corrupt", f"shard header claims {n} bytes of metadata")
    f.seek(start)
    raw = f.read(n)
    if len(raw) < n:
        return None
    if zlib.crc32(raw) != crc:
        raise format_error(path, "corrupt", "shard header fails its checksum")
    return json.loads(raw), start + n, version


def block_head(length: int, payload_crc: int) -> bytes:
    length_field = _LENGTH.pack(length)
    return length_field + struct.pack("<II", zlib.crc32(length_field), payload_crc)


def payload_head(index: bytes, items_len: int) -> bytes:
    return _PAYLOAD.pack(len(index), items_len)


def scan(f: BinaryIO, log: Any, pos: int, size: int, version: int):
    """Read the blocks from ``pos`` to ``size``: (blocks, end of the last intact block,
    problem), the problem being None or ("truncated" | "corrupt", detail)."""
    blocks: list[Block] = []
    head_struct = BLOCK if version >= 2 else BLOCK_V1
    f.seek(pos)
    while pos < size:
        head = f.read(head_struct.size)
        if len(head) < head_struct.size:
            return blocks, pos, ("truncated", f"incomplete block at byte {pos} of {size}")
        if version >= 2:
            n, length_crc, crc = BLOCK.unpack(head)
            if zlib.crc32(head[: _LENGTH.size]) != length_crc:
                # A torn write leaves a short head, never a wrong one: this is damage, unless
                # the tail is the zeros a crash can leave past the last synced byte.
                rest = head + f.read(min(size - pos, 1 << 16))
                kind = "truncated" if not rest.strip(b"\0") else "corrupt"
                return blocks, pos, (kind, f"block at byte {pos} fails its checksum")
        else:
            n, crc = BLOCK_V1.unpack(head)
        end = pos + head_struct.size + n
        if end > size:
            return blocks, pos, ("truncated", f"incomplete block at byte {pos} of {size}")
        payload = f.read(n) if n >= _PAYLOAD.size else b""
        seed = 0 if version >= 2 else zlib.crc32(head[: _LENGTH.size])
        if not payload or zlib.crc32(payload, seed) != crc:
            # A bad last block is a torn write; a bad block with more after it is damage.
            kind = "truncated" if end == size else "corrupt"
            return blocks, pos, (kind, f"block at byte {pos} fails its checksum")
        try:
            ilen, itlen = _PAYLOAD.unpack_from(payload)
            istart = _PAYLOAD.size + ilen
            if istart + itlen > n:
                raise ValueError("section lengths exceed the block")
            blk = decode_index(memoryview(payload)[_PAYLOAD.size : istart], version)
        except Exception as e:
            return blocks, pos, ("corrupt", f"block at byte {pos} has an unreadable index ({e})")
        blk.place(log, pos + head_struct.size, (istart, istart + itlen, n))
        blocks.append(blk)
        pos = end
    return blocks, pos, None
