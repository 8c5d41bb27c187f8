"""Every (family x method) cell of the support matrix, on a tiny random-weight model of that family.

The cell comes from the family table and the method's placement (cache_core/families/support_matrix.py),
so this test runs exactly what the README promises. Reached: settings that reuse nothing reproduce
the unpatched model bit for bit, reusing settings save work (fewer units computed, checked against
real block calls where blocks are skipped) with a bounded difference, and batched and split CFG
decide the same. Not reached: the model passes through unchanged with one warning naming the family
and the reason.
"""
from __future__ import annotations

import logging

import pytest
import torch

from cachekit.cache_core.families.support_matrix import cell
from cachekit.cache_core.families.table import STACK, family_for_module
from cachekit.nodes import NODE_DEFS
from harness import tiny_families

NODES = {d.node_id: d for d in NODE_DEFS if d.node_id != "CacheKitMagCacheCalibrate"}
OFF = {
    "CacheKitFirstBlockCache": dict(threshold=0.0),
    "CacheKitMagCache": dict(threshold=0.0),
    "CacheKitPyramidAttentionBroadcast": dict(spatial_attention_block_skip_range=0, temporal_attention_block_skip_range=0,
                                              cross_attention_block_skip_range=0),
    "CacheKitFasterCache": dict(spatial_attention_block_skip_range=0, unconditional_batch_skip_range=0),
    "CacheKitTaylorSeerCache": dict(disable_cache_before_step=100),
    "CacheKitHybridBlockCache": dict(residual_diff_threshold=0.0),
}
ON = {
    "CacheKitFirstBlockCache": dict(threshold=1.0),
    "CacheKitMagCache": dict(threshold=0.5, max_skip_steps=3, retention_ratio=0.2),
    "CacheKitPyramidAttentionBroadcast": dict(spatial_attention_start_percent=0.0, spatial_attention_end_percent=1.0),
    "CacheKitFasterCache": dict(spatial_attention_start_percent=0.0, unconditional_batch_start_percent=0.0),
    "CacheKitTaylorSeerCache": dict(disable_cache_before_step=2, cache_interval=3),
    "CacheKitHybridBlockCache": dict(residual_diff_threshold=1.0, warmup_steps=2),
}
STEPS = 12
# Cells the table reaches but a release does not pass CacheKit's run state to: the cache turns itself off
# there (exact result, one warning naming the family and why). Listed, so that no other cell can hide this way.
OFF_ON_RELEASE = {
    ("wan22_s2v", "CacheKitPyramidAttentionBroadcast", "0.3.60"): "attention did not receive CacheKit's run state",
    ("wan22_s2v", "CacheKitFasterCache", "0.3.60"): "attention did not receive CacheKit's run state",
}
CASES = [(name, node_id) for name in tiny_families.FAMILY_NAMES for node_id in NODES]


@pytest.fixture(scope="module")
def loaded():
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = tiny_families.load_family(name)
        return cache[name]

    return load


def apply(node_id, model, settings):
    if node_id == "CacheKitMagCache":
        return mag_cache(model, settings)
    return NODES[node_id].apply(model, **settings)


def mag_cache(model, settings):
    """MagCache with a flat table of the level this family is cached at (no preset fits a tiny model)."""
    from cachekit.cache_core.methods.mag_cache import MAG_CACHE_SPEC, MagCacheConfig, MagRatios
    from cachekit.cache_core.runtime.install import install_cache, model_family

    family = model_family(model)
    level = "blocks" if family is not None and STACK in family.sites else "model"
    table = MagRatios.from_lists("flat", cond=[1.0] + [0.97] * 11, level=level)
    return install_cache(model, MAG_CACHE_SPEC, MagCacheConfig(table=table, **settings), node_name="MagCache (CacheKit)")


def sample(model, name, **kwargs):
    return tiny_families.sample_family(model, name, steps=STEPS, cfg=2.0, **kwargs)


def placement(node_id, model):
    family = family_for_module(model.get_model_object("diffusion_model"))
    spec = NODES[node_id].method
    return family, (cell(spec, family) if family is not None else ("no", "not in the family table"))


def blocks_of(model, family):
    """A submodule of every block: its calls count the blocks that really compute (an object-patched
    block module is still called when it is skipped, its parts are not)."""
    diffusion_model = model.get_model_object("diffusion_model")
    return [next(block.children()) for bl in family.block_lists for block in getattr(diffusion_model, bl.attr)]


def running_release():
    from harness.comfy_env import comfyui_version, find_comfyui

    return comfyui_version(find_comfyui())


def saved_work(report):
    if report.units_total:
        return report.units_computed < report.units_total
    return report.extra.get("unconditional_computed", 0) < report.extra.get("unconditional_total", 0)


@pytest.mark.parametrize("name, node_id", CASES)
def test_every_cell(loaded, reports, caplog, name, node_id):
    model = loaded(name)
    family, (label, reason) = placement(node_id, model)
    if label == "no":
        with caplog.at_level(logging.WARNING, logger="CacheKit"):
            result = apply(node_id, model, ON[node_id])
        assert result is model
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "passes through unchanged" in warnings[0] and reason in warnings[0]
        assert (family.name if family is not None else "") in warnings[0]
        return
    base = sample(model, name)
    assert torch.equal(sample(apply(node_id, model, OFF[node_id]), name), base)
    off_here = OFF_ON_RELEASE.get((name, node_id, running_release()))
    if off_here is not None:
        with caplog.at_level(logging.WARNING, logger="CacheKit"):
            assert torch.equal(sample(apply(node_id, model, ON[node_id]), name), base)
        assert [r.getMessage() for r in caplog.records if off_here in r.getMessage() and family.name in r.getMessage()]
        return
    calls = [0]
    handles = [b.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1)) for b in blocks_of(model, family)]
    try:
        out = sample(apply(node_id, model, ON[node_id]), name)
    finally:
        for handle in handles:
            handle.remove()
    report = reports[-1]
    assert report.family == family.name
    assert saved_work(report), report.summary()
    if label.startswith("block"):
        assert calls[0] < report.forwards * len(blocks_of(model, family))
    assert torch.isfinite(out).all()
    assert (out - base).abs().max().item() <= 0.5 * base.abs().max().item() + 1e-6


@pytest.mark.parametrize("name, node_id", CASES)
def test_batched_and_split_cfg_decide_the_same(loaded, reports, tiny, name, node_id):
    model = loaded(name)
    _, (label, _) = placement(node_id, model)
    if label == "no":
        pytest.skip("not reached (see test_every_cell)")
    if not tiny_families.FAMILIES[name].cfg1:
        pytest.skip(f"{name} cannot run one branch alone: {tiny_families.FAMILIES[name].notes}")
    patched = apply(node_id, model, ON[node_id])
    sample(patched, name)
    with tiny.force_split_cfg():
        sample(patched, name)
    batched, split = reports[-2], reports[-1]
    assert split.step_status() == batched.step_status()
    assert split.extra.get("unconditional_computed") == batched.extra.get("unconditional_computed")
