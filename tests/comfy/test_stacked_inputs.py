"""What users stack on a MODEL or a conditioning: ControlNet, context windows, LoRA, torch.compile, low VRAM.

ControlNet residuals and context windows change what one forward means, so every CacheKit node
computes everything while they are active (exactly the uncached result); LoRA-patched weights are
just weights, so caching works on them as on any model.
"""
from __future__ import annotations

import logging

import pytest
import torch

from cachekit.nodes import NODE_DEFS
from harness.workflow import run_node

NODES = {d.node_id: d for d in NODE_DEFS if d.node_id != "CacheKitMagCacheCalibrate"}
AGGRESSIVE = {
    "CacheKitFirstBlockCache": dict(threshold=1.0),
    "CacheKitMagCache": dict(threshold=0.5, retention_ratio=0.0),
    "CacheKitPyramidAttentionBroadcast": dict(spatial_attention_start_percent=0.0, spatial_attention_end_percent=1.0),
    "CacheKitFasterCache": {},
    "CacheKitTaylorSeerCache": dict(disable_cache_before_step=1, cache_interval=3),
    "CacheKitHybridBlockCache": dict(residual_diff_threshold=0.5, warmup_steps=1),
}


def apply(node_id, model):
    values = {w.id: w.default for w in NODES[node_id].widgets}
    values.update(AGGRESSIVE[node_id])
    return NODES[node_id].apply(model, **values)


@pytest.fixture(scope="module")
def controlled(tiny):
    import nodes

    model = tiny.load_tiny("flux")
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    positive, negative = run_node(
        nodes.ControlNetApplyAdvanced, positive=tiny.make_conditioning("flux", seed=1),
        negative=tiny.make_conditioning("flux", seed=2), control_net=tiny.tiny_flux_controlnet(), image=image,
        strength=1.0, start_percent=0.0, end_percent=1.0,
    )
    return model, positive, negative


@pytest.mark.parametrize("node_id", list(NODES))
def test_controlnet_turns_caching_off(tiny, controlled, node_id):
    model, positive, negative = controlled
    base = tiny.run_sampler(model, "flux", steps=10, cfg=2.0, positive=positive, negative=negative)
    plain = tiny.run_sampler(model, "flux", steps=10, cfg=2.0)
    assert not torch.equal(base, plain)  # the ControlNet really acts
    out = tiny.run_sampler(apply(node_id, model), "flux", steps=10, cfg=2.0, positive=positive, negative=negative)
    assert torch.equal(out, base)


@pytest.mark.parametrize("node_id", list(NODES))
def test_context_windows_turn_caching_off_with_a_warning(tiny, caplog, node_id):
    from comfy_extras.nodes_context_windows import WanContextWindowsManualNode

    model = tiny.load_tiny("wan21")
    windowed = run_node(WanContextWindowsManualNode, model=model, context_length=9, context_overlap=1,
                        context_schedule="standard_static", context_stride=1, closed_loop=False, fuse_method="pyramid")[0]
    latent = torch.zeros(1, 16, 6, 8, 8)
    base = tiny.run_sampler(windowed, "wan21", steps=8, cfg=2.0, latent=latent)
    with caplog.at_level(logging.WARNING, logger="CacheKit"):
        out = tiny.run_sampler(apply(node_id, windowed), "wan21", steps=8, cfg=2.0, latent=latent)
    assert torch.equal(out, base)
    assert "context windows" in caplog.text


def _tiny_lora(model) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    lora = {}
    for name, weight in model.model.diffusion_model.state_dict().items():
        if name.endswith("self_attn.q.weight") or name.endswith("ffn.0.weight"):
            stem = "diffusion_model." + name[: -len(".weight")]
            lora[f"{stem}.lora_up.weight"] = torch.randn(weight.shape[0], 4, generator=generator) * 0.1
            lora[f"{stem}.lora_down.weight"] = torch.randn(4, weight.shape[1], generator=generator) * 0.1
    return lora


def test_lora_patched_models_cache_like_any_model(tiny):
    import comfy.sd

    model = tiny.load_tiny("wan21")
    lora_model, _ = comfy.sd.load_lora_for_models(model, None, _tiny_lora(model), 1.0, 0.0)
    base = tiny.run_sampler(lora_model, "wan21", steps=12, cfg=2.0)
    assert not torch.equal(base, tiny.run_sampler(model, "wan21", steps=12, cfg=2.0))  # the LoRA really acts
    fbc = NODES["CacheKitFirstBlockCache"]
    off = fbc.apply(lora_model, threshold=0.0, start_percent=0.0, end_percent=1.0, max_consecutive_skips=0)
    assert torch.equal(tiny.run_sampler(off, "wan21", steps=12, cfg=2.0), base)
    with tiny.count_block_calls(model) as counter:
        out = tiny.run_sampler(apply("CacheKitFirstBlockCache", lora_model), "wan21", steps=12, cfg=2.0)
    assert counter.calls < counter.forwards * 3
    assert (out - base).abs().max().item() < 0.5 * base.abs().max().item()
    # and the cache applied before the LoRA works too (the LoRA loader clones the patched model)
    cache_on_base = fbc.apply(model, threshold=0.0, start_percent=0.0, end_percent=1.0, max_consecutive_skips=0)
    cached_first, _ = comfy.sd.load_lora_for_models(cache_on_base, None, _tiny_lora(model), 1.0, 0.0)
    assert torch.equal(tiny.run_sampler(cached_first, "wan21", steps=12, cfg=2.0), base)


