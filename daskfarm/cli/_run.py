"""``daskfarm run``: stream items from a file or an expression through a function."""

from __future__ import annotations

import argparse
import csv
import importlib
import itertools
import math
import os
import random
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from daskfarm.cli._common import (
    CLIError,
    add_connection_options,
    open_farm,
    scheduler_address,
    to_json,
)

DESCRIPTION = """Run MODULE:FUNC over every item and print one JSON line per result
({"item": ..., "result": ...}) on stdout; failures and the summary go to stderr.

Items come from a file (--items: JSON lines, one JSON value per line, or CSV with a header
row, each row a dict with numbers converted; "-" reads JSON lines from stdin) or from a
Python expression (--expr, evaluated with math, itertools, random and numpy as np at hand).
The exit status is 0 when every item succeeded, 1 otherwise.
"""

EXPR_NAMESPACE = {"math": math, "itertools": itertools, "random": random}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="run a function over items from a file or an expression",
                       description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", metavar="MODULE:FUNC",
                   help="the task: a function or a class, e.g. mypackage.model:simulate "
                        "(the current directory is importable)")
    items = p.add_mutually_exclusive_group(required=True)
    items.add_argument("--items", metavar="FILE",
                       help="items as JSON lines (.jsonl, or any other name), a JSON array "
                            "(.json) or CSV (.csv); - for JSON lines on stdin")
    items.add_argument("--expr", metavar="EXPR",
                       help="a Python expression giving the items, e.g. \"range(100)\" or "
                            "\"({'x': x, 'seed': s} for x in range(10) for s in range(3))\"")
    add_connection_options(p)
    p.add_argument("--workers", type=int, metavar="N",
                   help="without --scheduler: worker processes of the LocalCluster (0: one "
                        "per CPU, -k: all but k); with one: wait until N workers are connected")
    p.add_argument("--threads-per-worker", type=int, metavar="N",
                   help="threads per LocalCluster worker")
    p.add_argument("--store", metavar="PATH", help="store every result in this directory; "
                   "items already stored there are skipped (see --no-resume)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="compute items again even if the store has them")
    p.add_argument("--ordered", action="store_true", help="print results in input order")
    p.add_argument("--errors", choices=["raise", "continue"],
                   help="stop at the first failure (raise, the default) or record failures "
                        "and go on (continue)")
    p.add_argument("--star", action="store_true",
                   help="expand each item (a JSON array, a tuple) into positional arguments")
    p.add_argument("--batch-size", type=_batch_size, metavar="N|auto")
    p.add_argument("--retries", type=int, metavar="N")
    p.add_argument("--name", help="the task's name in store keys (default: MODULE.FUNC)")
    p.add_argument("--task-version", metavar="V", help="the task's version in store keys")
    p.add_argument("--upload", metavar="FILE.py", action="append", default=[],
                   help="send this module file to every worker first (repeatable)")
    p.add_argument("--quiet", "-q", action="store_true", help="do not print the results")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bar")
    p.set_defaults(func=run)


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number or auto") from None


def load_task(spec: str) -> Any:
    """``module:attr.path`` (or ``module.attr``) -> the object; the cwd is importable."""
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise CLIError(f"{spec!r} does not name a function: use MODULE:FUNC, e.g. "
                       "mymodel:simulate")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CLIError(f"cannot import {module_name!r} ({exc}); run from the directory that "
                       "holds it, or install it") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CLIError(f"the module {module_name!r} has no {attr!r}") from None
    if not callable(obj):
        raise CLIError(f"{spec} is a {type(obj).__name__}, not a function or a class")
    return obj


def read_items(args: argparse.Namespace) -> tuple[Iterable, int | None]:
    """The items and their number (when it is cheap to know)."""
    if args.expr is not None:
        return eval_items(args.expr)
    path = args.items
    if path == "-":
        return _json_lines(sys.stdin, "<stdin>"), None
    if not os.path.isfile(path):
        raise CLIError(f"no items file {path}")
    if path.endswith(".csv"):
        with open(path, newline="", encoding="utf-8") as f:
            total = max(0, sum(1 for row in csv.reader(f) if row) - 1)
        return _csv_rows(path), total
    if path.endswith(".json"):
        import json

        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except ValueError as exc:
                raise CLIError(f"{path} is not JSON ({exc}); for one item per line name it "
                               ".jsonl") from None
        if not isinstance(data, list):
            raise CLIError(f"{path} holds a JSON {type(data).__name__}, not an array of items")
        return data, len(data)
    with open(path, encoding="utf-8") as f:
        total = sum(1 for line in f if line.strip())
    return _json_file(path), total


def eval_items(expr: str) -> tuple[Iterable, int | None]:
    namespace = dict(EXPR_NAMESPACE)
    try:
        import numpy

        namespace["np"] = namespace["numpy"] = numpy
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    try:
        items = eval(expr, namespace)  # the user's own expression, on the user's machine
    except Exception as exc:
        raise CLIError(f"--expr {expr!r} failed: {type(exc).__name__}: {exc}") from None
    if isinstance(items, (str, bytes, dict)) or not isinstance(items, Iterable):
        raise CLIError(f"--expr {expr!r} gives a {type(items).__name__}, not an iterable of "
                       "items; e.g. \"range(10)\" or \"(x / 10 for x in range(10))\"")
    try:
        total = len(items)  # type: ignore[arg-type]
    except TypeError:
        total = None
    return items, total


def _json_file(path: str) -> Iterator[Any]:
    with open(path, encoding="utf-8") as f:
        yield from _json_lines(f, path)


def _json_lines(lines: Iterable[str], name: str) -> Iterator[Any]:
    import json

    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError as exc:
            raise CLIError(f"{name}, line {number}: not JSON ({exc}): {line.strip()[:60]!r}"
                           ) from None


def _csv_rows(path: str) -> Iterator[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            yield {k: _number(v) for k, v in row.items()}


def _number(text: str | None) -> Any:
    if text is None or text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def run(args: argparse.Namespace) -> int:
    task = load_task(args.task)
    items, total = read_items(args)
    local: dict[str, Any] = {"n_workers": args.workers,
                             "threads_per_worker": args.threads_per_worker}
    remote = scheduler_address(args) is not None
    if not remote:
        # LocalCluster workers are new processes: let them import from the cwd, as we do
        path = os.environ.get("PYTHONPATH", "")
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), path) if p)
    with open_farm(args, **local) as farm:
        if remote and args.workers:
            try:
                farm.client.wait_for_workers(args.workers, timeout=600)
            except TimeoutError:
                raise CLIError(f"fewer than {args.workers} workers connected in 600 s") from None
        for upload in args.upload:
            farm.client.upload_file(upload)
        mapper = farm.starmap if args.star else farm.map
        run = mapper(task, items, store=args.store, numitems=total, ordered=args.ordered,
                     batch_size=args.batch_size, retries=args.retries, errors=args.errors,
                     progress=args.progress, name=args.name,
                     version=args.task_version, resume=args.resume)
        started = time.monotonic()
        try:
            for item, result in run.pairs():
                if not args.quiet:
                    print(to_json({"item": item, "result": result}), flush=True)
        except Exception as exc:
            _report_failure(exc)
            return 1
        summary = run.wait()
    for failure in run.failures:
        print(f"daskfarm: item {to_json(failure.item)} failed: {failure.exc_type}: "
              f"{failure.message}", file=sys.stderr)
    print(f"daskfarm: {summary.status}: {summary.done} done, {summary.failed} failed, "
          f"{summary.skipped} skipped, {summary.cancelled} cancelled in "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0 if summary.status == "finished" and not summary.failed else 1


def _report_failure(exc: BaseException) -> None:
    from daskfarm.exceptions import FarmError

    cause = exc.__cause__
    tb = getattr(cause, "tb", None)
    if tb and not isinstance(exc, FarmError):
        print(tb.rstrip(), file=sys.stderr)
    notes = "; ".join(getattr(exc, "__notes__", []))
    print(f"daskfarm: error: {type(exc).__name__}: {exc}" + (f" ({notes})" if notes else ""),
          file=sys.stderr)
