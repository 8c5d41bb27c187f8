"""Shared pytest setup: CacheKit is importable as the package `cachekit` (see harness/packages.py)."""
from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.append(str(TESTS))  # last: ComfyUI's namespace package `comfy` must win over tests/comfy

import pytest  # noqa: E402

from harness.comfy_env import find_comfyui  # noqa: E402
from harness.packages import register_cachekit  # noqa: E402

register_cachekit()


def pytest_report_header(config):
    root = find_comfyui()
    return f"ComfyUI: {root}" if root else "ComfyUI: not found ($COMFYUI_PATH, ~/ComfyUI, .comfyui)"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from cachekit.cache_core.families.table import FAMILIES, METHODS

    supported = ", ".join(f"{m} {sum(m in f.methods for f in FAMILIES)}/{len(FAMILIES)}" for m in METHODS)
    terminalreporter.write_line(f"CacheKit families supported per method: {supported} (README: Supported models)")
    if find_comfyui() is None:
        terminalreporter.write_line("")
        terminalreporter.write_line("!!! The ComfyUI tests were SKIPPED: no ComfyUI checkout was found "
                                    "($COMFYUI_PATH, ~/ComfyUI, .comfyui). Only the unit tests ran. !!!", red=True, bold=True)


@pytest.fixture()
def reports(monkeypatch):
    """The RunReport of every sampling run in the test, in order."""
    from cachekit.cache_core.runtime.run import SamplingRun

    captured = []
    original = SamplingRun.finish

    def finish(self):
        captured.append(original(self))
        return captured[-1]

    monkeypatch.setattr(SamplingRun, "finish", finish)
    return captured
