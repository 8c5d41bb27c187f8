"""Shared pytest setup: CacheKit is importable as the package `cachekit` (see harness/packages.py)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.append(str(TESTS))  # last: ComfyUI's namespace package `comfy` must win over tests/comfy

import pytest  # noqa: E402

from harness.comfy_env import comfyui_version, find_comfyui  # noqa: E402
from harness.packages import register_cachekit  # noqa: E402

register_cachekit()


def pytest_report_header(config):
    root = find_comfyui()
    if root is None:
        return "ComfyUI: not found ($COMFYUI_PATH, ~/ComfyUI, .comfyui)"
    return f"ComfyUI {comfyui_version(root) or '(unknown version)'}: {root}"


RESULT_KINDS = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


def release_label() -> str:
    """Which ComfyUI this run tests, as the summary names it."""
    root = find_comfyui()
    return f"ComfyUI {comfyui_version(root) or '(unknown version)'}" if root else "no ComfyUI"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    try:
        from cachekit.cache_core.families.support_matrix import support_summary

        terminalreporter.write_line(f"CacheKit families reached per method: {support_summary()} (README: Supported models)")
    except Exception as error:  # the summary never fails a run
        terminalreporter.write_line(f"CacheKit families reached per method: not available ({error!r})")
    if find_comfyui() is None:
        terminalreporter.write_line("")
        terminalreporter.write_line("!!! The ComfyUI tests were SKIPPED: no ComfyUI checkout was found "
                                    "($COMFYUI_PATH, ~/ComfyUI, .comfyui). Only the unit tests ran. !!!", red=True, bold=True)
    counts = {kind: len(terminalreporter.stats.get(kind, [])) for kind in RESULT_KINDS}  # as pytest's own last line
    line = f"CacheKit tests on {release_label()}: " + ", ".join(f"{counts[k]} {k}" for k in RESULT_KINDS if counts[k] or k in ("passed", "failed"))
    terminalreporter.write_line(line, bold=True, green=not (counts["failed"] or counts["error"]),
                                red=bool(counts["failed"] or counts["error"]))
    results = os.environ.get("CACHEKIT_RESULTS_FILE")
    if results:  # make test collects the counts of each release's run for its closing summary
        path = Path(results)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"release": release_label(), "exitstatus": int(exitstatus), "counts": counts,
                                    "args": list(config.invocation_params.args)}))


@pytest.fixture()
def reports(monkeypatch):
    """The RunReport of every sampling run in the test, in order."""
    from cachekit.cache_core.runtime.run import SamplingRun

    captured = []
    original = SamplingRun.finish

    def finish(self, *args, **kwargs):
        captured.append(original(self, *args, **kwargs))
        return captured[-1]

    monkeypatch.setattr(SamplingRun, "finish", finish)
    return captured
