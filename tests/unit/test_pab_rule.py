"""Pyramid Attention Broadcast: config validation and the per-branch decision rule, without ComfyUI."""
import pytest
import torch

from cachekit.cache_core.families.attention_sites import CROSS, SPATIAL, attention_sites, skips_projections
from cachekit.cache_core.families.table import ATTENTION, FAMILIES, family_named
from cachekit.cache_core.methods.pyramid_attention_broadcast import (
    PyramidAttentionBroadcastConfig,
    PyramidAttentionBroadcastRun,
    should_compute,
)
from cachekit.cache_core.runtime.attention_hooks import AttentionSite
from harness import contexts
from harness.contexts import attend

SITE = AttentionSite(("blocks", 0, "self_attn"), SPATIAL)


def diffusers_rule(iteration, n, in_window, cache):
    """diffusers' PyramidAttentionBroadcastHook condition, restated from its documentation."""
    return cache is None or iteration == 0 or not in_window or iteration % n == 0


@pytest.mark.parametrize("n", [2, 3, 4])
def test_rule_matches_diffusers(n):
    for iteration in range(12):
        for in_window in (True, False):
            for has_cache in (True, False):
                expected = diffusers_rule(iteration, n, in_window, object() if has_cache else None)
                assert should_compute(iteration, n, in_window, has_cache) == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"spatial_attention_block_skip_range": -1}, "spatial_attention_block_skip_range"),
        ({"cross_attention_block_skip_range": 1.5}, "cross_attention_block_skip_range"),
        ({"temporal_attention_start_percent": 0.9, "temporal_attention_end_percent": 0.1}, "temporal attention window"),
        ({"spatial_attention_end_percent": float("nan")}, "end_percent"),
    ],
)
def test_bad_settings_are_rejected_with_a_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PyramidAttentionBroadcastConfig(**kwargs)


def test_zero_ranges_or_empty_windows_disable_reuse():
    assert not PyramidAttentionBroadcastConfig(spatial_attention_block_skip_range=0).enabled
    assert not PyramidAttentionBroadcastConfig(spatial_attention_block_skip_range=1).enabled
    empty = PyramidAttentionBroadcastConfig(spatial_attention_start_percent=0.5, spatial_attention_end_percent=0.5)
    assert not empty.enabled and empty.hooked_kinds == {SPATIAL}
    assert PyramidAttentionBroadcastConfig(cross_attention_block_skip_range=4).active_kinds == {SPATIAL, CROSS}


def test_family_sites_are_classified():
    assert {s.kind for s in attention_sites(family_named("Wan"))} == {SPATIAL, CROSS}
    assert attention_sites(family_named("Flux"), {CROSS}) == ()
    assert skips_projections(family_named("Wan")) and not skips_projections(family_named("Flux"))
    assert all(f.attention for f in FAMILIES if ATTENTION in f.sites)


def context(step, cond_or_uncond, uuids, batch_per_chunk=1, in_window=True):
    return contexts.context(step, uuids=uuids, cond_indices=cond_or_uncond, rows=batch_per_chunk, in_window=in_window)



class Attention:
    """A fake attention site whose output is its input plus a step marker; counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x, step):
        def compute():
            self.calls += 1
            return x + step
        return compute


def sample_branches(split, steps=8, n=2):
    run = PyramidAttentionBroadcastRun(PyramidAttentionBroadcastConfig(spatial_attention_block_skip_range=n,
                                                                       spatial_attention_start_percent=0.0,
                                                                       spatial_attention_end_percent=1.0), )
    attention = Attention()
    outputs = []
    for step in range(steps):
        x = torch.tensor([[10.0], [20.0]])  # rows: negative (uncond), positive (cond)
        if split:
            parts = [attend(run, context(step, [i], [u]), SITE, attention(x[r:r + 1], step), x[r:r + 1])
                     for r, (i, u) in enumerate([(1, "neg"), (0, "pos")])]
            outputs.append(torch.cat(parts))
        else:
            outputs.append(attend(run, context(step, [1, 0], ["neg", "pos"]), SITE, attention(x, step), x))
    return outputs, attention.calls


def test_batched_and_split_cfg_decide_alike_and_branches_stay_apart():
    batched, batched_calls = sample_branches(split=False)
    split, split_calls = sample_branches(split=True)
    assert batched_calls == 4 and split_calls == 8  # computed at iterations 0, 2, 4, 6
    for step, (a, b) in enumerate(zip(batched, split)):
        assert torch.equal(a, b)
        computed_at = step - step % 2
        assert a.flatten().tolist() == [10.0 + computed_at, 20.0 + computed_at]  # each branch gets its own cache


def test_window_and_iteration_zero_always_compute():
    config = PyramidAttentionBroadcastConfig(spatial_attention_block_skip_range=2, spatial_attention_start_percent=0.5,
                                             spatial_attention_end_percent=1.0)
    run = PyramidAttentionBroadcastRun(config)  # progress = step / 10 here
    attention = Attention()
    x = torch.ones(1, 1)
    for step in range(10):
        attend(run, context(step, [0], ["pos"]), SITE, attention(x, step), x)
    # steps 0-4 are outside the window; then compute at 6 and 8 and reuse at 5, 7, 9
    assert attention.calls == 5 + 2
    assert run.cache_bytes() > 0
    run.close(None)
    assert run.cache_bytes() == 0


def test_shape_change_forces_a_computation():
    run = PyramidAttentionBroadcastRun(PyramidAttentionBroadcastConfig(spatial_attention_start_percent=0.0))
    attention = Attention()
    attend(run, context(0, [0], ["pos"]), SITE, attention(torch.ones(1, 4), 0), torch.ones(1, 4))
    out = attend(run, context(1, [0], ["pos"]), SITE, attention(torch.ones(1, 6), 1), torch.ones(1, 6))
    assert attention.calls == 2 and out.shape == (1, 6)
