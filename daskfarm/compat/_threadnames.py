"""The names pydidas callers use on a ``WorkerController`` beyond its core API: its ``flags``,
its waiting and joining helpers, and the ``QThread`` methods (``wait``, ``quit``, ``exit``,
``requestInterruption``) that pydidas code and tests call.

They are a mixin of :class:`~daskfarm.compat.WorkerController` and work on its state; nothing
here starts or stops work by itself except through the controller's own methods.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("daskfarm.compat.workercontroller")

# Seconds between two looks at the controller while waiting for its tasks (pydidas: 5 ms).
_POLL = 0.005


class ThreadNames:
    """pydidas' and QThread's names on top of the controller's state (a mixin)."""

    @property
    def flags(self) -> dict[str, bool]:
        """pydidas' state flags, as a snapshot (writing to the dict changes nothing).

        ``running``: started and not suspended; ``thread_alive``: not yet ended (by
        :meth:`stop`, or the last finalized task done); ``active``: tasks handed to the
        workers are not all back; ``stop_after_run``: :meth:`finalize_tasks` was called for
        this cycle; ``must_restart``: :meth:`restart` was called before :meth:`start`.

        Examples
        --------
        >>> from daskfarm.compat import WorkerController
        >>> WorkerController().flags["running"]
        False
        """
        with self._lock:
            return {
                "running": self._alive and not self._suspended,
                "thread_alive": not self._ended_for_good,
                "active": any(book.in_flight > 0 for book in self._books),
                "stop_after_run": self._finalized,
                "must_restart": self._must_restart,
            }

    def wait_for_processes_to_finish(self, timeout: float = 2) -> bool:
        """Wait up to ``timeout`` seconds until every task handed to the workers is back.

        Returns
        -------
        bool
            True if none is left; False on timeout (pydidas logs that and goes on, as here).
        """
        deadline = time.monotonic() + timeout
        while self.flags["active"]:
            if time.monotonic() >= deadline:
                logger.debug("%r: tasks still running after %s s", self, timeout)
                return False
            time.sleep(_POLL)
        return True

    def reset_task_list(self) -> None:
        """Drop the tasks not yet handed to the workers; they no longer count toward progress.

        (pydidas kept counting them until the next ``restart``, so progress could stay below
        1; here the target shrinks with the list.)
        """
        with self._lock:
            self._target -= len(self._pending)
            self._pending.clear()

    def join_workers(self, timeout: float | None = None) -> None:
        """Let the tasks handed over finish, then release the workers.

        The current run takes no more tasks (tasks added later go out at the next
        :meth:`restart`, with a new run), its results still arrive, and the farm the controller
        started is closed; a farm it was given stays open.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait for each run's remaining tasks; the farm is closed after that.
        """
        with self._lock:
            book, self._book = self._book, None
            books = list(self._books)
        if book is not None:
            book.run.close_input()
        for each in books:
            if each.drain is not None and each.drain is not threading.current_thread():
                each.drain.join(timeout=timeout)
        self._close_farm(cancel=False)

    # -- QThread's names -------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the controller has ended (QThread's ``wait``); True at once if it never
        started. ``timeout`` in seconds (QThread's milliseconds are not used here).

        Returns
        -------
        bool
            False if it was still running when the time ran out.
        """
        return self._ended.wait(timeout)

    def exit(self, code: int | None = None) -> None:
        """End the controller and release its workers (pydidas' teardown calls this).

        The same as :meth:`stop`; ``code`` (QThread's exit code) is accepted and ignored.
        """
        self.stop()

    def quit(self) -> None:
        """QThread's ``quit()``: the same as ``exit(0)``."""
        self.exit(0)

    def requestInterruption(self) -> None:  # QThread's name
        """Stop without blocking (pydidas' abort button): the running tasks are cancelled, the
        controller ends in the background; :meth:`wait` returns once it has."""
        self._interruption_requested = True
        self.send_stop_signal()
        threading.Thread(target=self.stop, name="daskfarm-controller-interrupt",
                         daemon=True).start()

    def isInterruptionRequested(self) -> bool:  # QThread's name
        """True after :meth:`requestInterruption`."""
        return self._interruption_requested
