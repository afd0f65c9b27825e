"""Store keys: the same in every process for the same task identity and item.

``dask.base.tokenize`` is deterministic for plain data and for dataclasses, namedtuples and
enums of importable modules (measured: the same token in two processes), and the keys of
those items stay what they were (``tokenize(identity, item)``), so stores written before
still resume. But tokenize pickles a class of a script's ``__main__`` (or one defined in a
function) by value, so its instances get a different key in every process and a rerun
recomputes everything; and objects it pickles whole may pickle sets in hash order, which
differs per process. Such items get a key from a canonical serialisation that daskfarm owns:
each object becomes a sequence of tagged, length-prefixed fields (type names by module and
qualified name, never by identity or address), hashed with SHA-256.

Keyed by tokenize (as before): None, bool, int, float, complex, str, bytes; tuples, lists,
dicts, sets and frozensets of those (exactly those types); numpy arrays of a non-object
dtype and numpy scalars; and dataclasses, namedtuples and enums whose class lives in an
importable module, holding such values. Canonical: the same kinds from ``__main__`` or a
function's scope, subclasses of the builtins, object arrays, and objects whose
``__reduce_ex__`` names an importable callable and plain or canonical arguments and state.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
import struct
from typing import Any

from dask.base import tokenize

from daskfarm.exceptions import FarmValueError

__all__ = ["KEY_SCHEME", "item_key", "item_keys"]

#: Version of the key scheme, stored in the shard header (1: tokenize for every item).
KEY_SCHEME = 2

_ATOMS = (type(None), bool, int, float, complex, str, bytes)
_CONTAINERS = (tuple, list, set, frozenset)
_MAX_DEPTH = 100


def item_key(identity: str, item: Any) -> str:
    """The store key of ``item`` for a task of ``identity`` (name and version).

    The same in every process, on every machine, for equal items; 32 hex digits.

    Raises
    ------
    FarmValueError
        The item holds something that has no stable key (a lambda, an open file, a lock,
        an object that cannot be pickled): the message names its type and the fix.

    Examples
    --------
    >>> item_key("sim:1", {"x": 1}) == item_key("sim:1", {"x": 1})
    True
    >>> len(item_key("sim:1", 3.5))
    32
    """
    if _FAST and type(item) in _FAST_ATOMS and type(identity) is str:
        return _fast_key(identity, item)
    if _tokenizable(item, 0):
        return tokenize(identity, item)
    h = hashlib.sha256(b"daskfarm-key\0%d\0" % KEY_SCHEME)
    _feed(h, identity, 0, item)
    _feed(h, item, 0, item)
    return h.hexdigest()[:32]


def item_keys(identity: str, items: list) -> list[str]:
    """``[item_key(identity, item) for item in items]``, faster for plain items (a farm keys
    every item it sends when it has a store)."""
    if _FAST and type(identity) is str:
        # the hash of the text every key starts with, copied per item (half the time of
        # hashing that text again for each: 1.1 -> 0.55 us per key)
        head = hashlib.md5(f"({identity!r}, ".encode(), usedforsecurity=False)
        atoms = _FAST_ATOMS
        keys = []
        append = keys.append
        for item in items:
            if type(item) in atoms:
                h = head.copy()
                h.update(f"{item!r})".encode())
                append(h.hexdigest())
            else:
                append(item_key(identity, item))
        return keys
    return [item_key(identity, item) for item in items]


def _fast_key(identity: str, item: Any) -> str:
    # tokenize's own recipe for a tuple of atoms, without its lock and dispatch (3.3 -> 1 us)
    return hashlib.md5(str((identity, item)).encode(), usedforsecurity=False).hexdigest()


#: item types whose key :func:`_fast_key` computes as tokenize does
_FAST_ATOMS = frozenset({type(None), bool, int, float, str, bytes})


def _fast_path_agrees() -> bool:
    """Whether this Dask's tokenize still gives what :func:`_fast_key` computes: a Dask that
    changed its recipe only loses the shortcut, never a store's keys."""
    probes = (None, True, 0, -7, 2**70, 0.1, -2.5e-300, math.inf, "", "it's \"q\" \u00e9",
              b"\x00\xff", b"")
    if not all(tokenize("probe:1", x) == _fast_key("probe:1", x) for x in probes):
        return False
    # item_keys hashes str((identity, item)) in two parts: check it is the same text
    return all(str(("probe:1", x)) == f"({'probe:1'!r}, {x!r})" for x in probes)


_FAST = _fast_path_agrees()


def _tokenizable(obj: Any, depth: int) -> bool:
    """Whether tokenize gives ``obj`` the same token in every process."""
    t = type(obj)
    if t in _ATOMS:
        return True
    if depth > _MAX_DEPTH:
        return False
    if t in _CONTAINERS:
        return all(_tokenizable(x, depth + 1) for x in obj)
    if t is dict:
        return all(_tokenizable(k, depth + 1) and _tokenizable(v, depth + 1)
                   for k, v in obj.items())
    module = getattr(t, "__module__", "")
    if module == "numpy":
        return hasattr(obj, "dtype") and obj.dtype.kind != "O"
    if module == "__main__" or "<locals>" in t.__qualname__:
        return False  # tokenize pickles such a class by value: a new token per process
    if isinstance(obj, enum.Enum):
        return True
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return all(_tokenizable(getattr(obj, f.name), depth + 1)
                   for f in dataclasses.fields(obj))
    if isinstance(obj, tuple) and hasattr(t, "_fields"):  # a namedtuple
        return all(_tokenizable(x, depth + 1) for x in obj)
    return False


