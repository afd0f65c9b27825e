"""``daskfarm store ls|show|check|merge``: look into result stores and merge them."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from daskfarm.cli._common import CLIError, to_json

WIDTH = 60  # characters of an item or value shown by `store show`


def add_parsers(sub: Any) -> None:
    ls = sub.add_parser("ls", help="list the shards of a store with their record counts",
                        description="List the shards of a store: records, status and file.")
    ls.add_argument("path", metavar="PATH", help="the store directory")
    ls.set_defaults(func=ls_command)

    show = sub.add_parser(
        "show", help="print the records of a store",
        description="Print each key's value with the item that produced it (the first --limit "
                    "ones), every record of the given KEYs with their provenance, or the "
                    "failures.")
    show.add_argument("path", metavar="PATH", help="the store directory")
    show.add_argument("keys", nargs="*", metavar="KEY", help="show every record of these keys")
    show.add_argument("--limit", type=int, default=20, metavar="N",
                      help="show at most N records (default 20; 0 for all)")
    show.add_argument("--failures", action="store_true", help="show the failures instead")
    show.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE",
                      help="only records whose item has this field value (a JSON value, "
                           "else text; repeat for several fields), e.g. --where x=2")
    show.add_argument("--json", action="store_true", help="print JSON lines")
    show.set_defaults(func=show_command)

    check = sub.add_parser(
        "check", help="check every file of a store; exit 1 if any is damaged",
        description="Report every file of a store directory: shards and stray, truncated, "
                    "corrupt or foreign files, and large values whose file is missing. Exits "
                    "with 1 when there is a problem. Never writes.")
    check.add_argument("path", metavar="PATH", help="the store directory")
    check.set_defaults(func=check_command)

    merge = sub.add_parser(
        "merge", help="copy the shards of one store into another",
        description="Copy every shard of SOURCE (with its large-value files) into DEST, "
                    "which is created if missing. Shards already in DEST are kept, or "
                    "updated when SOURCE's copy has grown. Reading DEST then merges both "
                    "result sets; SOURCE is not changed. Merging reads only the shards' "
                    "headers and indexes and unpickles nothing, but reading the values "
                    "afterwards runs pickle, which can run code: merge only stores from "
                    "machines and people you trust.")
    merge.add_argument("source", metavar="SOURCE", help="the store to copy from")
    merge.add_argument("dest", metavar="DEST", help="the store to copy into")
    merge.set_defaults(func=merge_command)


def open_store(path: str) -> Any:
    from daskfarm import DataManager

    if not os.path.isdir(path):
        raise CLIError(f"no store directory {path}")
    return DataManager(path, readonly=True)


def ls_command(args: argparse.Namespace) -> int:
    from daskfarm.store._record import SUFFIX

    with open_store(args.path) as dm:
        report = dm.check()
        shards = [e for e in report.entries if e.name.endswith(SUFFIX)]
        head = (f"{args.path}: {len(shards)} shards, {sum(e.records for e in shards)} records, "
                f"{len(dm)} keys, {len(dm.failed_keys())} failures")
        if report.problems:
            head += f", {len(report.problems)} problem(s): see `daskfarm store check`"
        print(head)
        if report.entries:
            print(f"  {'records':>9}  {'status':<12} file")
        for e in report.entries:
            print(f"  {e.records:>9}  {e.status:<12} {e.name}")
    return 0


def _short(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= WIDTH else text[:WIDTH - 3] + "..."


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _record_dict(r: Any) -> dict:
    out = {"key": r.key, "item": r.item, "task": r.task, "version": r.version,
           "time": r.time, "host": r.host, "run_id": r.run_id, "shard": r.shard,
           "worker": r.worker, "duration": r.duration}
    if r.failed:
        out.update(failed=True, exc_type=r.exc_type, message=r.message, traceback=r.traceback)
    else:
        out["value"] = r.value
    return out


def show_command(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise CLIError(f"--limit {args.limit}: give a count of records, or 0 for all")
    limit = args.limit if args.limit > 0 else None
    with open_store(args.path) as dm:
        if args.keys:
            for key in args.keys:
                records = dm.get_all(key)
                if not records:
                    raise CLIError(f"no record with the key {key!r} in {args.path}")
                for r in records:
                    _print_record(r, args.json, provenance=True)
            return 0
        if args.failures:
            for r in dm.failures()[:limit]:
                _print_record(r, args.json)
            return 0
        if args.where:
            found = dm.find(**parse_where(args.where))
            for r in found[:limit]:
                _print_record(r, args.json)
            if limit is not None and len(found) > limit:
                print(f"... {len(found) - limit} more (--limit 0 shows all)", file=sys.stderr)
            return 0
        shown = 0
        for key, value in dm.iteritems():
            if limit is not None and shown >= limit:
                print(f"... {len(dm) - shown} more (--limit 0 shows all)", file=sys.stderr)
                break
            item = dm.params(key)
            if args.json:
                print(to_json({"key": key, "item": item, "value": value}))
            else:
                print(f"{key}  {_short(item)} -> {_short(value)}")
            shown += 1
    return 0


def parse_where(conditions: list[str]) -> dict[str, Any]:
    """``["x=2", "mode=fast"]`` -> ``{"x": 2, "mode": "fast"}`` (JSON values, else text)."""
    fields: dict[str, Any] = {}
    for condition in conditions:
        name, sep, text = condition.partition("=")
        if not sep or not name.strip():
            raise CLIError(f"--where {condition!r}: write FIELD=VALUE, e.g. --where x=2")
        try:
            fields[name.strip()] = json.loads(text)
        except ValueError:
            fields[name.strip()] = text
    return fields


def _print_record(r: Any, as_json: bool, provenance: bool = False) -> None:
    if as_json:
        print(to_json(_record_dict(r)))
        return
    where = f"  [{r.shard}, {r.host}, {_when(r.time)}]" if provenance else ""
    if r.failed:
        print(f"{r.key}  {_short(r.item)} FAILED {r.exc_type}: {r.message}{where}")
    else:
        print(f"{r.key}  {_short(r.item)} -> {_short(r.value)}{where}")


def check_command(args: argparse.Namespace) -> int:
    with open_store(args.path) as dm:
        report = dm.check()
    print(report)
    return 0 if report.ok else 1


def merge_command(args: argparse.Namespace) -> int:
    from daskfarm.store import merge_store

    if not os.path.isdir(args.source):
        raise CLIError(f"no store directory {args.source}")
    report = merge_store(args.source, args.dest)
    for name, why in report.skipped:
        print(f"daskfarm: not copied ({why}): {os.path.join(args.source, name)}",
              file=sys.stderr)
    for name in report.in_progress:
        print(f"daskfarm: {name} is still being written: merge again when its run is over",
              file=sys.stderr)
    print(f"merged {args.source} into {args.dest}: {report.copied} shards copied, "
          f"{report.updated} updated, {report.kept} already there ({report.records} records "
          "copied)")
    return 0
