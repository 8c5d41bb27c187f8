"""Tests against a real ComfyUI, in-process on the CPU; skipped when no checkout is found."""
from __future__ import annotations

import pytest

from harness.comfy_env import boot_comfy, find_comfyui

if find_comfyui() is None:
    collect_ignore_glob = ["test_*.py"]
else:
    boot_comfy()
    import torch

    # The tiny models are far faster on one thread than on two contended cores.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny():
    """The tiny-model helpers (harness.tiny_models)."""
    from harness import tiny_models

    return tiny_models



@pytest.fixture(scope="module")
def server():
    """A headless ComfyUI server with CacheKit, one per test module (harness.robustness.RobustServer)."""
    from harness.robustness import RobustServer

    srv = RobustServer()
    try:
        yield srv
    finally:
        srv.stop()
