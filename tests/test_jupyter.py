"""Notebook views: the Farm's and the Run's HTML cards, and the progress bar's choice."""

from __future__ import annotations

import itertools
import re
from html.parser import HTMLParser

from daskfarm import Farm
from tests._tasks import reports_until_released, square
from tests.conftest import wait_for

_VOID = {"br", "hr", "img", "input", "meta", "link"}


class _Balance(HTMLParser):
    """Checks that every opened tag is closed, in order."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def well_formed(markup: str) -> bool:
    parser = _Balance()
    parser.feed(markup)
    parser.close()
    return not parser.errors and not parser.stack


def text_of(markup: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup))


def test_farm_card_shows_cluster_workers_links_and_runs(farm):
    farm.map(square, range(5), name="squares <b>", progress=False).wait()
    card = farm._repr_html_()
    assert well_formed(card)
    text = text_of(card)
    assert "Farm" in text and "LocalCluster" in text
    assert "Workers: 2" in text and "Threads: 2" in text
    assert "Memory:" in text and "GiB" in text
    assert f'href="{farm.dashboard_link}"' in card
    assert farm.panel_link.split("?")[0] in card
    assert "squares &lt;b&gt;" in card and "<b>" not in card  # user text is escaped
    assert "finished: 5 / 5 items (done 5, failed 0, skipped 0)" in text


def test_a_closed_farm_card_says_so():
    with Farm(n_workers=1, dashboard=False) as farm:
        assert "No runs yet" in text_of(farm._repr_html_())
    card = farm._repr_html_()
    assert well_formed(card) and "closed" in text_of(card)


def test_run_card_has_status_counts_bar_and_eta(farm, release):
    run = farm.map(_gated_until, [(i, release.name) for i in range(4)], progress=False,
                   name="gated", batch_size=1)
    wait_for(lambda: run.counts["running"] >= 1, message="a running item")
    card = run._repr_html_()
    assert well_formed(card)
    text = text_of(card)
    assert "Run: gated" in text and "Status: running" in text
    assert "/ 4 (" in text and "%)" in text
    assert "Items: 4" in text
    wait_for(lambda: run.progress > 0, message="reported progress")
    assert re.search(r"ETA: [\d.]+ \w+", text_of(run._repr_html_()))  # time left, from it
    release.set()
    run.wait(timeout=60)
    card = run._repr_html_()
    text = text_of(card)
    assert "Status: finished" in text and "Done: 4" in text
    assert "4 / 4 (100%)" in text and "width: 100.0%" in card
    assert "ETA" not in text  # nothing left to wait for


def test_endless_run_card_shows_count_rate_elapsed_not_percent(farm, release):
    run = farm.map(_gated_until, ((i, release.name) for i in itertools.count()),
                   progress=False, name="endless", batch_size=1)
    wait_for(lambda: run.counts["running"] >= 1, message="a running item")
    card = run._repr_html_()
    assert well_formed(card)
    text = text_of(card)
    assert "Items: endless" in text
    assert re.search(r"\d+ finished, [\d.e+-]+/s, [\d.]+ \w+", text), text
    assert "%" not in text and "width:" not in card.split("max-width")[1].split("</div>")[0]
    run.cancel(grace=0)
    release.set()


def _gated_until(pair):
    x, event = pair
    return reports_until_released(x, event)
