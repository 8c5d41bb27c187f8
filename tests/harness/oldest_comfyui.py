"""Run the ComfyUI-dependent tests against the oldest supported ComfyUI release (part of `make test`).

Looks for it in $COMFYUI_OLDEST_PATH, ~/ComfyUI-0.3.60, <repo>/.comfyui-oldest (`make setup` puts it there). The
packages it pins at other versions than the current release (frontend, workflow templates, docs) come from
<repo>/.comfyui-oldest-packages/, put first on PYTHONPATH for this run only (also for the servers it starts). When the
release is missing it says so in one prominent line and succeeds: the current release was tested already.

`--summary`: print the pass counts of each release's run of this `make test` (written by tests/conftest.py to
CACHEKIT_RESULTS_DIR) and exit non-zero when any run failed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.append(str(REPO / "tests"))  # last: ComfyUI's namespace package `comfy` must win over tests/comfy
from harness.comfy_env import OLDEST_OVERLAY, OLDEST_SUPPORTED, comfyui_version, find_oldest_comfyui  # noqa: E402

COMFY_TESTS = ["tests/comfy", "tests/parity", "tests/browser"]
RESULTS_DIR = Path(os.environ.get("CACHEKIT_RESULTS_DIR", REPO / "tests" / "artifacts" / "results")).resolve()
NO_TESTS_COLLECTED = 5


def oldest_environment(oldest: Path) -> dict[str, str]:
    """The environment of the oldest release's run: COMFYUI_PATH on it, its package overlay first on PYTHONPATH."""
    env = dict(os.environ, COMFYUI_PATH=str(oldest), CACHEKIT_RESULTS_FILE=str(RESULTS_DIR / "2-oldest.json"))
    if OLDEST_OVERLAY.is_dir():
        env["PYTHONPATH"] = os.pathsep.join([str(OLDEST_OVERLAY), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def run_oldest(pytest_args: list[str]) -> int:
    oldest = find_oldest_comfyui()
    if oldest is None:
        print(f"### CacheKit: ComfyUI {OLDEST_SUPPORTED} (oldest supported) not found: its tests were SKIPPED ###", flush=True)
        return 0
    version = comfyui_version(oldest) or OLDEST_SUPPORTED
    overlay = f", packages from {OLDEST_OVERLAY.relative_to(REPO)}/ first" if OLDEST_OVERLAY.is_dir() else ""
    print(f"\n=== CacheKit: the ComfyUI tests against the oldest supported ComfyUI {version} at {oldest}{overlay} ===",
          flush=True)
    command = [sys.executable, "-m", "pytest", *COMFY_TESTS, *pytest_args]
    status = subprocess.call(command, cwd=REPO, env=oldest_environment(oldest))
    return 0 if status == NO_TESTS_COLLECTED else status


def summary() -> int:
    """One line per release run of this `make test`; non-zero when a run failed or did not finish."""
    runs = sorted(RESULTS_DIR.glob("*.json")) if RESULTS_DIR.is_dir() else []
    print("\n=== CacheKit test summary per ComfyUI release ===", flush=True)
    failed = False
    for path in runs:
        result = json.loads(path.read_text())
        counts = result["counts"]
        bad = counts.get("failed", 0) or counts.get("error", 0) or result["exitstatus"] not in (0, NO_TESTS_COLLECTED)
        failed = failed or bool(bad)
        details = ", ".join(f"{n} {k}" for k, n in counts.items() if n or k in ("passed", "failed"))
        scope = "whole suite" if path.name.startswith("1-") else "ComfyUI tests"
        print(f"{'FAIL' if bad else 'ok  '}  {result['release']:<18} ({scope}): {details}", flush=True)
    if not runs:
        print("no test run recorded", flush=True)
        failed = True
    total = {k: sum(json.loads(p.read_text())["counts"].get(k, 0) for p in runs) for k in ("passed", "failed", "skipped")}
    total["failed"] += sum(json.loads(p.read_text())["counts"].get("error", 0) for p in runs)
    print(f"CacheKit: {total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--summary"]:
        sys.exit(summary())
    sys.exit(run_oldest(sys.argv[1:]))
