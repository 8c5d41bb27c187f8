"""TaylorSeer against real ComfyUI, in-process, on tiny random-weight Flux and Wan models.

Settings that compute every step must reproduce the unpatched model bit for bit; the defaults must
compute diffusers' steps (0, 1, 2, 4, 9 of 12) with a bounded difference, in both modes.
"""
from __future__ import annotations

import logging

import pytest
import torch

from cachekit.cache_core.methods.taylorseer import TAYLORSEER
from cachekit.nodes.taylorseer import KEY, apply_taylorseer_cache

MODES = ("lite", "blocks")
DEFAULT_COMPUTED_AT_12 = [0, 1, 2, 4, 9]


@pytest.fixture(scope="module")
def models(tiny):
    return {family: tiny.load_tiny(family) for family in ("flux", "wan21")}


def taylorseer(model, **kw):
    values = dict(cache_interval=5, disable_cache_before_step=3, disable_cache_after_step=-1, max_order=1,
                  taylor_factors_dtype="bfloat16", mode="blocks")
    values.update(kw)
    return apply_taylorseer_cache(model, **values)


def relative_difference(out, base):
    return (out - base).abs().max().item() / base.abs().max().item()


def computed_steps(report):
    return [i for i, status in enumerate(report.step_status()) if status == "computed"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", ["flux", "wan21"])
def test_computing_every_step_matches_the_unpatched_model(models, tiny, reports, family, mode):
    model = models[family]
    for cfg in (1.0, 3.0):
        base = tiny.run_sampler(model, family, cfg=cfg)
        assert torch.equal(tiny.run_sampler(taylorseer(model, mode=mode, disable_cache_before_step=8), family, cfg=cfg), base)
        assert torch.equal(tiny.run_sampler(taylorseer(model, mode=mode, cache_interval=1), family, cfg=cfg), base)
    assert all(r.peak_cache_bytes == 0 and r.units_computed == r.units_total for r in reports)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", ["flux", "wan21"])
def test_defaults_compute_diffusers_steps_with_a_bounded_difference(models, tiny, reports, caplog, family, mode):
    model = models[family]
    with tiny.count_block_calls(model) as plain:
        base = tiny.run_sampler(model, family, steps=12, cfg=3.0)
    with tiny.count_block_calls(model) as cached, caplog.at_level(logging.INFO, logger="CacheKit"):
        out = tiny.run_sampler(taylorseer(model, mode=mode), family, steps=12, cfg=3.0)
    (report,) = reports
    assert computed_steps(report) == DEFAULT_COMPUTED_AT_12
    assert cached.calls * 12 == plain.calls * len(DEFAULT_COMPUTED_AT_12)
    assert torch.isfinite(out).all()
    assert 0 < relative_difference(out, base) < (0.1 if mode == "lite" else 0.05)
    units = "5/12 forwards" if mode == "lite" else f"{cached.calls}/{plain.calls} blocks"
    (line,) = [r.getMessage() for r in caplog.records if "CacheKit TaylorSeer" in r.getMessage()]
    assert units in line
    # (order + 1) bfloat16 tensors per branch: the output rows (lite) or the last block's stream (blocks)
    elements = {("flux", "lite"): 16 * 8 * 8, ("wan21", "lite"): 16 * 8 * 8,
                ("flux", "blocks"): (8 + 16) * 64, ("wan21", "blocks"): 16 * 128}[family, mode]
    assert report.peak_cache_bytes == 2 * (1 + 1) * elements * 2


@pytest.mark.parametrize("mode", MODES)
def test_batched_and_split_cfg_make_the_same_decisions(models, tiny, mode):
    model = models["flux"]
    patched = taylorseer(model, mode=mode, taylor_factors_dtype="float32")
    with tiny.count_block_calls(model) as batched:
        out_batched = tiny.run_sampler(patched, "flux", cfg=3.0, steps=12)
    with tiny.force_split_cfg(), tiny.count_block_calls(model) as split:
        out_split = tiny.run_sampler(patched, "flux", cfg=3.0, steps=12)
    assert split.forwards == 2 * batched.forwards
    assert split.calls == 2 * batched.calls
    assert torch.allclose(out_batched, out_split, atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sampler", ["heun", "dpm_2"])
def test_multi_evaluation_samplers(models, tiny, reports, mode, sampler):
    model = models["wan21"]
    base = tiny.run_sampler(model, "wan21", steps=12, sampler=sampler, cfg=3.0)
    with tiny.count_block_calls(model) as counter:
        out = tiny.run_sampler(taylorseer(model, mode=mode), "wan21", steps=12, sampler=sampler, cfg=3.0)
    assert reports[0].forwards == 23
    # the diffusion model is entered every evaluation; in lite mode a prediction returns before any block runs
    assert counter.forwards == 23
    if mode == "lite":
        assert counter.calls == reports[0].units_computed * 3
    assert counter.calls < 23 * 3 / 2  # uncached: 23 evaluations x 3 blocks
    assert torch.isfinite(out).all() and relative_difference(out, base) < (0.25 if mode == "lite" else 0.1)
    assert computed_steps(reports[0]) == DEFAULT_COMPUTED_AT_12


@pytest.mark.parametrize("mode", MODES)
def test_steps_count_from_the_first_step_of_a_partial_run(models, tiny, reports, mode):
    model = models["flux"]
    latent = torch.randn(tiny.empty_latent("flux").shape, generator=torch.Generator().manual_seed(5))
    tiny.run_sampler(taylorseer(model, mode=mode), "flux", steps=20, start_step=8, latent=latent)
    assert computed_steps(reports[0]) == DEFAULT_COMPUTED_AT_12


@pytest.mark.parametrize("mode", MODES)
def test_runs_do_not_leak_and_the_input_model_is_untouched(models, tiny, mode):
    model = models["wan21"]
    before = tiny.run_sampler(model, "wan21", cfg=3.0, steps=10)
    patched = taylorseer(model, mode=mode, max_order=2)
    first = tiny.run_sampler(patched, "wan21", cfg=3.0, steps=10)
    assert torch.equal(tiny.run_sampler(patched, "wan21", cfg=3.0, steps=10), first)
    assert torch.equal(tiny.run_sampler(model, "wan21", cfg=3.0, steps=10), before)
    assert KEY not in str(model.model_options)
    assert not model.wrappers.get("diffusion_model", {}).get(KEY)


def test_a_family_without_block_skipping_is_predicted_at_model_level(tiny, reports):
    """Wan VACE adds hints between blocks: blocks mode falls back to predicting the whole model output."""
    model = tiny.load_tiny("vace_wan21")
    base = tiny.run_sampler(model, "wan21", steps=12, cfg=3.0)
    out = tiny.run_sampler(taylorseer(model, mode="blocks"), "wan21", steps=12, cfg=3.0)
    assert reports[-1].unit == "forwards" and computed_steps(reports[-1]) == DEFAULT_COMPUTED_AT_12
    assert relative_difference(out, base) < 0.25


def test_bad_widget_values_raise_clear_errors(models):
    with pytest.raises(ValueError, match="cache_interval"):
        taylorseer(models["flux"], cache_interval=0)
    with pytest.raises(ValueError, match="disable_cache_after_step"):
        taylorseer(models["flux"], disable_cache_after_step=-3)
    with pytest.raises(ValueError, match="taylor_factors_dtype"):
        taylorseer(models["flux"], taylor_factors_dtype="float64")
