"""Every widget notebook, opened in JupyterLab in Chromium in the smoke profile: all cells
run, every control of every explorer moves, and its figure redraws with no error in the
page, the browser console, the Log Console or the server log. A notebook with a callback
broken on purpose fails, naming the control.

Screenshots (the explorer after Run All, and after each move) go to ``build/browser/``.
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
VIEWPORT = {"width": 1400, "height": 1000}


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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """JupyterLab on a copy of the notebooks (and the broken one), in the smoke profile,
    with a run store of its own."""
    work = tmp_path_factory.mktemp("lab")
    root = lab.copy_notebooks(NOTEBOOKS, work / "notebooks")
    nbformat.write(_broken_notebook(), root / BROKEN)
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
          f"{len(report.log_warnings)} warnings in the Log Console; screenshots: "
          + ", ".join(str(p.relative_to(ROOT)) for p in report.screenshots))
    assert report.moves, f"{notebook}: no control was moved"
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
