"""Off means off, over HTTP: for every node, settings that reuse nothing give the unpatched result bit for bit.

Every node at its main "off" settings (harness.robustness.OFF) with cfg 1 and cfg 3, euler and heun, batched and
split CFG (CacheKitTestSplitCFG makes ComfyUI evaluate cond and uncond in separate forwards, as on a small GPU; the
test checks that it really split); and each other way a node's settings turn reuse off, once.
"""
from __future__ import annotations

import itertools

import pytest

from harness.robustness import NODE_IDS, OFF, wan_prompt

pytestmark = pytest.mark.server

STEPS = 6
GRID = list(itertools.product([1.0, 3.0], ["euler", "heun"], [False, True]))
FBC, PAB, FC, TS, MAG, CAL, HBC = NODE_IDS
OTHER_WAYS_OFF = {
    "fbc-empty-window": (FBC, dict(threshold=0.5, start_percent=0.3, end_percent=0.3)),
    "pab-skip-range-1": (PAB, dict(spatial_attention_block_skip_range=1, temporal_attention_block_skip_range=1,
                                   cross_attention_block_skip_range=1)),
    "pab-empty-windows": (PAB, dict(spatial_attention_block_skip_range=2, spatial_attention_start_percent=0.4,
                                    spatial_attention_end_percent=0.4, cross_attention_block_skip_range=2,
                                    cross_attention_start_percent=0.0, cross_attention_end_percent=0.0)),
    "fastercache-skip-range-1": (FC, dict(spatial_attention_block_skip_range=1, unconditional_batch_skip_range=1)),
    "fastercache-empty-windows": (FC, dict(spatial_attention_start_percent=0.5, spatial_attention_end_percent=0.5,
                                           unconditional_batch_start_percent=1.0, unconditional_batch_end_percent=1.0)),
    "taylorseer-warmup-covers-the-run": (TS, dict(disable_cache_before_step=100, cache_interval=2)),
    "taylorseer-after-at-before": (TS, dict(disable_cache_before_step=2, disable_cache_after_step=2, cache_interval=2)),
    "magcache-no-skips-allowed": (MAG, dict(ratios="wan2.1_t2v_1.3B", threshold=0.5, max_skip_steps=0)),
    "magcache-retain-everything": (MAG, dict(ratios="wan2.1_t2v_1.3B", threshold=0.5, retention_ratio=1.0)),
    "hybrid-warmup-covers-the-run": (HBC, dict(residual_diff_threshold=0.5, warmup_steps=100)),
    "hybrid-mask-all-compute": (HBC, dict(residual_diff_threshold=0.5, steps_computation_mask="111111",
                                          steps_computation_policy="static", max_continuous_cached_steps=1,
                                          max_cached_steps=0, warmup_steps=6)),
}


@pytest.fixture(scope="module")
def unpatched(server):
    results = {}

    def get(cfg, sampler, split):
        key = (cfg, sampler, split)
        if key not in results:
            results[key] = server.ok(wan_prompt(split=split, probe=split, cfg=cfg, sampler=sampler, steps=STEPS))
        return results[key]

    return get


def refusals(result) -> int:
    return result.probe()["counters"].get("split_refusals", 0)


@pytest.mark.parametrize("cfg, sampler, split", GRID, ids=[f"cfg{c:g}-{s}-{'split' if p else 'batched'}" for c, s, p in GRID])
@pytest.mark.parametrize("node", NODE_IDS)
def test_off_is_the_unpatched_result(server, unpatched, node, cfg, sampler, split):
    base = unpatched(cfg, sampler, split)
    values = dict(OFF[node], filename_prefix="off/run") if node == CAL else OFF[node]
    result = server.ok(wan_prompt((node, values), split=split, probe=split, cfg=cfg, sampler=sampler, steps=STEPS))
    assert result.sha == base.sha
    (line,) = result.lines
    computed, total = line.split("computed ")[1].split(" steps")[0].split("/")
    assert computed == total == str(STEPS), line
    if split and cfg > 1:  # ComfyUI really evaluated cond and uncond apart (at cfg 1 it runs no uncond at all)
        assert refusals(result) >= STEPS and refusals(base) >= STEPS


@pytest.mark.parametrize("case", list(OTHER_WAYS_OFF))
def test_other_settings_that_reuse_nothing(server, unpatched, case):
    node, values = OTHER_WAYS_OFF[case]
    result = server.ok(wan_prompt((node, values), cfg=3.0, steps=STEPS))
    assert result.sha == unpatched(3.0, "euler", False).sha


# --- batched and split CFG while reusing -------------------------------------------------------------------------

@pytest.mark.parametrize("node", NODE_IDS)
def test_batched_and_split_cfg_give_the_same_result_while_reusing(server, node):
    """README: with CFG the first branch evaluated decides for the whole evaluation, so batched and split CFG decide
    the same; the results then agree up to float rounding."""
    from safetensors.torch import load_file

    from harness.robustness import REUSING

    settings = dict(REUSING[node], filename_prefix="split/run") if node == CAL else REUSING[node]
    batched = server.ok(wan_prompt((node, settings), cfg=3.0, steps=STEPS, name="batched"))
    batched_latent = load_file(batched.stats("batched")["path"])["samples"]
    split = server.ok(wan_prompt((node, settings), split=True, probe=True, cfg=3.0, steps=STEPS, name="split"))
    split_latent = load_file(split.stats("split")["path"])["samples"]
    # every evaluation with both branches was split (FasterCache runs the negative branch alone on only some)
    assert refusals(split) >= (1 if node == FC else STEPS)

    def steps(result):
        return [line.split("computed ")[1].split(" steps")[0] for line in result.lines]

    assert steps(split) == steps(batched)
    assert (split_latent - batched_latent).abs().max().item() < 1e-4
