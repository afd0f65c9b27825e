"""Rich notebook views of a Farm and a Run (``_repr_html_``), in the look of Dask's own.

Dask's Client and cluster cards are a square icon, a heading with a grey subtitle and a
two-column table of facts; a Farm's card follows that layout (cluster kind, workers, threads,
memory, dashboard and panel links, its runs), so that it sits well next to Dask's in a
notebook. A Run's card adds a progress bar. Everything shown is escaped: run names and
addresses come from users and networks.

Both views only read: a repr must never block on or change a run, and it must still render
for a closed Farm or a scheduler that stopped answering.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from dask.utils import format_bytes, format_time

logger = logging.getLogger(__name__)

__all__ = ["farm_html", "run_html"]

_ICON = ('<div style="width: 24px; height: 24px; background-color: {fill}; '
         'border: 3px solid {edge}; border-radius: 5px; position: absolute;"> </div>')
_STATUS_COLOURS = {  # (fill, edge): running blue like Dask's workers, ends green/grey/red
    "running": ("#c9daf8", "#1c64f2"),
    "suspended": ("#fdf0c2", "#c27c0e"),
    "stopping": ("#fdf0c2", "#c27c0e"),
    "finished": ("#d5f5d5", "#2e8540"),
    "cancelled": ("#e1e1e1", "#9d9d9d"),
    "failed": ("#fad4d4", "#c81e1e"),
}
_TD = '<td style="text-align: left;">'


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _link(url: str | None) -> str:
    if not url:
        return "none"
    return f'<a href="{_esc(url)}" target="_blank">{_esc(url)}</a>'


def _rows(cells: list[tuple[str, str]]) -> str:
    """A two-column table of ``(label, html)`` cells, filled row by row."""
    out = []
    for i in range(0, len(cells), 2):
        pair = cells[i:i + 2]
        tds = "".join(f"{_TD}<strong>{_esc(label)}:</strong> {value}</td>" for label, value in pair)
        if len(pair) == 1:
            tds += f"{_TD}</td>"
        out.append(f"<tr>{tds}</tr>")
    return '<table style="width: 100%; text-align: left;">' + "".join(out) + "</table>"


def _card(title: str, subtitle: str, colours: tuple[str, str], body: str) -> str:
    fill, edge = colours
    return (f"<div>{_ICON.format(fill=fill, edge=edge)}"
            f'<div style="margin-left: 48px;">'
            f'<h3 style="margin-bottom: 0px;">{_esc(title)}</h3>'
            f'<p style="color: #9d9d9d; margin-bottom: 0px;">{_esc(subtitle)}</p>'
            f"{body}</div></div>")


def progress_bar(fraction: float | None, label: str) -> str:
    """An HTML bar, ``fraction`` 0..1 filled; None (an endless run) shows only the label.

    Examples
    --------
    >>> "width: 50.0%" in progress_bar(0.5, "50%")
    True
    """
    fill = "" if fraction is None else (
        f'<div style="width: {100 * min(1.0, max(0.0, fraction)):.1f}%; height: 100%; '
        'background-color: #6fa8dc;"></div>')
    return ('<div style="position: relative; width: 100%; max-width: 480px; height: 18px; '
            'border: 1px solid #9d9d9d; border-radius: 3px; background-color: #f3f3f3;">'
            f'{fill}<div style="position: absolute; top: 0; left: 6px; font-size: 12px; '
            f'line-height: 18px; color: #222;">{_esc(label)}</div></div>')


def run_figures(run: Any) -> dict[str, Any]:
    """What a Run's card and the text reprs show: counts, total, fraction, rate, elapsed, ETA."""
    fields = run.summary().as_dict()
    counts = run.counts
    total = run.total
    finished = fields["done"] + fields["failed"] + fields["skipped"] + fields["cancelled"]
    elapsed = float(fields["elapsed"])
    rate = (fields["done"] + fields["failed"]) / elapsed if elapsed > 0 else 0.0
    fraction = run.progress if total else None
    eta = None
    if total and not run.done and fraction and fraction > 0:
        eta = elapsed * (1 - fraction) / fraction
    return {"status": fields["status"], "counts": counts, "total": total,
            "finished": finished, "elapsed": elapsed, "rate": rate, "fraction": fraction,
            "eta": eta}


