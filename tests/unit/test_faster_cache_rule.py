"""FasterCache: config, decision rules, the frequency split and the per-branch state, without ComfyUI."""
import pytest
import torch

from cachekit.cache_core.families.attention_sites import SPATIAL
from cachekit.cache_core.methods.faster_cache import (
    FasterCacheConfig,
    FasterCacheRun,
    estimate_unconditional,
    extrapolate,
    low_frequency_mask,
    should_extrapolate_attention,
    should_skip_unconditional,
    split_low_high,
)
from cachekit.cache_core.runtime.attention_hooks import AttentionSite
from harness import contexts
from harness.contexts import attend

SITE = AttentionSite(("blocks", 0, "self_attn"), SPATIAL)
EVERYWHERE = dict(spatial_attention_start_percent=0.0, unconditional_batch_start_percent=0.0)


def diffusers_mask(h, w):
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (xx - w // 2) ** 2 + (yy - h // 2) ** 2 <= (min(h, w) // 5) ** 2


def diffusers_split(x):
    """diffusers' _split_low_high_freq, restated from its documentation (fftshift over all dims)."""
    fft = torch.fft.fftshift(torch.fft.fft2(x))
    mask = diffusers_mask(*x.shape[-2:])
    return fft * mask, fft * ~mask


@pytest.mark.parametrize("shape", [(2, 4, 16, 12), (1, 3, 2, 10, 15)])
def test_estimate_matches_diffusers_formula(shape):
    torch.manual_seed(0)
    pos_prev, neg_prev, pos = (torch.randn(shape) for _ in range(3))
    low, high = 1.1 ** 2, 1.1
    lf_u, hf_u = diffusers_split(neg_prev)
    lf_c, hf_c = diffusers_split(pos_prev)
    d_lf, d_hf = (lf_u - lf_c) * low, (hf_u - hf_c) * high
    lf_now, hf_now = diffusers_split(pos)
    expected = torch.fft.ifft2(torch.fft.ifftshift(d_lf + lf_now + d_hf + hf_now)).real
    got = estimate_unconditional(pos, neg_prev - pos_prev, low, high)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(estimate_unconditional(pos, neg_prev - pos_prev, 1.0, 1.0), pos + neg_prev - pos_prev, atol=1e-6)


def test_mask_is_diffusers_disc_and_split_is_complete():
    x = torch.randn(1, 2, 20, 25)
    low, high = split_low_high(x)
    assert torch.allclose(torch.fft.ifft2(low + high).real, x, atol=1e-5)
    mask = torch.fft.fftshift(low_frequency_mask(20, 25))
    assert torch.equal(mask, diffusers_mask(20, 25)) and int(mask.sum()) == 49  # radius 4 disc


def test_rules_match_diffusers():
    for it in range(11):
        assert should_skip_unconditional(it, 5, True) == (it > 0 and it % 5 != 0)
        assert not should_skip_unconditional(it, 5, False)
        assert should_extrapolate_attention(it, 2, True, True) == (it > 0 and it % 2 != 0)
        assert not should_extrapolate_attention(it, 2, True, False)
    assert torch.allclose(extrapolate(torch.tensor([1.0]), torch.tensor([3.0]), 0.5), torch.tensor([4.0]))


@pytest.mark.parametrize("kwargs, message", [
    ({"unconditional_batch_skip_range": -2}, "unconditional_batch_skip_range"),
    ({"attention_weight": float("inf")}, "attention_weight"),
    ({"low_frequency_start_percent": 0.95}, "low_frequency window"),
])
def test_bad_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FasterCacheConfig(**kwargs)


def test_disabled_parts():
    assert not FasterCacheConfig(spatial_attention_block_skip_range=0, unconditional_batch_skip_range=0).enabled
    assert FasterCacheConfig(spatial_attention_block_skip_range=0).unconditional_enabled


def test_unconditional_schedule_and_compounding_alphas():
    config = FasterCacheConfig(**EVERYWHERE, low_frequency_start_percent=0.0, low_frequency_end_percent=1.0,
                               high_frequency_start_percent=0.0)
    run = FasterCacheRun(config, lambda sigma: 0.5)
    shape = torch.Size([1, 1, 10, 10])
    pos, neg = torch.zeros(shape), torch.ones(shape)
    skips = []
    for it in range(11):
        skip = run.skip_unconditional(it + 1, 0.5, shape)
        skips.append(skip)
        if skip:
            est = run.estimate_negative(pos, 0.5, output_scale=-0.5)
        else:
            run.record_negative(pos, neg, output_scale=-0.5)
        if it == 2:  # two estimates since the last full evaluation: both alphas applied twice
            assert torch.allclose(est, torch.full(shape, 1.1 ** 2))
    assert skips == [False, True, True, True, True, False, True, True, True, True, False]
    assert (run.unconditional_computed, run.unconditional_total) == (3, 11)


def test_difference_is_carried_across_sigmas_by_the_output_scale():
    run = FasterCacheRun(FasterCacheConfig(**EVERYWHERE, alpha_low_frequency=1.0, alpha_high_frequency=1.0), lambda s: 0.5)
    shape = torch.Size([1, 1, 5, 5])
    run.skip_unconditional(1, 0.8, shape)
    run.record_negative(torch.zeros(shape), torch.full(shape, 0.8), output_scale=-0.8)
    assert run.skip_unconditional(2, 0.4, shape)
    assert torch.allclose(run.estimate_negative(torch.zeros(shape), 0.4, output_scale=-0.4), torch.full(shape, 0.4))


def ctx(step, cond_or_uncond, uuids, decisions=None):
    """A forward of evaluation `step`; forwards of one evaluation share `decisions` (as SamplingRun does)."""
    return contexts.context(step, uuids=uuids, cond_indices=cond_or_uncond, sigma=0.5, progress=0.5, decisions=decisions)



def test_attention_extrapolates_per_branch_and_only_over_consecutive_evaluations():
    run = FasterCacheRun(FasterCacheConfig(**EVERYWHERE), lambda s: 0.5)
    calls = []

    def attention(x, step):
        def compute():
            calls.append(step)
            return x * step
        return compute

    both = torch.tensor([[1.0], [2.0]])
    pos = both[1:]
    outs = {}
    for step in range(6):
        if not run.skip_unconditional(step + 1, 0.5, torch.Size([1, 1]), frozenset({"pos"}), frozenset({"neg"})):
            run.record_negative(torch.zeros(1, 1), torch.ones(1, 1), -0.5)
            assert step in (0, 5)  # full CFG: negative and positive batched
            outs[step] = attend(run, ctx(step, [1, 0], ["neg", "pos"]), SITE, attention(both, step), both)
        else:  # the negative branch is estimated: only the positive branch runs
            outs[step] = attend(run, ctx(step, [0], ["pos"]), SITE, attention(pos, step), pos)
    # positive: computed at 0, 2, 4; extrapolated at 1 (o0 + (o0 - o0) w) and 3; at 5 the negative branch's last
    # output is from evaluation 0, so the whole batch computes
    assert calls == [0, 2, 4, 5]
    assert outs[3].item() == pytest.approx(2 * 2 + (2 * 2 - 0.0) * 0.5)
    assert torch.equal(outs[5], both * 5)


def test_split_forwards_share_the_evaluation_decision():
    """With split CFG the positive forward must not extrapolate when the batched run would compute."""
    decisions = {}
    for split in (False, True):
        run = FasterCacheRun(FasterCacheConfig(**EVERYWHERE, unconditional_batch_skip_range=0), lambda s: 0.5)
        calls = []

        def attention(x, step):
            def compute():
                calls.append(step)
                return x * step
            return compute

        both = torch.tensor([[1.0], [2.0]])
        for step in range(5):
            if split:
                shared = {}
                for row, (index, uuid) in enumerate([(1, "neg"), (0, "pos")]):
                    attend(run, ctx(step, [index], [uuid], shared), SITE, attention(both[row:row + 1], step), both[row:row + 1])
            else:
                attend(run, ctx(step, [1, 0], ["neg", "pos"]), SITE, attention(both, step), both)
        decisions[split] = sorted(set(calls))
    assert decisions[False] == decisions[True] == [0, 2, 4]
