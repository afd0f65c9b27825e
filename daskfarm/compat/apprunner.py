"""pydidas' ``AppRunner`` on a :class:`~daskfarm.Farm`: an app's tasks on every worker, without Qt.

An *app* is any object with pydidas' multiprocessing methods: ``multiprocessing_get_tasks()``
(the tasks), ``multiprocessing_func(task)`` (run on the workers) and
``multiprocessing_store_results(index, *results)`` (run here, for every result), plus, when it
defines them, ``multiprocessing_pre_run()``, ``multiprocessing_pre_cycle(task)``,
``multiprocessing_carryon()`` and ``multiprocessing_post_run()``. A pydidas ``BaseApp`` is one;
so is a plain class with these methods.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from daskfarm.compat._appcall import AppCall, copy_app, has_hook
from daskfarm.compat.signals import Signal
from daskfarm.compat.workercontroller import WorkerController
from daskfarm.exceptions import AppMethodError, FarmStateError, FarmTypeError
from daskfarm.farm import Farm

logger = logging.getLogger(__name__)

__all__ = ["AppMethodError", "AppRunner"]

_REQUIRED = ("multiprocessing_get_tasks", "multiprocessing_func", "multiprocessing_store_results")


class AppRunner(WorkerController):
    """Run an app's tasks on a farm and collect every result in the runner's copy of the app.

    pydidas' ``AppRunner``: the runner works on a copy of ``app`` (the caller's app is left
    untouched); :meth:`start` returns at once, and in the background the copy's
    ``multiprocessing_pre_run()`` runs, its ``multiprocessing_get_tasks()`` become the tasks,
    each worker process builds its own clone of the app (running its ``pre_run``) and calls
    ``multiprocessing_pre_cycle(task)``, waits for ``multiprocessing_carryon()`` and returns
    ``multiprocessing_func(task)``. Every result goes to the copy's
    ``multiprocessing_store_results(task, result)`` and out through ``sig_results``; when the
    last is in, the copy's ``multiprocessing_post_run()`` runs, ``sig_final_app_state`` sends
    a copy of it, and ``finished`` is emitted.

    Parameters
    ----------
    app : object
        The app (see the module docstring for the methods it needs).
    n_workers : int, optional
        Worker processes of the farm the runner starts: ``None``/``0`` one per CPU, ``-k``
        all but k, ``k > 0`` exactly k. Ignored with ``farm``.
    farm : Farm, optional
        Run on this farm (a remote cluster, say) instead of a new LocalCluster; left open.

    Attributes
    ----------
    sig_progress : Signal
        ``(fraction)`` after every result, done / number of tasks.
    sig_results : Signal
        ``(task, result)`` for every result (pydidas' ``(index, *results)``).
    finished : Signal
        Once the runner has ended (all tasks done, or :meth:`stop`).
    sig_final_app_state : Signal
        ``(app)``: a copy of the runner's app after its post-run, holding every result.
    sig_post_run_called : Signal
        Emitted after the runner's app ran ``multiprocessing_post_run()``.

    Notes
    -----
    Differences from pydidas, on purpose: the caller's app is neither prepared nor sent the
    results (pydidas' seed example says it stays empty; its code connected it anyway, which
    stored results twice); a task that raises is recorded in :attr:`failures` and does not
    hang the runner; workers may be on any Dask cluster.

    Examples
    --------
    >>> import numpy as np
    >>> from daskfarm import AppRunner, SignalSpy
    >>> class TripleApp:
    ...     def __init__(self, n=20):
    ...         self.results = np.zeros(n)
    ...     def multiprocessing_get_tasks(self):
    ...         return np.arange(len(self.results))
    ...     def multiprocessing_func(self, index):
    ...         return 3 * index + 5
    ...     def multiprocessing_store_results(self, index, *results):
    ...         self.results[index] = results[0]
    >>> runner = AppRunner(TripleApp(), n_workers=2)                # doctest: +SKIP
    >>> final = SignalSpy(runner.sig_final_app_state)               # doctest: +SKIP
    >>> runner.start(); runner.wait(120)                            # doctest: +SKIP
    >>> final[0][0].results[:4]                                     # doctest: +SKIP
    array([ 5.,  8., 11., 14.])
    """

    def __init__(self, app: Any, n_workers: int | None = None, *, farm: Farm | None = None):
        missing = [name for name in _REQUIRED if not has_hook(app, name)]
        if missing:
            raise FarmTypeError(
                f"{type(app).__qualname__} is not an app for AppRunner: it lacks "
                f"{', '.join(missing)}; define them (pydidas' BaseApp protocol)"
            )
        super().__init__(n_workers, farm=farm)
        self.sig_final_app_state = Signal("sig_final_app_state")
        self.sig_post_run_called = Signal("sig_post_run_called")
        self._app = copy_app(app)
        self.sig_results.connect(self._store)
        self._starter: threading.Thread | None = None

    # -- pydidas' helpers ------------------------------------------------------------------

    def call_app_method(self, method_name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a method of the runner's copy of the app and return what it returns.

        Raises
        ------
        FarmStateError
            While the runner is running (a ``RuntimeError``, as in pydidas): stop it first.
        AppMethodError
            If the app has no such method (a ``KeyError``).
        """
        if self.flags["running"]:
            raise FarmStateError(
                f"cannot call the app's {method_name}() while the AppRunner is running; "
                "call stop() (or wait()) first"
            )
        method = getattr(self._app, method_name, None)
        if not callable(method):
            raise AppMethodError(
                f"the app {type(self._app).__qualname__} has no method {method_name!r}"
            )
        return method(*args, **kwargs)

    def set_app_param(self, param_name: str, value: Any) -> None:
        """Set a parameter of the runner's app: through its ``set_param_value`` (pydidas'
        apps), or an existing attribute of that name.

        Raises
        ------
        AppMethodError
            If a plain app has no attribute ``param_name`` (a ``KeyError``).
        """
        if has_hook(self._app, "set_param_value"):
            self._app.set_param_value(param_name, value)
        elif hasattr(self._app, param_name):
            setattr(self._app, param_name, value)
        else:
            raise AppMethodError(
                f"the app {type(self._app).__qualname__} has no parameter {param_name!r}"
            )

    def get_app(self) -> Any:
        """A copy of the runner's app (with the results stored so far)."""
        return copy_app(self._app)

    # -- the cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start in the background and return at once (a no-op while running).

        A problem found while starting (the app does not pickle, the farm cannot start) is
        logged, ends the runner (``finished`` is emitted) and is raised by :attr:`progress`.
        """
        with self._lock:
            if self._alive or (self._starter is not None and self._starter.is_alive()):
                return
            self._ended.clear()
            self._starter = threading.Thread(target=self._start, daemon=True,
                                             name="daskfarm-apprunner-start")
            self._starter.start()

    def _start(self) -> None:
        try:
            with self._lock:
                # pickled before the app's pre_run: what that opens is not shipped
                self._call = AppCall(self._app)
            super().start()
        except BaseException as exc:
            logger.error("the AppRunner of %s could not start: %r",
                         type(self._app).__qualname__, exc)
            with self._lock:
                self._error = exc
                self._ended_for_good = True
            self._close_farm()
            self._ended.set()
            self.sig_finished.emit()

    def cycle_pre_run(self) -> None:
        """Prepare the runner's app, hand its tasks to the workers and finalize them."""
        with self._lock:
            if not self._alive:
                return super().cycle_pre_run()
            if has_hook(self._app, "multiprocessing_pre_run"):
                self._app.multiprocessing_pre_run()
            self._version += 1
            self._pending.clear()
            self._finalized = False
            self.add_tasks(self._app.multiprocessing_get_tasks())
            self.finalize_tasks()
            super().cycle_pre_run()

    def cycle_post_run(self, timeout: float = 10) -> None:
        """Release the workers, run the app's post-run, send its final state."""
        super().cycle_post_run(timeout)
        if has_hook(self._app, "multiprocessing_post_run"):
            self._app.multiprocessing_post_run()
        self.sig_final_app_state.emit(copy_app(self._app))
        self.sig_post_run_called.emit()

    def stop(self) -> None:
        starter = self._starter
        if starter is not None and starter is not threading.current_thread():
            starter.join(timeout=120)  # a farm still starting is closed, not left behind
        super().stop()

    stop.__doc__ = WorkerController.stop.__doc__
    close = stop

    def _store(self, task: Any, result: Any) -> None:
        self._app.multiprocessing_store_results(task, result)

    def __repr__(self) -> str:
        return f"<AppRunner of {type(self._app).__qualname__}: {self._done}/{self._target}>"
