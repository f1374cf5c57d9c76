"""The course site: the notebooks, executed in the quick profile, as static HTML.

::

    make book                                               # build/book/html/index.html
    python -m pruninglab.course.book                        # the same, with the extra `book`
    python -m pruninglab.course.book --profile smoke 00 01  # a small site of two notebooks

Four steps, each a function here:

1. :func:`executed_copies` takes the notebooks that ``make run`` executed into
   ``build/notebooks/<profile>/`` when they are current (:func:`staleness` says why one is
   not) and executes the others with the headless runner, in a subprocess.
2. :func:`page` turns one executed notebook into the notebook a page is built from: a line
   under the title with a launch-on-Binder link, the run time and the exercises; each
   ``exercise`` cell a task box; each ``solution`` and ``answer`` cell folded into a
   drop-down (an HTML ``<details>``, no script needed); each widget replaced by a note that
   it needs a live kernel and the figure of its default setting, taken from the widget state
   that papermill saved.
3. :func:`write_sources` writes those pages, an index in course order and a ``conf.py``
   (:data:`SPHINX_CONFIG`); Sphinx with MyST-NB renders them without executing anything.
4. :func:`check_site` reads the HTML back: every notebook has its page, every image file
   exists, every link inside the site resolves, each solution is folded, and nothing refers
   to another host but Binder.

The site works offline: MathJax comes from the ``sphinx-mathjax-offline`` wheel, the theme
(sphinx-book-theme) ships its fonts and icons, MyST-NB's widget scripts (which load from a
CDN) are off, and the search box is Sphinx's own, which searches an index in the site.
Why not Jupyter Book 2: it builds through the Node program ``mystmd``, which downloads its
site template from ``api.mystmd.org`` at build time.
"""

from __future__ import annotations

import argparse
import base64
import copy
import html.parser
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat

from . import notebooks

__all__ = ["BINDER_REPOSITORY", "SPHINX_CONFIG", "EXPLORER_CALL", "Site", "staleness",
           "executed_copies", "binder_url", "page", "index_page", "write_sources", "build",
           "check_site", "main"]

# The repository Binder builds; the README's badge points at the same one.
BINDER_REPOSITORY = "OWNER/pruninglab"
BINDER_HOST = "mybinder.org"
LIBRARY = Path(__file__).resolve().parent.parent  # pruninglab/, every folder
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

SPHINX_CONFIG: dict[str, object] = {
    "project": "pruninglab",
    "author": "the pruninglab authors",
    "extensions": ["myst_nb", "sphinx_design", "sphinx-mathjax-offline"],
    "root_doc": "index",
    "html_theme": "sphinx_book_theme",
    "html_title": "pruninglab: a course in pruning",
    "html_theme_options": {
        "home_page_in_toc": True,
        "show_navbar_depth": 1,
        "use_download_button": False,
        "use_repository_button": False,
        "launch_buttons": {},
        "footer_content_items": [],   # the default footer links to the theme's site
        "navigation_with_keys": False,
    },
    "html_static_path": ["_static"],
    "html_css_files": ["pruninglab.css"],
    "html_show_sphinx": False,
    "html_show_copyright": False,
    "html_show_sourcelink": False,
    "html_copy_source": False,
    "nb_execution_mode": "off",   # the notebooks come executed
    "nb_ipywidgets_js": {},       # MyST-NB's default loads the widget scripts from a CDN
    "myst_enable_extensions": ["colon_fence", "dollarmath"],
    "myst_heading_anchors": 3,
    "suppress_warnings": ["mystnb.unknown_mime_type", "misc.highlighting_failure"],
}

CSS = """\
/* pruninglab's course site: the task boxes, drop-downs and explorer notes (course/book.py) */
.pruninglab-meta { font-size: 0.9em; color: var(--pst-color-text-muted); }
.pruninglab-binder { font-weight: 600; }
div.admonition.pruninglab-exercise { border-color: #2a7ab0; }
div.admonition.pruninglab-exercise > .admonition-title { background-color: #e3f0fa; }
div.admonition.pruninglab-question { border-color: #7a5ab0; }
div.admonition.pruninglab-question > .admonition-title { background-color: #eee6fa; }
.pruninglab-live-kernel { border: 1px dashed #999; padding: 0.5em 0.8em; margin: 0.5em 0; }
/* an explorer's figure is rendered at twice its size (widgets.RENDER_SCALE): fit the column */
.cell_output img { max-width: 100%; height: auto; }
"""


