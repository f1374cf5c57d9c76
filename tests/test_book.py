"""The course site (``make book``): a page per notebook with its figures, solutions and
answers folded, exercises in task boxes, a Binder link on every page, an explorer's default
figure in its place, nothing from another host; the check that says so finds each fault
planted in a built site; executed copies are reused only when current."""

from __future__ import annotations

from pruninglab import book

import base64
import io
import os
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def site(small_site):
    """The site of notebooks 00, 01, 03 and 04 in the smoke profile (tests/conftest.py)."""
    return small_site


def read(site, name: str) -> str:
    return (site.html / f"{Path(name).stem}.html").read_text()


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_site_has_a_page_per_notebook_and_passes_its_check(site):
    assert site.index.exists()
    assert [n[:2] for n in site.notebooks] == ["00", "01", "03", "04"]
    sources = [site.html.parent.parent / "executed" / n for n in site.notebooks]
    assert book.check_site(site.html, site.notebooks, sources=sources) == []
    index = read(site, "index")
    for name in site.notebooks:  # the index links every page, in course order
        assert f'href="{Path(name).stem}.html"' in index
    assert index.index("01_neurons") < index.index("03_batch") < index.index("04_pruning")
    assert "04.1 · a magnitude mask" in text(index)  # each notebook's exercises


def test_every_page_has_its_figures_as_files(site):
    for name in site.notebooks[1:]:
        images = re.findall(r'<img[^>]+src="([^"]+)"', read(site, name))
        assert images, f"{name} shows no figure"
        for src in images:
            assert (site.html / src).is_file(), src


def test_solutions_and_answers_are_drop_downs_and_exercises_task_boxes(site):
    page = read(site, "04_pruning_basics")
    folded = re.findall(r"<details.*?</details>", page, flags=re.S)
    titles = [text(d)[:40] for d in folded]
    assert sum(t.startswith("Solution 04.") for t in titles) == 3, titles
    assert sum(t.startswith("Answer ") for t in titles) == 3, titles
    solution = next(d for d in folded if "Solution 04.1" in d)
    assert "def magnitude_mask" in text(solution) and "topk" in text(solution)
    assert page.count("pruninglab-exercise") == 3
    assert "Exercise 04.1 · a magnitude mask" in text(page)
    assert page.count("pruninglab-question") == 3


def test_every_page_links_binder_and_says_how_it_ran(site):
    for name in site.notebooks:
        page = read(site, name)
        assert book.binder_url(name) in page.replace("&amp;", "&"), name
        assert "executed in the smoke profile in" in text(page), name


def test_an_explorer_says_it_needs_a_live_kernel_and_shows_its_default_figure(site):
    for name, setting in [("03_batch_norm", "eps = 0.001"),
                          ("04_pruning_basics", "saliency = magnitude")]:
        page = read(site, name)
        note = page.index("pruninglab-live-kernel")
        assert "need a live kernel" in text(page[note:note + 800])
        assert setting in text(page[note:note + 800])
        assert "<img" in page[note:note + 3000], f"{name}: no figure after the note"


