"""Starting a run: from checked options to a feeder ready to go, and ending it.

:func:`start_run` does, in order, what ``Farm.map`` promises before the first item: check the
task and the items, pickle the task once, check that every worker can load it (preflight),
open the store and its resume filter, and build the run's state, its handle and its feeder.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from daskfarm import config
from daskfarm.client.bar import TerminalBar, want_bar
from daskfarm.client.batching import BatchSizer
from daskfarm.client.feeder import Feeder
from daskfarm.client.options import (
    MapOptions,
    check_init_arguments,
    check_items,
    check_task,
    qualified_name,
    safe_name,
)
from daskfarm.client.preflight import preflight
from daskfarm.client.source import ItemSource, ResumeFilter
from daskfarm.client.state import RunState
from daskfarm.client.status import StatusPublisher
from daskfarm.run import Run
from daskfarm.store import KEY_SCHEME
from daskfarm.worker import execute

__all__ = ["end_run", "start_run"]

logger = logging.getLogger(__name__)


def start_run(farm: Any, task: Any, items: Any, opts: MapOptions) -> tuple[Run, RunState, Feeder]:
    """Build the run of ``task`` over ``items`` on ``farm`` (not started yet)."""
    check_task(task)
    check_items(items)
    identity = opts.name or qualified_name(task)
    short = opts.name or identity.rsplit(".", 1)[-1]
    run_id = f"{safe_name(identity.rsplit('.', 1)[-1])}-{uuid.uuid4().hex[:12]}"
    spec = execute.make_spec(task, star=opts.star, initargs=opts.initargs,
                             initkwds=opts.initkwds, retries=opts.retries,
                             report_interval=config.get_seconds("report-interval"),
                             timeout=opts.timeout, grace=config.get_seconds("cancel-grace"),
                             timed=opts.store is not None)
    check_init_arguments(task, spec.initargs, spec.initkwds, spec.pass_process_number)
    spec_bytes = execute.dumps_spec(spec)
    preflight(farm.client, spec_bytes, identity)

    dm = open_store(opts.store, farm._owned_stores)
    session = resume = None
    if dm is not None:
        stored = dm.stored_keys() if opts.resume else None
        resume = ResumeFilter(f"{identity}:{opts.version!r}", stored, read=dm.get_many)
        check_first_key(resume, items)
        session = dm.session(run_id=run_id, task=identity, version=opts.version,
                             commit_interval=config.get_seconds("store.commit-interval"),
                             commit_records=int(config.get("store.commit-records")),
                             key_scheme=KEY_SCHEME)
    total = opts.total(items)
    state = RunState(name=short, total=total, ordered=opts.ordered,
                     buffersize=opts.buffersize, errors=opts.errors,
                     input_open=items is None)
    bar = TerminalBar(short, total) if want_bar(opts.progress) else None
    status = StatusPublisher(run_id, state, client=farm.client, plugin=farm._plugin, bar=bar,
                             has_plot=opts.plot.labels() if opts.plot is not None else False)
    fixed = None if opts.batch_size == "auto" else opts.batch_size
    feeder = Feeder(run_id, state, client=farm.client, source=ItemSource(items, state),
                    resume=resume, session=session, spec_bytes=spec_bytes,
                    sizer=BatchSizer(fixed), capacity=farm._capacity, retries=opts.retries,
                    status=status, plot=opts.plot, plugin=farm._plugin,
                    on_end=lambda: farm._end_run(run_id, session))
    run = Run(run_id, state)
    run._join = feeder.join
    return run, state, feeder


def open_store(store: Any, owned: list):
    """The run's DataManager; one opened from a path is the Farm's to close (``owned``)."""
    if store is None:
        return None
    from daskfarm.store import DataManager

    if isinstance(store, DataManager):
        return store
    dm = DataManager(store)
    owned.append(dm)
    return dm


def check_first_key(resume: ResumeFilter, items: Any) -> None:
    """An item type with no stable store key fails at ``map()`` when the first item is at
    hand (a sequence); a generator's items are keyed as they are pulled."""
    if isinstance(items, Sequence) and len(items):
        resume.keys([items[0]])


def end_run(client: Any, run_id: str, session: Any) -> None:
    """Close the run's shard, and tell the workers to forget the run (class tasks' close())."""
    if session is not None:
        session.close()
    if client.status != "running":
        # closing, closed, or reconnecting to a lost scheduler: a call now would block until
        # it times out
        return
    try:
        client.run(execute.close_run, run_id, on_error="ignore")
    except Exception:
        logger.debug("could not tell the workers that run %s ended", run_id, exc_info=True)
