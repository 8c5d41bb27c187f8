"""Regenerate the generated parts of README.md (the support matrix) from the family table."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.packages import REPO, register_cachekit  # noqa: E402

register_cachekit()
from cachekit.cache_core.families.support_matrix import with_matrix  # noqa: E402

if __name__ == "__main__":
    readme = REPO / "README.md"
    readme.write_text(with_matrix(readme.read_text()))
    print("README.md support matrix updated")