# --------------------------------------------------------------------------------------
# 1. Executed copies
# --------------------------------------------------------------------------------------


def _sources(nb) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in nb.cells
            if "injected-parameters" not in cell.metadata.get("tags", [])]


def staleness(source: Path, executed: Path, profile: str) -> str | None:
    """Why the executed copy ``executed`` of the notebook ``source`` cannot be published as
    the ``profile`` run, or ``None`` when it can: it exists, papermill ran it with that
    ``PROFILE`` and no error, its cells are the notebook's, and it is newer than every
    module of the library."""
    if not executed.exists():
        return "not executed yet"
    ran = nbformat.read(executed, as_version=4)
    record = ran.metadata.get("papermill", {})
    if record.get("exception"):
        return "its last run failed"
    if record.get("parameters", {}).get("PROFILE") != profile:
        return f"it ran with PROFILE={record.get('parameters', {}).get('PROFILE')!r}"
    if _sources(ran) != _sources(nbformat.read(source, as_version=4)):
        return "the notebook changed since"
    library = [p for p in LIBRARY.rglob("*.py") if p.name != "book.py"]  # this file: no output
    newest = max(library, key=lambda p: p.stat().st_mtime)
    if newest.stat().st_mtime > executed.stat().st_mtime:
        return f"pruninglab/{newest.relative_to(LIBRARY).as_posix()} changed since"
    return None


def executed_copies(sources: list[Path], folder: Path, profile: str) -> list[Path]:
    """The executed copies of ``sources`` in ``folder``: those that are current as they are,
    the others executed first with ``pruninglab notebooks run`` (in a subprocess,
    so its kernels get the runner's thread settings).

    Raises:
        RuntimeError: when a notebook fails to execute.
    """
    stale = []
    for source in sources:
        reason = staleness(source, folder / source.name, profile)
        if reason:
            print(f"{source.name}: executing ({reason})", flush=True)
            stale.append(source)
    if stale:
        command = [sys.executable, "-m", "pruninglab", "notebooks", "run", "--profile", profile,
                   "--dir", str(sources[0].parent), "--out", str(folder),
                   *(source.name[:2] for source in stale)]
        if subprocess.run(command).returncode != 0:
            raise RuntimeError(f"executing {', '.join(s.name for s in stale)} failed "
                               f"(its output is above; the executed copies are in {folder})")
    return [folder / source.name for source in sources]


# --------------------------------------------------------------------------------------
# 2. A notebook as a page
# --------------------------------------------------------------------------------------


def binder_url(name: str, repository: str = BINDER_REPOSITORY) -> str:
    """The launch-on-Binder address that opens notebook ``name`` in JupyterLab."""
    return (f"https://{BINDER_HOST}/v2/gh/{repository}/HEAD"
            f"?urlpath=lab/tree/notebooks/{name}")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def run_seconds(executed) -> float | None:
    """The seconds papermill took to execute the notebook, or ``None`` if it did not say."""
    return executed.metadata.get("papermill", {}).get("duration")


def _fence(body: str) -> str:
    """A colon fence longer than any run of colons in ``body``."""
    longest = max((len(run) for run in re.findall(r"^:{3,}", body, flags=re.M)), default=2)
    return ":" * max(3, longest + 1)


def _directive(name: str, title: str, body: str, options: dict[str, str]) -> str:
    fence = _fence(body)
    lines = [f"{fence}{{{name}}} {title}", *(f":{key}: {value}" for key, value in options.items())]
    return "\n".join([*lines, "", body.strip(), fence])


# The first line of a tagged cell names it; the group is the title the page shows.
TITLES = {
    "exercise": r"#+\s*(Exercise .+)",         # "### Exercise 04.1 · a magnitude mask"
    "question": r"\*\*(Question \d+)\.?\*\*",   # "**Question 1.** Which criterion ..."
    "answer": r"\*\*(Answer \d+)\*\*.*",       # "**Answer 1** (open it after ...)"
    "solution": r"#\s*(Solution [\d.]+).*",    # "# Solution 04.1 (open it after you tried)"
}


