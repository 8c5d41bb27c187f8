"""TaylorSeer's pure rules: the step schedule, the schedule position, the expansion and validation."""
import math

import pytest
import torch

from cachekit.cache_core.methods.taylor_series import TaylorSeries
from cachekit.cache_core.methods.taylorseer import (
    TaylorSeerConfig,
    TaylorSeerRun,
    factor_dtype_named,
    predicted_steps,
    schedule_position,
)
from harness import contexts


def computed(total, **kw):
    return [i for i, predicted in enumerate(predicted_steps(total, TaylorSeerConfig(**kw))) if not predicted]


def test_default_schedule_at_28_steps_is_diffusers():
    assert computed(28) == [0, 1, 2, 4, 9, 14, 19, 24]


def test_schedule_warmup_interval_and_cooldown():
    assert computed(12, cache_interval=2, disable_cache_before_step=1) == [0, 2, 4, 6, 8, 10]
    assert computed(12, disable_cache_after_step=8) == [0, 1, 2, 4, 8, 9, 10, 11]
    assert computed(7, disable_cache_before_step=0) == [0, 1, 6]  # step 0 has nothing to predict from
    assert computed(6, cache_interval=1) == list(range(6))
    assert computed(6, disable_cache_before_step=6) == list(range(6))
    assert computed(6, disable_cache_after_step=3, disable_cache_before_step=3) == list(range(6))


def test_enabled_only_when_some_step_can_be_predicted():
    assert TaylorSeerConfig().enabled
    assert not TaylorSeerConfig(cache_interval=1).enabled
    assert not TaylorSeerConfig(disable_cache_before_step=4, disable_cache_after_step=4).enabled
    assert TaylorSeerConfig(disable_cache_before_step=4, disable_cache_after_step=5).enabled


def test_schedule_position_is_the_step_at_schedule_sigmas_and_linear_between():
    sigmas = [1.0, 0.8, 0.4, 0.0]
    assert [schedule_position(sigmas, s) for s in sigmas] == [0.0, 1.0, 2.0, 3.0]
    assert schedule_position(sigmas, 0.6) == pytest.approx(1.5)
    assert schedule_position(sigmas, 0.9) == pytest.approx(0.5)
    assert schedule_position(sigmas, 1.3) == 0.0  # a sigma above the schedule (churn) clamps to the start


def _series(order, values, positions, dtype=torch.float64, expansion="newton"):
    series = TaylorSeries(order, dtype, expansion)
    for value, position in zip(values, positions):
        series.update(torch.tensor([value], dtype=torch.float64), position)
    return series


@pytest.mark.parametrize("order", range(5))
def test_newton_expansion_is_exact_on_polynomials_up_to_its_order(order):
    """Any spacing: the computed steps of the default schedule, plus fractional (multi-evaluation) positions."""
    coefficients = [0.7, -1.3, 0.45, -0.08, 0.011][: order + 1]
    polynomial = lambda t: sum(c * t**k for k, c in enumerate(coefficients))  # noqa: E731
    positions = [0.0, 1.0, 1.5, 2.0, 4.0, 9.0][-(order + 2):]
    series = _series(order, [polynomial(t) for t in positions], positions)
    for target in (9.0, 10.0, 12.5, 13.0):
        assert series.predict(target).item() == pytest.approx(polynomial(target), rel=1e-9, abs=1e-9)


def test_order_below_the_degree_is_not_exact():
    series = _series(1, [t * t for t in (2.0, 4.0)], (2.0, 4.0))
    assert series.predict(6.0).item() == pytest.approx(16 + 6 * 2)  # the chord's slope, not the tangent


def test_order_one_is_diffusers_taylor_and_higher_orders_follow_diffusers_when_asked():
    positions, values = (0.0, 1.0, 2.0, 4.0), (1.0, 3.0, 4.0, 10.0)
    for expansion in ("newton", "diffusers"):
        assert _series(1, values, positions, expansion=expansion).predict(7.0).item() == pytest.approx(10 + 3 * 3)
    # diffusers: F1 = (10 - 4) / 2 = 3, F1_prev = (4 - 3) / 1 = 1, F2 = (3 - 1) / 2 = 1; 10 + 3 s + 1 s^2 / 2 at s = 3
    assert _series(2, values, positions, expansion="diffusers").predict(7.0).item() == pytest.approx(10 + 9 + 4.5)


