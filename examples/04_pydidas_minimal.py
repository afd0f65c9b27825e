"""pydidas' minimal WorkerController example (seed 003), without Qt, on a daskfarm Farm.

Changes from the seed: ``pydidas.multiprocessing.WorkerController`` is
``daskfarm.compat.WorkerController`` and ``QtTest.QSignalSpy`` is ``daskfarm.compat.SignalSpy``.
The controller starts a LocalCluster (one worker per CPU) and, because the tasks are
finalized, closes it by itself once they are done; the farm panel shows the run meanwhile.

    python examples/04_pydidas_minimal.py
"""

import time

import numpy as np

from daskfarm.compat import SignalSpy, WorkerController


def test_func(task, slope, offset):
    return task * slope + offset


def run_worker_controller():
    worker_controller = WorkerController()
    worker_controller.change_function(test_func, 2, 5)
    result_spy = SignalSpy(worker_controller.sig_results)

    worker_controller.add_tasks(np.arange(10))
    worker_controller.finalize_tasks()
    worker_controller.start()

    while True:
        print("Progress at ", worker_controller.progress)
        if worker_controller.progress >= 1:
            break
        time.sleep(0.5)

    results = sorted(result_spy)
    print(results)

    print("WorkerController is alive: ", worker_controller.is_alive())


if __name__ == "__main__":
    run_worker_controller()
