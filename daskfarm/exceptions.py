"""Errors and warnings raised by daskfarm.

Every error derives from :class:`FarmError` *and* from the built-in type it refines, so
``except ValueError`` keeps working for code that does not know daskfarm::

    FarmError
    ├── FarmTypeError (TypeError)            a task not callable, items not iterable
    │   └── FarmPicklingError                a task, item or result that cannot be pickled
    ├── FarmValueError (ValueError)          an option out of range (buffersize=0, errors="maybe")
    ├── AppMethodError (KeyError)            an app method or parameter an AppRunner's app lacks
    ├── ScriptGlobalError (NameError)        a script's global that was not sent to the workers
    ├── FarmStateError (RuntimeError)        used in the wrong state (a Run iterated twice)
    │   └── FarmClosedError                  a closed Farm or DataManager used again
    ├── FarmConnectionError (ConnectionError) a scheduler that cannot be reached
    ├── MissingExtraError (ImportError)      an optional dependency missing (names the extra)
    ├── WorkerImportError (ImportError)      a worker that cannot import the task's module
    │   └── WorkerVersionError               a worker or scheduler on other package releases
    ├── SchedulerImportError (ImportError)   a scheduler that cannot import daskfarm
    ├── TaskFailedError (RuntimeError)       a task failure whose exception could not be sent back
    ├── TaskCancelled (concurrent.futures.CancelledError)  raised by report() in a cancelled task
    ├── ItemTimeoutError (TimeoutError)      an item that ran longer than map(timeout=...)
    └── StoreError (OSError)                 a store path that is a file, unwritable, or a full disk
        └── StoreFormatError                 a shard that is not a daskfarm shard, or a newer format

    FarmWarning (UserWarning)
    ├── CorruptShardWarning                  a stray, truncated or corrupt file skipped by a read
    ├── VersionMismatchWarning               a worker whose versions differ at patch level
    └── HardStopWarning                      a stop that cannot be hard (a worker without a nanny)

Messages name the problem and the call that fixes it.
"""

from __future__ import annotations

import concurrent.futures

__all__ = [
    "AppMethodError",
    "CorruptShardWarning",
    "FarmClosedError",
    "FarmConnectionError",
    "FarmError",
    "FarmPicklingError",
    "FarmStateError",
    "FarmTypeError",
    "FarmValueError",
    "FarmWarning",
    "HardStopWarning",
    "ItemTimeoutError",
    "MissingExtraError",
    "SchedulerImportError",
    "ScriptGlobalError",
    "StoreError",
    "StoreFormatError",
    "TaskCancelled",
    "TaskFailedError",
    "VersionMismatchWarning",
    "WorkerImportError",
    "WorkerVersionError",
]


class FarmError(Exception):
    """Base class of every error daskfarm raises."""


class FarmTypeError(FarmError, TypeError):
    """An argument of the wrong kind, such as a task that is not callable."""


class FarmPicklingError(FarmTypeError):
    """A task, an item or a result that cannot be pickled to travel to or from a worker."""


class FarmValueError(FarmError, ValueError):
    """An option with a value out of its range."""


class AppMethodError(FarmError, KeyError):
    """An app method or parameter name that an :class:`~daskfarm.AppRunner`'s app lacks."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


class ScriptGlobalError(FarmError, NameError):
    """A script-defined task used a module-level name of its script that was not sent to the
    workers (too big, or not picklable)."""


class FarmStateError(FarmError, RuntimeError):
    """An object used in a state that does not allow it."""


class FarmClosedError(FarmStateError):
    """A closed :class:`~daskfarm.Farm` or :class:`~daskfarm.DataManager` used again."""


class FarmConnectionError(FarmError, ConnectionError):
    """A scheduler that cannot be reached within the connect timeout."""


class MissingExtraError(FarmError, ImportError):
    """An optional dependency is missing: the message names the extra that installs it
    (``pip install 'daskfarm[pandas]'``)."""


class WorkerImportError(FarmError, ImportError):
    """A worker that cannot import the module a task is defined in."""


class WorkerVersionError(WorkerImportError):
    """A worker (or the scheduler) whose Python, dask, distributed or daskfarm release differs
    from the client's.

    ``mismatches`` holds ``(process, package, its_version, client_version)`` tuples, the process
    being ``"worker tcp://..."`` or ``"scheduler tcp://..."``.
    """

    def __init__(self, message: str, mismatches: list[tuple[str, str, str, str]]):
        super().__init__(message)
        self.mismatches = mismatches


class SchedulerImportError(FarmError, ImportError):
    """A scheduler that cannot import daskfarm: it could not unpickle a farm's tasks."""


class TaskFailedError(FarmError, RuntimeError):
    """A task that failed with an exception that could not be sent back as it was.

    The exception's type name, message and remote traceback are kept as attributes.
    """

    def __init__(self, message: str, *, exc_type: str = "", traceback: str = "", item=None):
        super().__init__(message)
        self.exc_type = exc_type
        self.traceback = traceback
        self.item = item


class TaskCancelled(FarmError, concurrent.futures.CancelledError):
    """Raised by :func:`daskfarm.report` inside a task whose run or item was cancelled.

    Let it propagate: the worker then frees the task's thread at once. Catching it keeps
    the task running until it returns, and its result is thrown away.
    """


class ItemTimeoutError(FarmError, TimeoutError):
    """An item that ran longer than ``map(timeout=...)`` on its worker.

    Raised inside the task at its next ``report()`` call once the time is up; a task that does
    not report is stopped hard after the grace period (``daskfarm.cancel-grace``) by restarting
    its worker process. Either way it is the item's failure: ``retries`` apply, and
    ``errors="continue"`` records it and goes on.
    """


class StoreError(FarmError, OSError):
    """A result store that cannot be opened or written (a file in its place, no permission,
    a full disk)."""


class StoreFormatError(StoreError):
    """A file in a store directory that is not a shard daskfarm can read."""


class FarmWarning(UserWarning):
    """Base class of every warning daskfarm emits."""


class CorruptShardWarning(FarmWarning):
    """A stray, truncated or corrupt file in a store, skipped (or read up to its last intact
    record) so that the rest of the store still reads."""


class VersionMismatchWarning(FarmWarning):
    """A worker whose versions differ from the client's at patch level only."""


class HardStopWarning(FarmWarning):
    """A cancel or timeout that cannot stop a running item hard: its worker has no nanny to
    restart it (``Farm(processes=False)``, ``dask worker --no-nanny``). The stop stays
    cooperative there: the item stops at its next ``report()``, or runs to its end."""
