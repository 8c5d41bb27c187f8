"""Compositions on a live server: CacheKit nodes with each other and with what users put next to them.

- Two CacheKit nodes on one model, every ordered pair: either both work (two run reports, the same result in both
  orders, repeats identical, both off = unpatched) or the second is refused with a message naming both nodes. The
  same node twice: the later settings replace the earlier (one report, never nested hooks).
- One patched model feeding two samplers in one prompt: each result and report equal to running it alone.
- A two-stage KSamplerAdvanced chain and SamplerCustomAdvanced with SplitSigmas, both stages on one cached model:
  off settings give the uncached chain exactly; repeats are identical.
- LoRA (LoraLoaderModelOnly, before or after the cache), TorchCompileModel (inductor; slow), a ControlNet
  (ControlNetApplyAdvanced with a tiny Flux ControlNet), Wan context windows, Skip Layer Guidance, and ComfyUI's
  MultiGPU Work Units node (ComfyUI 0.33; on this CPU-only machine it finds no second device and returns a plain
  clone, so only that it composes is tested, not a split of the work).
"""
from __future__ import annotations

import itertools

import pytest
import torch

from harness.robustness import (
    DISPLAY, LORA, NODE_IDS, OFF, REUSING, Graph, WanChain, ksampler, wan_chain, wan_prompt,
    widget_defaults,
)

pytestmark = pytest.mark.server

FBC, PAB, FC, TS, MAG, CAL, HBC = NODE_IDS
STEPS = 6


@pytest.fixture(scope="module")
def core(server):
    """Add a ComfyUI core node with its declared defaults (this release's inputs) and the given values."""
    info = server.object_info()

    def add(graph: Graph, class_type: str, **values):
        if class_type not in info:
            pytest.skip(f"ComfyUI has no {class_type} node in this release")
        declared = {**info[class_type]["input"].get("required", {}), **info[class_type]["input"].get("optional", {})}
        inputs = {}
        for name, spec in declared.items():
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if "default" in options:
                inputs[name] = options["default"]
            elif isinstance(spec[0], list) and spec[0]:
                inputs[name] = spec[0][0]
        inputs.update(values)
        return graph.add(class_type, **inputs)

    return add


@pytest.fixture(scope="module")
def once(server):
    """Results of prompts that several tests compare against, computed once."""
    results = {}

    def get(key, build):
        if key not in results:
            results[key] = server.ok(build())
        return results[key]

    return get


def values(node: str, settings: dict, tag: str = "") -> dict:
    return dict(settings, filename_prefix=f"compose/{tag or 'run'}") if node == CAL else settings


def latent(result, name: str = "stats") -> torch.Tensor:
    """The latent a prompt saved (read at once: the next prompt with the same stats name overwrites the file)."""
    from safetensors.torch import load_file

    return load_file(result.stats(name)["path"])["samples"]


def add_cache(chain: WanChain, model: list, node: str, settings: dict) -> list:
    return [chain.graph.add(node, model=model, **{**widget_defaults(node), **settings}), 0]


# --- two CacheKit nodes on one model ------------------------------------------------------------------------------

PAIRS = list(itertools.combinations(NODE_IDS, 2))
MUST_CONFLICT = {(FBC, MAG), (FBC, TS), (MAG, HBC), (TS, CAL), (PAB, FC)}  # the same site: stack, stack, ..., attention
MUST_WORK = {(FBC, PAB), (FBC, FC), (PAB, MAG), (FC, HBC), (FC, TS)}  # stack with attention or the cond batch


def short(node: str) -> str:
    return node.removeprefix("CacheKit")


@pytest.mark.parametrize("a, b", PAIRS, ids=[f"{short(a)}+{short(b)}" for a, b in PAIRS])
def test_two_cache_nodes_on_one_model(server, once, a, b):
    ab = server.run(wan_prompt((a, values(a, REUSING[a], "ab")), (b, values(b, REUSING[b], "ab"))))
    ba = server.run(wan_prompt((b, values(b, REUSING[b], "ba")), (a, values(a, REUSING[a], "ba"))))
    assert ab.status in ("success", "error") and ba.status in ("success", "error")
    assert ab.status == ba.status, "one order works and the other does not"
    if ab.status == "error":
        assert (a, b) not in MUST_WORK
        for result, first, second in ((ab, a, b), (ba, b, a)):
            error = result.execution_error
            assert error["node_type"] == second
            message = error["exception_message"]
            assert f"{DISPLAY[second]} cannot go on a model that already has {DISPLAY[first]}" in message, message
            assert "Use one of them, or apply them to separate copies of the model." in message
        return
    assert (a, b) not in MUST_CONFLICT
    # both work: a report from each, the same result in either order, identical repeats, both off = unpatched
    for result in (ab, ba):
        assert sorted(line.split(" [")[0] for line in result.lines) == sorted(
            f"CacheKit {name}" for name in (REUSING_NAME[a], REUSING_NAME[b]))
    assert ab.sha == ba.sha and sorted(ab.work) == sorted(ba.work)
    again = server.ok(wan_prompt((a, values(a, REUSING[a], "ab")), (b, values(b, REUSING[b], "ab"))))
    assert (again.sha, again.work) == (ab.sha, ab.work)
    off = server.ok(wan_prompt((a, values(a, OFF[a], "off")), (b, values(b, OFF[b], "off"))))
    assert off.sha == once("unpatched", wan_prompt).sha


