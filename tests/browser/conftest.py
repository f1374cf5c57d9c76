"""The browser tests (``make test-browser``): JupyterLab in Debian's Chromium, driven by
Playwright. ``make unit`` leaves this folder out; without chromium or Playwright these tests
fail with a message that says how to install them, never skip."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # lab.py and notebook_page.py

import lab  # noqa: E402


def pytest_configure(config) -> None:
    lab.sigterm_raises()
