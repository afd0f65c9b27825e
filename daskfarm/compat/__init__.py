"""The seed tools' APIs on daskfarm: Brian 1's ``run_tasks`` and text progress reports, and
pydidas' ``WorkerController`` and ``AppRunner`` (with Qt-free :class:`Signal` and
:class:`SignalSpy`).

>>> from daskfarm.compat import run_tasks, make_text_report, WorkerController
>>> make_text_report(30, 0.25)
'25% complete, 30s elapsed, approximately 1m 30s remaining.'
"""

from daskfarm.compat.apprunner import AppRunner
from daskfarm.compat.progressreporting import make_text_report, time_rep
from daskfarm.compat.signals import Signal, SignalSpy
from daskfarm.compat.taskfarm import run_tasks
from daskfarm.compat.workercontroller import WorkerController

__all__ = [
    "AppMethodError",
    "AppRunner",
    "Signal",
    "SignalSpy",
    "WorkerController",
    "make_text_report",
    "run_tasks",
    "time_rep",
]
