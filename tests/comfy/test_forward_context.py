"""Every forward ComfyUI makes, handled by the per-call forward context (real ComfyUI, tiny models).

- Skip Layer Guidance and a guider that re-runs the model add forwards of an altered or repeated
  model to each evaluation: they are computed without the cache, so the cache never serves them a
  residual of the run's own model, and they never overwrite it.
- Forwards of one run in two threads at once (as ComfyUI's multi-GPU work units run) each carry
  their own context.
- torch.compile (ComfyUI's compile wrapper with TorchCompileModel's guard filter) with every method.
- Re-applying a cache through another node never nests its hooks; two caches that need the same
  site are refused with a message naming both nodes.
- An interrupted calibration writes nothing; MagCache computes outside its table's range.
"""
from __future__ import annotations

import threading

import pytest
import torch

from cachekit.cache_core.methods.mag_cache import MagCacheConfig, MagRatios
from cachekit.nodes import NODE_DEFS

NODES = {d.node_id: d for d in NODE_DEFS}
OFF = {
    "CacheKitFirstBlockCache": dict(threshold=0.0),
    "CacheKitMagCache": dict(threshold=0.0),
    "CacheKitTaylorSeerCache": dict(disable_cache_before_step=100),
}
SKIPPING = {
    "CacheKitFirstBlockCache": dict(threshold=0.5),
    "CacheKitMagCache": dict(threshold=0.5, retention_ratio=0.0),
    "CacheKitTaylorSeerCache": dict(disable_cache_before_step=1, cache_interval=3),
}
BLOCK_LEVEL = list(OFF)
STEPS = 10


def apply(node_id, model, **values):
    return NODES[node_id].apply(model, **values)


