"""Real-browser tests: a headless ComfyUI server with the real frontend package, driven by headless Chromium.

Skipped, with the reason, when Playwright for Python, a Chromium executable ($CHROMIUM_PATH,
/usr/bin/chromium, chromium on PATH) or ComfyUI is missing; the tests of a frontend build that is not
in .frontends/ (harness/frontends.py) are skipped with that reason. Playwright's own
browser download is not used: the tests launch the system Chromium through `executable_path`.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from harness.comfy_env import REPO, find_comfyui

ARTIFACTS = REPO / "tests" / "artifacts"


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives the real ComfyUI frontend in headless Chromium")


def chromium_path() -> str | None:
    """The Chromium executable to launch, or None."""
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def missing_requirement() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install playwright; no browser download needed)"
    if chromium_path() is None:
        return "no Chromium executable ($CHROMIUM_PATH, /usr/bin/chromium; on Debian: apt-get install chromium)"
    if find_comfyui() is None:
        return "no ComfyUI checkout found ($COMFYUI_PATH, ~/ComfyUI, .comfyui)"
    return None


def pytest_collection_modifyitems(config, items):
    """Tests that use the browser are marked `browser`, and skipped with the reason when they cannot run."""
    reason = missing_requirement()
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents and "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"browser tests skipped: {reason}"))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """tests/artifacts/ (gitignored): screenshots of the browser tests."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield chromium
        finally:
            chromium.close()
