"""examples/quickstart.ipynb runs in a real Jupyter kernel (nbclient + ipykernel).

It shows the Farm's and the Run's HTML cards, tqdm's widget as the progress bar (ipywidgets
installed) or tqdm's text bar (ipywidgets hidden from the kernel), never a warning, and
dask.compute on the farm's workers.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"


def execute(tmp_path: Path, *, hide_widgets: bool = False):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    if hide_widgets:  # as in a kernel where ipywidgets is not installed
        nb.cells.insert(0, nbformat.v4.new_code_cell(
            'import sys\nsys.modules["ipywidgets"] = None'))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    # "python3" is ipykernel's own kernel: this interpreter, with this checkout on its path
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)
    return nb


def outputs(nb) -> list[dict]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


def stderr_text(nb) -> str:
    return "".join(o.get("text", "") for o in outputs(nb)
                   if o.output_type == "stream" and o.name == "stderr")


def html_outputs(nb) -> list[str]:
    return [o.data["text/html"] for o in outputs(nb)
            if o.output_type in ("execute_result", "display_data") and "text/html" in o.data]


def assert_common(nb) -> None:
    cards = html_outputs(nb)
    farm_card = next(c for c in cards if "<h3" in c and ">Farm<" in c)
    assert "LocalCluster" in farm_card and "Workers:</strong> 2" in farm_card
    assert "/farm?token=" in farm_card
    run_card = next(c for c in cards if "Run: oscillate" in c)
    assert "finished" in run_card and "16 / 16 (100%)" in run_card
    results = [o for o in outputs(nb) if o.output_type == "execute_result"]
    plain = [o.data.get("text/plain", "") for o in results]
    assert "16" in plain  # len(amplitudes)
    assert any(p.startswith("(0.7071") for p in plain)  # dask.compute on the farm
    streams = "".join(o.get("text", "") for o in outputs(nb) if o.output_type == "stream")
    assert "16 results stored" in streams
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    err = stderr_text(nb)
    assert "Warning" not in err and "IProgress" not in err, err


@pytest.mark.slow
def test_quickstart_notebook_shows_cards_and_a_widget_bar(tmp_path):
    nb = execute(tmp_path)
    assert_common(nb)
    widgets = [o for o in outputs(nb) if o.output_type == "display_data" and WIDGET in o.data]
    assert widgets, "no tqdm widget"
    assert "oscillate" not in stderr_text(nb)  # the widget, not a text bar too
    assert (tmp_path / "quickstart-results").is_dir()


@pytest.mark.slow
def test_without_ipywidgets_the_bar_is_text_and_no_warning(tmp_path):
    nb = execute(tmp_path, hide_widgets=True)
    assert_common(nb)
    assert not [o for o in outputs(nb) if o.output_type == "display_data" and WIDGET in o.data]
    err = stderr_text(nb)
    assert "oscillate" in err and "16/16" in err, err
