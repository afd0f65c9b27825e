"""Brian 1's text progress reports (``brian.utils.progressreporting``), to the character.

``run_tasks(..., verbose=True)`` prints its per-process and overall lines with these, so a
script that parsed Brian's output keeps working.
"""

from __future__ import annotations

__all__ = ["make_text_report", "time_rep"]


def time_rep(t: float) -> str:
    """Brian's text for a duration: ``"42s"``, ``"3m 5s"``, ``"2h 0m 7s"``, ``"1d 2h 3m 4s"``.

    The time is truncated to whole seconds first.

    Parameters
    ----------
    t : float
        Seconds.

    Returns
    -------
    str

    Examples
    --------
    >>> time_rep(59.9)
    '59s'
    >>> time_rep(3725)
    '1h 2m 5s'
    >>> time_rep(90061)
    '1d 1h 1m 1s'
    """
    t = int(t)
    if t < 60:
        return f"{t}s"
    secs = t % 60
    mins = t // 60
    if mins < 60:
        return f"{mins}m {secs}s"
    mins = mins % 60
    hours = t // (60 * 60)
    if hours < 24:
        return f"{hours}h {mins}m {secs}s"
    hours = hours % 24
    days = t // (60 * 60 * 24)
    return f"{days}d {hours}h {mins}m {secs}s"


def make_text_report(elapsed: float, complete: float) -> str:
    """Brian's one-line progress text, with a linear estimate of the time remaining.

    Parameters
    ----------
    elapsed : float
        Seconds since the work started.
    complete : float
        The fraction done, 0..1.

    Returns
    -------
    str
        ``"<int(100*complete)>% complete, <elapsed> elapsed, approximately <remaining>
        remaining."``; the remaining-time clause only once more than 0.1% is done.

    Examples
    --------
    >>> make_text_report(30, 0.25)
    '25% complete, 30s elapsed, approximately 1m 30s remaining.'
    >>> make_text_report(5, 0.0)
    '0% complete, 5s elapsed.'
    """
    text = f"{int(100 * complete)}% complete, {time_rep(elapsed)} elapsed"
    if complete > 0.001:
        remaining = elapsed / complete - elapsed
        return f"{text}, approximately {time_rep(remaining)} remaining."
    return f"{text}."
