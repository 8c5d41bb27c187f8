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
from harness.contexts import context


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": -0.1}, "threshold"),
        ({"threshold": 1.5}, "threshold must be a finite number between 0 and 1"),
        ({"start_percent": 0.8, "end_percent": 0.2}, "start_percent"),
        ({"end_percent": math.inf}, "end_percent"),
        ({"max_consecutive_skips": -1}, "max_consecutive_skips"),
        ({"max_consecutive_skips": 2.5}, "max_consecutive_skips must be a whole number"),
        ({"threshold": True}, "threshold"),
    ],
)
def test_bad_settings_are_rejected_with_a_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FirstBlockCacheConfig(**kwargs)


def test_relative_change_matches_diffusers_formula():
    prev = torch.tensor([1.0, -2.0, 3.0])
    cur = torch.tensor([1.5, -2.0, 2.0])
    assert relative_change(cur, prev) == pytest.approx((0.5 + 0 + 1.0) / 3 / 2.0)
    half = relative_change(cur.to(torch.bfloat16), prev.to(torch.bfloat16))
    assert half == pytest.approx((0.5 + 0 + 1.0) / 3 / 2.0)  # accumulated in float32, no float32 copy needed


def test_threshold_zero_never_skips():
    assert not may_skip(0.0, 0.0)
    assert may_skip(0.01, 0.05)
    assert not may_skip(0.05, 0.05)
    assert not FirstBlockCacheConfig(threshold=0.0).enabled


def _learn(run, ctx, front, middle):
    run.learn(ctx, front, {"img": middle})


def test_skips_while_the_lead_residual_is_stable_and_replays_the_stored_batch():
    run = FirstBlockCacheRun(FirstBlockCacheConfig(threshold=0.1))
    first = context(0, uuids="uc")
    assert not run.decide(first, torch.ones(1, 3, 4))  # nothing stored yet
    middle = torch.cat([torch.full((1, 3, 4), 5.0), torch.full((1, 3, 4), 7.0)])
    _learn(run, first, torch.ones(2, 3, 4), middle)
    second = context(1, uuids="uc")
    assert run.decide(second, torch.full((1, 3, 4), 1.02))
    replay = run.middle(second)
    assert replay["img"] is middle  # the same batch layout: the stored tensor itself, no copy
    assert run.cache_bytes() > 0
    run.close(None)
    assert run.cache_bytes() == 0


def test_a_large_change_computes():
    run = FirstBlockCacheRun(FirstBlockCacheConfig(threshold=0.1))
    _learn(run, context(0), torch.ones(1, 2), torch.ones(1, 2))
    assert not run.decide(context(1), torch.full((1, 2), 3.0))


def test_split_forwards_get_their_rows_of_a_batched_store_and_the_reverse():
    run = FirstBlockCacheRun(FirstBlockCacheConfig(threshold=0.1))
    middle = torch.arange(2.0).view(2, 1)
    _learn(run, context(0, uuids="uc"), torch.ones(2, 1), middle)
    assert run.middle(context(1, uuids="c"))["img"].tolist() == [[1.0]]
    assert run.middle(context(1, uuids="u"))["img"].tolist() == [[0.0]]
    _learn(run, context(2, uuids="u"), torch.ones(1, 1), torch.full((1, 1), 9.0))
    _learn(run, context(2, uuids="c"), torch.ones(1, 1), torch.full((1, 1), 8.0))
    assert run.middle(context(3, uuids="uc"))["img"].tolist() == [[9.0], [8.0]]
    assert run.middle(context(3, uuids="x")) is None  # a branch with nothing stored


def test_max_consecutive_skips_forces_a_compute():
    run = FirstBlockCacheRun(FirstBlockCacheConfig(threshold=0.5, max_consecutive_skips=1))
    _learn(run, context(0), torch.ones(1, 2, 2), torch.ones(1, 2, 2))
    decisions = [run.decide(context(s), torch.ones(1, 2, 2)) for s in range(1, 5)]
    assert decisions == [True, False, True, False]


def test_outside_the_window_nothing_is_skipped():
    run = FirstBlockCacheRun(FirstBlockCacheConfig(threshold=0.5))
    _learn(run, context(0), torch.ones(1, 2, 2), torch.ones(1, 2, 2))
    assert not run.decide(context(1, in_window=False), torch.ones(1, 2, 2))
    assert run.decide(context(1), torch.ones(1, 2, 2))
