"""Qt-style signals without Qt, for the pydidas adapter: :class:`Signal` and :class:`SignalSpy`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["Signal", "SignalSpy"]


class Signal:
    """A stand-in for a Qt signal: ``connect(fn)``, ``disconnect(fn)``, ``emit(*args)``.

    Slots are called in the thread that emits (for a :class:`WorkerController`, a daskfarm
    run's feeder thread): keep them short, and from a Qt GUI forward them to a real signal.
    A slot that raises is logged and does not stop the others.

    Examples
    --------
    >>> sig = Signal("sig_results")
    >>> got = []
    >>> _ = sig.connect(lambda task, result: got.append((task, result)))
    >>> sig.emit(3, 11)
    >>> got
    [(3, 11)]
    """

    def __init__(self, name: str = "signal"):
        self.name = name
        self._slots: list[Callable] = []
        self._lock = threading.Lock()

    def connect(self, slot: Callable) -> Callable:
        """Call ``slot(*args)`` on every emit; returns ``slot`` (usable as a decorator)."""
        with self._lock:
            self._slots.append(slot)
        return slot

    def disconnect(self, slot: Callable | None = None) -> None:
        """Remove ``slot``, or every slot when none is given."""
        with self._lock:
            if slot is None:
                self._slots.clear()
            else:
                self._slots.remove(slot)

    def emit(self, *args: Any) -> None:
        with self._lock:
            slots = list(self._slots)
        for slot in slots:
            try:
                slot(*args)
            except Exception:
                logger.exception("slot %r of %s failed", slot, self.name)

    def __repr__(self) -> str:
        return f"<Signal {self.name}: {len(self._slots)} slots>"


class SignalSpy(list):
    """``QtTest.QSignalSpy`` without Qt: a list holding each emission's arguments as a list.

    Examples
    --------
    >>> sig = Signal()
    >>> spy = SignalSpy(sig)
    >>> sig.emit(1, 7); sig.emit(0, 5)
    >>> sorted(spy)
    [[0, 5], [1, 7]]
    """

    def __init__(self, signal: Signal):
        super().__init__()
        signal.connect(self._record)

    def _record(self, *args: Any) -> None:
        self.append(list(args))
