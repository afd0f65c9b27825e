"""pydidas' WorkerController example with a restart (seed 003), without Qt.

Without ``finalize_tasks`` the controller stays alive and takes more tasks; suspended, it
holds new tasks (and a new function) back until ``restart``. Changes from the seed:
``daskfarm.compat`` names for the controller and the signal spy, a five-line stand-in for
``pydidas.core.utils.TimerSaveRuntime``, and ``stop()`` at the end (it would run at exit).

    python examples/05_pydidas_restart.py
"""

import time

import numpy as np

from daskfarm.compat import SignalSpy, WorkerController


class TimerSaveRuntime:
    """Times a ``with`` block; calling it gives the seconds."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.runtime = time.perf_counter() - self.start

    def __call__(self):
        return self.runtime


def test_func(task, slope, offset):
    return task * slope + offset


def wait_for_results(worker_controller):
    print("\nWaiting for results ...")
    with TimerSaveRuntime() as runtime:
        while True:
            if worker_controller.progress >= 1:
                break
            time.sleep(0.005)
    print("Runtime was ", runtime())


def run_worker_controller_with_restart():
    worker_controller = WorkerController()
    worker_controller.change_function(test_func, 2, 5)
    result_spy = SignalSpy(worker_controller.sig_results)

    worker_controller.add_tasks(np.arange(10))
    # worker_controller.finalize_tasks()
    worker_controller.start()
    wait_for_results(worker_controller)
    print("Results: ", sorted(result_spy))
    print("WorkerController is alive: ", worker_controller.isRunning())

    worker_controller.add_tasks(np.arange(10, 20))
    wait_for_results(worker_controller)
    print("Results: ", sorted(result_spy))

    # now, if we suspend it, to change the function, and to add more items to
    # its tasks but they will not be processed:
    worker_controller.suspend()
    worker_controller.change_function(test_func, -1, 0)
    worker_controller.add_tasks(np.arange(20, 30))
    time.sleep(0.2)
    print("Results while suspended: ", len(result_spy))

    # restarting will start a new run with the new function:
    worker_controller.restart()
    wait_for_results(worker_controller)
    print("Results: ", sorted(result_spy))
    print("WorkerController is alive: ", worker_controller.isRunning())
    worker_controller.stop()


if __name__ == "__main__":
    run_worker_controller_with_restart()
