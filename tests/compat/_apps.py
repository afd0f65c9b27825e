"""pydidas-style apps for the AppRunner tests, importable so that worker processes load them."""

from __future__ import annotations

import copy
import os
import threading

import numpy as np
from distributed import Event


class TripleApp:
    """The seed's TestApp: 3 * index + 5 for each index; only the three required methods."""

    def __init__(self, n=12):
        self.n = n
        self.results = np.zeros(n)

    def multiprocessing_get_tasks(self):
        return np.arange(self.n)

    def multiprocessing_func(self, index):
        return 3 * index + 5

    def multiprocessing_store_results(self, index, *results):
        self.results[index] = results[0]


class HookedApp:
    """Records which of pydidas' optional hooks ran, where and how often."""

    def __init__(self, n=6, gate=None, fail_on=None):
        self.n = n
        self.gate = gate  # a distributed.Event name that multiprocessing_carryon waits for
        self.fail_on = fail_on
        self.calls = []  # hooks that ran in this copy, in order
        self.stored = {}
        self.pre_runs_here = 0
        self.lock = None

    def multiprocessing_pre_run(self):
        self.calls.append("pre_run")
        self.pre_runs_here += 1
        self.pid = os.getpid()
        self.lock = threading.Lock()  # opened here, so it never has to be pickled

    def multiprocessing_get_tasks(self):
        self.calls.append("get_tasks")
        return list(range(self.n))

    def multiprocessing_pre_cycle(self, task):
        self.current = task

    def multiprocessing_carryon(self):
        return self.gate is None or Event(self.gate).is_set()

    def multiprocessing_func(self, task):
        if task == self.fail_on:
            raise ValueError(f"task {task} is bad")
        # what this worker process's clone has seen: its pre-run count and the task
        # multiprocessing_pre_cycle was given for this call
        return {"pid": os.getpid(), "pre_runs": self.pre_runs_here, "cycle": self.current,
                "square": task * task}

    def multiprocessing_store_results(self, index, *results):
        self.stored[index] = results[0]

    def multiprocessing_post_run(self):
        self.calls.append("post_run")

    def set_param_value(self, name, value):
        setattr(self, name, value)

    def copy(self, clone_mode=False):
        """pydidas' apps copy themselves; the lock opened by pre_run stays behind."""
        state = {k: v for k, v in vars(self).items() if k != "lock"}
        twin = HookedApp.__new__(HookedApp)
        twin.__dict__.update(copy.deepcopy(state))
        twin.lock = None
        return twin


class UnpicklableApp(TripleApp):
    """An app holding a lock: it cannot be shipped to the workers."""

    def __init__(self):
        super().__init__(3)
        self.lock = threading.Lock()

    def copy(self):
        twin = UnpicklableApp()
        twin.results = self.results.copy()
        return twin


class NotAnApp:
    def multiprocessing_func(self, index):
        return index