def test_order_zero_reuses_the_last_value():
    assert _series(0, (1.0, 5.0), (0.0, 1.0)).predict(4.0).item() == 5.0


def test_factors_are_stored_in_the_factor_dtype_and_predictions_in_the_value_dtype():
    series = TaylorSeries(1, torch.bfloat16)
    series.update(torch.full((2, 3), 1.0 + 2**-10), 0.0)
    series.update(torch.full((2, 3), 2.0), 1.0)
    assert [f.dtype for f in series.factors] == [torch.bfloat16, torch.bfloat16]
    assert series.factors[0][0, 0].item() == 2.0
    # order 1 differences the new full-precision value against the stored (rounded) previous one
    assert series.factors[1][0, 0].item() == 1.0
    predicted = series.predict(2.0)
    assert predicted.dtype == torch.float32 and predicted.shape == (2, 3) and predicted[0, 0].item() == 3.0
    assert series.nbytes() == 2 * 6 * 2


def test_wider_factors_than_the_model_compute_in_the_wider_dtype():
    series = TaylorSeries(1, torch.float32)
    series.update(torch.full((4,), 1.0, dtype=torch.bfloat16), 0.0)
    series.update(torch.full((4,), 1.0078125, dtype=torch.bfloat16), 1.0)  # one bfloat16 ulp above 1
    assert series.factors[1].dtype == torch.float32 and series.factors[1][0].item() == 0.0078125
    assert series.predict(0.5).dtype == torch.bfloat16


def test_prediction_is_a_new_tensor_and_updates_copy_their_input():
    series = TaylorSeries(0, torch.float32)
    value = torch.ones(3)
    series.update(value, 0.0)
    value.add_(1)
    predicted = series.predict(1.0)
    assert predicted.tolist() == [1.0, 1.0, 1.0]
    predicted.add_(1)
    assert series.predict(1.0).tolist() == [1.0, 1.0, 1.0]


def test_same_position_refreshes_order_zero_and_keeps_the_slope():
    """heun's correction at sigma[i + 1] and the next step's first evaluation share a position."""
    series = _series(1, (0.0, 2.0, 2.5), (0.0, 1.0, 1.0))
    assert series.predict(3.0).item() == pytest.approx(2.5 + 2 * 2.0)


def test_a_shape_change_restarts_at_order_zero():
    series = TaylorSeries(2, torch.float32)
    series.update(torch.zeros(2), 0.0)
    series.update(torch.ones(2), 1.0)
    series.update(torch.full((3,), 7.0), 2.0)
    assert len(series.factors) == 1 and series.predict(5.0).tolist() == [7.0, 7.0, 7.0]


def _context(step, sigma, uuids):
    return contexts.context(step, uuids=list(uuids), sigma=sigma)


def predict(run, ctx, x):
    """What the model-level runtime asks a lite run on a forward: the output, or None to compute."""
    return run.output(ctx, x) if run.decide_output(ctx) else None


def test_batched_and_split_branches_predict_the_same_rows():
    sigmas = [1.0, 0.75, 0.5, 0.25, 0.0]
    config = TaylorSeerConfig(disable_cache_before_step=2, cache_interval=3, taylor_factors_dtype="float32", mode="lite")
    batched, split = TaylorSeerRun(config, sigmas), TaylorSeerRun(config, sigmas)
    x = torch.zeros(2, 4, 3, 3)
    for step in (0, 1):
        output = torch.randn(2, 4, 3, 3)
        ctx = _context(step, sigmas[step], "uc")
        assert predict(batched, ctx, x) is None
        batched.learn_output(ctx, x, output)
        for row, uuid in enumerate("uc"):
            ctx = _context(step, sigmas[step], uuid)
            assert predict(split, ctx, x[row:row + 1]) is None
            split.learn_output(ctx, x[row:row + 1], output[row:row + 1])
    ctx = _context(2, sigmas[2], "uc")
    together = predict(batched, ctx, x)
    apart = torch.cat([predict(split, _context(2, sigmas[2], u), x[:1]) for u in "uc"])
    assert torch.equal(together, apart)
    assert batched.cache_bytes() == 2 * 2 * (4 * 3 * 3) * 4  # (order + 1) x output rows x 4 bytes, per branch
    batched.close(None)
    assert batched.cache_bytes() == 0


