"""The result store: a directory of append-only shards, one per writer, merged on read.

``DataManager(path)`` reads the merged store and opens writer ``Session``\\ s; each record is
returned as a ``Record`` by ``get_all`` and ``failures``; ``merge_store`` copies one store
into another. Listing, counting, checking, merging and resuming never unpickle; reading
values and items does, so only merge stores from machines you trust.
"""

from daskfarm.store._keys import KEY_SCHEME, item_key, item_keys
from daskfarm.store._merge import MergeReport, merge_store
from daskfarm.store._record import Record
from daskfarm.store.manager import DataManager
from daskfarm.store.session import Session

__all__ = ["KEY_SCHEME", "DataManager", "MergeReport", "Record", "Session", "item_key",
           "item_keys", "merge_store"]