def run_html(run: Any) -> str:
    """The card of a :class:`~daskfarm.Run`: status, counts, a progress bar and the ETA."""
    f = run_figures(run)
    counts = f["counts"]
    if f["total"]:
        label = f"{f['finished']} / {f['total']} ({100 * f['fraction']:.0f}%)"
    else:  # endless: a percentage would be made up
        label = f"{f['finished']} finished, {f['rate']:.3g}/s, {format_time(f['elapsed'])}"
    cells = [
        ("Status", _esc(f["status"])),
        ("Items", _esc(f["total"] if f["total"] else "endless (no total known)")),
        ("Done", _esc(counts["done"])),
        ("Failed", _esc(counts["failed"])),
        ("Skipped", _esc(counts["skipped"])),
        ("Cancelled", _esc(counts["cancelled"])),
        ("Running", _esc(counts["running"])),
        ("Pending", _esc(counts["pending"])),
        ("Elapsed", _esc(format_time(f["elapsed"]))),
        ("Rate", _esc(f"{f['rate']:.3g} items/s")),
    ]
    if f["eta"] is not None:
        cells.append(("ETA", _esc(format_time(f["eta"]))))
    body = (f'<div style="margin: 6px 0;">{progress_bar(f["fraction"], label)}</div>'
            + _rows(cells))
    colours = _STATUS_COLOURS.get(f["status"], _STATUS_COLOURS["cancelled"])
    return _card(f"Run: {run.name}", run.run_id, colours, body)


def _cluster_facts(client: Any) -> tuple[int, int, int] | None:
    """Workers, threads and memory of the cluster now (None: the scheduler does not answer)."""
    try:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
    except TypeError:  # distributed releases without n_workers=
        workers = client.scheduler_info().get("workers", {})
    except Exception:
        logger.debug("no scheduler info for the Farm's repr", exc_info=True)
        return None
    threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
    memory = sum(int(w.get("memory_limit") or 0) for w in workers.values())
    return len(workers), threads, memory


def farm_html(farm: Any, *, cluster: Any, closed: bool) -> str:
    """The card of a :class:`~daskfarm.Farm`: where it runs, its size, links and runs."""
    cluster = cluster if cluster is not None else getattr(farm.client, "cluster", None)
    kind = type(cluster).__name__ if cluster is not None else "remote scheduler"
    if closed:
        return _card("Farm", "closed", _STATUS_COLOURS["cancelled"],
                     "<p>This Farm is closed; create a new Farm() to run more tasks.</p>")
    address = getattr(farm.client.scheduler, "address", "?")
    cells = [("Cluster", _esc(kind)), ("Scheduler", _esc(address))]
    facts = _cluster_facts(farm.client)
    if facts is None:
        cells.append(("Workers", "the scheduler does not answer"))
    else:
        workers, threads, memory = facts
        cells += [("Workers", _esc(workers)), ("Threads", _esc(threads)),
                  ("Memory", _esc(format_bytes(memory) if memory else "no limit"))]
    cells += [("Dashboard", _link(farm.dashboard_link)), ("Farm panel", _link(farm.panel_link))]
    runs = farm.runs
    body = _rows(cells)
    if runs:
        items = "".join(f'<li style="margin-bottom: 4px;">{_run_line(run)}</li>'
                        for run in runs[-20:])
        more = f"<p>... and {len(runs) - 20} earlier runs</p>" if len(runs) > 20 else ""
        body += (f'<details open><summary><strong>Runs ({len(runs)})</strong></summary>'
                 f'<ul style="margin-top: 4px;">{items}</ul>{more}</details>')
    else:
        body += "<p>No runs yet: <code>farm.map(task, items)</code> starts one.</p>"
    return _card("Farm", f"{kind} at {address}", _STATUS_COLOURS["running"], body)


def _run_line(run: Any) -> str:
    f = run_figures(run)
    c = f["counts"]
    of = f" / {f['total']}" if f["total"] else ""
    return (f"<strong>{_esc(run.name)}</strong> {_esc(f['status'])}: "
            f"{_esc(f['finished'])}{_esc(of)} items (done {_esc(c['done'])}, failed "
            f"{_esc(c['failed'])}, skipped {_esc(c['skipped'])}), running {_esc(c['running'])}, "
            f"{_esc(format_time(f['elapsed']))}")