def _titled(cell, kind: str) -> tuple[str, str]:
    """``(title, the rest)`` of a cell tagged ``kind`` (:data:`TITLES`); a cell whose first
    line does not match keeps all its text under the title ``kind``."""
    text = cell.source.strip()
    match = re.match(TITLES[kind], text)
    if not match:
        return kind.capitalize(), text
    return match.group(1).strip(), text[match.end():].strip()


def _task_box(cell, kind: str):
    """An ``exercise`` or ``question`` cell as an admonition titled by its first line."""
    title, text = _titled(cell, kind)
    return nbformat.v4.new_markdown_cell(
        _directive("admonition", title, text, {"class": f"pruninglab-{kind}"}))


def _drop_down(cell, kind: str):
    """A ``solution`` (code) or ``answer`` cell as a drop-down titled by its first line."""
    title, text = _titled(cell, kind)
    if kind == "solution":
        ticks = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", text)), default=0))
        text = f"{ticks}python\n{text}\n{ticks}"
    return nbformat.v4.new_markdown_cell(
        _directive("dropdown", title, text, {"class-container": f"pruninglab-{kind}"}))


def _widget_states(nb) -> dict[str, dict]:
    return nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def _descendants(model_id: str, states: dict[str, dict]) -> list[dict]:
    """The widget models under ``model_id`` (itself included), depth first."""
    model = states.get(model_id)
    if model is None:
        return []
    found = [model]
    for child in model["state"].get("children", []):
        found += _descendants(child.removeprefix("IPY_MODEL_"), states)
    return found


def _setting(model: dict) -> str | None:
    """``description = value`` of a control, or ``None`` for a widget that is no control."""
    state = model["state"]
    if "description" not in state or "value" not in state and "index" not in state:
        return None
    if "_options_labels" in state and state.get("index") is not None:
        value = state["_options_labels"][state["index"]]
    else:
        value = state.get("value")
    if not state["description"] or value is None:
        return None
    return f"{state['description'].rstrip(':')} = {value}"


def _explorer_roots(states: dict[str, dict]) -> list[str]:
    """The model ids of the explorers in the widget state, in the order they were made: the
    boxes that no other widget holds and that hold an image."""
    held = {child.removeprefix("IPY_MODEL_") for model in states.values()
            for child in model["state"].get("children", [])}
    return [model_id for model_id, model in states.items()
            if model_id not in held and model["model_name"] == "VBoxModel"
            and any(m["model_name"] == "ImageModel" for m in _descendants(model_id, states))]


def _explorer_outputs(model_id: str | None, states: dict[str, dict], binder: str) -> list:
    """The outputs that stand for the explorer ``model_id`` on a static page: a note that it
    needs a live kernel, with its controls' default settings, and the figure of that
    default state (from the widget state papermill saved)."""
    models = _descendants(model_id, states) if model_id else []
    settings = [s for s in map(_setting, models) if s]
    figures = [buffer["data"] for model in models if model["model_name"] == "ImageModel"
               for buffer in model.get("buffers", []) if buffer.get("path") == ["value"]]
    note = ("<div class=\"pruninglab-live-kernel\"><p><strong>An explorer.</strong> Its "
            f"controls need a live kernel: <a class=\"pruninglab-binder\" href=\"{binder}\">"
            "launch this notebook on Binder</a> (or open it in JupyterLab) to move them.")
    if figures:
        note += " Below: its figure at the default setting"
        note += f" ({'; '.join(settings)})." if settings else "."
    note += "</p></div>"
    outputs = [nbformat.v4.new_output("display_data", data={"text/html": note})]
    for figure in figures:
        png = figure if isinstance(figure, str) else base64.b64encode(figure).decode()
        outputs.append(nbformat.v4.new_output("display_data", data={"image/png": png}))
    return outputs


# A cell that makes an explorer: ``explorer = pl.widgets.rewind_explorer(...)``.
EXPLORER_CALL = re.compile(r"\bpl\.widgets\.\w+\(")


