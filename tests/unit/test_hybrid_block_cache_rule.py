"""Hybrid Block Cache: settings, step masks, the decision rules, the budget and the forecasters."""
import pytest
import torch

from cachekit.cache_core.methods.forecast import FoCaSeries, TreeForecast
from cachekit.cache_core.methods.hybrid_block_cache import HybridBlockCacheConfig, HybridBlockCacheRun, parse_mask
from harness.contexts import context


class FakeRun:
    """What the method reads of its sampling run: the clock and the stack's size."""

    def __init__(self, steps, blocks=10):
        self.clock = type("Clock", (), {"total_steps": steps, "sample_sigmas": [1.0 - i / steps for i in range(steps + 1)]})()
        self.spec = type("Spec", (), {"stack_lengths": {"blocks": blocks}})()
        self.report = type("Report", (), {"units_total": 0, "units_computed": 0, "extra": {}, "add_note": lambda self, t: None})()


@pytest.mark.parametrize("values, message", [
    (dict(front_blocks=0), "front_blocks"),
    (dict(residual_diff_threshold=-0.1), "residual_diff_threshold"),
    (dict(predictor="dmd"), "predictor"),
    (dict(taylorseer_order=3), "taylorseer_order"),
    (dict(steps_computation_mask="11x0"), "steps_computation_mask"),
    (dict(target_speedup=0.5), "target_speedup"),
])
def test_bad_settings_name_the_input(values, message):
    with pytest.raises(ValueError, match=message):
        HybridBlockCacheConfig(**values)


def test_masks():
    assert parse_mask("", 10) is None
    assert parse_mask("1101", 4) == (True, True, False, True)
    assert parse_mask("10", 4) == (True, True, False, False)  # stretched over the run
    fast = parse_mask("fast", 28)
    assert len(fast) == 28 and fast[:6] == (True,) * 6 and fast[-1] and sum(fast) == round(0.4 * 28)
    assert sum(parse_mask("ultra", 28)) < sum(parse_mask("slow", 28))


def run_decisions(config, steps, change=0.01, blocks=10):
    run = HybridBlockCacheRun(config, FakeRun(steps, blocks))
    decisions = []
    for step in range(steps):
        ctx = context(step, sigma=1.0 - step / steps)
        front = torch.full((1, 4), 1.0 + change * step)
        reuse = run.decide(ctx, front)
        if not reuse:
            run.learn(ctx, front, {"img": torch.ones(1, 4)})
        decisions.append(reuse)
    return run, decisions


def test_warmup_caps_and_threshold():
    _, reuse = run_decisions(HybridBlockCacheConfig(warmup_steps=3, max_continuous_cached_steps=2, predictor="replay"), 12)
    assert reuse == [False, False, False, True, True, False, True, True, False, True, True, False]
    _, reuse = run_decisions(HybridBlockCacheConfig(warmup_steps=1, max_continuous_cached_steps=0, max_cached_steps=3), 8)
    assert sum(reuse) == 3
    _, reuse = run_decisions(HybridBlockCacheConfig(residual_diff_threshold=0.001, warmup_steps=1), 8, change=0.05)
    assert not any(reuse)


def test_static_mask_reuses_where_the_mask_allows_whatever_the_change():
    _, reuse = run_decisions(HybridBlockCacheConfig(steps_computation_mask="110101", steps_computation_policy="static",
                                                    warmup_steps=0, max_continuous_cached_steps=0), 6, change=1.0)
    assert reuse == [False, False, True, False, True, False]


def test_budget_mode_reaches_its_target():
    steps, blocks = 30, 10  # front 1 + middle 9
    for target in (1.5, 2.0, 3.0):
        run, reuse = run_decisions(HybridBlockCacheConfig(target_speedup=target, warmup_steps=2, max_continuous_cached_steps=0), steps,
                                   change=0.002, blocks=blocks)
        computed = steps - sum(reuse)
        reached = steps * blocks / (steps * 1 + computed * 9)
        assert computed <= run.budget and abs(reached - target) / target < 0.1
        assert not reuse[-1]  # the last step computes


def test_foca_forecast_is_exact_on_lines_and_follows_itself():
    series = FoCaSeries()
    for position in (0.0, 1.0, 2.0):
        series.update(torch.tensor([3.0 * position + 1.0]), position)
    assert series.predict(3.0).item() == pytest.approx(10.0)
    assert series.predict(4.0).item() == pytest.approx(13.0)  # from the anchor with both slopes equal
    series.update(torch.tensor([100.0]), 5.0)  # a computed value re-anchors
    assert series.predict(5.5).item() == pytest.approx(100.0 + 0.5 * 0.5 * ((100.0 - 7.0) / 3 + (100.0 - 13.0)))


def test_foca_damps_long_horizons_toward_the_anchor():
    series = FoCaSeries()
    series.update(torch.tensor([0.0]), 0.0)
    series.update(torch.tensor([1.0]), 1.0)
    assert series.predict(7.0).item() == pytest.approx(1.0 + (3.0 / 6.0) * 3.0)


def test_tree_forecast_keeps_layouts_apart():
    forecast = TreeForecast(lambda leaf: FoCaSeries())
    forecast.learn(("c",), "middle", {"img": torch.zeros(1, 2)}, 0.0, copy=True)
    assert forecast.predict(("u", "c"), "middle", 1.0) is None
    assert forecast.predict(("c",), "middle", 1.0)["img"].tolist() == [[0.0, 0.0]]
