"""Parity tests against diffusers' own cache hooks: need real ComfyUI and diffusers."""
from __future__ import annotations

import importlib.util

from harness.comfy_env import boot_comfy, find_comfyui

if find_comfyui() is None or importlib.util.find_spec("diffusers") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    boot_comfy()
    import torch

    torch.set_num_threads(1)