@pytest.mark.parametrize("order", ["cache-then-compile", "compile-then-cache"])
def test_torch_compile_in_either_order(tiny, order):
    """ComfyUI's compile wrapper (what TorchCompileModel installs), eager backend for speed."""
    from comfy_api.torch_helpers import set_torch_compile_wrapper

    model = tiny.load_tiny("flux")
    fbc = NODES["CacheKitFirstBlockCache"]
    settings = dict(start_percent=0.0, end_percent=1.0, max_consecutive_skips=0)
    plain = tiny.run_sampler(model, "flux", steps=8, cfg=2.0)
    skipping_uncompiled = tiny.run_sampler(fbc.apply(model, threshold=1.0, **settings), "flux", steps=8, cfg=2.0)

    def build(threshold):
        if order == "compile-then-cache":
            compiled = model.clone()
            set_torch_compile_wrapper(compiled, backend="eager")
            return fbc.apply(compiled, threshold=threshold, **settings)
        cached = fbc.apply(model, threshold=threshold, **settings).clone()
        set_torch_compile_wrapper(cached, backend="eager")
        return cached

    assert torch.allclose(tiny.run_sampler(build(0.0), "flux", steps=8, cfg=2.0), plain, atol=1e-5)
    assert torch.allclose(tiny.run_sampler(build(1.0), "flux", steps=8, cfg=2.0), skipping_uncompiled, atol=1e-5)


def test_torch_compile_model_node_with_inductor(tiny, caplog):
    from comfy_extras.nodes_torch_compile import TorchCompileModel

    model = tiny.load_tiny("flux")
    compiled = run_node(TorchCompileModel, model=model, backend="inductor")[0]
    base = tiny.run_sampler(compiled, "flux", steps=6, cfg=2.0)
    fbc = NODES["CacheKitFirstBlockCache"]
    patched = fbc.apply(compiled, threshold=1.0, start_percent=0.0, end_percent=1.0, max_consecutive_skips=0)
    with caplog.at_level(logging.INFO, logger="CacheKit"):
        out = tiny.run_sampler(patched, "flux", steps=6, cfg=2.0)
    assert torch.isfinite(out).all() and (out - base).abs().max().item() < 0.5 * base.abs().max().item()
    (line,) = [r.getMessage() for r in caplog.records if "CacheKit FirstBlockCache [Flux]" in r.getMessage()]
    computed, total = map(int, line.split("computed ")[1].split(" steps")[0].split("/"))
    assert computed < total == 6


@pytest.fixture
def partial_loading(monkeypatch):
    """ComfyUI's low-VRAM partial loading, forced on this CPU-only machine.

    load_models_gpu never partially loads onto a CPU device, so the CPU is reported as a device with
    no free memory (--novram): every module is then left "offloaded" and casts its weights per call
    (comfy.ops' lowvram path, LoRA patches applied on the fly), as on a small GPU.
    """
    import comfy.model_management as mm

    mm.unload_all_models()
    monkeypatch.setattr(mm, "is_device_cpu", lambda device: False)
    monkeypatch.setattr(mm, "vram_state", mm.VRAMState.NO_VRAM)
    yield
    mm.unload_all_models()


@pytest.mark.parametrize("node_id", list(NODES))
def test_low_vram_partial_loading(tiny, partial_loading, reports, node_id):
    import comfy.model_management as mm
    import comfy.sd

    model = tiny.load_tiny("wan21")
    lora_model, _ = comfy.sd.load_lora_for_models(model, None, _tiny_lora(model), 1.0, 0.0)
    base = tiny.run_sampler(lora_model, "wan21", steps=10, cfg=2.0)
    assert any(m.model is lora_model for m in mm.current_loaded_models)
    assert lora_model.model.model_lowvram and lora_model.model.lowvram_patch_counter > 0  # really partially loaded
    if node_id == "CacheKitFirstBlockCache":
        off = NODES[node_id].apply(lora_model, threshold=0.0, start_percent=0.0, end_percent=1.0, max_consecutive_skips=0)
        assert torch.equal(tiny.run_sampler(off, "wan21", steps=10, cfg=2.0), base)
    out = tiny.run_sampler(apply(node_id, lora_model), "wan21", steps=10, cfg=2.0)
    report = reports[-1]
    assert report.units_computed < report.units_total, report.summary()
    assert torch.isfinite(out).all() and (out - base).abs().max().item() < 0.5 * base.abs().max().item()