def page(executed, name: str, binder_repository: str = BINDER_REPOSITORY):
    """The notebook a page of the site is built from, made from the executed notebook
    ``executed`` (an ``nbformat`` notebook; it is not changed) named ``name``.

    Under the title: a launch-on-Binder link, the profile and time of the run and the
    exercises. Cells tagged ``exercise`` and ``question`` become task boxes, ``solution`` and
    ``answer`` drop-downs, papermill's injected parameters go. The outputs of a cell that
    makes an explorer (:data:`EXPLORER_CALL`; the headless run shows a figure, a printout or
    nothing there) become :func:`_explorer_outputs`, as does a widget's output.
    """
    nb = copy.deepcopy(executed)
    binder = binder_url(name, binder_repository)
    states = _widget_states(nb)
    explorers = iter(_explorer_roots(states))
    cells = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags:
            continue
        kind = next((tag for tag in tags if tag in TITLES), None)
        if kind in ("exercise", "question"):
            cells.append(_task_box(cell, kind))
        elif kind in ("solution", "answer"):
            cells.append(_drop_down(cell, kind))
        else:
            if cell.cell_type == "code" and EXPLORER_CALL.search(cell.source):
                cell.outputs = _explorer_outputs(next(explorers, None), states, binder)
            elif cell.cell_type == "code":
                cell.outputs = [new for output in cell.outputs for new in (
                    _explorer_outputs(output["data"][WIDGET_VIEW]["model_id"], states, binder)
                    if WIDGET_VIEW in output.get("data", {}) else [output])]
            cells.append(cell)
    nb.cells = _with_header(cells, name, binder, executed)
    nb.metadata.pop("widgets", None)
    return nb


def _with_header(cells: list, name: str, binder: str, executed) -> list:
    """``cells`` with a line under the first cell's title: Binder, run time, exercises."""
    record = executed.metadata.get("papermill", {})
    profile = record.get("parameters", {}).get("PROFILE", "?")
    seconds = run_seconds(executed)
    ran = f"executed in the {profile} profile" + (f" in {_minutes(seconds)}" if seconds else "")
    ids = [title.partition(" ")[0] for title in _exercise_titles(executed)]
    parts = [f"<a class=\"pruninglab-binder\" href=\"{binder}\">Launch on Binder</a>", ran]
    if ids:
        parts.append("exercises " + ", ".join(ids))
    header = nbformat.v4.new_markdown_cell(
        "<p class=\"pruninglab-meta\">" + " · ".join(parts) + "</p>")
    title, _, rest = cells[0].source.partition("\n")
    if cells[0].cell_type != "markdown" or not title.startswith("# "):
        return [header, *cells]
    top = nbformat.v4.new_markdown_cell(title)
    below = [nbformat.v4.new_markdown_cell(rest)] if rest.strip() else []
    return [top, header, *below, *cells[1:]]


# --------------------------------------------------------------------------------------
# 3. The sources and the build
# --------------------------------------------------------------------------------------


def _title(nb) -> str:
    first = nb.cells[0].source.partition("\n")[0] if nb.cells else ""
    return first.lstrip("#").strip() or "untitled"


def _exercise_titles(nb) -> list[str]:
    """"04.1 · a magnitude mask" for each ``exercise`` cell ("### Exercise 04.1 · ...")."""
    return [_titled(cell, "exercise")[0].removeprefix("Exercise ")
            for cell in nb.cells if "exercise" in cell.metadata.get("tags", [])]


def index_page(executed: dict[str, object]) -> str:
    """The site's home: the course in order, each notebook with its run time in this build
    and its exercises, and the table of contents (MyST Markdown)."""
    rows = ["| notebook | run time (this build) | exercises |", "|---|---|---|"]
    for name, nb in executed.items():
        seconds = run_seconds(nb)
        rows.append(f"| [{_title(nb)}]({name}) | {_minutes(seconds) if seconds else '?'} | "
                    f"{'<br>'.join(_exercise_titles(nb)) or '–'} |")
    profiles = sorted({nb.metadata.get("papermill", {}).get("parameters", {}).get("PROFILE", "?")
                       for nb in executed.values()})
    toc = "\n".join(Path(name).stem for name in executed)
    return f"""# pruninglab: a course in pruning neural networks

The notebooks of [pruninglab](00_index.ipynb), in course order, as they ran in the
{' and '.join(profiles)} profile: every figure and printout below was computed when this
site was built. Each page has a link that opens its notebook on Binder, where the
explorers' controls move and the exercises can be done; the exercises' solutions and the
questions' answers are folded: open them after you tried.

{chr(10).join(rows)}

```{{toctree}}
:hidden:
:caption: The course

{toc}
```
"""


