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
        import hashlib

        digest = hashlib.sha256(latent.numpy().tobytes()).hexdigest()
        stats = {"mean": float(latent.mean()), "std": float(latent.std()), "shape": list(latent.shape), "path": path,
                 "sha256": digest}
        return {"ui": {"stats": [stats]}}


# --------------------------------------------------------------------------------------------------------------------
# Nodes for the robustness tests (tests/comfy/test_robustness_*.py)


class _AnyType(str):
    """A type that ComfyUI's link check accepts for every input (its `__ne__` says equal), as "any" packs do."""

    def __ne__(self, other):
        return False

    __hash__ = str.__hash__


ANY = _AnyType("*")
COUNTERS: dict[str, int] = {}  # what the test patches saw, reported by CacheKitTestProbe


def _count(name: str, amount: int = 1) -> None:
    COUNTERS[name] = COUNTERS.get(name, 0) + amount


class CacheKitTestRerun:
    """MODEL through unchanged, but never cached by ComfyUI: every node after it runs again in each prompt."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "run"
    CATEGORY = "CacheKitTest"

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def run(self, model):
        return (model,)


class CacheKitTestValue:
    """Any value from JSON (NaN and Infinity allowed), typed so that it links to any input: to feed a widget that was
    turned into an input, or a MODEL input, a value that a widget could not hold. `kind` tensor gives a torch tensor."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("STRING", {"default": "0"}), "kind": (["json", "tensor", "none"], {"default": "json"})}}

    RETURN_TYPES = (ANY,)
    FUNCTION = "make"
    CATEGORY = "CacheKitTest"

    def make(self, value, kind):
        import json

        import torch

        if kind == "tensor":
            return (torch.zeros(1, 16, 1, 8, 8),)
        if kind == "none":
            return (None,)
        return (json.loads(value),)


class CacheKitTestPauseAt:
    """The model, paused at one of its evaluations until the server is interrupted (POST /interrupt).

    At the `evaluation`-th model evaluation of each sampling run (1-based) it creates the file `marker`, then waits
    (up to `timeout` seconds) until ComfyUI's interrupt flag is set and returns; ComfyUI's own step callback then
    ends the run with its InterruptProcessingException, as an interrupt from the browser does."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "evaluation": ("INT", {"default": 3, "min": 1, "max": 10000}),
            "marker": ("STRING", {"default": ""}),
            "timeout": ("FLOAT", {"default": 60.0, "min": 0.0, "max": 600.0}),
        }}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "CacheKitTest"

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def patch(self, model, evaluation, marker, timeout):
        import time

        import comfy.model_management

        seen = [0]

        def pause(args):
            seen[0] += 1
            if seen[0] == evaluation:
                if marker:
                    with open(marker, "w") as handle:
                        handle.write(str(seen[0]))
                deadline = time.time() + timeout
                while not comfy.model_management.processing_interrupted() and time.time() < deadline:
                    time.sleep(0.005)
                _count("paused")
            return args["denoised"]

        patched = model.clone()
        patched.set_model_sampler_post_cfg_function(pause)
        return (patched,)


class CacheKitTestSplitCFG:
    """The model with cond and uncond evaluated in separate forwards (split CFG), as ComfyUI does when memory is
    short: during each calc_cond_batch the model reports that joining conditionings needs more memory than any machine
    has (see harness.tiny_models.force_split_cfg, here per model through a CALC_COND_BATCH wrapper).
    COUNTERS["split_refusals"] counts the joins refused since the node last ran (CacheKitTestProbe reports it)."""

    KEY = "cachekit_test_split_cfg"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "CacheKitTest"

    def patch(self, model):
        from comfy.patcher_extension import WrappersMP

        from harness.tiny_models import MORE_THAN_ANY_MACHINE_HAS

        def wrapper(executor, base_model, *args, **kwargs):
            original = type(base_model).memory_required

            def memory_required(input_shape, cond_shapes={}, *more, **options):
                if any(len(shapes) > 1 for shapes in dict(cond_shapes).values()):
                    _count("split_refusals")
                    return MORE_THAN_ANY_MACHINE_HAS
                return original(base_model, input_shape, cond_shapes, *more, **options)

            base_model.memory_required = memory_required
            try:
                return executor(base_model, *args, **kwargs)
            finally:
                del base_model.memory_required

        COUNTERS["split_refusals"] = 0  # counts this prompt's refused joins (the node runs again in every prompt)
        patched = model.clone()
        patched.add_wrapper_with_key(WrappersMP.CALC_COND_BATCH, self.KEY, wrapper)
        return (patched,)


TINY_FAMILIES = ["flux", "hunyuan3d_v21", "pixart_sigma", "sd15"]


class CacheKitTestTinyModel:
    """A tiny random-weight model of a family (harness.tiny_models / tiny_families), built in the server."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"family": (TINY_FAMILIES, {"default": "flux"}), "seed": ("INT", {"default": 0, "min": 0})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load"
    CATEGORY = "CacheKitTest"

    def load(self, family, seed):
        if family == "flux":
            from harness.tiny_models import tiny_flux

            return (tiny_flux(seed),)
        from harness.tiny_families import load_family

        return (load_family(family, seed),)


