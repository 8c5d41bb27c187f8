"""Regenerate the generated parts of README.md (the support matrix) from the family table."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # last: ComfyUI's namespace package `comfy` must win over tests/comfy
from harness.packages import REPO, register_cachekit  # noqa: E402

register_cachekit()
from cachekit.cache_core.families.support_matrix import with_matrix  # noqa: E402

if __name__ == "__main__":
    readme = REPO / "README.md"
    readme.write_text(with_matrix(readme.read_text()))
    print("README.md support matrix updated")
