"""Where a run's items come from, and which of them the store already holds.

:class:`ItemSource` pulls items lazily from the caller's iterable (or takes those added with
``Run.add``), numbers them, and gives each its store key; :class:`ResumeFilter` splits off the
items whose key is already stored, so a rerun computes only what is missing.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from typing import Any

from daskfarm.client.state import RunState
from daskfarm.store import item_keys

__all__ = ["ItemSource", "ResumeFilter"]

logger = logging.getLogger(__name__)


class ItemSource:
    """The run's items, ``n`` at a time, with their position in the input."""

    def __init__(self, items: Iterable | None, state: RunState):
        self._iter = iter(items) if items is not None else None
        self._state = state
        self._exhausted = False
        self.pulled = 0  # items taken so far: the next item's index
        #: what the caller's iterable raised, once the items before it are taken
        self.error: BaseException | None = None

    def take(self, n: int) -> tuple[int, list]:
        """Up to ``n`` items and the index of the first; fewer at the end of the input."""
        start = self.pulled
        if self._iter is None:
            items = self._state.take_added(n)
        elif self._exhausted:
            items = []
        else:
            items = []
            try:
                items.extend(itertools.islice(self._iter, n))
            except Exception as exc:  # the caller's generator raised: keep what it gave
                self.error = exc
                self._exhausted = True
            if len(items) < n:
                self._exhausted = True
        self.pulled += len(items)
        return start, items

    def finished(self) -> bool:
        """No item will come any more."""
        if self._iter is not None:
            return self._exhausted
        return self._state.added_input_finished()


class ResumeFilter:
    """Store keys for items, the split of a batch into stored and still to compute, and the
    stored values of the items a rerun skips (so it yields every result again)."""

    def __init__(self, identity: str, stored: Any, read: Any = None):
        self.identity = identity
        # a store with nothing in it needs no look-ups
        self._stored = stored if stored is not None and len(stored) else None
        self._read = read  # keys -> their stored values, in order (DataManager.get_many)

    def keys(self, items: list) -> list[str]:
        return item_keys(self.identity, items)

    def stored_values(self, keys: list[str]) -> list:
        return self._read(keys) if self._read is not None and keys else []

    def missing(self, keys: list[str]) -> list[int] | None:
        """Positions of the keys not stored yet (None: all of them)."""
        stored = self._stored
        if stored is None:
            return None
        keep = [j for j, k in enumerate(keys) if k not in stored]
        return None if len(keep) == len(keys) else keep