REUSING_NAME = {FBC: "FirstBlockCache", PAB: "PyramidAttentionBroadcast", FC: "FasterCache", TS: "TaylorSeer",
                MAG: "MagCache", CAL: "MagCacheCalibration", HBC: "HybridBlockCache"}


@pytest.mark.parametrize("node", NODE_IDS, ids=short)
def test_the_same_node_twice_replaces_its_settings(server, once, node):
    alone = once(("alone", node), lambda: wan_prompt((node, values(node, REUSING[node]))))
    twice = server.ok(wan_prompt((node, values(node, OFF[node])), (node, values(node, REUSING[node]))))
    assert (twice.sha, twice.work) == (alone.sha, alone.work)  # one report: the hooks were replaced, not nested
    reverse = server.ok(wan_prompt((node, values(node, REUSING[node])), (node, values(node, OFF[node]))))
    assert reverse.sha == once("unpatched", wan_prompt).sha and len(reverse.lines) == 1


# --- one patched model, two samplers ------------------------------------------------------------------------------

FIRST = dict(seed=1, steps=6, cfg=3.0)
SECOND = dict(seed=2, steps=8, cfg=2.0, sampler="heun")


@pytest.mark.parametrize("node", NODE_IDS, ids=short)
def test_one_patched_model_feeding_two_samplers(server, node):
    settings = values(node, REUSING[node])
    chain = wan_chain((node, settings))
    ksampler(chain, name="first", **FIRST)
    ksampler(chain, name="second", **SECOND)
    both = server.ok(chain.graph.prompt())
    first = server.ok(wan_prompt((node, settings), name="first", **FIRST))
    second = server.ok(wan_prompt((node, settings), name="second", **SECOND))
    assert both.stats("first")["sha256"] == first.stats("first")["sha256"]
    assert both.stats("second")["sha256"] == second.stats("second")["sha256"]
    assert sorted(both.work) == sorted(first.work + second.work)


# --- two-stage chains on one cached model -------------------------------------------------------------------------


def advanced_chain(node=None, settings=None, split_at=4, steps=8) -> dict:
    chain = wan_chain(*(((node, settings),) if node else ()))
    g = chain.graph
    common = dict(model=chain.model, noise_seed=42, steps=steps, cfg=3.0, sampler_name="euler", scheduler="simple",
                  positive=chain.positive, negative=chain.negative)
    high = g.add("KSamplerAdvanced", add_noise="enable", latent_image=chain.latent, start_at_step=0,
                 end_at_step=split_at, return_with_leftover_noise="enable", **common)
    low = g.add("KSamplerAdvanced", add_noise="disable", latent_image=[high, 0], start_at_step=split_at,
                end_at_step=10000, return_with_leftover_noise="disable", **common)
    g.add("CacheKitTestLatentStats", node_id="stats", samples=[low, 0], name="advanced")
    return g.prompt()


def split_sigmas_chain(node=None, settings=None, split_at=4, steps=8) -> dict:
    chain = wan_chain(*(((node, settings),) if node else ()))
    g = chain.graph
    sigmas = g.add("BasicScheduler", model=chain.model, scheduler="simple", steps=steps, denoise=1.0)
    halves = g.add("SplitSigmas", sigmas=[sigmas, 0], step=split_at)
    guider = g.add("CFGGuider", model=chain.model, positive=chain.positive, negative=chain.negative, cfg=3.0)
    sampler = g.add("KSamplerSelect", sampler_name="euler")
    first = g.add("SamplerCustomAdvanced", noise=[g.add("RandomNoise", noise_seed=42), 0], guider=[guider, 0],
                  sampler=[sampler, 0], sigmas=[halves, 0], latent_image=chain.latent)
    second = g.add("SamplerCustomAdvanced", noise=[g.add("DisableNoise"), 0], guider=[guider, 0], sampler=[sampler, 0],
                   sigmas=[halves, 1], latent_image=[first, 0])
    g.add("CacheKitTestLatentStats", node_id="stats", samples=[second, 0], name="split_sigmas")
    return g.prompt()


