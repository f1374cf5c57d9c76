"""The course site (``make book``) in Chromium: its index and three pages, served from
127.0.0.1, load every figure, every link inside the site leads to a page that exists, the
bundled MathJax renders the maths, the solutions are closed drop-downs, the search box finds
a page, and no request goes to another host. The same checks, run on a copy of the site
with a fault planted in it, name each fault.

Screenshots of the pages go to ``build/browser/book_*.png``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import lab
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "browser"
VIEWPORT = {"width": 1280, "height": 900}
PAGES = ["index.html", "01_neurons_and_layers.html", "03_batch_norm.html",
         "04_pruning_basics.html"]


@pytest.fixture(scope="module")
def site(small_site):
    """The site of notebooks 00, 01, 03 and 04 in the smoke profile (tests/conftest.py)."""
    return small_site


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def serve(folder: Path):
    """``folder`` over HTTP on 127.0.0.1 (a free port); yields the base address."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def browser_page():
    """A Chromium page that refuses every request to another host and records it, and
    records every request inside the site that fails or answers 400 or more."""
    missing = lab.chromium_missing()
    if missing:
        pytest.fail(missing)
    with lab.chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        page.foreign, page.failed = [], []

        def route(request_route):
            url = request_route.request.url
            if urlsplit(url).hostname == "127.0.0.1" or url.startswith("data:"):
                request_route.continue_()
            else:
                page.foreign.append(url)
                request_route.abort()

        page.route("**/*", route)
        page.on("response", lambda response: page.failed.append(
            f"{response.status} {response.url}") if response.status >= 400
            and not response.url.endswith("/favicon.ico") else None)
        yield page


def page_problems(page, base: str, name: str) -> list[str]:
    """Open ``name`` and say what is wrong: a figure that did not load, a link inside the
    site that leads nowhere, a request to another host or one that failed."""
    page.foreign.clear()
    page.failed.clear()
    page.goto(base + name)
    page.wait_for_load_state("networkidle")
    problems = [f"{name}: figure {src} did not load" for src in page.evaluate(
        "[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
        ".map(i => i.getAttribute('src'))")]
    links = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
    inside = sorted({urldefrag(url).url for url in links if url.startswith(base)})
    for url in inside:
        status = page.request.get(url).status
        if status != 200:
            problems.append(f"{name}: link {url.removeprefix(base)} answers {status}")
    problems += [f"{name}: request to another host, {url}" for url in page.foreign]
    problems += [f"{name}: request failed, {what}" for what in page.failed]
    return problems


def test_the_index_and_three_pages_load_their_figures_links_and_maths(site):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with serve(site.html) as base, browser_page() as page:
        for name in PAGES:
            assert page_problems(page, base, name) == []
            page.screenshot(path=str(SCREENSHOTS / f"book_{Path(name).stem}.png"))
            if name == "index.html":
                links = page.evaluate("[...document.querySelectorAll('article table a')]"
                                      ".map(a => a.getAttribute('href'))")
                assert links == [
                    "00_index.html", "01_neurons_and_layers.html", "03_batch_norm.html",
                    "04_pruning_basics.html"], links
            if name.startswith("01"):  # MathJax, from the site, typesets the maths
                page.wait_for_selector("mjx-container", timeout=15_000)
            if name.startswith("04"):
                drop_downs = page.locator("details.pruninglab-solution")
                assert drop_downs.count() == 3
                assert page.evaluate("[...document.querySelectorAll("
                                     "'details.pruninglab-solution')].every(d => !d.open)")
                code = drop_downs.first.locator("pre")
                assert not code.is_visible()
                drop_downs.first.locator("summary").click()
                assert code.is_visible() and "def magnitude_mask" in code.inner_text()
                page.locator(".pruninglab-live-kernel").scroll_into_view_if_needed()
                page.screenshot(path=str(SCREENSHOTS / "book_04_explorer.png"))
        # the search box searches an index inside the site
        page.goto(base + "search.html?q=saliency")
        page.wait_for_selector("#search-results li a", timeout=15_000)
        found = page.evaluate("[...document.querySelectorAll('#search-results li a')]"
                              ".map(a => a.getAttribute('href'))")
        assert any(href.startswith("04_pruning_basics.html") for href in found), found
        assert page.foreign == []


def _plant(html: Path) -> None:
    """A figure from another host, a missing figure and a link to no page, in index.html."""
    index = html / "index.html"
    content = index.read_text()
    index.unlink()  # a hard link into the built site
    index.write_text(content.replace("</article>", (
        '<img src="https://example.org/figure.png"><img src="_images/none.png">'
        '<a href="05_missing.html">a page that is not there</a></article>'), 1))


def test_the_browser_checks_name_each_planted_fault(site, tmp_path):
    html = tmp_path / "html"
    shutil.copytree(site.html, html, copy_function=os.link)
    _plant(html)
    with serve(html) as base, browser_page() as page:
        problems = page_problems(page, base, "index.html")
    assert any(p.startswith("index.html: request to another host, https://example.org/")
               for p in problems), problems
    assert "index.html: figure _images/none.png did not load" in problems, problems
    assert "index.html: link 05_missing.html answers 404" in problems, problems
