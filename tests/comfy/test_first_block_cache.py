"""FirstBlockCache against real ComfyUI, in-process, on tiny random-weight models."""
from __future__ import annotations

import logging

import pytest
import torch

from cachekit.nodes.first_block_cache import apply_first_block_cache

SKIPPING = 0.3  # skips several steps on the tiny models


def fbc(model, threshold=SKIPPING, **kw):
    values = dict(threshold=threshold, start_percent=0.0, end_percent=1.0, max_consecutive_skips=0)
    values.update(kw)
    return apply_first_block_cache(model, **values)


@pytest.fixture(scope="module", params=["flux", "wan21", "hunyuan_video"])
def family_model(request, tiny):
    return request.param, tiny.load_tiny(request.param)


def test_threshold_zero_matches_the_unpatched_model(family_model, tiny):
    family, model = family_model
    for cfg in (1.0, 3.0):
        base = tiny.run_sampler(model, family, cfg=cfg)
        assert torch.equal(tiny.run_sampler(fbc(model, threshold=0.0), family, cfg=cfg), base)


def test_skipping_computes_fewer_blocks_with_a_bounded_difference(family_model, tiny, caplog):
    family, model = family_model
    with tiny.count_block_calls(model) as plain:
        base = tiny.run_sampler(model, family, steps=12)
    with tiny.count_block_calls(model) as cached, caplog.at_level(logging.INFO, logger="CacheKit"):
        out = tiny.run_sampler(fbc(model), family, steps=12)
    assert cached.forwards == plain.forwards == 12
    assert cached.calls < plain.calls
    assert torch.isfinite(out).all()
    difference = (out - base).abs().max().item() / base.abs().max().item()
    assert 0 < difference < 0.25
    (line,) = [r.getMessage() for r in caplog.records if "CacheKit FirstBlockCache" in r.getMessage()]
    assert f"{cached.calls}/{plain.calls} blocks" in line


def test_input_model_is_untouched_and_runs_do_not_leak(family_model, tiny):
    family, model = family_model
    before = tiny.run_sampler(model, family, cfg=3.0)
    patched = fbc(model)
    first = tiny.run_sampler(patched, family, cfg=3.0)
    second = tiny.run_sampler(patched, family, cfg=3.0)
    assert torch.equal(first, second)
    assert torch.equal(tiny.run_sampler(model, family, cfg=3.0), before)
    assert "cachekit_first_block_cache" not in str(model.model_options)
    assert not model.wrappers.get("diffusion_model", {}).get("cachekit_first_block_cache")


def test_batched_and_split_cfg_make_the_same_decisions(tiny):
    model = tiny.load_tiny("flux")
    patched = fbc(model)
    with tiny.count_block_calls(model) as batched:
        out_batched = tiny.run_sampler(patched, "flux", cfg=3.0, steps=10)
    with tiny.force_split_cfg(), tiny.count_block_calls(model) as split:
        out_split = tiny.run_sampler(patched, "flux", cfg=3.0, steps=10)
    assert split.forwards == 2 * batched.forwards
    assert split.calls == 2 * batched.calls
    assert torch.allclose(out_batched, out_split, atol=1e-4)


@pytest.mark.parametrize(
    "run",
    [
        dict(cfg=3.0),
        dict(batch=2),
        dict(sampler="heun"),
        dict(sampler="dpm_2", cfg=2.0),
        dict(start_step=3, last_step=9, steps=12),
        dict(denoise=0.6, steps=12),
    ],
    ids=["cfg3", "batch2", "heun", "dpm_2", "advanced-range", "denoise0.6"],
)
def test_sampler_setups_stay_exact_when_off_and_close_when_skipping(tiny, run):
    model = tiny.load_tiny("wan21")
    kwargs = dict(steps=10)
    kwargs.update(run)
    latent = None
    if "denoise" in run or "start_step" in run:
        latent = torch.randn(tiny.empty_latent("wan21").shape, generator=torch.Generator().manual_seed(5))
    base = tiny.run_sampler(model, "wan21", latent=latent, **kwargs)
    assert torch.equal(tiny.run_sampler(fbc(model, threshold=0.0), "wan21", latent=latent, **kwargs), base)
    with tiny.count_block_calls(model) as counter:
        out = tiny.run_sampler(fbc(model), "wan21", latent=latent, **kwargs)
    assert counter.calls < counter.forwards * 3
    assert (out - base).abs().max().item() <= 0.25 * base.abs().max().item()


def test_split_sigmas_runs_are_independent(tiny):
    import comfy.samplers

    model = tiny.load_tiny("flux")
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", 12)
    high, low = sigmas[:7], sigmas[6:]
    patched = fbc(model, threshold=0.0)
    first = tiny.run_custom_sampler(model, "flux", high)
    assert torch.equal(tiny.run_custom_sampler(patched, "flux", high), first)
    assert torch.equal(tiny.run_custom_sampler(patched, "flux", low, latent=first), tiny.run_custom_sampler(model, "flux", low, latent=first))


def test_window_outside_the_run_computes_everything(tiny):
    model = tiny.load_tiny("flux")
    base = tiny.run_sampler(model, "flux")
    assert torch.equal(tiny.run_sampler(fbc(model, start_percent=1.0, end_percent=1.0), "flux"), base)


def test_consecutive_skip_cap(tiny):
    model = tiny.load_tiny("flux")
    with tiny.count_block_calls(model) as unlimited:
        tiny.run_sampler(fbc(model, threshold=1.0), "flux", steps=12)
    with tiny.count_block_calls(model) as capped:
        tiny.run_sampler(fbc(model, threshold=1.0, max_consecutive_skips=1), "flux", steps=12)
    assert unlimited.calls < capped.calls


def test_unsupported_family_passes_through_with_one_warning(tiny, caplog):
    model = tiny.load_tiny("vace_wan21")
    with caplog.at_level(logging.WARNING, logger="CacheKit"):
        result = fbc(model)
    assert result is model
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "WanVACE (WAN21_Vace" in warnings[0] and "passes through unchanged" in warnings[0]
    assert "VACE hints" in warnings[0]  # the reason


def test_bad_widget_values_raise_clear_errors(tiny):
    model = tiny.load_tiny("flux")
    with pytest.raises(ValueError, match="threshold"):
        fbc(model, threshold=float("nan"))
    with pytest.raises(ValueError, match="start_percent"):
        fbc(model, start_percent=0.9, end_percent=0.1)
