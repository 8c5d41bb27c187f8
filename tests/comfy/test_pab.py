"""Pyramid Attention Broadcast against real ComfyUI, in-process, on tiny random-weight Flux and Wan models."""
from __future__ import annotations

import logging
import re

import pytest
import torch

from cachekit.nodes.pyramid_attention_broadcast import KEY, WIDGETS, apply_pyramid_attention_broadcast

DEFAULTS = {w.id: w.default for w in WIDGETS}
WHOLE_RUN = dict(spatial_attention_start_percent=0.0, spatial_attention_end_percent=1.0)


def pab(model, **values):
    return apply_pyramid_attention_broadcast(model, **{**DEFAULTS, **values})


def counting_attention(model):
    """A clone of `model` whose attention kernels count their calls (an override that CacheKit must chain)."""
    calls = []

    def count(func, *args, **kwargs):
        calls.append(1)
        return func(*args, **kwargs)

    counted = model.clone()
    counted.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = count
    return counted, calls


def reported(caplog):
    (line,) = [r.getMessage() for r in caplog.records if "CacheKit PyramidAttentionBroadcast" in r.getMessage()]
    caplog.clear()
    return tuple(int(n) for n in re.search(r"(\d+)/(\d+) attention calls", line).groups())


@pytest.fixture(scope="module", params=["flux", "wan21"])
def family_model(request, tiny):
    return request.param, tiny.load_tiny(request.param)


def test_disabled_settings_match_the_unpatched_model(family_model, tiny):
    family, model = family_model
    off = dict(spatial_attention_block_skip_range=0)
    empty = dict(spatial_attention_start_percent=0.5, spatial_attention_end_percent=0.5,
                 cross_attention_block_skip_range=3, cross_attention_start_percent=0.0, cross_attention_end_percent=0.0)
    for cfg in (1.0, 3.0):
        base = tiny.run_sampler(model, family, cfg=cfg)
        for settings in (off, empty):
            assert torch.equal(tiny.run_sampler(pab(model, **settings), family, cfg=cfg), base)


def test_default_settings_compute_fewer_attention_calls(family_model, tiny, caplog):
    family, model = family_model
    counted, calls = counting_attention(model)
    base = tiny.run_sampler(counted, family, steps=12)
    plain = len(calls)
    calls.clear()
    with caplog.at_level(logging.INFO, logger="CacheKit"):
        out = tiny.run_sampler(pab(counted), family, steps=12)
    computed, offered = reported(caplog)
    sites = 4 if family == "flux" else 3  # joint attention per Flux block; Wan self-attention per block
    unhooked = 0 if family == "flux" else 12 * 3  # Wan's cross-attention kernels (cross reuse is off by default)
    assert offered == 12 * sites and computed < offered
    assert len(calls) - unhooked == computed and plain - unhooked == offered  # kernels ran exactly when PAB computed
    assert 0 < (out - base).abs().max().item() < 0.05 * base.abs().max().item()


def test_cross_attention_reuse_on_wan(tiny, caplog):
    model = tiny.load_tiny("wan21")
    with caplog.at_level(logging.INFO, logger="CacheKit"):
        tiny.run_sampler(pab(model, spatial_attention_block_skip_range=0, cross_attention_block_skip_range=3,
                             cross_attention_start_percent=0.0, cross_attention_end_percent=1.0), "wan21", steps=9)
    assert reported(caplog) == (3 * 3, 9 * 3)  # computed at iterations 0, 3, 6


def test_batched_and_split_cfg_make_the_same_decisions(family_model, tiny, caplog):
    family, model = family_model
    patched = pab(model, **WHOLE_RUN)
    with caplog.at_level(logging.INFO, logger="CacheKit"):
        batched = tiny.run_sampler(patched, family, cfg=3.0, steps=8)
        batched_counts = reported(caplog)
        with tiny.force_split_cfg():
            split = tiny.run_sampler(patched, family, cfg=3.0, steps=8)
        split_counts = reported(caplog)
    assert split_counts == (2 * batched_counts[0], 2 * batched_counts[1])  # one call per branch instead of one per batch
    assert batched_counts[0] < batched_counts[1]
    assert torch.allclose(batched, split, atol=1e-4)


def test_runs_repeat_and_the_input_model_is_untouched(family_model, tiny):
    family, model = family_model
    before = tiny.run_sampler(model, family, cfg=3.0)
    patched = pab(model, **WHOLE_RUN)
    first = tiny.run_sampler(patched, family, cfg=3.0)
    assert torch.equal(tiny.run_sampler(patched, family, cfg=3.0), first)
    assert not torch.equal(first, before)
    assert torch.equal(tiny.run_sampler(model, family, cfg=3.0), before)
    assert KEY not in str(model.model_options) and not model.object_patches


def test_multi_evaluation_sampler_and_partial_range(tiny):
    model = tiny.load_tiny("wan21")
    latent = torch.randn(tiny.empty_latent("wan21").shape, generator=torch.Generator().manual_seed(5))
    for run in (dict(sampler="heun", cfg=2.0), dict(start_step=3, last_step=9, steps=12)):
        base = tiny.run_sampler(model, "wan21", latent=latent, **run)
        out = tiny.run_sampler(pab(model, **WHOLE_RUN), "wan21", latent=latent, **run)
        assert torch.isfinite(out).all() and (out - base).abs().max().item() < 0.05 * base.abs().max().item()


def test_family_without_the_kind_warns_and_stays_exact(tiny, caplog):
    model = tiny.load_tiny("flux")
    with caplog.at_level(logging.WARNING, logger="CacheKit"):
        patched = pab(model, spatial_attention_block_skip_range=0, cross_attention_block_skip_range=2)
    assert any("has no cross attention" in r.getMessage() for r in caplog.records)
    assert torch.equal(tiny.run_sampler(patched, "flux"), tiny.run_sampler(model, "flux"))
