"""FirstBlockCache's config validation and decision rule, without ComfyUI."""
import math

import pytest
import torch

from cachekit.cache_core.methods.first_block_cache import (
    FirstBlockCacheConfig,
    FirstBlockCacheRun,
    may_skip,
    relative_change,
)
from cachekit.cache_core.runtime.forward import ForwardContext, chunk_layout


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": -0.1}, "threshold"),
        ({"start_percent": 0.8, "end_percent": 0.2}, "start_percent"),
        ({"end_percent": math.inf}, "end_percent"),
        ({"max_consecutive_skips": -1}, "max_consecutive_skips"),
    ],
)
def test_bad_settings_are_rejected_with_a_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FirstBlockCacheConfig(**kwargs)


def test_relative_change_matches_diffusers_formula():
    prev = torch.tensor([1.0, -2.0, 3.0])
    cur = torch.tensor([1.5, -2.0, 2.0])
    assert float(relative_change(cur, prev)) == pytest.approx((0.5 + 0 + 1.0) / 3 / 2.0)


def test_threshold_zero_never_skips():
    assert not may_skip(0.0, FirstBlockCacheConfig(threshold=0.0))
    assert may_skip(0.01, FirstBlockCacheConfig(threshold=0.05))
    assert not may_skip(0.05, FirstBlockCacheConfig(threshold=0.05))


def _ctx(step, eval_state, chunks=None, in_window=True):
    return ForwardContext(
        step=step, sigma=1.0 - step / 10, chunks=chunks or chunk_layout(2, [1, 0], ["u", "c"]),
        may_cache=True, in_window=in_window, eval_key=(step, 0.0), eval_state=eval_state,
    )


def test_run_skips_when_residual_is_stable_and_replays_per_branch():
    run = FirstBlockCacheRun(FirstBlockCacheConfig(threshold=0.1))
    head_in = {"img": torch.zeros(2, 3, 4)}
    out0 = {"img": torch.ones(2, 3, 4)}
    assert run.skip_after_head(_ctx(0, {}), head_in, out0) is None  # nothing cached yet
    residual = {"img": torch.cat([torch.full((1, 3, 4), 5.0), torch.full((1, 3, 4), 7.0)])}
    run.store_stack_residual(_ctx(0, {}), residual)
    out1 = {"img": torch.full((2, 3, 4), 1.02)}
    replay = run.skip_after_head(_ctx(1, {}), head_in, out1)
    assert replay is not None
    assert replay["img"][0].unique().tolist() == [5.0] and replay["img"][1].unique().tolist() == [7.0]
    assert run.cache_bytes() > 0
    run.close()
    assert run.cache_bytes() == 0


def test_split_cfg_forwards_follow_the_first_forward_of_the_evaluation():
    run = FirstBlockCacheRun(FirstBlockCacheConfig(threshold=0.1))
    uncond = chunk_layout(1, [1], ["u"])
    cond = chunk_layout(1, [0], ["c"])
    head_in = {"img": torch.zeros(1, 3, 4)}
    for chunks in (uncond, cond):
        run.skip_after_head(_ctx(0, {}, chunks), head_in, {"img": torch.ones(1, 3, 4)})
        run.store_stack_residual(_ctx(0, {}, chunks), {"img": torch.ones(1, 3, 4)})
    shared = {}
    # the uncond forward sees a large change and decides to compute; cond must follow although its change is small
    assert run.skip_after_head(_ctx(1, shared, uncond), head_in, {"img": torch.full((1, 3, 4), 3.0)}) is None
    assert run.skip_after_head(_ctx(1, shared, cond), head_in, {"img": torch.ones(1, 3, 4)}) is None
    assert shared["skip"] is False


def test_max_consecutive_skips_forces_a_compute():
    run = FirstBlockCacheRun(FirstBlockCacheConfig(threshold=0.5, max_consecutive_skips=1))
    chunks = chunk_layout(1, [0], ["c"])
    head_in = {"img": torch.zeros(1, 2, 2)}
    out = {"img": torch.ones(1, 2, 2)}
    run.skip_after_head(_ctx(0, {}, chunks), head_in, out)
    run.store_stack_residual(_ctx(0, {}, chunks), {"img": torch.ones(1, 2, 2)})
    decisions = [run.skip_after_head(_ctx(s, {}, chunks), head_in, out) is not None for s in range(1, 5)]
    assert decisions == [True, False, True, False]


def test_outside_the_window_nothing_is_skipped():
    run = FirstBlockCacheRun(FirstBlockCacheConfig(threshold=0.5))
    chunks = chunk_layout(1, [0], ["c"])
    head_in = {"img": torch.zeros(1, 2, 2)}
    out = {"img": torch.ones(1, 2, 2)}
    run.skip_after_head(_ctx(0, {}, chunks), head_in, out)
    run.store_stack_residual(_ctx(0, {}, chunks), {"img": torch.ones(1, 2, 2)})
    assert run.skip_after_head(_ctx(1, {}, chunks, in_window=False), head_in, out) is None