def write_sources(executed: list[Path], folder: Path,
                  binder_repository: str = BINDER_REPOSITORY) -> None:
    """Write the site's sources into ``folder`` (emptied first): one page per executed
    notebook, ``index.md``, ``conf.py`` and ``_static/pruninglab.css``."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "_static").mkdir(parents=True)
    read = {path.name: nbformat.read(path, as_version=4) for path in executed}
    for name, nb in read.items():
        nbformat.write(page(nb, name, binder_repository), folder / name)
    (folder / "index.md").write_text(index_page(read))
    (folder / "_static" / "pruninglab.css").write_text(CSS)
    config = "\n".join(f"{key} = {value!r}" for key, value in SPHINX_CONFIG.items())
    (folder / "conf.py").write_text(
        "# Written by pruninglab/course/book.py (SPHINX_CONFIG); edit it there.\n" + config + "\n")


@dataclass(frozen=True)
class Site:
    """A built site: its HTML folder, the notebooks it shows and the seconds each step took."""

    html: Path
    notebooks: list[str]
    execute_seconds: float
    sphinx_seconds: float

    @property
    def index(self) -> Path:
        return self.html / "index.html"


def build(select: list[str] | None = None, *, profile: str = "quick",
          out: Path = Path("build/book"), executed_folder: Path | None = None,
          binder_repository: str = BINDER_REPOSITORY) -> Site:
    """Build the course site into ``out/html`` and check it (:func:`check_site`).

    Args:
        select: notebook name prefixes (``["00", "04"]``); ``None`` takes them all.
        profile: the profile whose executed copies the site shows.
        out: the site's folder: ``src`` (the pages' sources), ``html``, ``doctrees``.
        executed_folder: where the executed copies are and go; default
            ``build/notebooks/<profile>``, where ``make run`` writes them.

    Raises:
        RuntimeError: a notebook failed to execute, Sphinx failed, or the check found a
            problem (each is listed).
    """
    from sphinx.cmd.build import build_main  # the extra `book`; only a build needs it

    sources = notebooks.find_notebooks(select=select)
    if not sources:
        raise ValueError(f"select={select!r} matches no notebook; the notebooks are "
                         f"{', '.join(p.name for p in notebooks.find_notebooks())}")
    out = Path(out)
    tic = time.perf_counter()
    executed = executed_copies(sources, Path(executed_folder or Path("build/notebooks")
                                             / profile).resolve(), profile)
    execute_seconds = time.perf_counter() - tic
    write_sources(executed, out / "src", binder_repository)
    tic = time.perf_counter()
    status = build_main(["-b", "html", "-q", "-E", "-d", str(out / "doctrees"),
                         str(out / "src"), str(out / "html")])
    if status != 0:
        raise RuntimeError(f"sphinx-build failed with status {status} (its messages are above)")
    site = Site(out / "html", [p.name for p in sources], execute_seconds,
                time.perf_counter() - tic)
    problems = check_site(site.html, site.notebooks, sources=executed)
    if problems:
        raise RuntimeError("the site has problems:\n  " + "\n  ".join(problems))
    return site


# --------------------------------------------------------------------------------------
# 4. The check
# --------------------------------------------------------------------------------------


class _PageReader(html.parser.HTMLParser):
    """Collects a page's links, images and text, with the text inside ``<details>`` apart."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.images: list[str] = []
        self.folded: list[str] = []
        self.shown: list[str] = []
        self._details = 0
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "details":
            self._details += 1
        if tag in ("script", "style"):
            self._skip += 1
        for key in ("href", "src", "srcset", "action", "poster", "data"):
            if attrs.get(key):
                (self.images if tag == "img" and key == "src" else self.links).append(attrs[key])

    def handle_endtag(self, tag):
        if tag == "details":
            self._details = max(0, self._details - 1)
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data):
        if not self._skip:
            (self.folded if self._details else self.shown).append(data)


def _words(text: str) -> str:
    return " ".join(text.split())


def _solutions(source: Path) -> list[tuple[str, str]]:
    """``(title, code)`` of every solution cell of an (executed) notebook."""
    nb = nbformat.read(source, as_version=4)
    return [_titled(cell, "solution") for cell in nb.cells
            if "solution" in cell.metadata.get("tags", [])]


def _where(url: str) -> str:
    """``"site"`` for a link inside the site, ``"binder"`` for Binder's, else the host."""
    parts = urlsplit(url.strip())
    if parts.scheme in ("data", "mailto", "javascript") or not (parts.scheme or parts.netloc):
        return "site"
    host = parts.hostname or parts.netloc or url
    return "binder" if host == BINDER_HOST else host


