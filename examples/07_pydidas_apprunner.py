"""pydidas' AppRunner example (seed 003), without Qt, on a daskfarm Farm.

An app computes ``3 * index + 5`` for the indices 0..19 on the workers. The runner works on a
copy of the app: the copy collects every result (in index order, whatever order they arrive
in) and comes back through ``sig_final_app_state``; the caller's app stays empty. Changes from
the seed: no ``QCoreApplication``, ``QTimer`` or ``@QtCore.Slot`` (daskfarm's signals call
their slots directly, from the runner's thread), the app needs no ``BaseApp`` base class, and
the script waits on the runner's ``finished`` signal with a threading.Event.

    python examples/07_pydidas_apprunner.py
"""

import threading

import numpy as np

from daskfarm.compat import AppRunner


class TestApp:
    def __init__(self):
        self._n = 20
        self.results = np.zeros(self._n)

    def multiprocessing_get_tasks(self):
        return np.arange(self._n)

    def multiprocessing_func(self, index):
        return 3 * index + 5

    def multiprocessing_store_results(self, index, *args):
        self.results[index] = args[0]


class TestObject:
    def __init__(self):
        self.app = None
        self.results = []

    def store_app(self, app):
        self.app = app

    def store_results(self, index, *results):
        self.results.append([index, results[0]])


def run_app_runner():
    done = threading.Event()

    tester = TestObject()
    test_app = TestApp()
    app_runner = AppRunner(test_app)

    app_runner.sig_final_app_state.connect(tester.store_app)
    app_runner.sig_results.connect(tester.store_results)
    app_runner.finished.connect(done.set)

    app_runner.start()
    if not done.wait(timeout=300):
        raise TimeoutError("the AppRunner did not finish within 300 s")

    print("Raw results as received from the signal:")
    print("Results: ", tester.results)
    print("\nThe test app does not have any stored results because it was not connected:")
    print("test_app.results: ", test_app.results)
    print("\nThe final app has all the results stored internally in the correct order:")
    print("final_app.results:", tester.app.results)


if __name__ == "__main__":
    run_app_runner()
