"""FasterCache against real ComfyUI, in-process, on tiny random-weight Flux and Wan models."""
from __future__ import annotations

import logging
import re

import pytest
import torch

from cachekit.nodes.faster_cache import KEY, WIDGETS, apply_faster_cache

DEFAULTS = {w.id: w.default for w in WIDGETS}
NO_ATTENTION = dict(spatial_attention_block_skip_range=0)
NO_CFG = dict(unconditional_batch_skip_range=0)


def faster_cache(model, **values):
    return apply_faster_cache(model, **{**DEFAULTS, **values})


def report_line(caplog):
    (line,) = [r.getMessage() for r in caplog.records if "CacheKit FasterCache" in r.getMessage()]
    caplog.clear()
    return line


def attention_counts(line):
    return tuple(int(n) for n in re.search(r"(\d+)/(\d+) attention calls", line).groups())


@pytest.fixture(scope="module", params=["flux", "wan21"])
def family_model(request, tiny):
    return request.param, tiny.load_tiny(request.param)


def test_disabled_settings_match_the_unpatched_model(family_model, tiny):
    family, model = family_model
    empty = dict(spatial_attention_start_percent=1.0, unconditional_batch_start_percent=1.0)
    base = tiny.run_sampler(model, family, cfg=3.0, steps=6)
    for settings in ({**NO_ATTENTION, **NO_CFG}, empty):
        assert torch.equal(tiny.run_sampler(faster_cache(model, **settings), family, cfg=3.0, steps=6), base)


def test_negative_branch_is_estimated_on_skip_steps(family_model, tiny, caplog):
    family, model = family_model
    with tiny.force_split_cfg(), tiny.count_block_calls(model) as plain:
        base = tiny.run_sampler(model, family, cfg=3.0, steps=12)
    with tiny.force_split_cfg(), tiny.count_block_calls(model) as cached, caplog.at_level(logging.INFO, logger="CacheKit"):
        out = tiny.run_sampler(faster_cache(model, **NO_ATTENTION), family, cfg=3.0, steps=12)
    line = report_line(caplog)
    computed, total = (int(n) for n in re.search(r"negative branch computed (\d+)/(\d+)", line).groups())
    assert total == 12 and computed < total
    assert plain.forwards == 24 and cached.forwards == 12 + computed  # one forward per computed branch
    difference = (out - base).abs().max().item() / base.abs().max().item()
    assert 0 < difference < 0.15


def test_both_parts_with_defaults(family_model, tiny, caplog):
    family, model = family_model
    base = tiny.run_sampler(model, family, cfg=3.0, steps=12)
    with caplog.at_level(logging.INFO, logger="CacheKit"):
        out = tiny.run_sampler(faster_cache(model), family, cfg=3.0, steps=12)
    computed, offered = attention_counts(report_line(caplog))
    assert computed < offered
    assert 0 < (out - base).abs().max().item() < 0.15 * base.abs().max().item()


def test_cfg_one_uses_the_attention_part_only(tiny, caplog):
    model = tiny.load_tiny("wan21")
    base = tiny.run_sampler(model, "wan21", cfg=1.0, steps=12)
    with caplog.at_level(logging.INFO, logger="CacheKit"):
        out = tiny.run_sampler(faster_cache(model), "wan21", cfg=1.0, steps=12)
    line = report_line(caplog)
    assert "negative branch" not in line
    computed, offered = attention_counts(line)
    assert computed < offered
    assert (out - base).abs().max().item() < 0.05 * base.abs().max().item()


def test_batched_and_split_cfg_make_the_same_decisions(tiny, caplog):
    model = tiny.load_tiny("wan21")
    patched = faster_cache(model)
    with caplog.at_level(logging.INFO, logger="CacheKit"):
        batched = tiny.run_sampler(patched, "wan21", cfg=3.0, steps=10)
        batched_line = report_line(caplog)
        with tiny.force_split_cfg():
            split = tiny.run_sampler(patched, "wan21", cfg=3.0, steps=10)
        split_line = report_line(caplog)
    negatives = re.search(r"negative branch computed (\d+)/(\d+)", batched_line).groups()
    assert negatives == re.search(r"negative branch computed (\d+)/(\d+)", split_line).groups()
    b_computed, b_offered = attention_counts(batched_line)
    s_computed, s_offered = attention_counts(split_line)
    sites = 3
    assert s_offered - b_offered == sites * int(negatives[0])  # split runs each full-CFG evaluation as two forwards
    assert b_computed < b_offered and s_computed < s_offered
    assert torch.allclose(batched, split, atol=1e-5)


def test_runs_repeat_and_the_input_model_is_untouched(family_model, tiny):
    family, model = family_model
    before = tiny.run_sampler(model, family, cfg=3.0)
    patched = faster_cache(model)
    first = tiny.run_sampler(patched, family, cfg=3.0)
    assert torch.equal(tiny.run_sampler(patched, family, cfg=3.0), first)
    assert not torch.equal(first, before)
    assert torch.equal(tiny.run_sampler(model, family, cfg=3.0), before)
    assert KEY not in str(model.model_options) and not model.object_patches and not model.wrappers.get("calc_cond_batch")


def test_three_conds_pass_through(tiny):
    """DualCFGGuider-style lists are left alone: only exactly [positive, negative] is estimated."""
    from cachekit.cache_core.runtime.cfg_estimation import UnconditionalEstimationHook

    seen = []

    class Executor:
        def __call__(self, *args):
            seen.append(args[1])
            return ["a", "b", "c"]

    hook = UnconditionalEstimationHook(KEY)
    conds = [[{}], [{}], [{}]]
    assert hook(Executor(), None, conds, torch.zeros(1), torch.ones(1), {"transformer_options": {KEY: object()}}) == ["a", "b", "c"]
    assert seen == [conds]
