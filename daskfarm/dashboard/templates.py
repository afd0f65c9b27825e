"""The HTML cell templates of the panel's tables (Bokeh ``HTMLTemplateFormatter``).

They read numbers only: ``Number()`` coerces whatever a cell holds, so no text from a task
can reach the HTML, and anything that is not a finite number renders as an empty cell. Task
messages, items and names go through ``StringFormatter`` instead (``panel.py``).
"""

from __future__ import annotations

__all__ = ["BAR_TEMPLATE", "DURATION_TEMPLATE", "RUN_PROGRESS_TEMPLATE"]

#: a progress bar for a fraction 0..1
BAR_TEMPLATE = (
    "<% var p = Number(value); if (isFinite(p)) { var w = Math.max(0, Math.min(100, 100 * p)); %>"
    '<div class="farm-bar" style="position:relative;height:14px;margin-top:4px;'
    'background:#e4e4e4;border-radius:3px;overflow:hidden">'
    '<div style="height:100%;width:<%= w.toFixed(1) %>%;background:#6fa8dc"></div>'
    '<span style="position:absolute;top:0;left:0;right:0;text-align:center;font-size:11px;'
    'line-height:14px;color:#222"><%= Math.floor(w) %>%</span></div><% } %>'
)
# A run's progress cell: the bar when its total is known; an endless run has no fraction to
# show, so the cell says how many items are finished, at what rate and for how long
# (it reads the row's numeric columns total, finished, rate and elapsed).
RUN_PROGRESS_TEMPLATE = (
    "<% var t = Number(total); if (isFinite(t) && t > 0) { %>" + BAR_TEMPLATE + "<% } else {"
    " var n = Number(finished), r = Number(rate), s = Math.round(Number(elapsed));"
    " if (isFinite(n) && isFinite(r) && isFinite(s)) {"
    " var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), q = s % 60; %>"
    '<span class="farm-endless"><%= n.toLocaleString("en-US") %> finished, '
    "<%= r.toFixed(r < 10 ? 2 : 1) %>/s, "
    "<%= (h ? h + ':' + (m < 10 ? '0' : '') : '') + m + ':' + (q < 10 ? '0' : '') + q %>"
    "</span><% } } %>"
)
#: seconds as m:ss or h:mm:ss
DURATION_TEMPLATE = (
    "<% var s = Math.round(Number(value)); if (isFinite(s) && s >= 0) {"
    " var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), r = s % 60; %>"
    "<%= (h ? h + ':' + (m < 10 ? '0' : '') : '') + m + ':' + (r < 10 ? '0' : '') + r %><% } %>"
)
