"""Drive a notebook in JupyterLab as a student does: open it, run all cells, move every
control of every explorer (``pruninglab.course.widgets``) and check that its figure redraws.

The functions take a Playwright ``Page`` and use JupyterLab's and ipywidgets' own DOM: an
explorer is an ipywidgets ``VBox`` whose figure is an ``img.widget-image``; its controls are
the sliders, dropdowns and toggle buttons inside it, each named by its ``description``
label. Everything a student would see go wrong is gathered: error outputs in the notebook
and in the explorers, errors in the Log Console (where output that escaped its widget
goes), page errors, console errors and requests to another host (:class:`Problems`); a
layout that wraps, cuts text off or stretches a figure (:func:`layout_problems`); a move
that trains without showing the explorer's busy state (:func:`watch_busy`).
"""

from __future__ import annotations

from pruninglab.course.widgets import Explorer

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

ERROR_OUTPUT = "[data-mime-type='application/vnd.jupyter.error']"
# A traceback in an explorer's output area (ipywidgets' Output shows it as stderr).
EXPLORER_ERROR = f"{ERROR_OUTPUT}, [data-mime-type='application/vnd.jupyter.stderr']"
EXPLORER = ".widget-vbox:has(> img.widget-image)"
CONTROL = ".widget-slider, .widget-dropdown, .widget-toggle-buttons"
LOCAL_SCHEMES = ("data", "blob", "about", "chrome-extension")
# Lines of the server's log that mean something went wrong; the kernels' stderr goes there.
SERVER_ERROR = re.compile(r"^\[E |Traceback \(most recent call last\)", re.MULTILINE)


@dataclass
class Problems:
    """What went wrong in the page since it opened, as lines a person can read."""

    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def watch(self, page, allowed_host: str) -> None:
        """Record the page's uncaught errors, its console errors and every request that
        leaves ``allowed_host``."""
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("console", lambda message: message.type == "error"
                and self.console_errors.append(f"{message.text} ({message.location})"))

        def request(req) -> None:
            url = urlparse(req.url)
            if url.scheme not in LOCAL_SCHEMES and url.hostname != allowed_host:
                self.foreign_requests.append(req.url)

        page.on("request", request)

    def lines(self) -> list[str]:
        return ([f"page error: {e}" for e in self.page_errors]
                + [f"console error: {e}" for e in self.console_errors]
                + [f"request to another host: {u}" for u in self.foreign_requests])


def open_notebook(page, url: str, timeout_s: float = 120) -> None:
    """Open the notebook at ``url`` and wait until its kernel is idle."""
    page.goto(url)
    page.wait_for_selector(".jp-Notebook", timeout=timeout_s * 1000)
    wait_idle(page, timeout_s)


def kernel_status(page) -> str:
    """The kernel status the status bar shows ("Idle", "Busy", "Starting", ...)."""
    text = page.locator("#jp-main-statusbar").inner_text()
    found = re.search(r"\|\s*(\w+)", text)
    return found.group(1) if found else ""


def busy_prompts(page) -> int:
    """How many code cells wait or run (their prompt shows ``[*]``)."""
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_inner_texts()
    return sum("*" in prompt for prompt in prompts)


def wait_idle(page, timeout_s: float, what: str = "the kernel") -> float:
    """Wait until no cell runs and the kernel is idle twice in a row; the seconds waited."""
    start = time.monotonic()
    calm = 0
    while calm < 2:
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{what} was still busy after {timeout_s:g} s "
                               f"(kernel {kernel_status(page)!r}, {busy_prompts(page)} "
                               f"cells waiting or running)")
        calm = calm + 1 if kernel_status(page) == "Idle" and busy_prompts(page) == 0 else 0
        time.sleep(0.5)
    return time.monotonic() - start


def _menu(page, menu: str, command: str) -> None:
    """Click ``menu`` in JupyterLab's menu bar, then its item for ``command``."""
    page.locator(f"div.lm-MenuBar-itemLabel:text-is('{menu}')").click()
    page.locator(f"li.lm-Menu-item[data-command='{command}']").click()


