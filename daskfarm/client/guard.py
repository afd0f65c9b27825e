"""The main-guard check: a script that starts worker processes needs ``if __name__ == "__main__":``.

A LocalCluster starts its workers with multiprocessing's ``spawn`` (Dask's default,
``distributed.worker.multiprocessing-method``). Each new process imports the user's script
again, as ``__mp_main__``; a script that starts a Farm at module level, outside the guard,
would start one again in every worker, and multiprocessing stops each of them with a long
traceback ("An attempt has been made to start a new process before the current process has
finished its bootstrapping phase"), followed by Dask's "Nanny failed to start": hundreds of
lines that never say which line to change.

:func:`check_main_guard` runs in the user's process before any worker is started, finds the
line of ``__main__`` that led to the call, and raises one short error naming the fix when
that line is not under the guard. It looks only at the script's own source (its AST): in a
notebook, ``python -c`` or an interactive prompt there is no script to re-import, and nothing
is checked.
"""

from __future__ import annotations

import ast
import functools
import logging
import os
import sys
from types import FrameType

import dask

from daskfarm.exceptions import FarmStateError

logger = logging.getLogger(__name__)

__all__ = ["check_main_guard"]


def _is_main_test(node: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1
            and isinstance(node.ops[0], ast.Eq)):
        return False
    sides = [node.left, node.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    mains = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(mains) == 1


@functools.lru_cache(maxsize=8)
def _guarded_lines(path: str, mtime: float) -> tuple[tuple[int, int], ...] | None:
    """The line ranges of a file's ``if __name__ == "__main__":`` bodies (None: unreadable)."""
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None
    ranges = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test) and node.body:
            ranges.append((node.body[0].lineno, node.body[-1].end_lineno or node.lineno))
    return tuple(ranges)


def _main_script() -> str | None:
    """The script a spawned process imports again (None: it imports none)."""
    main = sys.modules.get("__main__")
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    if spec_name is not None and (spec_name == "__main__" or spec_name.endswith(".__main__")):
        return None  # `python -m package`: multiprocessing does not import it again
    path = getattr(main, "__file__", None)
    if not path or not path.endswith(".py"):
        return None  # a notebook kernel, `python -c`, an interactive prompt, a frozen app
    return os.path.realpath(path)


def _module_frame(script: str, frame: FrameType | None) -> FrameType | None:
    """The frame running the script's module-level code, if the call came from there."""
    while frame is not None:
        code = frame.f_code
        if (code.co_name == "<module>" and frame.f_globals.get("__name__") == "__main__"
                and os.path.realpath(code.co_filename) == script):
            return frame
        frame = frame.f_back
    return None


def check_main_guard(*, processes: bool) -> None:
    """Raise :class:`FarmStateError` before workers start from an unguarded script.

    Parameters
    ----------
    processes : bool
        Whether the cluster starts worker processes (threads need no guard).

    Raises
    ------
    FarmStateError
        The call came from module-level code of the ``__main__`` script, outside
        ``if __name__ == "__main__":``, and workers start with ``spawn`` or ``forkserver``.

    Examples
    --------
    >>> check_main_guard(processes=False)  # threads: nothing to check
    """
    if not processes:
        return
    method = dask.config.get("distributed.worker.multiprocessing-method", "spawn")
    if method == "fork":  # a forked child does not import the script again
        return
    script = _main_script()
    if script is None:
        return
    frame = _module_frame(script, sys._getframe(1))
    if frame is None:
        return  # called from code that is not the script's top level (a test, a library)
    try:
        ranges = _guarded_lines(script, os.path.getmtime(script))
    except OSError:
        return
    if ranges is None:
        return
    line = frame.f_lineno
    if any(first <= line <= last for first, last in ranges):
        return
    raise FarmStateError(
        f"{os.path.basename(script)}, line {line}, starts a Farm with worker processes at the "
        "top level of the script. Each worker process imports the script again and would "
        "start the Farm again. Put the code that runs the farm under\n"
        '    if __name__ == "__main__":\n'
        "(define the task functions above it, at the top level), or use "
        "Farm(processes=False) for threads."
    )
