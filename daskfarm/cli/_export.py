"""``daskfarm store export``: a store's results as CSV, JSON lines, parquet or ``.npz``."""

from __future__ import annotations

import argparse
import csv
import json
import numbers
import sys
from collections.abc import Iterator
from typing import Any

from daskfarm.cli._common import CLIError, jsonable, to_json

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
           ".npz": "npz", ".parquet": "parquet", ".pq": "parquet"}

DESCRIPTION = """Export every stored result (one row per key: the newest successful record)
with the item that produced it.

  csv    one column per item field and result field (dicts are spread into columns,
         sequences into name_0, name_1, ...; nested values are written as JSON)
  jsonl  one JSON object per line: {"key": ..., "item": ..., "result": ...}
  npz    numpy arrays, for numeric results: keys, items (or item_<field>), results (or
         result_<field>); load with numpy.load(PATH)
  parquet  the columns of DataManager.to_dataframe(): item fields, result fields, then
         key, task, version, run_id, host, worker, time, duration; load with
         pandas.read_parquet(PATH). Needs pandas and pyarrow: pip install 'daskfarm[parquet]'

The format follows OUT's suffix (.csv, .jsonl, .npz, .parquet) unless --format is given;
OUT "-" writes CSV or JSON lines to stdout.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="write a store's results to CSV, JSON lines, parquet "
                       "or .npz",
                       description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="PATH", help="the store directory")
    p.add_argument("out", metavar="OUT",
                   help="the file to write (.csv, .jsonl, .npz, .parquet) or -")
    p.add_argument("--format", choices=sorted(set(FORMATS.values())))
    p.set_defaults(func=export_command)


def export_command(args: argparse.Namespace) -> int:
    from daskfarm.cli._store import open_store

    fmt = args.format
    if fmt is None:
        suffix = "." + args.out.rsplit(".", 1)[-1].lower() if "." in args.out else ""
        fmt = FORMATS.get(suffix, "jsonl" if args.out == "-" else None)
        if fmt is None:
            raise CLIError(f"cannot tell the format of {args.out!r} from its suffix: name it "
                           ".csv, .jsonl, .npz or .parquet, or pass --format")
    if fmt in ("npz", "parquet") and args.out == "-":
        raise CLIError(f"a {fmt} file cannot go to stdout: give a file name")
    with open_store(args.path) as dm:
        rows = _rows(dm)
        if fmt == "parquet":
            n = write_parquet(dm, args.out)
        elif fmt == "npz":
            n = write_npz(rows, args.out)
        else:
            out = sys.stdout if args.out == "-" else open(args.out, "w", newline="",
                                                           encoding="utf-8")
            try:
                n = write_csv(rows, out) if fmt == "csv" else write_jsonl(rows, out)
            finally:
                if out is not sys.stdout:
                    out.close()
    if args.out != "-":
        print(f"exported {n} results to {args.out}")
    return 0


def _rows(dm: Any) -> Iterator[tuple[str, Any, Any]]:
    for key, value in dm.iteritems():
        yield key, dm.params(key), value


def write_jsonl(rows: Any, out: Any) -> int:
    n = 0
    for key, item, value in rows:
        out.write(to_json({"key": key, "item": item, "result": value}) + "\n")
        n += 1
    return n


def _spread(prefix: str, obj: Any) -> dict[str, Any]:
    """One row's columns for an item or a result."""
    if isinstance(obj, dict):
        return {str(k): v for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return {f"{prefix}_{i}": v for i, v in enumerate(obj)}
    shape = getattr(obj, "shape", None)
    if shape is not None and len(shape) == 1 and shape[0] <= 100:
        return {f"{prefix}_{i}": v for i, v in enumerate(obj.tolist())}
    return {prefix: obj}


def _cell(value: Any) -> Any:
    value = jsonable(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


def write_csv(rows: Any, out: Any) -> int:
    table: list[dict[str, Any]] = []
    columns: dict[str, None] = {"key": None}
    for key, item, value in rows:
        cols = _spread("item", item)
        result = _spread("result", value)
        for name, v in result.items():  # a result field named like an item field
            cols[f"result.{name}" if name in cols else name] = v
        row = {"key": key, **cols}
        columns.update(dict.fromkeys(row))
        table.append(row)
    writer = csv.DictWriter(out, fieldnames=list(columns), restval="")
    writer.writeheader()
    for row in table:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return len(table)


def _numeric(values: list) -> Any:
    """A numeric numpy array of ``values``, or None."""
    import numpy as np

    try:
        array = np.asarray(values)
    except (ValueError, TypeError):
        return None
    return array if array.dtype.kind in "biufc" else None


def _fields(prefix: str, values: list) -> dict[str, Any] | None:
    """``{prefix: array}``, or ``{prefix_field: array}`` for dicts of numbers, or None."""
    array = _numeric(values)
    if array is not None:
        return {prefix: array}
    if values and all(isinstance(v, dict) for v in values):
        names = list(values[0])
        if all(list(v) == names for v in values):
            out = {}
            for name in names:
                column = _numeric([v[name] for v in values])
                if column is None:
                    return None
                out[f"{prefix[:-1]}_{name}"] = column
            return out
    return None


def write_npz(rows: Any, path: str) -> int:
    import numpy as np

    keys, items, values = [], [], []
    for key, item, value in rows:
        keys.append(key)
        items.append(item)
        values.append(value)
    results = _fields("results", values)
    if results is None:
        bad = next((v for v in values if not isinstance(v, numbers.Number)), values[:1])
        raise CLIError(f"the results are not all numbers or numeric arrays of one shape (e.g. "
                       f"{bad!r:.60}): export to .csv or .jsonl instead")
    arrays = {"keys": np.asarray(keys, dtype=str), **results}
    item_arrays = _fields("items", items)
    if item_arrays is None:
        print("daskfarm: the items are not numeric: exported as JSON text in 'items'",
              file=sys.stderr)
        item_arrays = {"items": np.asarray([to_json(i) for i in items], dtype=str)}
    arrays.update(item_arrays)
    np.savez(path, **arrays)
    return len(keys)


def write_parquet(dm: Any, path: str) -> int:
    """The table of ``dm.to_dataframe()`` as a parquet file; the number of rows."""
    try:
        import pyarrow  # pandas' parquet engine
    except ImportError:
        raise CLIError("parquet export needs pyarrow: pip install 'daskfarm[parquet]' (or "
                       "export to .csv or .jsonl)") from None
    df = dm.to_dataframe()
    try:
        df.to_parquet(path, index=False)
    except (TypeError, ValueError, pyarrow.ArrowException) as e:
        raise CLIError(f"the results do not fit a parquet column ({e}): export to .jsonl "
                       "instead") from e
    return len(df)
