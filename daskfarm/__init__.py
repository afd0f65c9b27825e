"""daskfarm: a task farm on Dask.

Stream parameter sets through a function on every core of a laptop or on a Dask cluster,
watch each running task's progress in the Dask dashboard, stop tasks and runs, and keep every
result in a store that resumes interrupted sweeps and merges results from several machines.

>>> from daskfarm import Farm
>>> with Farm() as farm:                                              # doctest: +SKIP
...     for result in farm.map(simulate, params, store="results/"):
...         print(result)
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

__version__ = "0.1.0"

# Names are loaded on first use (PEP 562): a worker or scheduler that imports daskfarm to run
# a task loads distributed's worker side and nothing of the store, Bokeh, tqdm or compat.
_WHERE = {
    "AppMethodError": "daskfarm.exceptions",
    "AppRunner": "daskfarm.compat",
    "CorruptShardWarning": "daskfarm.exceptions",
    "DataManager": "daskfarm.store",
    "Failure": "daskfarm.run",
    "Farm": "daskfarm.farm",
    "FarmClosedError": "daskfarm.exceptions",
    "FarmConnectionError": "daskfarm.exceptions",
    "FarmError": "daskfarm.exceptions",
    "FarmPicklingError": "daskfarm.exceptions",
    "FarmPlugin": "daskfarm.scheduler.plugin",
    "FarmStateError": "daskfarm.exceptions",
    "FarmTypeError": "daskfarm.exceptions",
    "FarmValueError": "daskfarm.exceptions",
    "FarmWarning": "daskfarm.exceptions",
    "HardStopWarning": "daskfarm.exceptions",
    "ItemTimeoutError": "daskfarm.exceptions",
    "MergeReport": "daskfarm.store",
    "MissingExtraError": "daskfarm.exceptions",
    "Plot": "daskfarm.client.plot",
    "Record": "daskfarm.store",
    "Reporter": "daskfarm.worker.reporter",
    "Run": "daskfarm.run",
    "RunSummary": "daskfarm.run",
    "SchedulerImportError": "daskfarm.exceptions",
    "ScriptGlobalError": "daskfarm.exceptions",
    "Session": "daskfarm.store",
    "Signal": "daskfarm.compat",
    "SignalSpy": "daskfarm.compat",
    "StoreError": "daskfarm.exceptions",
    "StoreFormatError": "daskfarm.exceptions",
    "TaskCancelled": "daskfarm.exceptions",
    "TaskFailedError": "daskfarm.exceptions",
    "VersionMismatchWarning": "daskfarm.exceptions",
    "WorkerController": "daskfarm.compat",
    "WorkerImportError": "daskfarm.exceptions",
    "WorkerVersionError": "daskfarm.exceptions",
    "item_key": "daskfarm.store",
    "make_text_report": "daskfarm.compat",
    "merge_store": "daskfarm.store",
    "report": "daskfarm.worker.reporter",
    "run_tasks": "daskfarm.compat",
    "time_rep": "daskfarm.compat",
}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'daskfarm' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


if _TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from daskfarm.client.plot import Plot
    from daskfarm.compat import (
        AppRunner,
        Signal,
        SignalSpy,
        WorkerController,
        make_text_report,
        run_tasks,
        time_rep,
    )
    from daskfarm.exceptions import (
        AppMethodError,
        CorruptShardWarning,
        FarmClosedError,
        FarmConnectionError,
        FarmError,
        FarmPicklingError,
        FarmStateError,
        FarmTypeError,
        FarmValueError,
        FarmWarning,
        HardStopWarning,
        ItemTimeoutError,
        MissingExtraError,
        SchedulerImportError,
        ScriptGlobalError,
        StoreError,
        StoreFormatError,
        TaskCancelled,
        TaskFailedError,
        VersionMismatchWarning,
        WorkerImportError,
        WorkerVersionError,
    )
    from daskfarm.farm import Farm
    from daskfarm.run import Failure, Run, RunSummary
    from daskfarm.scheduler.plugin import FarmPlugin
    from daskfarm.store import DataManager, MergeReport, Record, Session, item_key, merge_store
    from daskfarm.worker.reporter import Reporter, report

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
    "HardStopWarning",
    "ItemTimeoutError",
    "MergeReport",
    "MissingExtraError",
    "Plot",
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
    "item_key",
    "make_text_report",
    "merge_store",
    "report",
    "run_tasks",
    "time_rep",
]
