"""Finding a ComfyUI checkout and importing it in-process (CPU only)."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CURRENT = "0.33.0"  # the ComfyUI release the tests target first (`make setup` fetches it when none is found)


def find_comfyui() -> Path | None:
    """$COMFYUI_PATH, then ~/ComfyUI, then <repo>/.comfyui: the first real ComfyUI checkout, or None."""
    candidates = [os.environ.get("COMFYUI_PATH"), str(Path.home() / "ComfyUI"), str(REPO / ".comfyui")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "comfy" / "model_patcher.py").is_file():
            return Path(candidate).resolve()
    return None


OLDEST_SUPPORTED = "0.3.60"
# Packages that the oldest release pins at other versions than the current one (its frontend, workflow templates,
# docs): `make setup` installs them here, and only the oldest release's run puts this folder first on PYTHONPATH.
OLDEST_OVERLAY = REPO / ".comfyui-oldest-packages"


def comfyui_version(root: Path | None) -> str | None:
    """The release of a ComfyUI checkout (its comfyui_version.py), or None."""
    path = Path(root) / "comfyui_version.py" if root is not None else None
    if path is None or not path.is_file():
        return None
    match = re.search(r"__version__\s*=\s*[\"']([^\"']+)", path.read_text())
    return match.group(1) if match else None


def find_oldest_comfyui() -> Path | None:
    """The oldest supported ComfyUI release: $COMFYUI_OLDEST_PATH, ~/ComfyUI-0.3.60, <repo>/.comfyui-oldest."""
    candidates = [
        os.environ.get("COMFYUI_OLDEST_PATH"),
        str(Path.home() / f"ComfyUI-{OLDEST_SUPPORTED}"),
        str(REPO / ".comfyui-oldest"),
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "comfy" / "model_patcher.py").is_file():
            return Path(candidate).resolve()
    return None


_booted: Path | None = None


def boot_comfy() -> Path:
    """Import ComfyUI in this process, on the CPU; returns its root. Raises RuntimeError if absent."""
    global _booted
    if _booted is not None:
        return _booted
    root = find_comfyui()
    if root is None:
        raise RuntimeError("no ComfyUI checkout found ($COMFYUI_PATH, ~/ComfyUI, .comfyui)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    saved_argv = sys.argv
    sys.argv = [saved_argv[0] if saved_argv else "pytest", "--cpu"]
    try:
        import comfy.options

        comfy.options.enable_args_parsing()
        import comfy.model_management  # noqa: F401  (parses the arguments)
        import comfy.sample  # noqa: F401
    finally:
        sys.argv = saved_argv
    _booted = root
    return root
