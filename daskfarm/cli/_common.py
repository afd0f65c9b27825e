"""What several subcommands share: connection options, opening a Farm, JSON output."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
from collections.abc import Iterator
from typing import Any

__all__ = ["CLIError", "add_connection_options", "jsonable", "open_farm", "to_json"]


class CLIError(Exception):
    """A user error the command reports in one line (no traceback)."""


def add_connection_options(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    """--scheduler/--scheduler-file, TLS files and --timeout; ``required``: no LocalCluster."""
    g = p.add_argument_group("cluster")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDR",
                       help="a running scheduler, e.g. tcp://head:8786 or tls://head:8786 "
                            "(default: $DASK_SCHEDULER_ADDRESS"
                            + (")" if required else ", else a LocalCluster on this machine)"))
    where.add_argument("--scheduler-file", metavar="FILE",
                       help="the JSON file `dask scheduler --scheduler-file` wrote")
    g.add_argument("--tls-ca-file", metavar="PEM", help="CA certificate of a tls:// cluster")
    g.add_argument("--tls-cert", metavar="PEM", help="client certificate of a tls:// cluster")
    g.add_argument("--tls-key", metavar="PEM", help="client private key of a tls:// cluster")
    g.add_argument("--timeout", metavar="SECONDS", default=None,
                   help="how long to wait for the scheduler (default: the config's "
                        "daskfarm.connect.timeout)")


def security(args: argparse.Namespace) -> Any:
    """A ``Security`` from ``--tls-*``; None leaves Dask's TLS config in charge."""
    files = {"tls_ca_file": args.tls_ca_file, "tls_client_cert": args.tls_cert,
             "tls_client_key": args.tls_key}
    if not any(files.values()):
        return None
    missing = [f"--{n}" for n, v in (("tls-ca-file", args.tls_ca_file), ("tls-cert", args.tls_cert),
                                     ("tls-key", args.tls_key)) if not v]
    if missing:
        raise CLIError(f"TLS needs --tls-ca-file, --tls-cert and --tls-key; add "
                       f"{' and '.join(missing)}")
    from distributed.security import Security

    return Security(require_encryption=True, **files)


def scheduler_address(args: argparse.Namespace) -> str | None:
    if getattr(args, "scheduler_file", None):
        try:
            with open(args.scheduler_file, encoding="utf-8") as f:
                return json.load(f)["address"]
        except (OSError, ValueError, KeyError) as exc:
            raise CLIError(f"cannot read a scheduler address from {args.scheduler_file} "
                           f"({exc}); pass the file `dask scheduler --scheduler-file` wrote, "
                           "or --scheduler ADDR") from None
    if getattr(args, "scheduler", None):
        return args.scheduler
    import dask

    return dask.config.get("scheduler-address", None)  # DASK_SCHEDULER_ADDRESS


@contextlib.contextmanager
def open_farm(args: argparse.Namespace, **local: Any) -> Iterator[Any]:
    """A Farm on ``--scheduler``/``--scheduler-file``, or a LocalCluster with ``local``."""
    from daskfarm import Farm

    address = scheduler_address(args)
    kwargs: dict[str, Any] = {"security": security(args)}
    if address is None:
        kwargs.update(local)
    else:
        kwargs["timeout"] = args.timeout
    with Farm(address, **kwargs) as farm:
        yield farm


def jsonable(obj: Any) -> Any:
    """``obj`` made JSON-friendly: numpy values and arrays, tuples, sets; others as repr."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    tolist = getattr(obj, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        try:
            return jsonable(tolist())
        except Exception:
            pass
    return repr(obj)


def to_json(obj: Any) -> str:
    return json.dumps(jsonable(obj), ensure_ascii=False)