def check_site(html_dir: Path, names: list[str], *,
               sources: list[Path] | None = None) -> list[str]:
    """What is wrong with the built site in ``html_dir``; an empty list when nothing is.

    Checks that ``index.html`` and a page per notebook in ``names`` exist; on every page,
    that each image and each link inside the site points at a file that exists and that no
    link, image or script refers to a host other than Binder's; in every CSS file, that no
    ``url(...)`` leaves the site; and, given the executed ``sources``, that the code of every
    solution appears on its page only inside a ``<details>`` drop-down.
    """
    html_dir = Path(html_dir)
    problems = []
    pages = [html_dir / "index.html", *(html_dir / (Path(n).stem + ".html") for n in names)]
    for path in pages:
        if not path.exists():
            problems.append(f"{path.name}: missing (no page for it in {html_dir})")
    by_page = {html_dir / (Path(s).stem + ".html"): s for s in sources or []}
    for path in sorted(p for p in html_dir.rglob("*.html") if "_static" not in p.parts):
        where = path.relative_to(html_dir)
        reader = _PageReader()
        reader.feed(path.read_text(encoding="utf-8"))
        for url in reader.images:
            host = _where(url)
            if host != "site":
                problems.append(f"{where}: an image from another host, {host} ({url})")
            elif not url.startswith("data:") and not _target(path, url).is_file():
                problems.append(f"{where}: image {url} is missing")
        for url in reader.links:
            host = _where(url)
            if host not in ("site", "binder"):
                problems.append(f"{where}: refers to another host, {host} ({url})")
            elif host == "site" and not url.startswith(("data:", "mailto:", "javascript:")) \
                    and not _target(path, url).exists():
                problems.append(f"{where}: link {url} points at nothing in the site")
        if path in by_page:
            problems += _unfolded(where, reader, _solutions(by_page[path]))
    for css in sorted(html_dir.rglob("*.css")):
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", css.read_text(errors="replace")):
            host = _where(url)
            if host != "site":
                problems.append(f"{css.relative_to(html_dir)}: url() from another host, "
                                f"{host} ({url})")
    return problems


def _target(page_path: Path, url: str) -> Path:
    path = unquote(urlsplit(url).path)
    return (page_path.parent / path).resolve() if path else page_path


def _unfolded(where, reader: _PageReader, solutions: list[tuple[str, str]]) -> list[str]:
    folded, shown = _words("".join(reader.folded)), _words("".join(reader.shown))
    problems = []
    for title, code in solutions:
        text = _words(code)
        if text in shown:
            problems.append(f"{where}: {title} is shown, not folded into a drop-down")
        elif text not in folded:
            problems.append(f"{where}: {title} is missing")
    return problems


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pruninglab.course.book",
        description="Build the course site (static HTML) from the executed notebooks.")
    parser.add_argument("select", nargs="*", help="notebook name prefixes; default all")
    parser.add_argument("--profile", default="quick",
                        help="the profile whose executed notebooks the site shows")
    parser.add_argument("--out", default="build/book", help="the site's folder")
    parser.add_argument("--binder", default=os.environ.get("PRUNINGLAB_BINDER",
                                                           BINDER_REPOSITORY),
                        help="GitHub OWNER/REPO that Binder builds ($PRUNINGLAB_BINDER)")
    args = parser.parse_args(argv)
    from ..experiments import profiles

    if args.profile not in profiles.PROFILES:
        parser.error(f"--profile {args.profile!r} is unknown; known profiles: "
                     f"{', '.join(profiles.PROFILES)}")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", args.binder):
        parser.error(f"--binder {args.binder!r} is not a GitHub OWNER/REPO")
    try:
        site = build(args.select or None, profile=args.profile, out=Path(args.out),
                     binder_repository=args.binder)
    except (RuntimeError, ValueError, FileNotFoundError) as err:
        print(f"make book: {err}", file=sys.stderr)
        return 1
    print(f"the site is in {site.html} (open {site.index}); {len(site.notebooks)} notebooks, "
          f"executing {site.execute_seconds:.0f} s, sphinx {site.sphinx_seconds:.0f} s; "
          "checked: pages, figures, links, folded solutions, no other hosts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