def test_auto_factors_keep_the_values_dtype():
    sigmas = [1.0, 0.5, 0.0]
    run = TaylorSeerRun(TaylorSeerConfig(disable_cache_before_step=1, cache_interval=2, mode="lite"), sigmas + [0.0])
    ctx = _context(0, 1.0, "c")
    run.learn_output(ctx, None, torch.ones(1, 2, dtype=torch.float64))
    (_, series), = run.forecast.kept[run.layout(ctx)].values()
    assert series[0].factors[0].dtype == torch.float64


def test_trees_are_predicted_leaf_by_leaf():
    """LTX-2's model output is [video, audio]: each leaf has its own series."""
    sigmas = [1.0, 0.75, 0.5, 0.25, 0.0]
    run = TaylorSeerRun(TaylorSeerConfig(disable_cache_before_step=2, cache_interval=3, mode="lite"), sigmas)
    for step in (0, 1):
        run.learn_output(_context(step, sigmas[step], "c"), None, [torch.full((1, 2), float(step)), torch.full((1, 3), 2.0 * step)])
    predicted = predict(run, _context(2, sigmas[2], "c"), None)
    assert isinstance(predicted, list) and predicted[0].tolist() == [[2.0, 2.0]] and predicted[1].tolist() == [[4.0] * 3]


def test_runs_with_nothing_to_predict_keep_nothing():
    sigmas = [1.0, 0.5, 0.0]
    run = TaylorSeerRun(TaylorSeerConfig(disable_cache_before_step=2), sigmas)
    ctx = _context(0, 1.0, "c")
    assert predict(run, ctx, torch.zeros(1, 1, 1, 1)) is None
    run.learn_output(ctx, torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1))
    assert run.cache_bytes() == 0


@pytest.mark.parametrize(
    "values, message",
    [
        (dict(cache_interval=0), "cache_interval"),
        (dict(cache_interval=2.5), "cache_interval"),
        (dict(disable_cache_before_step=-1), "disable_cache_before_step"),
        (dict(disable_cache_after_step=-2), "disable_cache_after_step"),
        (dict(max_order=5), "max_order"),
        (dict(max_order=True), "max_order"),
        (dict(taylor_factors_dtype="float64"), "taylor_factors_dtype"),
        (dict(mode="attention"), "mode"),
        (dict(expansion="lagrange"), "expansion"),
    ],
)
def test_invalid_settings_name_the_field(values, message):
    with pytest.raises(ValueError, match=message):
        TaylorSeerConfig(**values)


def test_factor_dtype_names():
    assert factor_dtype_named("float16") is torch.float16 and factor_dtype_named("auto") is None
    with pytest.raises(ValueError, match="taylor_factors_dtype"):
        factor_dtype_named("float64")
    assert math.isclose(float(torch.tensor(1.0, dtype=factor_dtype_named("bfloat16"))), 1.0)


def test_midpoint_evaluations_are_predicted_but_not_learned_from():
    """dpm_2 evaluates between two schedule sigmas at a trial latent: computed there, it must not move the factors."""
    sigmas = [1.0, 0.8, 0.6, 0.4, 0.2, 0.0]
    run = TaylorSeerRun(TaylorSeerConfig(disable_cache_before_step=2, cache_interval=3, taylor_factors_dtype="float32"), sigmas)
    x = torch.zeros(1, 1, 1, 1)
    for step, sigma, value in ((0, 1.0, 0.0), (0, 0.9, 100.0), (1, 0.8, 1.0)):
        ctx = _context(step, sigma, "c")
        assert predict(run, ctx, x) is None
        run.learn_output(ctx, x, torch.full((1, 1, 1, 1), value))
    midpoint = predict(run, _context(2, 0.7, "c"), x)
    assert midpoint.item() == pytest.approx(1.5)  # position 1.5 on the line through (0, 0) and (1, 1)
    assert predict(run, _context(2, 0.6, "c"), x).item() == pytest.approx(2.0)
