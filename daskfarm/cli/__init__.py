"""The ``daskfarm`` command: run a sweep, look into a result store, open the panel.

::

    daskfarm run MODULE:FUNC --items FILE | --expr EXPR [--scheduler ADDR] [--store PATH] ...
    daskfarm store ls|show|check|merge|export PATH ...
    daskfarm panel --scheduler ADDR [--open]
    daskfarm config [KEY]

Every subcommand has ``--help``. Errors go to stderr as one line and exit non-zero, without a
traceback (``--debug`` shows it). The modules: ``_run`` (``run``), ``_store`` (``store ls``,
``show``, ``check``, ``merge``), ``_export`` (``store export``), ``_common`` (connecting,
output encoding).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence

from daskfarm.cli._common import CLIError, add_connection_options

__all__ = ["main", "parser"]

EPILOG = """examples:
  daskfarm run mymodel:simulate --expr "({'x': x} for x in range(100))" --store results/
  daskfarm run mymodel:simulate --items params.csv --scheduler tcp://head:8786 --store results/
  daskfarm store ls results/
  daskfarm store export results/ results.csv
  daskfarm panel --scheduler tcp://head:8786 --open
"""


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``daskfarm`` command."""
    from daskfarm import __version__
    from daskfarm.cli import _export, _run, _store

    top = argparse.ArgumentParser(
        prog="daskfarm", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A task farm on Dask: stream parameter sets through a function on this "
                    "machine or a cluster, keep every result in a mergeable store.")
    top.add_argument("--version", action="version", version=f"daskfarm {__version__}")
    top.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _run.add_parser(sub)

    store = sub.add_parser("store", help="list, show, check, merge or export a result store",
                           description="Look into a result store (a directory of shards).")
    store_sub = store.add_subparsers(dest="store_command", metavar="SUBCOMMAND", required=True)
    _store.add_parsers(store_sub)
    _export.add_parser(store_sub)

    panel = sub.add_parser(
        "panel", aliases=["dashboard"], help="print (or open) the /farm panel link of a scheduler",
        description="Print the link of the /farm panel of a running scheduler, with its "
                    "control token (treat it as a password). The scheduler gets daskfarm's "
                    "plugin if it has none yet.")
    add_connection_options(panel, required=True)
    panel.add_argument("--open", action="store_true", help="open the link in a web browser")
    panel.set_defaults(func=_panel)

    cfg = sub.add_parser("config", help="print daskfarm's settings (the Dask config)",
                         description="Print the daskfarm section of the Dask config: the "
                                     "defaults with every YAML file and DASK_DASKFARM__* "
                                     "environment variable applied.")
    cfg.add_argument("key", nargs="?", help="one key, e.g. store.commit-interval")
    cfg.set_defaults(func=_config)
    return top


def _panel(args: argparse.Namespace) -> int:
    from daskfarm.cli._common import open_farm, scheduler_address

    if scheduler_address(args) is None:
        raise CLIError("which scheduler? give --scheduler tcp://host:8786 or --scheduler-file "
                       "FILE (or set DASK_SCHEDULER_ADDRESS)")
    with open_farm(args) as farm:
        link = farm.panel_link
        if link is None:
            raise CLIError(f"the scheduler at {farm.client.scheduler.address} serves no "
                           "dashboard or no /farm panel: start it with `dask scheduler "
                           "--preload daskfarm.dashboard` (bokeh installed)")
    print(link)
    if args.open:
        import webbrowser

        webbrowser.open(link)
    return 0


def _config(args: argparse.Namespace) -> int:
    import dask
    import yaml

    import daskfarm.config  # noqa: F401  (loads the defaults)

    settings = dict(dask.config.get("daskfarm"))
    if settings.get("token"):
        settings["token"] = "<set>"  # a secret: not for terminals and logs
    if args.key:
        key = f"daskfarm.{args.key}"
        try:
            value = dask.config.get(key, config={"daskfarm": settings})
        except KeyError:
            raise CLIError(f"no setting {key}: `daskfarm config` lists them") from None
        print(yaml.safe_dump(value, default_flow_style=False).strip().removesuffix("\n..."))
        return 0
    print(yaml.safe_dump({"daskfarm": settings}, sort_keys=False).strip())
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"daskfarm: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``daskfarm`` command; returns the exit status.

    Examples
    --------
    >>> main(["store", "ls", "results/"])  # doctest: +SKIP
    0
    """
    args = parser().parse_args(argv)
    # distributed sets up its own loggers when first imported, unless the root logger has
    # handlers by then: import it first, so its INFO chatter stays in its own handlers
    import distributed  # noqa: F401

    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="daskfarm: %(levelname)s: %(name)s: %(message)s")
    if not args.debug:
        warnings.showwarning = _show_warning
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("daskfarm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `daskfarm store show ... | head`
        sys.stderr.close()
        return 0
    except Exception as exc:
        from daskfarm.exceptions import FarmError

        if args.debug or not isinstance(exc, (CLIError, FarmError, OSError, ValueError,
                                              TypeError, ImportError, TimeoutError)):
            raise
        print(f"daskfarm: error: {exc}", file=sys.stderr)
        return 1