def test_maths_is_rendered_by_the_bundled_mathjax(site):
    page = read(site, "01_neurons_and_layers")
    assert re.search(r'<script[^>]+src="_static/mathjax/tex-chtml\.js', page)
    assert (site.html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert r"\(" in page or "$$" in page or r"\[" in page  # maths left for MathJax


# --------------------------------------------------------------------------------------
# The check finds what is wrong
# --------------------------------------------------------------------------------------


def _replace(path: Path, old: str, new: str) -> None:
    """Rewrite ``path`` (a hard link into the built site: unlinked first)."""
    content = path.read_text()
    assert old in content, f"{old!r} is not in {path.name}"
    path.unlink()
    path.write_text(content.replace(old, new))


def _unfold(path: Path) -> None:
    content = path.read_text()
    path.unlink()
    path.write_text(content.replace("<details", "<div").replace("</details>", "</div>"))


def _remove_an_image(path: Path) -> None:
    src = re.search(r'<img[^>]+src="([^"]+)"', path.read_text()).group(1)
    (path.parent / src).unlink()


PLANTED = {
    "a missing page": (lambda html: (html / "01_neurons_and_layers.html").unlink(),
                       "01_neurons_and_layers.html: missing"),
    "a missing figure": (lambda html: _remove_an_image(html / "03_batch_norm.html"),
                         "03_batch_norm.html: image _images/"),
    "a solution shown": (lambda html: _unfold(html / "04_pruning_basics.html"),
                         "04_pruning_basics.html: Solution 04.1 is shown, not folded"),
    "a script from a CDN": (
        lambda html: _replace(html / "index.html", "</head>",
                              '<script src="https://cdn.example.org/x.js"></script></head>'),
        "index.html: refers to another host, cdn.example.org"),
    "a font from another host": (
        lambda html: _replace(html / "_static" / "pruninglab.css", "/* pruninglab",
                              "@import url(https://fonts.example.com/f.css);\n/* pruninglab"),
        "_static/pruninglab.css: url() from another host, fonts.example.com"),
    "a broken link": (
        lambda html: _replace(html / "index.html", 'href="01_neurons_and_layers.html"',
                              'href="01_neurons.html"'),
        "index.html: link 01_neurons.html points at nothing in the site"),
}


@pytest.mark.parametrize("fault", PLANTED)
def test_the_check_reports_a_planted_fault(site, tmp_path, fault):
    html = tmp_path / "html"
    shutil.copytree(site.html, html, copy_function=os.link)
    plant, message = PLANTED[fault]
    plant(html)
    sources = [site.html.parent.parent / "executed" / n for n in site.notebooks]
    problems = book.check_site(html, site.notebooks, sources=sources)
    assert any(p.startswith(message) for p in problems), problems


# --------------------------------------------------------------------------------------
# Executed copies, pages and the command line, without executing anything
# --------------------------------------------------------------------------------------


def _notebook(*sources: str):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 99 · a test"),
                                           *map(nbformat.v4.new_code_cell, sources)])


def _executed(nb, profile="quick", exception=None):
    ran = nbformat.reads(nbformat.writes(nb), as_version=4)
    ran.cells.insert(1, nbformat.v4.new_code_cell(f'PROFILE = "{profile}"',
                                                  metadata={"tags": ["injected-parameters"]}))
    ran.metadata["papermill"] = {"parameters": {"PROFILE": profile}, "exception": exception,
                                 "duration": 12.5}
    return ran


def _write(nb, path: Path, future: bool = True) -> Path:
    nbformat.write(nb, path)
    if future:  # newer than every module of the library
        stamp = time.time() + 60
        os.utime(path, (stamp, stamp))
    return path


def test_a_current_executed_copy_is_reused_and_each_stale_one_says_why(tmp_path):
    source = _write(_notebook("x = 1"), tmp_path / "99_test.ipynb", future=False)
    copy = tmp_path / "executed.ipynb"
    assert book.staleness(source, copy, "quick") == "not executed yet"
    _write(_executed(_notebook("x = 1")), copy)
    assert book.staleness(source, copy, "quick") is None
    assert book.staleness(source, copy, "smoke") == "it ran with PROFILE='quick'"
    _write(_executed(_notebook("x = 2")), copy)
    assert book.staleness(source, copy, "quick") == "the notebook changed since"
    _write(_executed(_notebook("x = 1"), exception=True), copy)
    assert book.staleness(source, copy, "quick") == "its last run failed"
    _write(_executed(_notebook("x = 1")), copy, future=False)
    os.utime(copy, (0, 0))  # older than the library
    assert book.staleness(source, copy, "quick").startswith("pruninglab/")


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), "red").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _explorer_state(png: str) -> dict:
    def model(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls",
                "model_module_version": "2.0.0", "state": state}

    image = model("ImageModel", format="png")
    image["buffers"] = [{"data": png, "encoding": "base64", "path": ["value"]}]
    return {"box": model("VBoxModel", children=["IPY_MODEL_row", "IPY_MODEL_image"]),
            "row": model("HBoxModel", children=["IPY_MODEL_slider", "IPY_MODEL_choice"]),
            "slider": model("FloatSliderModel", description="density", value=0.05),
            "choice": model("DropdownModel", description="scope", index=1,
                            _options_labels=["layerwise", "global"]),
            "image": image}


