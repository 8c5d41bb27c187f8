"""Prepare a machine for CacheKit's tests and demo: find (or fetch) ComfyUI and its Python packages.

Where ComfyUI is looked for, in order: $COMFYUI_PATH, ~/ComfyUI, <repo>/.comfyui.
- Found: that checkout is used and nothing of ComfyUI is downloaded.
- Not found: the pinned ComfyUI release is cloned into <repo>/.comfyui (git ignores it).
The oldest supported release, which `make test` also tests, is looked for in $COMFYUI_OLDEST_PATH,
~/ComfyUI-0.3.60, <repo>/.comfyui-oldest; it is cloned into the last only when ComfyUI itself was cloned.
- Neither possible: one line says so, and the tests that need ComfyUI are skipped.
Python packages that ComfyUI or the tests need and that are missing are installed with pip.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.append(str(REPO / "tests"))  # last: ComfyUI's namespace package `comfy` must win over tests/comfy
from harness.comfy_env import OLDEST_SUPPORTED, find_comfyui, find_oldest_comfyui  # noqa: E402

COMFYUI_REPOSITORY = "https://github.com/Comfy-Org/ComfyUI.git"
COMFYUI_PINNED_COMMIT = "a125cd84b054a57729b5eecab930ca9408719832"  # ComfyUI 0.3.64
CLONE_DIR = REPO / ".comfyui"
COMFYUI_OLDEST_COMMIT = "b8730510db30c8858e1e5d8e126ef19eac395560"  # ComfyUI 0.3.60, the oldest supported
OLDEST_CLONE_DIR = REPO / ".comfyui-oldest"

# import name -> pip requirement (ComfyUI's runtime needs for CPU sampling and its server, plus test tools)
PACKAGES = {
    "torch": "torch",
    "torchvision": "torchvision",
    "torchsde": "torchsde",
    "numpy": "numpy>=1.25.0",
    "einops": "einops",
    "transformers": "transformers>=4.37.2",
    "tokenizers": "tokenizers>=0.13.3",
    "safetensors": "safetensors>=0.4.2",
    "aiohttp": "aiohttp>=3.11.8",
    "yarl": "yarl>=1.18.0",
    "yaml": "pyyaml",
    "PIL": "Pillow",
    "scipy": "scipy",
    "tqdm": "tqdm",
    "psutil": "psutil",
    "alembic": "alembic",
    "sqlalchemy": "SQLAlchemy",
    "av": "av>=14.2.0",
    "pydantic": "pydantic~=2.0",
    "pydantic_settings": "pydantic-settings~=2.0",
    "comfyui_frontend_package": "comfyui-frontend-package==1.27.10",
    "comfyui_workflow_templates": "comfyui-workflow-templates==0.1.95",
    "comfyui_embedded_docs": "comfyui-embedded-docs==0.2.6",
    "diffusers": "diffusers>=0.42.1",
    "pytest": "pytest>=8",
    "playwright": "playwright>=1.50",
    "matplotlib": "matplotlib>=3.7",  # the benchmark's plot
}


def clone_comfyui(commit: str = COMFYUI_PINNED_COMMIT, into: Path = CLONE_DIR) -> Path | None:
    """Clone ComfyUI at `commit` into the ignored folder `into`; None when that is impossible."""
    try:
        for command in (
            ["git", "init", "-q", str(into)],
            ["git", "-C", str(into), "fetch", "-q", "--depth", "1", COMFYUI_REPOSITORY, commit],
            ["git", "-C", str(into), "checkout", "-q", "FETCH_HEAD"],
        ):
            subprocess.run(command, check=True, timeout=600, capture_output=True)
    except (OSError, subprocess.SubprocessError):
        shutil.rmtree(into, ignore_errors=True)
        return None
    return into if (into / "comfy" / "model_patcher.py").is_file() else None


def install_missing_packages() -> None:
    """pip-install whichever needed packages cannot be imported."""
    missing = [req for name, req in PACKAGES.items() if importlib.util.find_spec(name) is None]
    if not missing:
        return
    if "torch" in missing or "torchvision" in missing:
        missing = [r for r in missing if r not in ("torch", "torchvision")] + ["torch==2.14.1", "torchvision==0.29.1"]
    print(f"CacheKit setup: installing {', '.join(missing)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing])
    if result.returncode != 0:
        print("CacheKit setup: some packages could not be installed; tests that need them will be skipped.", flush=True)


def main() -> int:
    comfyui = find_comfyui()
    if comfyui is None:
        comfyui = clone_comfyui()
        if comfyui is None:
            print(
                "CacheKit setup: no ComfyUI found ($COMFYUI_PATH, ~/ComfyUI, .comfyui) and it could not be cloned: "
                "the ComfyUI tests will be skipped.",
                flush=True,
            )
        elif find_oldest_comfyui() is None and clone_comfyui(COMFYUI_OLDEST_COMMIT, OLDEST_CLONE_DIR) is None:
            print(f"CacheKit setup: ComfyUI {OLDEST_SUPPORTED} (oldest supported) could not be cloned; it will not be tested.", flush=True)
    if comfyui is not None:
        print(f"CacheKit setup: using ComfyUI at {comfyui}", flush=True)
    install_missing_packages()
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
