"""Parity with diffusers' own cache hooks on the same tiny Flux weights, sigmas and Euler steps.

For each method the per-step decision (computed or reused) of CacheKit's node in ComfyUI must equal
the decision of diffusers' hook, and the final latents must agree. Tolerances: uncached, both sides
are the same float32 math in a different order (observed max difference about 1e-6 on latents of
magnitude ~6), so 1e-4. Where a method replays cached tensors exactly as diffusers does
(FirstBlockCache, MagCache, Pyramid Attention Broadcast) the same decisions give the same
computation, so 1e-3. TaylorSeer and FasterCache predict different tensors than diffusers on purpose
(the block-stack residual instead of each attention output; CacheKit's extrapolation gate), so only
their decisions are compared exactly and the latents within a loose bound.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.append(str(Path(__file__).resolve().parent))
import flux_pair as fp  # noqa: E402

from cachekit.nodes import NODE_DEFS  # noqa: E402

NODES = {d.node_id: d for d in NODE_DEFS}


@pytest.fixture(scope="module")
def pair():
    diffusers_model = fp.make_diffusers_flux(seed=0)
    comfy_model = fp.to_comfy_flux(diffusers_model)
    context, pooled = fp.conditioning(seed=1)
    noise = torch.randn(1, 16, 16, 16, generator=torch.Generator().manual_seed(3))
    return diffusers_model, comfy_model, context, pooled, noise


def comfy_node(node_id, model, **settings):
    values = {w.id: w.default for w in NODES[node_id].widgets}
    values.update(settings)
    return NODES[node_id].apply(model, **values)


def diffusers_run(pair, config, steps, probe):
    """Sample with diffusers' hook enabled; per step, whether `probe` ran.

    `probe` must be a module inside a block (e.g. its attention's to_q): hooks on a skipped block
    itself still fire, since diffusers replaces the block's forward, not its __call__.
    """
    diffusers_model, comfy_model, context, pooled, noise = pair
    sigmas = fp.flux_sigmas(comfy_model, steps)
    ran = [False] * steps
    state = {"step": 0}

    def mark(*_):
        ran[state["step"]] = True

    handle = probe(diffusers_model).register_forward_hook(mark)
    diffusers_model.enable_cache(config)
    try:
        out = fp.euler_diffusers(diffusers_model, noise, sigmas, context, pooled, on_step=lambda i: state.__setitem__("step", i))
    finally:
        diffusers_model.disable_cache()
        handle.remove()
    return out, ["computed" if r else "reused" for r in ran]


def comfy_run(pair, patched, steps, reports):
    _, comfy_model, context, pooled, noise = pair
    out = fp.euler_comfy(patched, noise, fp.flux_sigmas(comfy_model, steps), context, pooled)
    return out, reports[-1].step_status()


def diffusers_with_timestep(pair, config, steps, current):
    """diffusers_run for hooks that read the pipeline's current timestep (0-1000) through a callback."""
    sigmas = fp.flux_sigmas(pair[1], steps)
    original = fp.euler_diffusers

    def with_timestep(model, noise, sigmas_, context, pooled, on_step=None):
        def step(i):
            current["t"] = float(sigmas[i]) * 1000
            on_step(i)
        return original(model, noise, sigmas_, context, pooled, on_step=step)

    fp.euler_diffusers = with_timestep
    try:
        return diffusers_run(pair, config, steps, lambda m: m.transformer_blocks[0].attn.to_q)
    finally:
        fp.euler_diffusers = original


def test_uncached_trajectories_agree(pair):
    diffusers_model, comfy_model, context, pooled, noise = pair
    sigmas = fp.flux_sigmas(comfy_model, 8)
    a = fp.euler_diffusers(diffusers_model, noise, sigmas, context, pooled)
    b = fp.euler_comfy(comfy_model, noise, sigmas, context, pooled)
    assert (a - b).abs().max().item() < 1e-4


@pytest.mark.parametrize("threshold", [0.2, 0.5, 1.0])
def test_first_block_cache(pair, reports, threshold):
    from diffusers import FirstBlockCacheConfig

    steps = 12
    ref, ref_steps = diffusers_run(pair, FirstBlockCacheConfig(threshold=threshold), steps, lambda m: m.transformer_blocks[1].attn.to_q)
    patched = comfy_node("CacheKitFirstBlockCache", pair[1], threshold=threshold, start_percent=0.0, end_percent=1.0, max_consecutive_skips=0)
    out, our_steps = comfy_run(pair, patched, steps, reports)
    assert our_steps == ref_steps
    assert (out - ref).abs().max().item() < 1e-3
    if threshold == 1.0:
        assert "reused" in ref_steps


@pytest.mark.parametrize("threshold, max_skip, retention", [(0.06, 3, 0.2), (0.24, 5, 0.1)])
def test_mag_cache(pair, reports, threshold, max_skip, retention):
    from diffusers import MagCacheConfig
    from diffusers.hooks.mag_cache import FLUX_MAG_RATIOS

    steps = 28
    config = MagCacheConfig(mag_ratios=FLUX_MAG_RATIOS, num_inference_steps=steps, threshold=threshold, max_skip_steps=max_skip, retention_ratio=retention)
    ref, ref_steps = diffusers_run(pair, config, steps, lambda m: m.transformer_blocks[0].attn.to_q)
    patched = comfy_node("CacheKitMagCache", pair[1], ratios="flux", threshold=threshold, max_skip_steps=max_skip, retention_ratio=retention)
    out, our_steps = comfy_run(pair, patched, steps, reports)
    assert our_steps == ref_steps
    assert ref_steps.count("reused") > 0
    assert (out - ref).abs().max().item() < 1e-3


def test_mag_cache_reads_ratios_by_progress_not_by_index(pair, reports):
    """The deliberate difference: at 8 steps diffusers picks 8 table entries by nearest index, while
    CacheKit integrates the change each step really spans; CacheKit then reuses less, and stays closer."""
    from diffusers import MagCacheConfig
    from diffusers.hooks.mag_cache import FLUX_MAG_RATIOS

    steps = 8
    _, ref_steps = diffusers_run(pair, MagCacheConfig(mag_ratios=FLUX_MAG_RATIOS, num_inference_steps=steps, threshold=0.24, max_skip_steps=5, retention_ratio=0.1), steps, lambda m: m.transformer_blocks[0].attn.to_q)
    patched = comfy_node("CacheKitMagCache", pair[1], ratios="flux", threshold=0.24, max_skip_steps=5, retention_ratio=0.1)
    _, our_steps = comfy_run(pair, patched, steps, reports)
    assert our_steps.count("reused") <= ref_steps.count("reused")


def test_pyramid_attention_broadcast(pair, reports):
    from diffusers import PyramidAttentionBroadcastConfig

    steps = 10
    current = {"t": 1000.0}
    config = PyramidAttentionBroadcastConfig(
        spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=(-1, 1001),
        current_timestep_callback=lambda: current["t"],
    )
    comfy_model = pair[1]
    ref, ref_steps = diffusers_with_timestep(pair, config, steps, current)
    patched = comfy_node("CacheKitPyramidAttentionBroadcast", comfy_model, spatial_attention_block_skip_range=2,
                         spatial_attention_start_percent=0.0, spatial_attention_end_percent=1.0)
    out, our_steps = comfy_run(pair, patched, steps, reports)
    assert our_steps == ref_steps and "reused" in ref_steps
    assert (out - ref).abs().max().item() < 1e-3


def test_taylorseer_schedule(pair, reports):
    from diffusers import TaylorSeerCacheConfig

    steps = 12
    config = TaylorSeerCacheConfig(cache_interval=3, disable_cache_before_step=2, max_order=1, taylor_factors_dtype=torch.float32)
    ref, ref_steps = diffusers_run(pair, config, steps, lambda m: m.transformer_blocks[0].attn.to_q)
    patched = comfy_node("CacheKitTaylorSeerCache", pair[1], cache_interval=3, disable_cache_before_step=2, max_order=1,
                         taylor_factors_dtype="float32", mode="blocks")
    out, our_steps = comfy_run(pair, patched, steps, reports)
    assert our_steps == ref_steps and ref_steps.count("reused") == 7
    assert (out - ref).abs().max().item() < 0.25 * ref.abs().max().item()


def test_taylorseer_lite_predicts_what_diffusers_lite_predicts(pair, reports):
    """diffusers' lite mode skips the blocks and predicts proj_out; CacheKit's lite predicts the raw model
    output, which is proj_out unpatchified (a rearrangement the expansion commutes with): same decisions
    and, with float32 factors, the same latents up to float rounding."""
    from diffusers import TaylorSeerCacheConfig

    steps = 12
    config = TaylorSeerCacheConfig(cache_interval=3, disable_cache_before_step=2, max_order=1, taylor_factors_dtype=torch.float32,
                                   use_lite_mode=True)
    ref, ref_steps = diffusers_run(pair, config, steps, lambda m: m.transformer_blocks[0].attn.to_q)
    patched = comfy_node("CacheKitTaylorSeerCache", pair[1], cache_interval=3, disable_cache_before_step=2, max_order=1,
                         taylor_factors_dtype="float32", mode="lite")
    out, our_steps = comfy_run(pair, patched, steps, reports)
    assert our_steps == ref_steps and ref_steps.count("reused") == 7
    assert (out - ref).abs().max().item() < 1e-3


def test_faster_cache_attention_on_a_distilled_model(pair, reports):
    """Guidance-distilled Flux at cfg 1: only the attention part acts (no unconditional branch).
    diffusers' window starts after step 0 (inside it, its first call has no cache and fails)."""
    from diffusers import FasterCacheConfig

    steps = 10
    current = {"t": 1000.0}
    config = FasterCacheConfig(
        spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=(-1, 999), attention_weight_callback=lambda _: 0.5,
        current_timestep_callback=lambda: current["t"], is_guidance_distilled=True, tensor_format="BCHW",
    )
    ref, ref_steps = diffusers_with_timestep(pair, config, steps, current)
    patched = comfy_node("CacheKitFasterCache", pair[1], spatial_attention_block_skip_range=2, spatial_attention_start_percent=0.05,
                         spatial_attention_end_percent=1.0, attention_weight=0.5)
    out, our_steps = comfy_run(pair, patched, steps, reports)
    assert our_steps == ref_steps and "reused" in ref_steps
    assert (out - ref).abs().max().item() < 0.25 * ref.abs().max().item()