def test_a_page_folds_solutions_and_answers_and_replaces_an_explorer_by_its_figure():
    png = _png()
    nb = _notebook("import pruninglab as pl",
                   "explorer = pl.widgets.pruning_playground(model)\nprint('headless')")
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="headless\n")]
    nb.cells += [
        nbformat.v4.new_markdown_cell("### Exercise 99.1 · a thing\nWrite `f`.",
                                      metadata={"tags": ["exercise"]}),
        nbformat.v4.new_code_cell("# Solution 99.1 (open it after you tried)\ndef f():\n"
                                  "    return 1", metadata={"tags": ["solution"]}),
        nbformat.v4.new_markdown_cell("**Question 1.** Why?", metadata={"tags": ["question"]}),
        nbformat.v4.new_markdown_cell("**Answer 1** (open it after you have answered)\n\n"
                                      "Because.", metadata={"tags": ["answer"]}),
    ]
    ran = _executed(nb)
    ran.metadata["widgets"] = {book.WIDGET_STATE: {"state": _explorer_state(png)}}
    made = book.page(ran, "99_test.ipynb", binder_repository="someone/course")

    assert made.cells[0].source == "# 99 · a test"
    assert "someone/course/HEAD?urlpath=lab/tree/notebooks/99_test.ipynb" in made.cells[1].source
    assert "executed in the quick profile in 12 s · exercises 99.1" in made.cells[1].source
    assert all("injected-parameters" not in c.metadata.get("tags", []) for c in made.cells)
    explorer = next(c for c in made.cells if "pl.widgets" in c.get("source", ""))
    note, figure = explorer.outputs
    assert "needs a live kernel" not in note.data["text/html"]  # "Its controls need ..."
    assert "need a live kernel" in note.data["text/html"]
    assert "(density = 0.05; scope = global)" in note.data["text/html"]
    assert figure.data["image/png"] == png
    sources = [c.source for c in made.cells]
    assert (":::{admonition} Exercise 99.1 · a thing\n:class: pruninglab-exercise\n\n"
            "Write `f`.\n:::") in sources
    assert ":::{dropdown} Solution 99.1\n:class-container: pruninglab-solution\n\n```python\n" \
        "def f():\n    return 1\n```\n:::" in sources
    assert ":::{admonition} Question 1\n:class: pruninglab-question\n\nWhy?\n:::" in sources
    assert ":::{dropdown} Answer 1\n:class-container: pruninglab-answer\n\nBecause.\n:::" \
        in sources
    assert "widgets" not in made.metadata and "widgets" in ran.metadata  # the input is kept


def test_a_page_keeps_the_headless_output_when_the_widget_state_has_no_explorer():
    ran = _executed(_notebook("explorer = pl.widgets.rewind_explorer(setup)"))
    made = book.page(ran, "99_test.ipynb")
    (note,) = next(c for c in made.cells if "rewind_explorer" in c.get("source", "")).outputs
    assert "need a live kernel" in note.data["text/html"]
    assert "Below" not in note.data["text/html"]  # no figure to show, none promised


@pytest.mark.parametrize("argv, message", [
    (["--profile", "fast"], "--profile 'fast' is unknown; known profiles: smoke, quick, gpu, full"),
    (["--binder", "not a repo"], "--binder 'not a repo' is not a GitHub OWNER/REPO"),
])
def test_the_command_names_a_bad_argument_and_exits_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit:
        book.main(argv)
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_a_selection_that_matches_no_notebook_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"select=\['77'\] matches no notebook; the notebooks"):
        book.build(["77"], out=tmp_path)
