"""Run the real-ComfyUI tests against the oldest supported ComfyUI release (part of `make test`).

Looks for it in $COMFYUI_OLDEST_PATH, ~/ComfyUI-0.3.60, <repo>/.comfyui-oldest (`make setup` clones it
there). When none exists it says so in one line and succeeds: the newest release was tested already.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.append(str(REPO / "tests"))  # last: ComfyUI's namespace package `comfy` must win over tests/comfy
from harness.comfy_env import OLDEST_SUPPORTED, find_oldest_comfyui  # noqa: E402


def main() -> int:
    oldest = find_oldest_comfyui()
    if oldest is None:
        print(f"### CacheKit: ComfyUI {OLDEST_SUPPORTED} (oldest supported) not found: its tests were SKIPPED ###", flush=True)
        return 0
    print(f"CacheKit: testing against the oldest supported ComfyUI at {oldest}", flush=True)
    env = dict(os.environ, COMFYUI_PATH=str(oldest))
    return subprocess.call([sys.executable, "-m", "pytest", "tests/comfy", "-q"], cwd=REPO, env=env)


if __name__ == "__main__":
    sys.exit(main())
