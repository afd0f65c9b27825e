"""Brian's text progress report, character for character, and the compat docstrings."""

from __future__ import annotations

import doctest

import pytest

from daskfarm import compat
from daskfarm.compat import progressreporting, signals, taskfarm, workercontroller
from daskfarm.compat.progressreporting import make_text_report, time_rep


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (59.99, "59s"), (60, "1m 0s"), (3599, "59m 59s"), (3600, "1h 0m 0s"),
    (86399, "23h 59m 59s"), (86400, "1d 0h 0m 0s"), (90061.5, "1d 1h 1m 1s"),
])
def test_time_rep(seconds, text):
    assert time_rep(seconds) == text


def test_make_text_report_matches_brian():
    assert make_text_report(30, 0.25) == (
        "25% complete, 30s elapsed, approximately 1m 30s remaining."
    )
    assert make_text_report(5, 0.0) == "0% complete, 5s elapsed."
    # the remaining time appears only above 0.1% done
    assert make_text_report(5, 0.001) == "0% complete, 5s elapsed."
    assert make_text_report(1, 0.002).startswith("0% complete, 1s elapsed, approximately 8m")
    assert make_text_report(7.9, 1.0) == "100% complete, 7s elapsed, approximately 0s remaining."
    # int() truncates, as Brian's str(int(100 * complete)) does
    assert make_text_report(10, 0.999).startswith("99% complete")


@pytest.mark.parametrize("module", [compat, progressreporting, signals, taskfarm,
                                    workercontroller])
def test_docstring_examples_run(module):
    failed, attempted = doctest.testmod(module, verbose=False)
    assert attempted
    assert not failed