class CacheKitTestFamilyInputs:
    """Positive and negative CONDITIONING and a zero LATENT for a tiny family (harness.tiny_families)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"family": (TINY_FAMILIES, {"default": "flux"})}}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    FUNCTION = "make"
    CATEGORY = "CacheKitTest"

    def make(self, family):
        if family == "flux":
            from harness.tiny_models import empty_latent

            return make_conditioning("flux", seed=1), make_conditioning("flux", seed=2), {"samples": empty_latent("flux")}
        from harness.tiny_families import family_conditioning, family_latent

        return (family_conditioning(family, seed=1), family_conditioning(family, seed=2), {"samples": family_latent(family)})


class CacheKitTestTinyControlNet:
    """A tiny XLabs-style Flux ControlNet matching CacheKitTestTinyModel's flux (harness.tiny_models)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0})}}

    RETURN_TYPES = ("CONTROL_NET",)
    FUNCTION = "load"
    CATEGORY = "CacheKitTest"

    def load(self, seed):
        from harness.tiny_models import tiny_flux_controlnet

        return (tiny_flux_controlnet(seed),)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cachekit_held() -> dict:
    """What CacheKit holds right now: live sampling runs (and their method state's cache bytes) and live per-branch
    stores with their tensor bytes, found through the garbage collector; `specs` counts the caches installed on
    patched models still alive (a positive control: ComfyUI's output cache keeps the last patched models)."""
    import gc

    runs = stores = run_bytes = store_bytes = specs = 0
    for obj in gc.get_objects():
        kind = type(obj)
        module = kind.__dict__.get("__module__")
        if not isinstance(module, str) or not module.endswith(("cache_core.runtime.run", "cache_core.runtime.branches")):
            continue
        if kind.__name__ == "CacheSpec":  # installed on a patched model (ComfyUI may keep it in its output cache)
            specs += 1
        elif kind.__name__ == "SamplingRun":
            runs += 1
            try:
                run_bytes += int(obj.state.cache_bytes())
            except Exception:
                pass
        elif kind.__name__ in ("BatchStore", "BranchStore"):
            stores += 1
            try:
                store_bytes += int(obj.nbytes())
            except Exception:
                pass
    modules = sorted(name for name in sys.modules if name.endswith("cache_core.runtime.run"))  # where to look
    return {"runs": runs, "run_cache_bytes": run_bytes, "stores": stores, "store_bytes": store_bytes, "specs": specs,
            "modules": modules}


def live_tensors() -> dict:
    """Count and bytes of the torch tensors alive in the process (parameters included)."""
    import gc

    import torch

    count = nbytes = 0
    for obj in gc.get_objects():
        try:
            if isinstance(obj, torch.Tensor) and not obj.is_meta:
                count += 1
                nbytes += obj.element_size() * obj.nelement()
        except Exception:
            pass
    return {"count": count, "bytes": nbytes}


class CacheKitTestProbe:
    """Output node: after a gc and ComfyUI's cache emptying (what its prompt worker does between prompts), reports
    the process RSS, what CacheKit holds, the live tensors, and the test patches' counters. Never cached."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"label": ("STRING", {"default": "probe"}), "deep": ("BOOLEAN", {"default": True})},
                "optional": {"after": (ANY,)}}

    RETURN_TYPES = ()
    FUNCTION = "probe"
    OUTPUT_NODE = True
    CATEGORY = "CacheKitTest"

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def probe(self, label, deep, after=None):
        import gc

        import comfy.model_management

        gc.collect()
        comfy.model_management.soft_empty_cache()
        report = {"label": label, "rss": _rss_bytes(), "counters": dict(COUNTERS)}
        if deep:
            report["cachekit"] = cachekit_held()
            report["tensors"] = live_tensors()
        return {"ui": {"probe": [report]}}


NODE_CLASS_MAPPINGS = {
    "CacheKitTestConditioning": CacheKitTestConditioning,
    "CacheKitTestLatentStats": CacheKitTestLatentStats,
    "CacheKitTestRerun": CacheKitTestRerun,
    "CacheKitTestValue": CacheKitTestValue,
    "CacheKitTestPauseAt": CacheKitTestPauseAt,
    "CacheKitTestSplitCFG": CacheKitTestSplitCFG,
    "CacheKitTestTinyModel": CacheKitTestTinyModel,
    "CacheKitTestFamilyInputs": CacheKitTestFamilyInputs,
    "CacheKitTestTinyControlNet": CacheKitTestTinyControlNet,
    "CacheKitTestProbe": CacheKitTestProbe,
}
