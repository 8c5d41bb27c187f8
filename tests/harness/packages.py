"""Importing CacheKit in tests.

ComfyUI has a top-level module `nodes.py`, and CacheKit a package `nodes/`, so the repository root
must never be on sys.path. Tests import CacheKit as the package `cachekit` instead: a package
object whose path is the repository root. Its `__init__.py` (the ComfyUI entry point) is not run;
ComfyUI runs it itself when it loads the pack (the server tests do that).
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def register_cachekit() -> types.ModuleType:
    """Make `import cachekit.cache_core...` and `cachekit.nodes...` work; idempotent."""
    module = sys.modules.get("cachekit")
    if module is None:
        module = types.ModuleType("cachekit")
        module.__path__ = [str(REPO)]
        module.__file__ = str(REPO / "__init__.py")
        sys.modules["cachekit"] = module
    return module
