"""A store as a table (``to_dataframe``) and queries by item field (``find``).

Both work on the winning record of each key (its newest successful one), block by block.
``find`` keeps an index per item field it was asked about: value -> locations, built from
the blocks' items as the store is scanned and extended with the blocks committed since;
values are unpickled only for the records that match.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from daskfarm.exceptions import FarmTypeError, MissingExtraError
from daskfarm.store._log import SIDE, SLOT_BITS
from daskfarm.store._record import Record
from daskfarm.store._view import View

__all__ = ["FieldIndex", "Tables", "fields_of", "to_dataframe", "winners"]

#: Provenance columns of :func:`to_dataframe`, after the item and result columns.
PROVENANCE = ("key", "task", "version", "run_id", "host", "worker", "time", "duration")
FAILURE_COLUMNS = ("exc_type", "message", "traceback")
_MISSING = object()


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a million small objects are made.

    Unpickling the items of a large store creates one dict per record; each batch of new
    containers triggers a collection that walks every live object, which measured as the
    larger part of ``to_dataframe()`` on 1,000,000 records. Nothing made here is cyclic.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def require_pandas() -> Any:
    try:
        import pandas
    except ImportError as e:
        raise MissingExtraError("DataManager.to_dataframe() needs pandas: pip install "
                                "'daskfarm[pandas]' (or pip install pandas)") from e
    return pandas


def winners(view: View, failures: bool = False) -> Iterator[tuple[int, Any, list[int]]]:
    """(block number, block, slots) of the winning records: the newest successful one of
    each key, or with ``failures`` the newest failure of each key that has no successful
    record."""
    latest, failed = view.latest, view.failed
    i = 0
    while i < len(view.blocks):  # blocks committed meanwhile are read too
        blk, base = view.blocks[i], i << SLOT_BITS
        i += 1
        if failures:
            slots = [s for s, (k, t) in enumerate(zip(blk.keys, blk.tags))
                     if t >= SIDE and failed.get(k) == base + s and k not in latest]
        elif min(blk.tags) >= SIDE:
            continue
        elif blk.pure and blk.clean:
            slots = list(range(len(blk.keys)))
        else:
            slots = [s for s, k in enumerate(blk.keys) if latest.get(k) == base + s]
        if slots:
            yield i - 1, blk, slots


def fields_of(obj: Any) -> dict[str, Any] | None:
    """The fields of a dict (str keys), dataclass or namedtuple; None for anything else."""
    if type(obj) is dict:
        return obj if all(type(k) is str for k in obj) else None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple) and hasattr(type(obj), "_fields"):
        return dict(zip(type(obj)._fields, obj))
    return None


def _spread(objs: list, single: str) -> dict[str, list]:
    """Columns for a list of items or results: one per field when every one has fields."""
    if not objs:
        return {}
    first = fields_of(objs[0])
    if first is None:
        return {single: objs}
    if type(objs[0]) is dict and set(map(type, objs)) == {dict}:
        names = list(first)
        if set(map(len, objs)) == {len(names)}:
            try:  # the common case: every dict has the same fields
                return {n: [o[n] for o in objs] for n in names}
            except KeyError:
                pass
    rows = [fields_of(o) for o in objs]
    if any(r is None for r in rows):
        return {single: objs}
    names = list(dict.fromkeys(n for r in rows for n in r))
    return {n: [r.get(n) for r in rows] for n in names}


def to_dataframe(dm: Any, view: View, failures: bool) -> Any:
    """The table behind :meth:`DataManager.to_dataframe`."""
    pd = require_pandas()
    import numpy as np

    items: list = []
    values: list = []
    prov: dict[str, Any] = {name: [] for name in PROVENANCE}
    prov["time"], prov["duration"] = array("d"), array("d")  # extended block by block
    fails: dict[str, list] = {name: [] for name in FAILURE_COLUMNS}
    for _, blk, slots in winners(view, failures):
        meta = blk.log.meta or {}
        if not failures:
            got = _block_values(dm, blk, slots)
            if len(got) < len(slots):
                slots = [s for s in slots if s in got]
            values.extend(got.values())
        else:
            for s in slots:
                for name, text in zip(FAILURE_COLUMNS, blk.fails[s] if blk.fails is not None
                                      else blk.log.read_values(blk)[s]):
                    fails[name].append(text)
        n, whole = len(slots), len(slots) == len(blk.keys)
        block_items = blk.log.read_items(blk, cache=False)
        # whole blocks (the common case) go in with one extend per column
        items.extend(block_items if whole else [block_items[s] for s in slots])
        prov["key"].extend(blk.keys if whole else [blk.keys[s] for s in slots])
        for name in ("task", "version", "run_id", "host"):
            prov[name].append((meta.get(name), n))
        if blk.widx is None:
            prov["worker"].append((None, n))
        else:
            prov["worker"].extend((blk.worker(s), 1) for s in slots)
        prov["time"].extend(blk.times if whole else array("d", [blk.times[s] for s in slots]))
        if blk.durations is None:
            prov["duration"].extend(array("d", [math.nan]) * n)
        else:
            prov["duration"].extend(blk.durations if whole else
                                    array("d", [blk.durations[s] for s in slots]))
    columns = _spread(items, "item")
    result = fails if failures else _spread(values, "value")
    for name, column in result.items():
        # a result field named like an item field or a provenance column
        clash = name in columns or name in PROVENANCE
        columns[f"result.{name}" if clash and not failures else name] = column
    for name in list(columns):
        if name in PROVENANCE:  # an item field named like a provenance column
            columns[f"item.{name}"] = columns.pop(name)
    seconds = np.frombuffer(prov["time"], dtype="f8")
    nanoseconds = np.round(seconds * 1e9).astype("int64").view("datetime64[ns]")
    prov["time"] = pd.DatetimeIndex(nanoseconds).tz_localize("UTC")
    prov["duration"] = np.frombuffer(prov["duration"], dtype="f8").copy()
    for name in ("task", "version", "run_id", "host", "worker"):
        prov[name] = _from_runs(pd, prov[name])
    columns = {name: _typed(np, column) for name, column in columns.items()}
    columns.update(prov)
    return pd.DataFrame(columns)


def _typed(np: Any, column: Any) -> Any:
    """A numpy array for a list of plain numbers of one type (cheaper for pandas than
    inferring it), else the list."""
    if type(column) is list and column and set(map(type, column)) in ({float}, {int}, {bool}):
        arr = np.array(column)
        if arr.dtype.kind in "biuf":
            return arr
    return column


def _from_runs(pd: Any, runs: list[tuple[Any, int]]) -> Any:
    """A column given as (value, count) runs: categorical when the values are strings (a
    handful of hosts, runs or workers over a million rows), else a list."""
    import numpy as np

    values = list(dict.fromkeys(v for v, _ in runs if v is not None)) if all(
        v is None or type(v) is str for v, _ in runs) else None
    if values is None:
        return [v for v, count in runs for _ in range(count)]
    code = {v: i for i, v in enumerate(values)}
    codes = np.repeat(np.array([code.get(v, -1) for v, _ in runs], dtype="i4"),
                      [count for _, count in runs])
    return pd.Categorical.from_codes(codes, categories=values)


def _block_values(dm: Any, blk: Any, slots: list[int]) -> dict[int, Any]:
    """slot -> value for the readable ones (unreadable ones are skipped with a warning)."""
    values = blk.log.read_values(blk, cache=False)
    if blk.pure and not blk.bad and len(slots) == len(values):
        return dict(enumerate(values))
    out = {}
    for s in slots:
        if (1, s) in blk.bad or blk.tags[s] != 0:
            try:
                out[s] = dm._value(blk, s)
            except Exception as e:
                dm._warn(blk.log.name, ("table", blk.keys[s]), f"{e}; skipped", 5)
            continue
        out[s] = values[s]
    return out


class FieldIndex:
    """One item field's values, block by block: a column per block of the View.

    :meth:`update` adds the columns of the blocks added to the View since. A lookup scans
    each column with ``in`` (a C loop over the list, about 10 ns per record) and looks
    at the slots only of the blocks that hold the value; the items are unpickled once.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.view: View | None = None
        self.columns: list[list] = []  # per block of the view: the field's value per slot

    def update(self, view: View) -> None:
        if view is not self.view:
            self.view, self.columns = view, []
        name = self.name
        while len(self.columns) < len(view.blocks):
            blk = view.blocks[len(self.columns)]
            if min(blk.tags) >= SIDE:
                self.columns.append([])
                continue
            items = blk.log.read_items(blk, cache=False)
            if set(map(type, items)) == {dict}:
                column = [it.get(name, _MISSING) for it in items]
            else:
                column = [(fields_of(it) or {}).get(name, _MISSING) for it in items]
            if not blk.pure:  # failures never match
                column = [_MISSING if t >= SIDE else v for t, v in zip(blk.tags, column)]
            self.columns.append(column)

    def lookup(self, value: Any) -> set[int]:
        out = set()
        for b, column in enumerate(self.columns):
            if value in column:
                base = b << SLOT_BITS
                out.update(base + s for s, v in enumerate(column)
                           if v is not _MISSING and v == value)
        return out


