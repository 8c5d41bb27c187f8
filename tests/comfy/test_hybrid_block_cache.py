"""The Hybrid Block Cache against real ComfyUI, in-process, on tiny random-weight models."""
from __future__ import annotations

import pytest
import torch

from cachekit.nodes.hybrid_block_cache import apply_hybrid_block_cache

STEPS = 16


def hybrid(model, **values):
    return apply_hybrid_block_cache(model, **values)


def relative(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture(scope="module")
def models(tiny):
    return {"flux": tiny.load_tiny("flux"), "wan21": tiny.load_tiny("wan21")}


@pytest.fixture(scope="module")
def deep_wan(tiny, tmp_path_factory):
    """A Wan with six blocks, so front, middle and back segments all have several."""
    import comfy.sd

    path = tiny.write_checkpoint("wan21", tmp_path_factory.mktemp("deep") / "wan6.safetensors", dtype=torch.float32, num_layers=6)
    return comfy.sd.load_diffusion_model(str(path), model_options={"dtype": torch.float32})


@pytest.mark.parametrize("family", ["flux", "wan21"])
def test_threshold_zero_is_the_unpatched_model(models, tiny, family):
    for cfg in (1.0, 3.0):
        base = tiny.run_sampler(models[family], family, cfg=cfg, steps=STEPS)
        assert torch.equal(tiny.run_sampler(hybrid(models[family], residual_diff_threshold=0.0), family, cfg=cfg, steps=STEPS), base)


@pytest.mark.parametrize("predictor", ["replay", "taylorseer", "foca"])
def test_every_predictor_saves_work_with_a_bounded_difference(models, tiny, reports, predictor):
    model = models["wan21"]
    base = tiny.run_sampler(model, "wan21", cfg=3.0, steps=STEPS)
    with tiny.count_block_calls(model) as counter:
        out = tiny.run_sampler(hybrid(model, residual_diff_threshold=0.5, predictor=predictor), "wan21", cfg=3.0, steps=STEPS)
    report = reports[-1]
    assert report.units_computed < report.units_total and counter.calls == report.units_computed
    assert 0 < relative(out, base) < 0.2


def test_front_and_back_blocks_always_run(deep_wan, tiny, reports):
    with tiny.count_block_calls(deep_wan) as counter:
        tiny.run_sampler(hybrid(deep_wan, front_blocks=2, back_blocks=2, residual_diff_threshold=1.0, warmup_steps=1,
                                max_continuous_cached_steps=0), "wan21", cfg=1.0, steps=STEPS)
    report = reports[-1]
    reused = report.step_status().count("partial") + report.step_status().count("reused")
    assert reused > 0 and counter.calls == report.units_computed
    assert report.units_computed == STEPS * 4 + (STEPS - reused) * 2  # 2 front + 2 back every step, the middle 2 when computed


def test_back_blocks_correct_the_predicted_middle(deep_wan, tiny):
    base = tiny.run_sampler(deep_wan, "wan21", cfg=1.0, steps=STEPS)
    settings = dict(residual_diff_threshold=1.0, warmup_steps=2, max_continuous_cached_steps=0, predictor="replay")
    without_back = tiny.run_sampler(hybrid(deep_wan, front_blocks=2, back_blocks=0, **settings), "wan21", cfg=1.0, steps=STEPS)
    with_back = tiny.run_sampler(hybrid(deep_wan, front_blocks=2, back_blocks=2, **settings), "wan21", cfg=1.0, steps=STEPS)
    assert not torch.equal(with_back, without_back)
    assert relative(with_back, base) < 0.3 and relative(without_back, base) < 0.3


def test_batched_and_split_cfg_decide_the_same(models, tiny, reports):
    patched = hybrid(models["flux"], residual_diff_threshold=0.5)
    out_batched = tiny.run_sampler(patched, "flux", cfg=3.0, steps=STEPS)
    with tiny.force_split_cfg():
        out_split = tiny.run_sampler(patched, "flux", cfg=3.0, steps=STEPS)
    assert reports[-1].step_status() == reports[-2].step_status()
    assert torch.allclose(out_batched, out_split, atol=1e-4)


@pytest.mark.parametrize("target", [1.5, 2.0])
def test_quality_budget_mode_reaches_about_its_target_and_says_so(deep_wan, tiny, reports, target):
    tiny.run_sampler(hybrid(deep_wan, target_speedup=target, warmup_steps=2, max_continuous_cached_steps=0), "wan21",
                     cfg=1.0, steps=24)
    report = reports[-1]
    reached = report.units_total / report.units_computed
    assert abs(reached - target) / target < 0.15
    assert report.extra["target_speedup"] == target and f"target {target:.2f}x, reached" in report.note


def test_a_static_step_mask_computes_exactly_the_masked_steps(models, tiny, reports):
    mask = "1110110110110111"
    tiny.run_sampler(hybrid(models["wan21"], steps_computation_mask=mask, steps_computation_policy="static", warmup_steps=0,
                            max_continuous_cached_steps=0), "wan21", cfg=1.0, steps=STEPS)
    status = reports[-1].step_status()
    assert [s == "computed" for s in status] == [c == "1" for c in mask]


def test_more_front_blocks_than_the_model_has_is_a_clear_error(models):
    with pytest.raises(ValueError, match="front_blocks \\+ back_blocks .* must be less than the model's 3 blocks"):
        hybrid(models["wan21"], front_blocks=2, back_blocks=1)
