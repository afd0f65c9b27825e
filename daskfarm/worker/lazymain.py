"""The client's script, imported in a worker process only when something needs it.

Dask starts a LocalCluster's worker processes with ``spawn``, which runs the client's script
(as ``__mp_main__``) in every worker before it can work: a script that imports a library
taking seconds to import paid that once per worker, all of them at once on the same cores
(four workers re-running ``from brian2 import *`` took 5 s on two cores). The Farm starts its
workers without the script (:func:`daskfarm.client.connect.workers_skip_script`) and leaves
its path in the environment; a worker imports it here, once, the first time a pickle refers to
``__main__`` (an item or a result of a class defined in the script). Tasks defined in the
script never need it: they travel by value (daskfarm._scripts).
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import threading
from typing import Any

from daskfarm._protocol import MAIN_PATH_ENV

__all__ = ["loads"]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_imported = False


def loads(data: bytes) -> Any:
    """``pickle.loads``, importing the client's script first if the pickle needs it."""
    try:
        return pickle.loads(data)
    except (AttributeError, ImportError) as exc:
        if not _wants_main(exc) or not _import_main():
            raise
    return pickle.loads(data)


def _wants_main(exc: BaseException) -> bool:
    text = str(exc)
    return "__main__" in text or "__mp_main__" in text


def _import_main() -> bool:
    """Import the client's script as multiprocessing's spawn would; False if there is none
    to import (not a Farm's LocalCluster, or already imported)."""
    global _imported
    path = os.environ.get(MAIN_PATH_ENV)
    with _lock:
        if _imported or not path or getattr(sys.modules.get("__main__"), "__file__", None):
            return False
        _imported = True
        from multiprocessing import spawn

        logger.info("importing the client's script %s for a pickle that refers to it", path)
        # as __mp_main__ (aliased to __main__): its `if __name__ == "__main__":` part stays out
        spawn.import_main_path(path)
        return True
