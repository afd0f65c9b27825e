"""SIGTERM as SystemExit while a Farm is open, so it unwinds ``with Farm()`` like Ctrl-C."""

from __future__ import annotations

import signal
import threading

__all__ = ["catch_sigterm", "restore_sigterm"]


def _sigterm(signum, frame):
    # Python's default SIGTERM ends the process on the spot, losing the store's last second
    # of results; as SystemExit it unwinds `with Farm()` like Ctrl-C does.
    raise SystemExit(128 + signum)


def catch_sigterm():
    """Turn SIGTERM into SystemExit while a Farm is open, if nobody else handles it.

    Returns the handler to put back (None: nothing was changed).
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None
    signal.signal(signal.SIGTERM, _sigterm)
    return signal.SIG_DFL


def restore_sigterm(previous) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
