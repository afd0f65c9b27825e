"""The pickles of a block's values (and of items that are not plain columns).

Reading a pickle runs code named in it: only values and items are pickles, never what a scan
reads (see ``_index``). A block holds one pickle of all its values, so one value whose class
the reader cannot import would make its whole block unreadable; :func:`loads_block` then
reads the block again with stand-ins for the missing classes and says which slots need them,
so the other values of the block still read.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

__all__ = ["Unimportable", "dumps_values", "loads_block"]


class Unimportable:
    """Stands in for an object whose class (or function) the reader cannot import."""

    origin = ""  # "module.name" of the missing global, set on each subclass

    def __new__(cls, *args: Any, **kwargs: Any) -> Unimportable:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<unimportable {self.origin}>"


class _Tolerant(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (Unimportable,), {"origin": f"{module}.{name}"})


def _needs(obj: Any, depth: int = 0) -> str | None:
    """The missing global an object holds (looking a few containers deep), or None."""
    if isinstance(obj, Unimportable) or (isinstance(obj, type)
                                         and issubclass(obj, Unimportable)):
        return obj.origin
    if depth > 4:
        return None
    if isinstance(obj, (list, tuple, set, frozenset)):
        children: Any = obj
    elif isinstance(obj, dict):
        children = [*obj.keys(), *obj.values()]
    else:
        children = getattr(obj, "__dict__", {}).values()
    for child in children:
        found = _needs(child, depth + 1)
        if found:
            return found
    return None


def loads_block(data: bytes | memoryview) -> tuple[list, dict[int, str]]:
    """The list a block pickled, and ``{slot: "module.name"}`` for the entries whose class
    (or function) cannot be imported here; those entries hold stand-ins."""
    try:
        return pickle.loads(data), {}
    except (ImportError, AttributeError):
        pass
    out = _Tolerant(io.BytesIO(data)).load()
    return out, {slot: found for slot, obj in enumerate(out) if (found := _needs(obj))}


def dumps_values(values: list, threshold: int | None) -> tuple[bytes, bool]:
    """Pickle a block's values; with a threshold, also say whether one holds a large buffer."""
    if threshold is None:
        return pickle.dumps(values, protocol=5), False
    big = False

    def callback(buf: pickle.PickleBuffer) -> bool:
        nonlocal big
        if memoryview(buf).nbytes >= threshold:
            big = True
            return False  # out of band: not copied now, the caller spills and pickles again
        return True

    return pickle.dumps(values, protocol=5, buffer_callback=callback), big