CHAINS = {"ksampler_advanced": advanced_chain, "split_sigmas": split_sigmas_chain}


@pytest.mark.parametrize("chain", list(CHAINS))
@pytest.mark.parametrize("node", NODE_IDS, ids=short)
def test_a_two_stage_chain_sharing_one_cached_model(server, once, node, chain):
    build = CHAINS[chain]
    uncached = once(("uncached", chain), build)
    off = server.ok(build(node, values(node, OFF[node], chain)))
    assert off.sha == uncached.sha and len(off.lines) == 2  # one run report per stage
    on = server.ok(build(node, values(node, REUSING[node], chain)))
    again = server.ok(build(node, values(node, REUSING[node], chain)))
    assert (again.sha, again.work) == (on.sha, on.work)
    assert all("/4 steps" in line for line in on.lines), on.lines  # each stage counts its own 4 steps


# --- LoRA ---------------------------------------------------------------------------------------------------------


def lora_prompt(node=None, settings=None, order="lora-first") -> dict:
    chain = wan_chain(lora=order == "lora-first")
    model = chain.model
    if node:
        model = add_cache(chain, model, node, settings)
    if order == "cache-first":
        model = [chain.graph.add("LoraLoaderModelOnly", model=model, lora_name=LORA, strength_model=1.0), 0]
    ksampler(chain, model, steps=STEPS)
    return chain.graph.prompt()


@pytest.mark.parametrize("node", NODE_IDS, ids=short)
def test_lora_before_or_after_the_cache(server, once, node):
    with_lora = once("lora", lambda: lora_prompt())
    assert with_lora.sha != once("unpatched", wan_prompt).sha  # the LoRA acts
    for order in ("lora-first", "cache-first"):
        assert server.ok(lora_prompt(node, values(node, OFF[node], order), order)).sha == with_lora.sha
    first = server.ok(lora_prompt(node, values(node, REUSING[node]), "lora-first"))
    after = server.ok(lora_prompt(node, values(node, REUSING[node]), "cache-first"))
    assert (first.sha, first.work) == (after.sha, after.work)  # the same weights, cached alike in either order
    assert first.sha != once(("alone", node), lambda: wan_prompt((node, values(node, REUSING[node])))).sha


# --- torch.compile ------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("node", NODE_IDS, ids=short)
def test_torch_compile_model_node(server, once, node):
    """TorchCompileModel (inductor) after the cache node, and for First Block Cache also before it: the same
    decisions as eager (the run report) and the eager latent within float tolerance; off and compiled is the
    unpatched model's latent within the same tolerance. The first compile takes about 25 s on two cores."""
    def compiled(settings, order="cache-first", name="compiled"):
        chain = wan_chain()
        model = chain.model
        if order == "cache-first":
            model = add_cache(chain, model, node, settings)
        model = [chain.graph.add("TorchCompileModel", model=model, backend="inductor"), 0]
        if order == "compile-first":
            model = add_cache(chain, model, node, settings)
        ksampler(chain, model, steps=STEPS, name=name)
        return chain.graph.prompt()

    eager = server.ok(wan_prompt((node, values(node, REUSING[node])), steps=STEPS, name="eager"))
    orders = ["cache-first", "compile-first"] if node == FBC else ["cache-first"]
    for order in orders:
        result = server.ok(compiled(values(node, REUSING[node]), order))
        assert result.work == eager.work
        assert torch.allclose(latent(result, "compiled"), latent(eager, "eager"), atol=1e-4, rtol=1e-4)
    plain = server.ok(wan_prompt(steps=STEPS, name="plain"))
    off = server.ok(compiled(values(node, OFF[node])))
    assert torch.allclose(latent(off, "compiled"), latent(plain, "plain"), atol=1e-4, rtol=1e-4)


# --- ControlNet, context windows, Skip Layer Guidance, multi-GPU ------------------------------------------------


def flux_prompt(node=None, settings=None, control=True) -> dict:
    g = Graph()
    model = [g.add("CacheKitTestTinyModel", family="flux", seed=0), 0]
    model = [g.add("CacheKitTestRerun", model=model), 0]
    if node:
        model = [g.add(node, model=model, **{**widget_defaults(node), **settings}), 0]
    inputs = g.add("CacheKitTestFamilyInputs", family="flux")
    positive, negative = [inputs, 0], [inputs, 1]
    if control:
        net = g.add("CacheKitTestTinyControlNet", seed=0)
        image = g.add("EmptyImage", width=64, height=64, batch_size=1, color=0x808080)
        applied = g.add("ControlNetApplyAdvanced", positive=positive, negative=negative, control_net=[net, 0],
                        image=[image, 0], strength=1.0, start_percent=0.0, end_percent=1.0)
        positive, negative = [applied, 0], [applied, 1]
    sampler = g.add("KSampler", model=model, positive=positive, negative=negative, latent_image=[inputs, 2], seed=1,
                    steps=STEPS, cfg=2.0, sampler_name="euler", scheduler="simple", denoise=1.0)
    g.add("CacheKitTestLatentStats", node_id="stats", samples=[sampler, 0], name="flux")
    return g.prompt()


