"""Test-only ComfyUI node pack: conditioning without a text encoder, and latent outputs a test can read.

Loaded by the headless-server tests and the demo next to CacheKit; never installed for users.
"""
from __future__ import annotations

import os
import sys

_TESTS = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
if _TESTS not in sys.path:
    sys.path.append(_TESTS)  # last: ComfyUI's namespace package `comfy` must win over tests/comfy

from harness.tiny_models import make_conditioning  # noqa: E402


class CacheKitTestConditioning:
    """CONDITIONING of the right width for a tiny test model, from a seed."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "family": (["wan21", "hunyuan_video", "flux"], {"default": "wan21"}),
            "seed": ("INT", {"default": 1, "min": 0, "max": 2**31}),
            "length": ("INT", {"default": 8, "min": 1, "max": 512}),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "make"
    CATEGORY = "CacheKitTest"

    def make(self, family, seed, length):
        return (make_conditioning(family, seed=seed, length=length),)


class CacheKitTestLatentStats:
    """Output node: saves the latent to the output folder and reports its statistics in the UI."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "name": ("STRING", {"default": "latent"})}}

    RETURN_TYPES = ()
    FUNCTION = "report"
    OUTPUT_NODE = True
    CATEGORY = "CacheKitTest"

    def report(self, samples, name):
        import folder_paths
        from safetensors.torch import save_file

        latent = samples["samples"].float().contiguous()
        directory = os.path.join(folder_paths.get_output_directory(), "cachekit_test")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{name}.safetensors")
        save_file({"samples": latent}, path)
        stats = {"mean": float(latent.mean()), "std": float(latent.std()), "shape": list(latent.shape), "path": path}
        return {"ui": {"stats": [stats]}}


NODE_CLASS_MAPPINGS = {
    "CacheKitTestConditioning": CacheKitTestConditioning,
    "CacheKitTestLatentStats": CacheKitTestLatentStats,
}