def relative(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def first_output(result):
    """The first output of a ComfyUI node call (V1 tuple or V3 NodeOutput)."""
    return result[0] if isinstance(result, tuple) else result.result[0]


def skip_layer_guidance(model, layers="1"):
    from comfy_extras.nodes_slg import SkipLayerGuidanceDiT

    return first_output(SkipLayerGuidanceDiT().skip_guidance(
        model=model, scale=3.0, start_percent=0.0, end_percent=1.0, double_layers=layers, single_layers="", rescaling_scale=0.0))


def rerunning_guider(model, scale=0.5):
    """A PAG-style guidance patch: every evaluation re-runs the positive branch on a perturbed latent."""
    import comfy.samplers

    def post_cfg(args):
        (again,) = comfy.samplers.calc_cond_batch(args["model"], [args["cond"]], args["input"] * 0.97, args["sigma"], args["model_options"])
        return args["denoised"] + (args["cond_denoised"] - again) * scale

    patched = model.clone()
    patched.set_model_sampler_post_cfg_function(post_cfg)
    return patched


GUIDERS = {"skip_layer_guidance": skip_layer_guidance, "rerunning_guider": rerunning_guider}


@pytest.fixture(scope="module")
def wan(tiny):
    return tiny.load_tiny("wan21")


@pytest.mark.parametrize("guider", list(GUIDERS))
@pytest.mark.parametrize("node_id", BLOCK_LEVEL)
def test_extra_forwards_are_computed_without_the_cache(tiny, wan, reports, guider, node_id):
    guide = GUIDERS[guider]
    guided = tiny.run_sampler(guide(wan), "wan21", steps=STEPS, cfg=3.0)
    plain = tiny.run_sampler(wan, "wan21", steps=STEPS, cfg=3.0)
    assert not torch.equal(guided, plain)  # the guider acts
    # reuse off: exactly the guided result, whichever node comes first
    assert torch.equal(tiny.run_sampler(guide(apply(node_id, wan, **OFF[node_id])), "wan21", steps=STEPS, cfg=3.0), guided)
    assert torch.equal(tiny.run_sampler(apply(node_id, guide(wan), **OFF[node_id]), "wan21", steps=STEPS, cfg=3.0), guided)
    # reusing: the guider still changes the result, and the cache stays close to the guided result
    cached = tiny.run_sampler(guide(apply(node_id, wan, **SKIPPING[node_id])), "wan21", steps=STEPS, cfg=3.0)
    cached_plain = tiny.run_sampler(apply(node_id, wan, **SKIPPING[node_id]), "wan21", steps=STEPS, cfg=3.0)
    assert relative(cached, cached_plain) > 0.5 * relative(guided, plain)
    assert relative(cached, guided) < 0.3
    guided_report = reports[-2]
    assert guided_report.units_computed < guided_report.units_total  # the run's own forwards still reuse
    assert f"{STEPS} forwards of an altered or re-run model were computed without the cache" in guided_report.note


def test_a_node_that_replaces_blocks_for_good_turns_the_stack_cache_off(tiny, wan, caplog):
    import comfy.model_patcher

    cached = apply("CacheKitFirstBlockCache", wan, threshold=0.5)
    replaced = cached.clone()
    replaced.model_options = comfy.model_patcher.set_model_options_patch_replace(
        replaced.model_options, lambda args, extra: extra["original_block"](args), "dit", "double_block", 1)
    uncached = wan.clone()
    uncached.model_options = comfy.model_patcher.set_model_options_patch_replace(
        uncached.model_options, lambda args, extra: extra["original_block"](args), "dit", "double_block", 1)
    with caplog.at_level("WARNING", logger="CacheKit"):
        out = tiny.run_sampler(replaced, "wan21", steps=STEPS, cfg=3.0)
    assert torch.equal(out, tiny.run_sampler(uncached, "wan21", steps=STEPS, cfg=3.0))
    assert any("block patches were replaced by a node applied after it" in r.getMessage() for r in caplog.records)


# --- concurrent forwards -------------------------------------------------------------------------


def concurrent_branches(model):
    """Evaluate cond and uncond in two threads at once, both inside their block stacks together
    (as ComfyUI's multi-GPU work units do), through ComfyUI's own calc_cond_batch."""
    import comfy.samplers

    barrier = threading.Barrier(2, timeout=30)

    def meet(args, extra):  # a foreign block patch: holds each forward until the other one is in flight
        if args["transformer_options"].get("cond_or_uncond") in ([0], [1]) and threading.current_thread().name.startswith("branch"):
            barrier.wait()
        return extra["original_block"](args)

    patched = model.clone()
    patched.set_model_patch_replace(meet, "dit", "double_block", 1)

    def calc(args):
        conds, results = args["conds"], [None, None]

        def branch(index):
            only = [c if i == index else None for i, c in enumerate(conds)]
            results[index] = comfy.samplers.calc_cond_batch(args["model"], only, args["input"], args["sigma"], args["model_options"])[index]

        threads = [threading.Thread(target=branch, args=(i,), name=f"branch{i}") for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    patched.set_model_sampler_calc_cond_batch_function(calc)
    return patched


@pytest.mark.parametrize("node_id, values", [
    ("CacheKitMagCache", dict(threshold=0.5, retention_ratio=0.0)),
    ("CacheKitTaylorSeerCache", dict(disable_cache_before_step=1, cache_interval=3)),
    ("CacheKitTaylorSeerCache", dict(disable_cache_before_step=1, cache_interval=3, mode="lite")),
    ("CacheKitFirstBlockCache", dict(threshold=0.0)),
])
def test_two_forwards_of_one_run_in_two_threads(tiny, wan, reports, node_id, values):
    concurrent = concurrent_branches(wan)
    with tiny.force_split_cfg():
        sequential = tiny.run_sampler(apply(node_id, wan, **values), "wan21", steps=STEPS, cfg=3.0)
    out = tiny.run_sampler(apply(node_id, concurrent, **values), "wan21", steps=STEPS, cfg=3.0)
    assert torch.equal(out, sequential)
    assert reports[-1].forwards == reports[-2].forwards == 2 * STEPS
    assert (reports[-1].units_computed, reports[-1].units_total) == (reports[-2].units_computed, reports[-2].units_total)


def test_concurrent_first_block_cache_reuses_with_a_bounded_difference(tiny, wan, reports):
    base = tiny.run_sampler(wan, "wan21", steps=STEPS, cfg=3.0)
    out = tiny.run_sampler(apply("CacheKitFirstBlockCache", concurrent_branches(wan), threshold=0.5), "wan21", steps=STEPS, cfg=3.0)
    assert reports[-1].units_computed < reports[-1].units_total and relative(out, base) < 0.25


# --- torch.compile -------------------------------------------------------------------------------


COMPILED = {
    "CacheKitFirstBlockCache": dict(threshold=1.0),
    "CacheKitMagCache": dict(threshold=0.5, retention_ratio=0.0),
    "CacheKitTaylorSeerCache": dict(disable_cache_before_step=1, cache_interval=3),
    "CacheKitTaylorSeerCache lite": dict(disable_cache_before_step=1, cache_interval=3, mode="lite"),
    "CacheKitPyramidAttentionBroadcast": dict(spatial_attention_start_percent=0.0, spatial_attention_end_percent=1.0),
    "CacheKitFasterCache": dict(spatial_attention_start_percent=0.0, unconditional_batch_start_percent=0.0),
}


def compiled(model):
    """What TorchCompileModel installs (its guard filter drops every guard on transformer_options),
    with the eager backend so the test measures Dynamo, not code generation."""
    from comfy_api.torch_helpers import set_torch_compile_wrapper

    patched = model.clone()
    options = {"guard_filter_fn": lambda entries: [("transformer_options" not in e.name) for e in entries]}
    set_torch_compile_wrapper(patched, backend="eager", options=options)
    return patched


def dynamo_graphs(run):
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    out = run()
    return out, counters["stats"]["unique_graphs"]


@pytest.fixture(scope="module")
def uncached_graphs(tiny, wan):
    return dynamo_graphs(lambda: tiny.run_sampler(compiled(wan), "wan21", steps=4, cfg=2.0))[1]


@pytest.mark.parametrize("case", list(COMPILED))
def test_every_method_compiles_with_the_results_of_eager_and_few_extra_graphs(tiny, wan, uncached_graphs, case):
    node_id = case.split()[0]
    values = COMPILED[case]
    eager = tiny.run_sampler(apply(node_id, wan, **values), "wan21", steps=4, cfg=2.0)
    builds = [lambda: compiled(apply(node_id, wan, **values))]
    if node_id == "CacheKitFirstBlockCache":  # the other order: the cache applied to a compiled model
        builds.append(lambda: apply(node_id, compiled(wan), **values))
    for build in builds:
        out, graphs = dynamo_graphs(lambda: tiny.run_sampler(build(), "wan21", steps=4, cfg=2.0))
        assert torch.allclose(out, eager, atol=1e-5)
        # host-side decisions are graph breaks, not recompiles: a few graphs more (FasterCache also sees two batch sizes)
        assert graphs <= 2 * uncached_graphs + 4


# --- installing twice, and two caches on one model -----------------------------------------------


def test_reapplying_a_cache_through_another_node_does_not_nest_it(tiny, reports):
    model = tiny.load_tiny("flux")
    pab = dict(spatial_attention_start_percent=0.0, spatial_attention_end_percent=1.0)
    once = apply("CacheKitPyramidAttentionBroadcast", apply("CacheKitFirstBlockCache", model, threshold=0.3), **pab)
    twice = apply("CacheKitFirstBlockCache", once, threshold=0.3)
    expected = tiny.run_sampler(apply("CacheKitFirstBlockCache", apply("CacheKitPyramidAttentionBroadcast", model, **pab), threshold=0.3),
                                "flux", steps=STEPS, cfg=3.0)
    out = tiny.run_sampler(twice, "flux", steps=STEPS, cfg=3.0)
    fbc = [r for r in reports if r.method == "FirstBlockCache"][-1]
    assert fbc.units_total == 4 * STEPS  # 2 double + 2 single blocks per forward, once
    assert torch.allclose(out, expected, atol=1e-6)
    again = apply("CacheKitFirstBlockCache", twice, threshold=0.0)  # the latest settings win
    assert torch.equal(tiny.run_sampler(again, "flux", steps=STEPS, cfg=3.0),
                       tiny.run_sampler(apply("CacheKitPyramidAttentionBroadcast", model, **pab), "flux", steps=STEPS, cfg=3.0))


def test_two_caches_that_need_the_same_site_are_refused_naming_both(tiny):
    model = tiny.load_tiny("flux")
    with pytest.raises(ValueError, match=r"MagCache \(CacheKit\) cannot go on a model that already has First Block Cache \(CacheKit\)"):
        apply("CacheKitMagCache", apply("CacheKitFirstBlockCache", model))
    with pytest.raises(ValueError, match="FasterCache.*Pyramid Attention Broadcast"):
        apply("CacheKitFasterCache", apply("CacheKitPyramidAttentionBroadcast", model))


# --- calibration and the table's range -----------------------------------------------------------


@pytest.fixture()
def ratio_folder(tmp_path, monkeypatch):
    import folder_paths

    from cachekit.cache_core.ratios.library import FOLDER

    monkeypatch.setitem(folder_paths.folder_names_and_paths, FOLDER, ([str(tmp_path / FOLDER)], {".safetensors"}))
    return tmp_path / FOLDER


def interrupted_at(model, step):
    """A model whose sampling is interrupted (as ComfyUI's /interrupt does) at `step`."""
    import comfy.model_management

    seen = []

    def post_cfg(args):
        seen.append(1)
        if len(seen) > step:
            raise comfy.model_management.InterruptProcessingException()
        return args["denoised"]

    patched = model.clone()
    patched.set_model_sampler_post_cfg_function(post_cfg)
    return patched


def test_an_interrupted_calibration_writes_nothing(tiny, wan, ratio_folder, reports):
    import comfy.model_management

    calibrating = NODES["CacheKitMagCacheCalibrate"].apply(interrupted_at(wan, 6), filename_prefix="stopped")
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        tiny.run_sampler(calibrating, "wan21", steps=30, cfg=3.0)
    assert not list(ratio_folder.glob("**/*.safetensors"))
    assert "calibration not saved: the run stopped after 7 of 30 steps" in reports[-1].note
    tiny.run_sampler(NODES["CacheKitMagCacheCalibrate"].apply(wan, filename_prefix="full"), "wan21", steps=30, cfg=3.0)
    assert [p.name for p in ratio_folder.glob("*.safetensors")] == ["full_00001.safetensors"]


def test_mag_cache_computes_outside_its_tables_range(tiny, wan, reports):
    from cachekit.cache_core.methods.mag_cache import MAG_CACHE_SPEC
    from cachekit.cache_core.runtime.install import install_cache

    partial = MagRatios.from_lists("partial", cond=[1.0] * 7, positions=[i / 30 for i in range(7)])  # progress 0-0.2
    config = MagCacheConfig(table=partial, threshold=0.5, retention_ratio=0.0)
    tiny.run_sampler(install_cache(wan, MAG_CACHE_SPEC, config), "wan21", steps=30, cfg=3.0)
    status = reports[-1].step_status()
    assert any(s == "reused" for s in status[:8])  # inside the table it reuses
    assert all(s == "computed" for s in status[8:])  # from progress 8/30 on the table knows nothing