def flux_settings(node: str) -> dict:
    settings = values(node, REUSING[node], "flux")
    return dict(settings, ratios="flux") if node == MAG else settings


def computes_everything(result) -> bool:
    return all(line.split("computed ")[1].split(" steps")[0].split("/")[0] == str(STEPS) for line in result.lines)


@pytest.mark.parametrize("node", NODE_IDS, ids=short)
def test_controlnet_turns_caching_off(server, once, node):
    base = once("controlnet", lambda: flux_prompt())
    assert base.sha != once("flux", lambda: flux_prompt(control=False)).sha  # the ControlNet acts
    without = server.ok(flux_prompt(node, flux_settings(node), control=False))
    assert node == CAL or not computes_everything(without)  # the same settings reuse without the ControlNet
    result = server.ok(flux_prompt(node, flux_settings(node)))
    assert result.sha == base.sha and result.lines and computes_everything(result)


def windowed_prompt(core, node=None, settings=None) -> dict:
    chain = wan_chain()
    g = chain.graph
    model = [core(g, "WanContextWindowsManual", model=chain.model, context_length=9, context_overlap=1,
                  context_schedule="standard_static", context_stride=1, closed_loop=False, fuse_method="pyramid"), 0]
    if node:
        model = add_cache(chain, model, node, settings)
    frames = [g.add("EmptyHunyuanLatentVideo", width=64, height=64, length=21, batch_size=1), 0]  # 6 latent frames
    ksampler(chain, model, steps=STEPS, latent=frames)
    return g.prompt()


@pytest.mark.parametrize("node", NODE_IDS, ids=short)
def test_context_windows_turn_caching_off_with_a_warning(server, once, core, node):
    base = once("windows", lambda: windowed_prompt(core))
    result = server.ok(windowed_prompt(core, node, values(node, REUSING[node], "windows")))
    assert result.sha == base.sha and computes_everything(result)
    assert any("context windows split every evaluation" in m and "caching is off for this run" in m for m in result.messages)


def guided_prompt(core, node=None, settings=None, order="cache-first") -> dict:
    chain = wan_chain()
    model = chain.model
    if node and order == "cache-first":
        model = add_cache(chain, model, node, settings)
    model = [core(chain.graph, "SkipLayerGuidanceDiT", model=model, double_layers="1", single_layers="", scale=3.0,
                  start_percent=0.0, end_percent=1.0, rescaling_scale=0.0), 0]
    if node and order == "guidance-first":
        model = add_cache(chain, model, node, settings)
    ksampler(chain, model, steps=STEPS)
    return chain.graph.prompt()


@pytest.mark.parametrize("node", NODE_IDS, ids=short)
def test_skip_layer_guidance(server, once, core, node):
    guided = once("guided", lambda: guided_prompt(core))
    assert guided.sha != once("unpatched", wan_prompt).sha  # the guidance acts
    for order in ("cache-first", "guidance-first"):
        assert server.ok(guided_prompt(core, node, values(node, OFF[node], order), order)).sha == guided.sha
    results = [server.ok(guided_prompt(core, node, values(node, REUSING[node]), order))
               for order in ("cache-first", "guidance-first")]
    assert results[0].sha == results[1].sha and results[0].work == results[1].work
    (line,) = results[0].lines
    assert f"{STEPS} forwards of an altered or re-run model were computed without the cache" in line
    alone = once(("alone", node), lambda: wan_prompt((node, values(node, REUSING[node]))))
    assert results[0].sha != alone.sha  # the guidance still acts on the cached model


@pytest.mark.parametrize("node", NODE_IDS, ids=short)
def test_multigpu_work_units_node(server, once, core, node):
    alone = once(("alone", node), lambda: wan_prompt((node, values(node, REUSING[node]))))
    for order in ("cache-first", "multigpu-first"):
        chain = wan_chain()
        model = chain.model
        if order == "cache-first":
            model = add_cache(chain, model, node, values(node, REUSING[node]))
        model = [core(chain.graph, "MultiGPU_WorkUnits", model=model, max_gpus=2), 0]
        if order == "multigpu-first":
            model = add_cache(chain, model, node, values(node, REUSING[node]))
        ksampler(chain, model)
        result = server.ok(chain.graph.prompt())
        assert (result.sha, result.work) == (alone.sha, alone.work)
    if not torch.cuda.is_available():
        assert "No extra torch devices need initialization" in server.log_text()
