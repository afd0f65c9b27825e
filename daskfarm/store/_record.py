"""What one stored result is: the :class:`Record` a read returns, record tags, shard names."""

from __future__ import annotations

import getpass
import os
import pathlib
import re
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BLOB", "BLOBS_SUFFIX", "FAILED", "NAMESPACE", "OK", "PLAIN", "SUFFIX", "Record", "blobs_dir",
    "shard_stem",
]

# Record tags, one byte per record in a block's index. Tags >= 128 are "side records" that
# the log keeps out of its mapping view (see _log.SIDE): a failure never shadows a value.
OK = 0  #: the value is stored inline in the block
BLOB = 1  #: the value is in its own file; the block stores the file's name
FAILED = 128  #: a failure record; the block stores (exc_type, message, traceback)

#: A shard is ``X.dfshard``; the values it keeps in files of their own are in ``X.blobs/``.
SUFFIX = ".dfshard"
BLOBS_SUFFIX = ".blobs"

#: Value types that never carry a large buffer at top level, so put() need not look at them.
#: A tuple, list or dict may hold an array; the log finds those when it pickles the block.
PLAIN = frozenset({int, float, bool, complex, str, type(None), tuple, list, dict})

HOST = socket.gethostname()


def _namespace() -> str:
    """This boot and pid namespace: a pid means the same process only within them."""
    parts = []
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            parts.append(f.read().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:  # not Linux: the host name and pid are all there is
        return ""
    return "/".join(parts)


NAMESPACE = _namespace()

_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


@dataclass(frozen=True, slots=True)
class Record:
    """One stored record: a result or a failure, with its provenance.

    Returned by :meth:`DataManager.get_all` and :meth:`DataManager.failures`.

    Attributes
    ----------
    key : str
        The key it is stored under.
    value : object
        The result; ``None`` for a failure record.
    item : object
        The item (parameters) that produced it, or ``None`` if the writer did not give it.
    task, version, run_id : object
        The task name, its version and the run id of the session that wrote it.
    time : float
        When it was written (unix time, from the writer's clock).
    host : str
        The host the writer ran on.
    shard : str
        The file name of the shard that holds it.
    failed : bool
        True for a failure record.
    exc_type, message, traceback : str or None
        For a failure record: the exception's type name, its message and the traceback text.
    duration : float or None
        Seconds the item ran on its worker, if the writer gave it (None for shards written
        before daskfarm recorded it, and for sessions that do not pass it).
    worker : str or None
        The worker that ran the item (its address or name), if the writer gave it.

    Examples
    --------
    >>> r = Record("k", 1.5, {"x": 1}, "sim", 1, 0.0, "host", None, "a.dfshard")
    >>> r.value, r.failed
    (1.5, False)
    """

    key: str
    value: Any
    item: Any
    task: Any
    version: Any
    time: float
    host: str
    run_id: Any
    shard: str
    failed: bool = False
    exc_type: str | None = None
    message: str | None = None
    traceback: str | None = None
    duration: float | None = None
    worker: str | None = None


def _safe(text: str) -> str:
    return _UNSAFE.sub("-", text).strip(".-")[:48]


def shard_stem(name: str | None = None) -> str:
    """A shard file name (without suffix) no other writer anywhere can produce.

    UTC time to the microsecond, host, pid and 32 random bits: two processes, two hosts, or a
    shard copied in from another machine never collide (the file is also created with
    O_EXCL, so a collision would fail instead of overwriting). Time first, so ``ls`` sorts
    shards by age.
    """
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    parts = [stamp, _safe(HOST) or "host", str(os.getpid()), secrets.token_hex(4)]
    if name:
        parts.append(_safe(str(name)) or "session")
    return "_".join(parts)


def username() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "user"


def blobs_dir(shard: pathlib.Path) -> pathlib.Path:
    """The directory holding the large values of a shard."""
    return shard.with_name(shard.name.removesuffix(SUFFIX) + BLOBS_SUFFIX)
