"""Cancel, terminate, suspend and resume from the page, for sessions opened with the token.

Security model:

- The token is checked once, when a session's document is built, with
  ``hmac.compare_digest``. A session without it gets no control model at all: no button, no
  callback, no hidden widget a script could press or fill (a hidden button is still pressable).
- Row selection is turned into Dask keys in the browser, at selection time, so a refresh that
  reorders rows cannot redirect a click; the server then acts only on keys of tasks that are
  running now.
- ``daskfarm.controls: false`` (dask config, read on the scheduler) or
  ``FarmPlugin(controls=False)`` turns the controls off for everybody. The token is never
  logged.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import dask
from bokeh.layouts import column, row
from bokeh.models import Button, CustomJS, Div, TextInput
from distributed.utils import log_errors

from daskfarm.dashboard._mount import session_arguments
from daskfarm.dashboard.panel import active_runs, key_id

logger = logging.getLogger(__name__)

# Runs in the browser whenever the selection changes: remember the *ids* of the selected
# rows, as the user saw them, in the hidden admin-only input that the server reads.
_REMEMBER_IDS = """
const ids = source.data[field];
const chosen = cb_obj.indices.filter((i) => i < ids.length).map((i) => ids[i]);
target.value = chosen.join("\\n");
"""


def controls_enabled(plugin: Any) -> bool:
    """True unless the plugin or the ``daskfarm.controls`` config key turned controls off."""
    return (bool(getattr(plugin, "controls", False)) and bool(getattr(plugin, "token", None))
            and bool(dask.config.get("daskfarm.controls", True)))


def is_admin(plugin: Any, doc: Any) -> bool:
    """True if the session's URL carries the plugin's token (and controls are on)."""
    if not controls_enabled(plugin):
        return False
    given = (session_arguments(doc).get("token") or [b""])[0]
    if isinstance(given, str):
        given = given.encode()
    return hmac.compare_digest(given, plugin.token.encode())


class Controls:
    """The admin-only control row of one session's page.

    Parameters
    ----------
    plugin : FarmPlugin
        Carries out the actions (``cancel_keys``, ``control``).
    page : FarmPage
        Its tables' selections choose what the buttons act on.
    """

    def __init__(self, plugin: Any, page: Any):
        self.plugin = plugin
        self.page = page
        self.selected_tasks = TextInput(value="", visible=False, name="farm-selected-tasks")
        self.selected_run = TextInput(value="", visible=False, name="farm-selected-run")
        for table, target, field in ((page.tasks, self.selected_tasks, "id"),
                                     (page.runs, self.selected_run, "run_id")):
            table.source.selected.js_on_change("indices", CustomJS(
                args={"source": table.source, "target": target, "field": field},
                code=_REMEMBER_IDS,
            ))
        page.tasks.selected_ids = lambda: _lines(self.selected_tasks.value)
        page.runs.selected_ids = lambda: _lines(self.selected_run.value)

        self.cancel = Button(label="Cancel selected tasks", button_type="danger",
                             css_classes=["farm-cancel"])
        self.terminate = Button(label="Terminate run", button_type="danger",
                                css_classes=["farm-terminate"])
        self.suspend = Button(label="Suspend feeding", button_type="warning",
                              css_classes=["farm-suspend"])
        self.resume = Button(label="Resume feeding", button_type="success",
                             css_classes=["farm-resume"])
        self.cancel.on_click(self._on_cancel)
        self.terminate.on_click(lambda: self._on_run_action("terminate"))
        self.suspend.on_click(lambda: self._on_run_action("suspend"))
        self.resume.on_click(lambda: self._on_run_action("resume"))
        self.message = Div(
            text="Select tasks in the lower table to cancel them; run buttons act on the run "
                 "selected in the upper table (or on the only active run).",
            render_as_text=True, css_classes=["farm-control-status"],
        )
        self.root = column(
            row(self.cancel, self.terminate, self.suspend, self.resume, self.selected_tasks,
                self.selected_run),
            self.message,
            sizing_mode="stretch_width",
        )

    def _closed(self) -> bool:
        mount = self.page.mount
        return mount is not None and mount.closed

    def _say(self, text: str) -> None:
        self.message.text = text

    @log_errors
    def _on_cancel(self) -> None:
        if self._closed():
            return
        wanted = _lines(self.selected_tasks.value)
        whole: dict[str, list] = {}  # run id -> Dask keys whose item is not known
        items: dict[str, list] = {}  # run id -> (Dask key, item index) of reported items
        for run in active_runs(self.plugin):
            for key in run.processing:
                kid = key_id(key)
                if kid in wanted:
                    whole.setdefault(run.run_id, []).append(key)
                for index in run.rows.get(key, ()):
                    if f"{kid}/{index}" in wanted:
                        items.setdefault(run.run_id, []).append((key, index))
        cancelled = sum(self.plugin.cancel_keys(run_id, keys, reason="cancelled from the panel")
                        for run_id, keys in whole.items())
        cancelled += sum(self.plugin.cancel_items(run_id, pairs)
                         for run_id, pairs in items.items())
        by_run = sorted(set(whole) | set(items))
        self.selected_tasks.value = ""
        self.page.tasks.source.selected.indices = []
        if not wanted:
            self._say("Nothing selected: click rows of the tasks table first (Ctrl/Shift for "
                      "several).")
        elif cancelled:
            logger.info("panel: cancelled %d task(s) of %s", cancelled, by_run)
            self._say(f"Cancelled {cancelled} task(s).")
        else:
            self._say("The selected tasks are no longer running.")

    @log_errors
    def _on_run_action(self, action: str) -> None:
        if self._closed():
            return
        run = self._target_run()
        if run is None:
            return
        self.plugin.control(run.run_id, action)
        logger.info("panel: %s run %s", action, run.run_id)
        done = {"terminate": "Terminated", "suspend": "Suspended feeding of",
                "resume": "Resumed feeding of"}[action]
        self._say(f"{done} run {run.name}.")
        if action == "terminate":
            self.selected_run.value = ""
            self.page.runs.source.selected.indices = []

    def _target_run(self) -> Any:
        chosen = sorted(_lines(self.selected_run.value))
        active = active_runs(self.plugin)
        if chosen:
            run = self.plugin.runs.get(chosen[0])
            if run is None or run.finished is not None:
                self._say("The selected run has already ended.")
                return None
            return run
        if len(active) == 1:
            return active[0]
        self._say("Select a run in the runs table first." if active else "No run is active.")
        return None


def _lines(text: str) -> set[str]:
    return {line for line in text.split("\n") if line}
