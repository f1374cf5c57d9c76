"""Every widget notebook, opened in JupyterLab in Chromium in the smoke profile: all cells
run, every control of every explorer moves, and its figure redraws with no error in the
page, the explorer, the browser console, the Log Console or the server log; the controls
sit on one row without cut-off text, the figures are sharp, and a move that trains shows
the explorer's busy state. A notebook with a callback broken on purpose fails, naming the
control, and one laid out badly on purpose fails the layout check, naming each defect.

Screenshots (the explorer after Run All, while a move trains, and after each move) go to
``build/browser/``.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import lab
import nbformat
import notebook_page
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SCREENSHOTS = ROOT / "build" / "browser"
# The notebooks that show an explorer: every one whose code calls pl.widgets.
WIDGET_NOTEBOOKS = sorted(
    path.name for path in NOTEBOOKS.glob("[0-9]*.ipynb")
    if any(cell.cell_type == "code" and "pl.widgets." in cell.source
           for cell in nbformat.read(path, as_version=4).cells))
BROKEN = "zz_broken_callback.ipynb"
# A laptop's screen: JupyterLab with its file browser open leaves the notebook about 900 px.
VIEWPORT = {"width": 1280, "height": 900}
# Notebooks in which every move trains a run (the smoke profile stores none of the settings
# the test moves to): each move must show the explorer's busy state and a progress bar.
TRAINS_ON_EVERY_MOVE = ["09_batchnorm_and_pruning.ipynb"]


def _broken_notebook() -> nbformat.NotebookNode:
    """An explorer with two controls: 'fine' redraws, 'broken' raises in its callback."""
    source = '''\
import ipywidgets as widgets
from matplotlib.figure import Figure
import pruninglab as pl

def draw(figure, fine, broken):
    if broken != 1:
        raise RuntimeError("broken on purpose")
    figure.clear()
    figure.add_subplot().plot([0, 1], [0, fine])

explorer = pl.widgets.Explorer(
    {"fine": widgets.IntSlider(value=1, min=0, max=3, description="fine",
                               continuous_update=False),
     "broken": widgets.IntSlider(value=1, min=0, max=3, description="broken",
                                 continuous_update=False)},
    draw, Figure(figsize=(4, 2)))
display(explorer)
'''
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    return notebook


BAD_LAYOUT = "zz_bad_layout.ipynb"


def _bad_layout_notebook() -> nbformat.NotebookNode:
    """An explorer laid out as 03, 04 and 09 were before they were fixed: a slider readout
    too long for its box, toggle buttons whose label sits above them, a figure rendered at
    a low resolution and stretched to the output's width."""
    source = '''\
import io
import ipywidgets as widgets
from matplotlib.figure import Figure

figure = Figure(figsize=(4, 2))
figure.add_subplot().plot([0, 1], [0, 1])
png = io.BytesIO()
figure.savefig(png, format="png", dpi=50)
controls = widgets.HBox([
    widgets.SelectionSlider(options=["0.995 (PyTorch 0.005)", "0.999 (PyTorch 0.001)"],
                            description="momentum", style={"description_width": "initial"},
                            layout=widgets.Layout(width="330px")),
    widgets.ToggleButtons(options=["global", "layerwise"], description="scope"),
])
display(widgets.VBox([controls, widgets.Image(value=png.getvalue(), format="png")]))
'''
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    return notebook


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """JupyterLab on a copy of the notebooks (and the two bad ones), in the smoke profile,
    with a run store of its own."""
    work = tmp_path_factory.mktemp("lab")
    root = lab.copy_notebooks(NOTEBOOKS, work / "notebooks")
    nbformat.write(_broken_notebook(), root / BROKEN)
    nbformat.write(_bad_layout_notebook(), root / BAD_LAYOUT)
    env = {"PRUNINGLAB_PROFILE": "smoke", "PRUNINGLAB_RUNS": str(work / "runs")}
    os.environ.pop("MPLBACKEND", None)  # the kernels show figures inline, as for a student
    os.environ.pop("PRUNINGLAB_FILL_EXERCISES", None)  # a student's stubs stay stubs
    with lab.jupyterlab(root, work / "server", env=env) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    missing = lab.chromium_missing()
    if missing:
        pytest.fail(missing)
    with lab.chromium() as running:
        yield running


@pytest.fixture
def page(browser, server):
    """A fresh page and the problems it shows; its kernels are shut down afterwards."""
    context = browser.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    problems = notebook_page.Problems()
    problems.watch(opened, allowed_host="127.0.0.1")
    try:
        yield opened, problems
    finally:
        with contextlib.suppress(Exception):  # the browser may be gone already (SIGTERM)
            context.close()
        lab.shutdown_kernels(server)


def test_every_widget_notebook_is_found():
    assert WIDGET_NOTEBOOKS == ["03_batch_norm.ipynb", "04_pruning_basics.ipynb",
                                "06_gimp_and_sgimp.ipynb", "09_batchnorm_and_pruning.ipynb"]


@pytest.mark.parametrize("notebook", WIDGET_NOTEBOOKS)
def test_every_control_redraws_its_figure_without_errors(notebook, server, page):
    opened, problems = page
    log_start = len(server.log_text())
    start = time.monotonic()
    report = notebook_page.check_widgets(opened, server.page_url(notebook), notebook,
                                         SCREENSHOTS, problems)
    failures = report.failures + [
        f"{notebook}: server log: {line}"
        for line in notebook_page.server_errors(server.log_text()[log_start:])]
    print(f"\n{notebook}: Run All {report.run_all_s:.1f} s, all "
          f"{time.monotonic() - start:.1f} s; moves: {'; '.join(report.moves)}; "
          f"{len(report.log_warnings)} warnings in the Log Console; figure "
          f"{', '.join(report.figures)}; screenshots: "
          + ", ".join(str(p.relative_to(ROOT)) for p in report.screenshots))
    assert report.moves, f"{notebook}: no control was moved"
    failures += [f"{notebook}: Log Console warning (output that escaped its widget): {line}"
                 for line in report.log_warnings]
    if notebook in TRAINS_ON_EVERY_MOVE:
        failures += [f"{notebook}: moving {name!r} trained a run without a busy state"
                     for name in report.moved if name not in report.busy]
    assert not failures, "\n".join(failures)


def test_a_broken_callback_fails_naming_its_control(server, page, tmp_path):
    opened, problems = page
    report = notebook_page.check_widgets(opened, server.page_url(BROKEN), BROKEN, tmp_path,
                                         problems, redraw_timeout_s=10)
    redraw_failures = [f for f in report.failures if "did not change" in f]
    assert len(redraw_failures) == 1, report.failures
    assert "control 'broken' moved from '1' to '2'" in redraw_failures[0]
    assert any("RuntimeError: broken on purpose" in f for f in report.failures), \
        report.failures
    assert not any("'fine'" in f for f in report.failures), report.failures


def test_the_layout_check_names_a_wrapped_control_cut_text_and_a_stretched_figure(server,
                                                                                 page):
    opened, _ = page
    notebook_page.open_notebook(opened, server.page_url(BAD_LAYOUT))
    notebook_page.run_all_cells(opened, timeout_s=120)
    (explorer,) = notebook_page.explorers(opened)
    problems = notebook_page.layout_problems(explorer)
    assert any(p.startswith("control 'scope' wraps") for p in problems), problems
    assert any(p.startswith("text '0.995 (PyTorch 0.005)' is cut off") for p in problems), \
        problems
    assert any("stretched, so blurry" in p for p in problems), problems
