"""A JupyterLab server and a headless Chromium for the browser tests, both always stopped.

:func:`jupyterlab` starts JupyterLab from this virtual environment on 127.0.0.1, on a free
port, with a token, serving a folder of notebooks. Everything it writes (settings,
workspaces, runtime files, its log) goes to a temporary folder, and its news, update and
extension-manager checks are off: they would fail on a closed network. :func:`chromium`
launches Debian's ``/usr/bin/chromium`` through Playwright; Playwright never downloads a
browser of its own here.

Both are context managers that stop what they started when the block ends, also when a
step in it fails or times out, and when the test run is killed with SIGTERM (``conftest``
turns SIGTERM into an exception, so that ``finally`` blocks run).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

CHROMIUM = Path("/usr/bin/chromium")
# Chromium flags for a root user on a machine without a GPU or an outside network: without
# the background-networking ones Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-default-apps")

# JupyterLab user settings: {plugin: settings}. Every cell stays in the page (no windowed
# rendering, so that the test can find every output), nothing autosaves over the notebooks,
# and nothing asks the network for news or updates.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                     "checkForUpdates": False},
}


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab server.

    Attributes:
        url: its base URL, ``http://127.0.0.1:PORT/``.
        token: the token every request needs.
        root: the folder it serves.
        log: the file that holds its stdout and stderr (the kernels' too).
    """

    url: str
    token: str
    root: Path
    log: Path

    def page_url(self, notebook: str) -> str:
        """The URL that opens ``notebook`` (a path under ``root``) alone in JupyterLab: in a
        workspace of its own, reset, so that no tab of an earlier page comes back."""
        workspace = "".join(c if c.isalnum() else "-" for c in notebook)
        return f"{self.url}lab/workspaces/{workspace}/tree/{notebook}?reset&token={self.token}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(folder: Path) -> None:
    for plugin, settings in LAB_SETTINGS.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))


def _wait_until_up(url: str, token: str, process: subprocess.Popen, log: Path,
                   timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode} before it "
                               f"answered; its log ({log}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer on {url} within {timeout:g} s; its log "
                       f"({log}):\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen, url: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then end whatever is left of it
    and of its children."""
    try:
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(True)]
    except psutil.NoSuchProcess:
        family = []
    if process.poll() is None:
        with contextlib.suppress(Exception):
            request = urllib.request.Request(f"{url}api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(request, timeout=5).close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(family, timeout=5)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    if process.poll() is None:
        process.kill()
        process.wait()


@contextlib.contextmanager
def jupyterlab(root: Path, workdir: Path, env: dict[str, str] | None = None,
               start_timeout: float = 60.0) -> Iterator[Lab]:
    """JupyterLab serving ``root``; its settings and log under ``workdir``.

    Args:
        root: the folder of notebooks it serves (a copy: the browser's runs change them).
        workdir: an empty folder for its settings, workspaces, runtime files and log.
        env: variables added to the server's environment; its kernels inherit them.
        start_timeout: seconds to wait for the server to answer.
    """
    token = os.urandom(16).hex()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    settings = workdir / "settings"
    _write_settings(settings)
    for name in ("workspaces", "runtime", "config", "data"):
        (workdir / name).mkdir(parents=True, exist_ok=True)
    log = workdir / "server.log"
    jupyter = Path(sys.executable).with_name("jupyter")
    command = [
        str(jupyter), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--port-retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={workdir / 'workspaces'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabServerApp.extension_manager=readonly",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    environment = {**os.environ, **(env or {}),
                   "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
                   "JUPYTER_CONFIG_DIR": str(workdir / "config")}
    with open(log, "w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                   env=environment, cwd=root, start_new_session=True)
    try:
        _wait_until_up(url, token, process, log, start_timeout)
        yield Lab(url=url, token=token, root=root, log=log)
    finally:
        _stop(process, url, token)


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or ``None`` when they can."""
    if not CHROMIUM.exists():
        return (f"{CHROMIUM} is missing: install Debian's chromium "
                f"(apt-get install chromium; `make test-browser` does)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright is missing: pip install -e '.[browser]' (`make test-browser` does)"
    return None


@contextlib.contextmanager
def chromium(headless: bool = True) -> Iterator:
    """A Playwright ``Browser`` on Debian's Chromium, closed when the block ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=headless,
                                             args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


def sigterm_raises() -> None:
    """Turn SIGTERM (``timeout``, a CI runner giving up) into ``KeyboardInterrupt``, so that
    the ``finally`` blocks above stop the server and the browser."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def copy_notebooks(source: Path, destination: Path) -> Path:
    """A copy of the ``*.ipynb`` files in ``source``: the browser runs and may save them."""
    destination.mkdir(parents=True, exist_ok=True)
    for notebook in sorted(source.glob("*.ipynb")):
        shutil.copy2(notebook, destination / notebook.name)
    return destination


def shutdown_kernels(lab: Lab) -> None:
    """End every session (and its kernel) of ``lab``: each notebook gets a fresh kernel and
    an earlier one's memory is given back."""
    def call(path: str, method: str = "GET"):
        request = urllib.request.Request(f"{lab.url}{path}?token={lab.token}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    for session in call("api/sessions"):
        call(f"api/sessions/{session['id']}", method="DELETE")