def _last_line(text: str) -> str:
    """The last line of an output: a traceback's exception and message."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def run_all_cells(page, timeout_s: float) -> float:
    """Run > Run All Cells, then wait until every cell has run; the seconds it took."""
    _menu(page, "Run", "runmenu:run-all")
    page.wait_for_timeout(1000)
    return wait_idle(page, timeout_s, what="Run All Cells")


def error_outputs(page) -> list[str]:
    """The last line of every error (traceback) output in the notebook."""
    return [_last_line(text)
            for text in page.locator(f".jp-Notebook {ERROR_OUTPUT}").all_inner_texts()]


def log_console(page) -> dict[str, list[str]]:
    """JupyterLab's Log Console for the current notebook, which collects the output of code
    that no cell ran, such as a widget's callback: ``{level: [last line of each entry]}``
    (levels "critical", "error", "warning", "info", "debug"). Opens the console (and leaves
    it open)."""
    _menu(page, "View", "logconsole:open")
    page.wait_for_selector(".jp-LogConsolePanel", timeout=10000)
    page.wait_for_timeout(500)
    entries: dict[str, list[str]] = {}
    for entry in page.locator(".jp-LogConsolePanel .jp-OutputArea-child").all():
        level = entry.locator("[data-log-level]").first.get_attribute("data-log-level")
        text = entry.locator(".jp-OutputArea-output").first.inner_text().strip()
        entries.setdefault(level or "unknown", []).append(_last_line(text))
    return entries


def server_errors(log_text: str) -> list[str]:
    """The lines of a server log that report an error, with the line after each."""
    lines = log_text.splitlines()
    return [" / ".join(lines[i:i + 2]) for i, line in enumerate(lines)
            if SERVER_ERROR.search(line)]


@dataclass(frozen=True)
class Control:
    """One control of an explorer: its label, its kind and where it is in the page."""

    name: str
    kind: str  # "slider" | "dropdown" | "toggle"
    locator: object


def explorers(page) -> list:
    """Every explorer in the notebook, in page order."""
    return page.locator(f".jp-Notebook {EXPLORER}").all()


def controls(explorer) -> list[Control]:
    """The controls of one explorer, named by their ``description`` labels."""
    found = []
    for element in explorer.locator(CONTROL).all():
        classes = element.get_attribute("class") or ""
        kind = ("slider" if "widget-slider" in classes
                else "dropdown" if "widget-dropdown" in classes else "toggle")
        name = element.locator(".widget-label").first.inner_text().strip()
        found.append(Control(name=name or f"unnamed {kind}", kind=kind, locator=element))
    return found


def readout(control: Control) -> str:
    """What the control shows as its value."""
    if control.kind == "slider":
        return control.locator.locator(".widget-readout").inner_text().strip()
    if control.kind == "dropdown":
        select = control.locator.locator("select")
        return select.evaluate("s => s.options[s.selectedIndex].text")
    return control.locator.locator("button.mod-active").inner_text().strip()


def move(control: Control) -> tuple[str, str]:
    """Move ``control`` one step, as a student would: a slider one notch with the arrow
    keys (back, when it is at its end), a dropdown and toggle buttons to their next option.
    Returns its readout before and after."""
    before = readout(control)
    if control.kind == "slider":
        handle = control.locator.locator(".noUi-handle")
        at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
        handle.focus()
        handle.press("ArrowLeft" if at_end else "ArrowRight")
    elif control.kind == "dropdown":
        select = control.locator.locator("select")
        count = select.evaluate("s => s.options.length")
        index = select.evaluate("s => s.selectedIndex")
        select.select_option(index=(index + 1) % count)
    else:
        control.locator.locator("button:not(.mod-active)").first.click()
    control.locator.page.wait_for_timeout(200)
    return before, readout(control)


# What a student should see of an explorer's layout, checked in the page: every control
# (its label, track, readout or buttons) on one line and all the controls on one row, no
# text cut off, and a figure that is not stretched past the pixels it was rendered with
# (explorers render at twice their CSS width).
_LAYOUT_PROBLEMS = """(explorer, selector) => {
  const problems = [];
  const box = explorer.getBoundingClientRect();
  const name = el => (el.querySelector('.widget-label') || el).innerText.trim() || el.className;
  const controls = [...explorer.querySelectorAll(selector)];
  const lineHeight = 40;  // px: one line of ipywidgets is 28 px high
  for (const control of controls) {
    const r = control.getBoundingClientRect();
    if (r.height > lineHeight)
      problems.push(`control '${name(control)}' wraps onto ${Math.round(r.height)} px`);
    if (r.left < box.left - 1 || r.right > box.right + 1)
      problems.push(`control '${name(control)}' sticks out of the explorer`);
  }
  const tops = controls.map(c => Math.round(c.getBoundingClientRect().top));
  if (new Set(tops).size > 1)
    problems.push(`the controls are not on one row (tops ${tops.join(', ')} px)`);
  const texts = explorer.querySelectorAll('.widget-label, .widget-readout, .widget-toggle-button');
  for (const text of texts) {
    if (text.offsetParent === null || !text.innerText.trim()) continue;
    const range = document.createRange();
    range.selectNodeContents(text);
    const ink = range.getBoundingClientRect(), room = text.getBoundingClientRect();
    // scrollWidth misses text that a right-aligned label pushes out on its left
    if (text.scrollWidth > text.clientWidth + 1 || ink.left < room.left - 1 ||
        ink.right > room.right + 1 || ink.left < box.left - 1)
      problems.push(`text '${text.innerText.trim()}' is cut off ` +
                    `(${Math.round(ink.width)} px of text in ${text.clientWidth} px)`);
  }
  for (const img of explorer.querySelectorAll('img.widget-image')) {
    if (img.naturalWidth < 1.9 * img.clientWidth)
      problems.push(`the figure is ${img.naturalWidth} px wide, shown at ${img.clientWidth} ` +
                    `px: stretched, so blurry`);
  }
  return problems;
}"""


def layout_problems(explorer) -> list[str]:
    """What is wrong with the explorer's layout as a student sees it: a control that wraps
    or sticks out, controls on more than one row, cut-off text, a stretched figure."""
    return explorer.evaluate(_LAYOUT_PROBLEMS, CONTROL)


# Records, from the moment it is installed, whether the explorer ever showed its busy state
# (the class Explorer.BUSY_CLASS), a disabled control and a progress bar.
_WATCH_BUSY = """(explorer, busyClass) => {
  const seen = explorer.__busySeen = {busy: false, disabled: false, progress: false};
  const look = () => {
    if (explorer.classList.contains(busyClass)) seen.busy = true;
    if (explorer.querySelector('.widget-slider .noUi-target[disabled], select:disabled, ' +
                               'button:disabled')) seen.disabled = true;
    if (explorer.querySelector('.progress-bar')) seen.progress = true;  // a tqdm bar
  };
  if (explorer.__busyObserver) explorer.__busyObserver.disconnect();
  explorer.__busyObserver = new MutationObserver(look);
  explorer.__busyObserver.observe(explorer, {attributes: true, childList: true, subtree: true});
}"""


def watch_busy(explorer) -> None:
    """Start recording what :func:`busy_seen` reports."""
    explorer.evaluate(_WATCH_BUSY, Explorer.BUSY_CLASS)


def busy_seen(explorer) -> dict[str, bool]:
    """Since :func:`watch_busy`: whether the explorer was marked busy, whether a control
    was disabled and whether a progress bar showed in it."""
    return explorer.evaluate("explorer => ({...explorer.__busySeen})")


def figure_source(explorer) -> str:
    """The ``src`` of the explorer's figure: a new blob URL each time the figure is set."""
    return explorer.locator("img.widget-image").get_attribute("src") or ""


