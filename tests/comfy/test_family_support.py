"""Every (family x method) combination of the family table, on a tiny model of that family.

Supported: settings that reuse nothing reproduce the unpatched model exactly, and the method's
default-like settings reuse work (fewer units computed, checked against real block calls for the
block-level methods) with a bounded difference. Unsupported: the model passes through unchanged
with one warning naming the family.
"""
from __future__ import annotations

import logging

import pytest
import torch

from cachekit.cache_core.families.table import family_for_module
from cachekit.nodes import NODE_DEFS
from harness import tiny_families

# tiny model -> its family-table name
SUPPORTED = {
    "flux_kontext": "Flux", "chroma": "Chroma", "hunyuan_image21": "HunyuanVideo", "wan22_5b": "Wan", "wan21_i2v": "Wan",
    "qwen_image": "QwenImage", "ltxv": "LTXV", "sd3": "SD3", "sd35": "SD3", "mochi": "Mochi", "auraflow": "AuraFlow",
    "hunyuan3d_v2": "Hunyuan3Dv2",
}
UNSUPPORTED = {
    "lumina2": "Lumina2", "hidream": "HiDream", "cosmos_t2v": "Cosmos", "cosmos_predict2": "CosmosPredict2",
    "hunyuan3d_v21": "Hunyuan3Dv2_1", "sd15": "UNet", "sdxl": "UNet", "pixart_sigma": "PixArt", "hunyuan_dit": "HunyuanDiT",
    "omnigen2": "OmniGen2", "chroma_radiance": "ChromaRadiance",
}
NODES = {d.node_id: d for d in NODE_DEFS}
DEFAULTS = {node_id: {w.id: w.default for w in d.widgets} for node_id, d in NODES.items()}
OFF = {
    "CacheKitFirstBlockCache": dict(threshold=0.0),
    "CacheKitMagCache": dict(threshold=0.0),
    "CacheKitPyramidAttentionBroadcast": dict(spatial_attention_block_skip_range=0, temporal_attention_block_skip_range=0, cross_attention_block_skip_range=0),
    "CacheKitFasterCache": dict(spatial_attention_block_skip_range=0, unconditional_batch_skip_range=0),
    "CacheKitTaylorSeerCache": dict(disable_cache_before_step=100),
}
ON = {
    "CacheKitFirstBlockCache": dict(threshold=1.0),
    "CacheKitMagCache": dict(threshold=0.5, max_skip_steps=3, retention_ratio=0.2),
    "CacheKitPyramidAttentionBroadcast": dict(spatial_attention_start_percent=0.0, spatial_attention_end_percent=1.0),
    "CacheKitFasterCache": {},
    "CacheKitTaylorSeerCache": {},
}
BLOCK_LEVEL = {"CacheKitFirstBlockCache", "CacheKitMagCache", "CacheKitTaylorSeerCache"}
STEPS = 12


@pytest.fixture(scope="module")
def loaded():
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = tiny_families.load_family(name)
        return cache[name]

    return load


def apply(node_id, model, settings):
    return NODES[node_id].apply(model, **{**DEFAULTS[node_id], **settings})


def sample(model, name):
    return tiny_families.sample_family(model, name, steps=STEPS, cfg=2.0)


def count_blocks(model, family):
    diffusion_model = model.get_model_object("diffusion_model")
    calls = [0]
    handles = [
        block.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        for block_list in family.block_lists
        for block in getattr(diffusion_model, block_list.attr)
    ]
    return calls, handles


@pytest.mark.parametrize("node_id", list(OFF))
@pytest.mark.parametrize("name", list(SUPPORTED))
def test_supported_combination(loaded, reports, name, node_id):
    model = loaded(name)
    family = family_for_module(model.get_model_object("diffusion_model"))
    assert family is not None and family.name == SUPPORTED[name]
    base = sample(model, name)
    assert torch.equal(sample(apply(node_id, model, OFF[node_id]), name), base)
    calls, handles = count_blocks(model, family)
    try:
        out = sample(apply(node_id, model, ON[node_id]), name)
    finally:
        for handle in handles:
            handle.remove()
    report = reports[-1]
    assert report.family == family.name
    assert report.units_computed < report.units_total, report.summary()
    if node_id in BLOCK_LEVEL:
        assert calls[0] < report.forwards * sum(len(getattr(model.get_model_object("diffusion_model"), b.attr)) for b in family.block_lists)
    assert torch.isfinite(out).all()
    assert (out - base).abs().max().item() <= 0.5 * base.abs().max().item() + 1e-6


@pytest.mark.parametrize("node_id", list(OFF))
@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_unsupported_combination_passes_through_with_one_warning(loaded, caplog, name, node_id):
    model = loaded(name)
    with caplog.at_level(logging.WARNING, logger="CacheKit"):
        result = apply(node_id, model, ON[node_id])
    assert result is model
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and UNSUPPORTED[name] in warnings[0] and "passes through unchanged" in warnings[0]
