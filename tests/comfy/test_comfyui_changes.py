"""What ComfyUI changed after 0.3.64, respected: post-block patch hooks, the copy of transformer_options
at the start of Flux's forward, clone()'s new arguments, the index_timestep_zero reference method,
and Flux.2 kept apart from Flux.1. Each test runs on every supported release; a behaviour a release
does not have is skipped with the reason."""
from __future__ import annotations

import inspect
import logging

import pytest
import torch

from cachekit.cache_core.families.table import family_for_module
from cachekit.nodes import NODE_DEFS
from harness import tiny_families

NODES = {d.node_id: d for d in NODE_DEFS}
STEPS = 10


def fbc(model, threshold=1.0):
    return NODES["CacheKitFirstBlockCache"].apply(model, threshold=threshold)


def relative(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("name", ["wan22_5b", "qwen_image"])
def test_a_post_block_patch_turns_block_skipping_off(reports, name):
    """Wan's and Qwen-Image's `patches["double_block"]` run after every block: with one set, a skipped
    block would still get the patch applied, so the stack computes everything (exactly)."""
    model = tiny_families.load_family(name)

    def post_block(args):
        return {**{k: args[k] for k in ("img", "txt") if k in args}, "img": args["img"] * 1.01}

    patched = model.clone()
    patched.set_model_patch(post_block, "double_block")
    plain = tiny_families.sample_family(model, name, steps=STEPS, cfg=2.0)
    with_patch = tiny_families.sample_family(patched, name, steps=STEPS, cfg=2.0)
    if torch.equal(plain, with_patch):
        pytest.skip(f"this ComfyUI applies no post-block double_block patches to {name}")
    out = tiny_families.sample_family(fbc(patched), name, steps=STEPS, cfg=2.0)
    assert torch.equal(out, with_patch)
    assert reports[-1].units_computed == reports[-1].units_total
    tiny_families.sample_family(fbc(model), name, steps=STEPS, cfg=2.0)
    assert reports[-1].units_computed < reports[-1].units_total  # without the patch it skips


def test_flux_copies_transformer_options_and_the_context_still_reaches_every_block(tiny, reports):
    """0.33's Flux copies transformer_options at the start of forward_orig; the forward's context is an
    entry of that dict, so the copy carries it to every block."""
    import comfy.ldm.flux.model

    copies = "transformer_options.copy()" in inspect.getsource(comfy.ldm.flux.model.Flux.forward_orig)
    model = tiny.load_tiny("flux")
    tiny.run_sampler(fbc(model, threshold=0.5), "flux", steps=STEPS, cfg=2.0)
    report = reports[-1]
    assert report.units_total == STEPS * 4 and report.units_computed < report.units_total
    assert copies or not hasattr(comfy.ldm.flux.model.Flux, "txt_norm")  # 0.33 copies; 0.3.60 passes the dict itself


def test_clone_with_the_new_arguments_keeps_the_cache(tiny, reports):
    """TorchCompileModel clones with disable_dynamic=True (0.33); the clone keeps CacheKit's hooks."""
    import comfy.model_patcher

    if "disable_dynamic" not in inspect.signature(comfy.model_patcher.ModelPatcher.clone).parameters:
        pytest.skip("this ComfyUI's ModelPatcher.clone has no disable_dynamic argument")
    model = tiny.load_tiny("wan21")
    cloned = fbc(model, threshold=0.5).clone(disable_dynamic=True)
    base = tiny.run_sampler(model, "wan21", steps=STEPS, cfg=2.0)
    out = tiny.run_sampler(cloned, "wan21", steps=STEPS, cfg=2.0)
    assert reports[-1].units_computed < reports[-1].units_total and relative(out, base) < 0.25
    off = fbc(model, threshold=0.0).clone(disable_dynamic=True)
    assert torch.equal(tiny.run_sampler(off, "wan21", steps=STEPS, cfg=2.0), base)


def test_index_timestep_zero_doubles_the_timestep_batch_and_caching_still_holds(reports):
    """The index_timestep_zero reference method (Qwen-Image-Edit 2511, Flux.2) runs the reference tokens at
    t = 0: the blocks' vec then has twice the image batch. The cache keys rows by the image stream, so
    batched CFG still caches per branch and threshold 0 is exact."""
    import comfy.ldm.qwen_image.model
    import comfy.sample

    if "timestep_zero_index" not in inspect.getsource(comfy.ldm.qwen_image.model):
        pytest.skip("this ComfyUI has no index_timestep_zero reference method")
    name = "qwen_image"
    model = tiny_families.load_family(name)

    def sample(m):
        latent = tiny_families.family_latent(name)
        noise = comfy.sample.prepare_noise(latent, 0)
        positive, negative = (tiny_families.family_conditioning(name, seed=s) for s in (1, 2))
        for cond in (positive, negative):
            cond[0][1]["reference_latents"] = [torch.randn(1, 16, 1, 8, 8, generator=torch.Generator().manual_seed(4))]
            cond[0][1]["reference_latents_method"] = "index_timestep_zero"
        return comfy.sample.sample(m, noise, STEPS, 2.0, "euler", "simple", positive, negative, latent, disable_pbar=True, seed=0)

    base = sample(model)
    assert torch.equal(sample(fbc(model, threshold=0.0)), base)
    out = sample(fbc(model, threshold=1.0))
    assert reports[-1].units_computed < reports[-1].units_total and relative(out, base) < 0.5


def test_flux2_is_its_own_family(caplog):
    """Flux.2 is ComfyUI's Flux class with global modulation: named Flux2, cached as Flux2, and a Flux.1
    ratio table on it gives a warning."""
    if "flux2" not in tiny_families.FAMILY_NAMES:
        pytest.skip("this ComfyUI has no Flux.2 (global modulation)")
    model = tiny_families.load_family("flux2")
    assert family_for_module(model.get_model_object("diffusion_model")).name == "Flux2"
    with caplog.at_level(logging.WARNING, logger="CacheKit"):
        NODES["CacheKitMagCache"].run(model, None, {"ratios": "flux", "threshold": 0.06, "max_skip_steps": 3, "retention_ratio": 0.2})
    assert any("were calibrated for Flux, but the model is Flux2" in r.getMessage() for r in caplog.records)
