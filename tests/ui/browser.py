"""Chromium for the browser tests: the system's (Debian's package, which `make test` installs as root), driven
by Playwright; never a browser downloaded by a test tool. A test module uses :data:`needs_chromium` as its
``pytestmark`` and :func:`chromium` for a browser."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("TIDAL_TEST_CHROMIUM", "/usr/bin/chromium")


def chromium_path() -> str | None:
    """``$TIDAL_TEST_CHROMIUM`` (default /usr/bin/chromium) where it exists, else ``chromium`` on the PATH."""
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


needs_chromium = pytest.mark.skipif(chromium_path() is None, reason=f"needs Chromium at {CHROMIUM} (make test "
                                                                    "installs it with apt-get as root)")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium, closed on exit."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")
    with sync_api.sync_playwright() as p:
        # --no-sandbox: CI runs the tests as root, where Chromium's sandbox refuses to start
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