def find_locations(view: View, indexes: dict[str, FieldIndex], fields: dict[str, Any],
                   where: Callable[[Any], bool] | None) -> list[int]:
    """Locations of the winning records whose item matches, in block order."""
    if where is not None and not callable(where):
        raise FarmTypeError(f"find(where=...) takes a function of the item returning True "
                            f"for the records to keep, not {type(where).__name__}")
    if fields:
        found: set[int] | None = None
        for name, value in fields.items():
            index = indexes.setdefault(name, FieldIndex(name))
            index.update(view)
            locs = index.lookup(value)
            found = locs if found is None else found & locs
        latest, locs = view.latest, []
        for loc in sorted(found or ()):
            blk, slot = view.locate(loc)
            if latest.get(blk.keys[slot]) == loc:  # not shadowed by a newer record
                locs.append(loc)
    else:
        locs = [i << SLOT_BITS | s for i, _blk, slots in winners(view) for s in slots]
    if where is None:
        return locs
    out = []
    for loc in locs:
        blk, slot = view.locate(loc)
        if where(blk.log.read_items(blk)[slot]):
            out.append(loc)
    return out


class Tables:
    """The table and query half of :class:`~daskfarm.store.DataManager` (a mixin: it uses
    the manager's lock, view and value reads)."""

    _fields: dict[str, FieldIndex]
    _lock: Any
    _view: View
    _whole: Callable[[], View]
    _value: Callable[..., Any]
    _record: Callable[..., Record]

    def get_many(self, keys: Iterable[str]) -> list[Any]:
        """The values of ``keys``, in their order, reading each block once (for a rerun that
        yields the stored results of the items it skips).

        Raises
        ------
        KeyError
            A key has no successful record.

        Examples
        --------
        >>> dm.get_many([k1, k2])  # doctest: +SKIP
        [0.5, 0.7]
        """
        keys = list(keys)
        view = self._whole() if any(k not in self._view.latest for k in keys) else self._view
        locs = [view.latest[k] for k in keys]
        out: dict[int, Any] = {}
        for loc in sorted(set(locs)):  # grouped by block: one unpickling per block
            out[loc] = self._value(*view.locate(loc))
        return [out[loc] for loc in locs]

    def find(self, where: Callable[[Any], bool] | None = None, **fields: Any) -> list[Record]:
        """The records whose item has these field values (and for which ``where(item)`` is
        true), newest successful record per key, in the order they were stored.

        Fields are those of dict items (str keys), dataclasses and namedtuples; items
        without the field never match. Values are compared with ``==`` (so ``find(x=2)``
        matches ``2.0`` too). An index of each field asked about is built from the items
        the first time and kept up to date as blocks are scanned; only the values of the
        matching records are read.

        Examples
        --------
        >>> [r.value for r in dm.find(x=2)]  # doctest: +SKIP
        [0.25, 0.75]
        >>> dm.find(where=lambda item: item["x"] > 1 and item["mode"] == "fast")  # doctest: +SKIP
        [Record(key='...', value=..., item={'x': 3, 'mode': 'fast'}, ...)]
        """
        with self._lock, no_gc():
            view = self._whole()
            locs = find_locations(view, self._fields, fields, where)
        return [self._record(view, loc) for loc in locs]

    def to_dataframe(self, failures: bool = False) -> Any:
        """The store as a pandas DataFrame: one row per key (its newest successful record).

        Columns: the item's fields (one per field of a dict item, a dataclass or a
        namedtuple; ``item`` otherwise), the result's fields (one per field of a dict
        result; ``value`` otherwise; a result field named like an item field becomes
        ``result.<name>``), then provenance: ``key``, ``task``, ``version``, ``run_id``,
        ``host``, ``worker``, ``time`` (UTC datetime), ``duration`` (seconds the item ran
        on its worker, NaN where unknown). With ``failures=True``, the failure records of
        the keys that have no result: item columns, ``exc_type``, ``message``,
        ``traceback`` and provenance.

        Needs pandas (``pip install 'daskfarm[pandas]'``).

        Examples
        --------
        >>> df = dm.to_dataframe()  # doctest: +SKIP
        >>> df.set_index(["a", "b"])["value"].to_xarray()  # doctest: +SKIP
        """
        with no_gc():
            return to_dataframe(self, self._whole(), failures)