def is_busy(explorer) -> bool:
    """Whether the explorer shows its busy state (it computes the next figure)."""
    return explorer.evaluate("(e, busyClass) => e.classList.contains(busyClass)",
                             Explorer.BUSY_CLASS)


def wait_for_redraw(explorer, before: str, timeout_s: float) -> bool:
    """Wait until the kernel is idle, the explorer is not busy and its figure is another
    than ``before`` (:func:`figure_source`); whether that happened within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (kernel_status(explorer.page) == "Idle" and not is_busy(explorer)
                and figure_source(explorer) != before):
            return True
        time.sleep(0.5)
    return False


def screenshot_while_busy(explorer, before: str, path: Path,
                          timeout_s: float = 5) -> Path | None:
    """If the explorer turns busy within ``timeout_s`` (before its figure is redrawn),
    a screenshot of it while busy at ``path``; else ``None``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_busy(explorer):
            return save_screenshot(explorer, path)
        if figure_source(explorer) != before:  # redrawn without a busy state
            return None
        time.sleep(0.1)
    return None


def save_screenshot(explorer, path: Path) -> Path:
    """The whole explorer (header, controls, figure) as a PNG at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    explorer.scroll_into_view_if_needed()
    explorer.screenshot(path=str(path))
    return path


@dataclass
class Report:
    """What :func:`check_widgets` found in one notebook."""

    notebook: str
    failures: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)
    run_all_s: float = 0.0
    moves: list[str] = field(default_factory=list)  # "name: before -> after (seconds)"
    moved: list[str] = field(default_factory=list)  # names of the controls that moved
    busy: list[str] = field(default_factory=list)  # names of the controls whose move was busy
    figures: list[str] = field(default_factory=list)  # "rendered px wide / shown px wide"
    log_warnings: list[str] = field(default_factory=list)  # warning entries, Log Console


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "control"


def check_widgets(page, url: str, notebook: str, screenshots: Path, problems: Problems,
                  run_timeout_s: float = 300, redraw_timeout_s: float = 60) -> Report:
    """Open ``notebook``, run all its cells, then move every control of every explorer once
    and check that the figure changes. A failure names the notebook and the control.

    Args:
        page: a fresh Playwright page; ``problems`` already watches it.
        url: the notebook's URL in JupyterLab (:meth:`lab.Lab.page_url`).
        notebook: its name, for messages and for the screenshots' folder.
        screenshots: where ``<notebook>/<n>_<control>.png`` go (and ``0_start.png``, the
            explorer after Run All).
        run_timeout_s: seconds Run All Cells may take.
        redraw_timeout_s: seconds a figure may take to redraw after a move (06 and 09 train
            a run when the store lacks it).
    """
    report = Report(notebook)
    folder = screenshots / Path(notebook).stem
    open_notebook(page, url)
    report.run_all_s = run_all_cells(page, run_timeout_s)
    report.failures += [f"{notebook}: a cell raised: {e}" for e in error_outputs(page)]
    found = explorers(page)
    if not found:
        report.failures.append(f"{notebook}: no explorer (ipywidgets VBox with a figure) "
                               f"shows after Run All Cells")
    for e, explorer in enumerate(found):
        prefix = f"{e}_" if len(found) > 1 else ""
        report.screenshots.append(save_screenshot(explorer, folder / f"{prefix}0_start.png"))
        report.failures += [f"{notebook}: explorer {e} after Run All: {problem}"
                            for problem in layout_problems(explorer)]
        report.figures.append(explorer.locator("img.widget-image").evaluate(
            "i => `${i.naturalWidth} px rendered / ${i.clientWidth} px shown`"))
        explorer_controls = controls(explorer)
        if not explorer_controls:
            report.failures.append(f"{notebook}: explorer {e} has no controls")
        for c, control in enumerate(explorer_controls, start=1):
            before_figure = figure_source(explorer)
            watch_busy(explorer)
            start = time.monotonic()
            before, after = move(control)
            busy_shot = screenshot_while_busy(
                explorer, before_figure, folder / f"{prefix}{c}_{_slug(control.name)}_busy.png")
            if busy_shot is not None:
                report.screenshots.append(busy_shot)
            if before == after:
                report.failures.append(f"{notebook}: control {control.name!r} did not move "
                                       f"(it still reads {before!r})")
                continue
            redrawn = wait_for_redraw(explorer, before_figure, redraw_timeout_s)
            seconds = time.monotonic() - start
            seen = busy_seen(explorer)
            busy = ", busy" if seen["busy"] else ""
            report.moves.append(f"{control.name}: {before} -> {after} ({seconds:.1f} s{busy})")
            report.moved.append(control.name)
            path = folder / f"{prefix}{c}_{_slug(control.name)}.png"
            report.screenshots.append(save_screenshot(explorer, path))
            where = f"{notebook}: after moving {control.name!r} to {after!r}"
            report.failures += [f"{where}: {problem}" for problem in layout_problems(explorer)]
            if seen["busy"]:
                report.busy.append(control.name)
                if not (seen["disabled"] and seen["progress"]):
                    report.failures.append(f"{where}: it was busy, but showed "
                                           f"{'no' if not seen['disabled'] else 'a'} disabled "
                                           f"control and {'a' if seen['progress'] else 'no'} "
                                           f"progress bar")
            if is_busy(explorer):
                report.failures.append(f"{where}: it still shows its busy state")
            if not redrawn:
                report.failures.append(
                    f"{notebook}: control {control.name!r} moved from {before!r} to "
                    f"{after!r}, but the figure did not change within {redraw_timeout_s:g} s "
                    f"(screenshot {path})")
        report.failures += [f"{notebook}: explorer {e} shows an error after its controls "
                            f"moved: {_last_line(text)}"
                            for text in explorer.locator(EXPLORER_ERROR).all_inner_texts()]
    logged = log_console(page)
    report.failures += [f"{notebook}: Log Console {level}: {line}"
                        for level in ("critical", "error") for line in logged.get(level, [])]
    report.log_warnings = logged.get("warning", [])
    report.failures += [f"{notebook}: {line}" for line in problems.lines()]
    return report
