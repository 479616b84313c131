"""Browser fixtures shared by the browser tests: Debian's chromium, driven by Playwright with
``executable_path`` (no browser is downloaded)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
CLIENT_JS = ROOT / "clients" / "js" / "dist" / "litefaas.js"


@pytest.fixture(scope="module")
def chromium_path() -> str:
    """Debian's chromium (or ``LITEFAAS_CHROMIUM``); skips when it or the built client is missing."""
    path = os.environ.get("LITEFAAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("Debian's chromium is not installed (make setup installs it)")
    if not CLIENT_JS.is_file():
        pytest.skip("clients/js/dist/litefaas.js is not built (make setup builds it)")
    return path


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """One headless Chromium for the module."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield instance
        finally:
            instance.close()
