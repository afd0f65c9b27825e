"""daskfarm: a task farm on Dask.

Stream parameter sets through a function on every core of a laptop or on a Dask cluster,
watch each running task's progress in the Dask dashboard, stop tasks and runs, and keep every
result in a store that resumes interrupted sweeps and merges results from several machines.

>>> from daskfarm import Farm
>>> with Farm() as farm:                                              # doctest: +SKIP
...     for result in farm.map(simulate, params, store="results/"):
...         print(result)
"""

from daskfarm._scripts import ScriptGlobalError
from daskfarm.compat import (
    AppMethodError,
    AppRunner,
    Signal,
    SignalSpy,
    WorkerController,
    make_text_report,
    run_tasks,
    time_rep,
)
from daskfarm.exceptions import (
    CorruptShardWarning,
    FarmClosedError,
    FarmConnectionError,
    FarmError,
    FarmPicklingError,
    FarmStateError,
    FarmTypeError,
    FarmValueError,
    FarmWarning,
    SchedulerImportError,
    StoreError,
    StoreFormatError,
    TaskCancelled,
    TaskFailedError,
    VersionMismatchWarning,
    WorkerImportError,
    WorkerVersionError,
)
from daskfarm.farm import Farm
from daskfarm.progress.plugin import FarmPlugin
from daskfarm.progress.reporter import Reporter, report
from daskfarm.run import Failure, Run, RunSummary
from daskfarm.store import DataManager, Record, Session

__version__ = "0.1.0"

__all__ = [
    "AppMethodError",
    "AppRunner",
    "CorruptShardWarning",
    "DataManager",
    "Failure",
    "Farm",
    "FarmClosedError",
    "FarmConnectionError",
    "FarmError",
    "FarmPicklingError",
    "FarmPlugin",
    "FarmStateError",
    "FarmTypeError",
    "FarmValueError",
    "FarmWarning",
    "Record",
    "Reporter",
    "Run",
    "RunSummary",
    "SchedulerImportError",
    "ScriptGlobalError",
    "Session",
    "Signal",
    "SignalSpy",
    "StoreError",
    "StoreFormatError",
    "TaskCancelled",
    "TaskFailedError",
    "VersionMismatchWarning",
    "WorkerController",
    "WorkerImportError",
    "WorkerVersionError",
    "__version__",
    "make_text_report",
    "report",
    "run_tasks",
    "time_rep",
]
