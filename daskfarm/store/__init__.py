"""The result store: a directory of append-only shards, one per writer, merged on read.

``DataManager(path)`` reads the merged store and opens writer ``Session``\\ s; each record is
returned as a ``Record`` by ``get_all`` and ``failures``.
"""

from daskfarm.store._record import Record
from daskfarm.store.manager import DataManager
from daskfarm.store.session import Session

__all__ = ["DataManager", "Record", "Session"]