def _field(h: Any, tag: bytes, data: bytes) -> None:
    h.update(tag + struct.pack("<Q", len(data)) + data)


def _name(obj: Any) -> bytes:
    return f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', '')}".encode()


def _feed(h: Any, obj: Any, depth: int, top: Any) -> None:
    if depth > _MAX_DEPTH:
        raise _unstable(top, obj, "it nests deeper than 100 levels (or refers to itself)")
    t = type(obj)
    if t is type(None):
        h.update(b"N")
    elif t is bool:
        h.update(b"T" if obj else b"F")
    elif t is int:
        _field(h, b"i", str(obj).encode())
    elif t is float:
        _field(h, b"f", b"nan" if math.isnan(obj) else obj.hex().encode())
    elif t is complex:
        _field(h, b"c", f"{obj.real.hex()},{obj.imag.hex()}".encode())
    elif t is str:
        _field(h, b"s", obj.encode("utf-8", "surrogatepass"))
    elif t is bytes:
        _field(h, b"b", obj)
    elif t in (tuple, list):
        _field(h, b"t" if t is tuple else b"l", str(len(obj)).encode())
        for x in obj:
            _feed(h, x, depth + 1, top)
    elif t in (set, frozenset, dict):
        # unordered: each entry hashed on its own, the digests sorted
        pairs = obj.items() if t is dict else ((x, None) for x in obj)
        digests = []
        for k, v in pairs:
            sub = hashlib.sha256()
            _feed(sub, k, depth + 1, top)
            if t is dict:
                _feed(sub, v, depth + 1, top)
            digests.append(sub.digest())
        _field(h, {set: b"S", frozenset: b"Z", dict: b"D"}[t], b"".join(sorted(digests)))
    elif isinstance(obj, enum.Enum):
        _field(h, b"e", _name(t) + b"." + obj.name.encode())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        _field(h, b"d", _name(t))
        for f in dataclasses.fields(obj):
            _field(h, b"n", f.name.encode())
            _feed(h, getattr(obj, f.name), depth + 1, top)
    elif isinstance(obj, tuple) and hasattr(t, "_fields"):  # a namedtuple
        _field(h, b"q", _name(t) + b"(" + ",".join(t._fields).encode() + b")")
        for x in obj:
            _feed(h, x, depth + 1, top)
    elif getattr(t, "__module__", "") == "numpy" and hasattr(obj, "dtype"):
        _numpy(h, obj, depth, top)
    elif isinstance(obj, type) or (callable(obj) and hasattr(obj, "__qualname__")):
        if "<lambda>" in getattr(obj, "__qualname__", "<lambda>"):
            raise _unstable(top, obj, "a lambda has no name that is the same in every process")
        _field(h, b"g", _name(obj))
    else:
        _reduced(h, obj, depth, top)


def _numpy(h: Any, obj: Any, depth: int, top: Any) -> None:
    import numpy as np

    arr = np.asarray(obj)
    _field(h, b"a", f"{arr.dtype.str}{arr.shape}".encode())
    if arr.dtype.kind == "O":
        for x in arr.ravel(order="C").tolist():
            _feed(h, x, depth + 1, top)
    else:
        _field(h, b"r", np.ascontiguousarray(arr).tobytes())


def _reduced(h: Any, obj: Any, depth: int, top: Any) -> None:
    """An object by what pickle would store for it: its class by name, args and state."""
    try:
        reduced = obj.__reduce_ex__(4)
    except Exception as e:
        raise _unstable(top, obj, f"it cannot be pickled ({e})") from e
    if isinstance(reduced, str):  # a module-level singleton, named
        _field(h, b"g", f"{getattr(obj, '__module__', '')}:{reduced}".encode())
        return
    func, args, *rest = (*reduced, None, None, None)[:5]
    state, listitems, dictitems = rest[:3]
    _field(h, b"R", _name(func))
    if getattr(func, "__name__", "") == "__newobj__" and args:
        _field(h, b"g", _name(args[0]))  # copyreg.__newobj__(cls, *args): the class by name
        args = args[1:]
    for part, value in ((b"A", args), (b"s", state)):
        h.update(part)
        _feed(h, value, depth + 1, top)
    if listitems is not None:
        _feed(h, list(listitems), depth + 1, top)
    if dictitems is not None:
        _feed(h, dict(dictitems), depth + 1, top)


def _unstable(top: Any, part: Any, why: str) -> FarmValueError:
    where = "" if part is top else f" (in an item of type {type(top).__qualname__})"
    return FarmValueError(
        f"an item of type {type(part).__module__}.{type(part).__qualname__}{where} has no "
        f"store key that is the same in every process: {why}. Give map() items made of "
        "numbers, strings, tuples, lists, dicts, numpy arrays, dataclasses or namedtuples "
        "of those, or give the class a __reduce__ that returns its class and plain "
        "arguments")
