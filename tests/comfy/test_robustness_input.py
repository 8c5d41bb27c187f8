"""Bad input on a live server: every CacheKit node, every kind of bad value, one test each.

Each case is either a clear rejection -- refused when the prompt is queued, or failing when the node runs for what
only the model or a linked value can tell; the message names the node (ComfyUI's class_type or CacheKit's display
name), the input or the file, and what would be valid -- or a defined pass-through whose result is checked (the
unpatched result bit for bit, the result of the value ComfyUI converts it to, a warning on the node). After every
case the server still serves, and the good prompt of that node gives exactly what it gave before any bad input
(latent and the work done, as the CacheKit log line says).

Values the browser could never send (NaN, Infinity, dicts) are sent as JSON, which ComfyUI's server parses.
ComfyUI itself converts widget values before a node sees them (INT 2.5 -> 2, FLOAT "0.5" -> 0.5, FLOAT true -> 1.0)
and drops inputs a node does not declare; those cases check that the result is that of the converted value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pytest
import torch

from harness.robustness import (
    DISPLAY, NODE_IDS, REUSING, Graph, node_of, wan_prompt, widget_defaults,
)

pytestmark = pytest.mark.server

NAN, INF = float("nan"), float("inf")
FBC, PAB, FC, TS, MAG, CAL, HBC = NODE_IDS
META = {"format": "cachekit.magcache.v2", "level": "blocks", "complete": "true", "family": "Wan"}


@pytest.fixture(scope="module")
def reference(server):
    """Results of good prompts, computed once (before any bad input is sent) and compared after every case."""
    results: dict[Any, Any] = {}

    def get(key, prompt):
        if key not in results:
            results[key] = server.ok(prompt)
        return results[key]

    for node in NODE_IDS:
        get(node, good_prompt(node))
    get("unpatched", wan_prompt())
    return get


def good_prompt(node: str) -> dict:
    return wan_prompt((node, REUSING[node]))


# --- building the bad prompts ------------------------------------------------------------------------------------


def with_values(node: str, **values: Any) -> Callable:
    """The node's good prompt with some widget values replaced."""
    def build(server):
        prompt = good_prompt(node)
        prompt[node_of(prompt, node)]["inputs"].update(values)
        return prompt
    return build


def without_input(node: str, name: str) -> Callable:
    def build(server):
        prompt = good_prompt(node)
        del prompt[node_of(prompt, node)]["inputs"][name]
        return prompt
    return build


def linked(node: str, name: str, value: str, kind: str = "json", **values: Any) -> Callable:
    """The node's input `name` fed by a link from CacheKitTestValue (a widget turned into an input)."""
    def build(server):
        prompt = good_prompt(node)
        prompt["value"] = {"class_type": "CacheKitTestValue", "inputs": {"value": value, "kind": kind}}
        prompt[node_of(prompt, node)]["inputs"].update(values, **{name: ["value", 0]})
        return prompt
    return build


def model_from_latent(node: str) -> Callable:
    def build(server):
        prompt = good_prompt(node)
        prompt[node_of(prompt, node)]["inputs"]["model"] = [node_of(prompt, "EmptyHunyuanLatentVideo"), 0]
        return prompt
    return build


def good_ratios(steps: int = 6) -> dict[str, torch.Tensor]:
    return {"progress": torch.linspace(0, 1, steps + 1)[:-1].float(), "sigmas": torch.linspace(1, 0, steps).float(),
            "steps": torch.arange(steps).float(), "ratios.cond": torch.full((steps,), 0.97),
            "ratios.uncond": torch.full((steps,), 0.96)}


def ratio_file(name: str, change: Optional[Callable[[dict], None]] = None, metadata: Optional[dict] = META,
               raw: Optional[Callable[[Any], bytes]] = None, **values: Any) -> Callable:
    """MagCache's good prompt with `ratios` set to a file written into the server's ratio folder: a good table
    changed by `change`, with `metadata`, or the bytes `raw(server)`."""
    def build(server):
        from safetensors.torch import save_file

        path = server.ratios / name
        if raw is not None:
            path.write_bytes(raw(server))
        else:
            tensors = good_ratios()
            if change is not None:
                change(tensors)
            save_file(tensors, str(path), metadata=metadata)
        return with_values(MAG, ratios=name, **values)(server)
    return build


def half_of_a_good_file(server) -> bytes:
    ratio_file("whole.safetensors")(server)
    data = (server.ratios / "whole.safetensors").read_bytes()
    return data[: len(data) // 2]


def directory_named_like_a_file(name: str) -> Callable:
    def build(server):
        (server.ratios / name).mkdir(exist_ok=True)
        return with_values(MAG, ratios=name)(server)
    return build


def tiny_family(node: str, family: str = "pixart_sigma") -> Callable:
    """A node on a model of a family that it cannot accelerate (built in the server by CacheKitTestTinyModel)."""
    def build(server):
        return family_prompt(family, node)
    return build


def family_prompt(family: str, node: Optional[str] = None) -> dict:
    g = Graph()
    model = [g.add("CacheKitTestTinyModel", family=family, seed=0), 0]
    model = [g.add("CacheKitTestRerun", model=model), 0]
    if node is not None:
        model = [g.add(node, model=model, **{**widget_defaults(node), **REUSING[node]}), 0]
    inputs = g.add("CacheKitTestFamilyInputs", family=family)
    sampler = g.add("KSampler", model=model, positive=[inputs, 0], negative=[inputs, 1], latent_image=[inputs, 2], seed=1,
                    steps=3, cfg=2.0, sampler_name="euler", scheduler="simple", denoise=1.0)
    g.add("CacheKitTestLatentStats", node_id="stats", samples=[sampler, 0], name=f"{family}-{node}")
    return g.prompt()


# --- what a case expects -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad input: how to build the prompt and what must come back.

    expect: "refused" (at queue time; `says` must all appear in the node's errors, `node` its class_type),
    "fails" (while running; `says` in the exception message of the node `node`) or "runs" (a defined result,
    checked by `check(result, reference)`)."""

    node: str
    build: Callable
    expect: str
    says: tuple[str, ...] = ()
    check: Optional[Callable] = None
    failing_node: Optional[str] = None  # the node that fails, when not `node`
    extra: dict = field(default_factory=dict)


def refused(node, build, *says):
    return Case(node, build, "refused", says)


def fails(node, build, *says, failing_node=None):
    return Case(node, build, "fails", says, failing_node=failing_node)


def runs(node, build, check):
    return Case(node, build, "runs", check=check)


def same_as(key_prompt: Callable) -> Callable:
    """The result equals (latent and work) the result of another prompt."""
    def check(result, reference, server):
        key, prompt = key_prompt()
        other = reference(key, prompt)
        assert result.sha == other.sha and result.work == other.work, (result.work, other.work)
    return check


def unpatched_and_computing_everything(result, reference, server):
    base = reference("unpatched", wan_prompt())
    assert result.sha == base.sha
    (line,) = result.lines
    computed, total = line.split("computed ")[1].split(" steps")[0].split("/")
    assert computed == total


def warns_on_the_node(*says):
    def check(result, reference, server):
        (node_id,) = [k for k, v in result.outputs.items() if "text" in v]
        text = " ".join(result.outputs[node_id]["text"])
        assert all(s in text for s in says), text
        assert result.lines  # and it still ran
    return check


def reports_work(result, reference, server):
    assert result.lines, "no CacheKit run report"


def writes(name):
    def check(result, reference, server):
        assert (server.ratios / name).is_file()
    return check


def passes_through_or_names_the_family(family_name: str, family: str = "pixart_sigma"):
    """Unsupported: the unpatched result with one warning naming the family; reached another way (model level,
    cond batch): a run report naming the family; a table of the wrong level: a clear error naming the node."""
    def check(result, reference, server):
        base = reference(("family", family), family_prompt(family))
        if result.lines:
            assert all(f"[{family_name}]" in line for line in result.lines)
            return
        assert result.sha == base.sha
        (warning,) = [w for w in result.messages if "passes through unchanged" in w]
        assert family_name in warning and "is not supported" in warning
    return check


C = {
    # out of range (CacheKit's own check: ComfyUI leaves the values of a node with its own validator to it)
    "fbc-threshold-above-max": refused(FBC, with_values(FBC, threshold=1.5), "threshold", "between 0 and 1", "1.5"),
    "fbc-threshold-negative": refused(FBC, with_values(FBC, threshold=-0.1), "threshold", "between 0 and 1", "-0.1"),
    "fbc-skips-negative": refused(FBC, with_values(FBC, max_consecutive_skips=-1), "max_consecutive_skips", "whole number between 0 and 100"),
    "fbc-skips-huge": refused(FBC, with_values(FBC, max_consecutive_skips=10 ** 30), "max_consecutive_skips", "between 0 and 100"),
    "pab-skip-range-above-max": refused(PAB, with_values(PAB, spatial_attention_block_skip_range=33), "spatial_attention_block_skip_range", "between 0 and 32"),
    "fastercache-weight-above-max": refused(FC, with_values(FC, attention_weight=2.5), "attention_weight", "between -2 and 2"),
    "taylorseer-interval-zero": refused(TS, with_values(TS, cache_interval=0), "cache_interval", "between 1 and 100"),
    "taylorseer-order-above-max": refused(TS, with_values(TS, max_order=5), "max_order", "between 0 and 4"),
    "taylorseer-after-below-never": refused(TS, with_values(TS, disable_cache_after_step=-2), "disable_cache_after_step", "between -1 and 10000"),
    "magcache-retention-above-max": refused(MAG, with_values(MAG, retention_ratio=1.5), "retention_ratio", "between 0 and 1"),
    "magcache-skips-negative": refused(MAG, with_values(MAG, max_skip_steps=-1), "max_skip_steps", "between 0 and 100"),
    "hybrid-front-zero": refused(HBC, with_values(HBC, front_blocks=0), "front_blocks", "between 1 and 64"),
    "hybrid-order-above-max": refused(HBC, with_values(HBC, taylorseer_order=3), "taylorseer_order", "between 1 and 2"),
    "hybrid-target-below-one": refused(HBC, with_values(HBC, target_speedup=0.5), "target_speedup", "0 (off) or at least 1.0"),
    # NaN and infinity
    "fbc-threshold-nan": refused(FBC, with_values(FBC, threshold=NAN), "threshold", "finite number between 0 and 1", "nan"),
    "fbc-threshold-inf": refused(FBC, with_values(FBC, threshold=INF), "threshold", "finite number", "inf"),
    "fbc-threshold-minus-inf": refused(FBC, with_values(FBC, threshold=-INF), "threshold", "finite number", "-inf"),
    "fbc-skips-nan": refused(FBC, with_values(FBC, max_consecutive_skips=NAN), "max_consecutive_skips"),
    "pab-end-nan": refused(PAB, with_values(PAB, temporal_attention_end_percent=NAN), "temporal_attention_end_percent", "finite number between 0 and 1"),
    "fastercache-alpha-nan": refused(FC, with_values(FC, alpha_low_frequency=NAN), "alpha_low_frequency", "finite number between 0 and 4"),
    "magcache-threshold-inf": refused(MAG, with_values(MAG, threshold=INF), "threshold", "finite number between 0 and 1"),
    "hybrid-threshold-nan": refused(HBC, with_values(HBC, residual_diff_threshold=NAN), "residual_diff_threshold", "finite number"),
    # wrong types
    "fbc-threshold-text": refused(FBC, with_values(FBC, threshold="abc"), "Failed to convert an input value to a FLOAT value", "threshold"),
    "fbc-threshold-null": refused(FBC, with_values(FBC, threshold=None), "FLOAT", "threshold"),
    "fbc-threshold-dict": refused(FBC, with_values(FBC, threshold={"a": 1}), "threshold", "finite number between 0 and 1"),
    "fbc-threshold-list": refused(FBC, with_values(FBC, threshold=[0.1]), "Bad linked input", "threshold"),
    "taylorseer-interval-text": refused(TS, with_values(TS, cache_interval="often"), "INT", "cache_interval"),
    "magcache-ratios-number": refused(MAG, with_values(MAG, ratios=5), "ratios must be the name of a preset or a calibration file"),
    "hybrid-mask-number": runs(HBC, with_values(HBC, steps_computation_mask=110), reports_work),  # ComfyUI: "110"
    # start after end
    "fbc-start-after-end": refused(FBC, with_values(FBC, start_percent=0.9, end_percent=0.2), "start_percent (0.9) must not be greater than end_percent (0.2)"),
    "pab-cross-window-reversed": refused(PAB, with_values(PAB, cross_attention_start_percent=0.8, cross_attention_end_percent=0.1), "cross_attention_start_percent", "cross_attention_end_percent"),
    "fastercache-uncond-window-reversed": refused(FC, with_values(FC, unconditional_batch_start_percent=0.9, unconditional_batch_end_percent=0.3), "unconditional_batch_start_percent (0.9) must not be greater"),
    "taylorseer-after-before-before": runs(TS, with_values(TS, disable_cache_before_step=4, disable_cache_after_step=2), unpatched_and_computing_everything),
    "fbc-empty-window": runs(FBC, with_values(FBC, start_percent=0.5, end_percent=0.5), unpatched_and_computing_everything),
    # unknown combo values
    "taylorseer-mode-unknown": refused(TS, with_values(TS, mode="turbo"), "mode must be one of: lite, blocks", "turbo"),
    "taylorseer-dtype-unknown": refused(TS, with_values(TS, taylor_factors_dtype="float64"), "taylor_factors_dtype must be one of: auto, bfloat16, float16, float32"),
    "hybrid-predictor-unknown": refused(HBC, with_values(HBC, predictor="none"), "predictor must be one of: replay, taylorseer, foca"),
    "hybrid-policy-unknown": refused(HBC, with_values(HBC, steps_computation_policy="always"), "steps_computation_policy must be one of: dynamic, static"),
    "magcache-preset-unknown": refused(MAG, with_values(MAG, ratios="nope"), "unknown MagCache preset 'nope'", "choose one of: flux"),
    "magcache-file-missing": refused(MAG, with_values(MAG, ratios="missing.safetensors"), "'missing.safetensors' was not found in the magcache_ratios folder", "choose a built-in table (flux"),
    # strings that cannot be what they name
    "hybrid-mask-letters": refused(HBC, with_values(HBC, steps_computation_mask="abc"), "steps_computation_mask must be empty, one of slow, medium, fast, ultra, or a string of 0 and 1"),
    "hybrid-mask-digit": refused(HBC, with_values(HBC, steps_computation_mask="1012"), "steps_computation_mask", "0 and 1"),
    "calibrate-prefix-parent": refused(CAL, with_values(CAL, filename_prefix="../outside"), "filename_prefix '../outside' must be a relative name such as 'wan/t2v'"),
    "calibrate-prefix-absolute": refused(CAL, with_values(CAL, filename_prefix="/tmp/x"), "filename_prefix", "relative name"),
    "calibrate-prefix-empty": refused(CAL, with_values(CAL, filename_prefix="  "), "filename_prefix", "relative name"),
    "calibrate-prefix-dot": refused(CAL, with_values(CAL, filename_prefix="robust/."), "must end in a file name"),
    "calibrate-prefix-too-long": refused(CAL, with_values(CAL, filename_prefix="x" * 300), "has 300 bytes; at most 237 fit"),
    "calibrate-folder-too-long": refused(CAL, with_values(CAL, filename_prefix="y" * 256 + "/x"), "folder name", "at most 255 fit"),
    "calibrate-prefix-longest": runs(CAL, with_values(CAL, filename_prefix="z" * 237), writes("z" * 237 + "_00001.safetensors")),
    "calibrate-prefix-number": runs(CAL, with_values(CAL, filename_prefix=123), writes("123_00001.safetensors")),  # ComfyUI: "123"
    # a missing input
    "missing-widget": refused(FBC, without_input(FBC, "threshold"), "Required input is missing", "threshold"),
    "missing-combo": refused(MAG, without_input(MAG, "ratios"), "Required input is missing", "ratios"),
    "missing-model": refused(PAB, without_input(PAB, "model"), "Required input is missing", "model"),
    # the MODEL input fed from another type
    "model-from-latent": refused(FBC, model_from_latent(FBC), "model, received_type(LATENT) mismatch input_type(MODEL)"),
    "calibrate-model-from-latent": refused(CAL, model_from_latent(CAL), "received_type(LATENT) mismatch input_type(MODEL)"),
    "model-from-any-tensor": fails(TS, linked(TS, "model", "0", kind="tensor"), "TaylorSeer Cache (CacheKit): the model input must be a MODEL", "got Tensor"),
    "model-from-any-none": fails(HBC, linked(HBC, "model", "0", kind="none"), "Hybrid Block Cache (CacheKit): the model input must be a MODEL", "got NoneType"),
    # values through links: checked when the node runs
    "linked-threshold-nan": fails(FBC, linked(FBC, "threshold", "NaN"), "First Block Cache (CacheKit): threshold must be a finite number between 0 and 1, got nan"),
    "linked-window-reversed": fails(FBC, linked(FBC, "start_percent", "0.9", end_percent=0.1), "start_percent (0.9) must not be greater than end_percent (0.1)"),
    "linked-skip-range-text": fails(PAB, linked(PAB, "spatial_attention_block_skip_range", '"two"'), "spatial_attention_block_skip_range must be a whole number"),
    "linked-value-with-a-bad-literal-beside-it": refused(FBC, linked(FBC, "threshold", "0.5", max_consecutive_skips=-1), "max_consecutive_skips must be a whole number between 0 and 100, got -1"),
    "linked-ratios-with-nan-beside-it": refused(MAG, linked(MAG, "ratios", '"wan2.1_t2v_1.3B"', threshold=NAN), "threshold must be a finite number between 0 and 1, got nan"),
    "linked-good-value": runs(FBC, linked(FBC, "threshold", "0.5"), same_as(lambda: (FBC, good_prompt(FBC)))),
    "linked-ratios-unknown": fails(MAG, linked(MAG, "ratios", '"nope.safetensors"'), "MagCache (CacheKit): MagCache ratio file 'nope.safetensors' was not found"),
    # what only the model tells
    "hybrid-more-blocks-than-the-model": fails(HBC, with_values(HBC, front_blocks=2, back_blocks=2), "front_blocks + back_blocks (2 + 2) must be less than the model's 3 blocks"),
    # ratio files
    "ratios-corrupt": refused(MAG, ratio_file("corrupt.safetensors", raw=lambda s: b"garbage" * 10), "'corrupt.safetensors' cannot be read"),
    "ratios-empty": refused(MAG, ratio_file("empty.safetensors", raw=lambda s: b""), "'empty.safetensors' cannot be read"),
    "ratios-truncated": refused(MAG, ratio_file("truncated.safetensors", raw=half_of_a_good_file), "'truncated.safetensors' cannot be read"),
    "ratios-2d": refused(MAG, ratio_file("twod.safetensors", lambda t: t.update({"ratios.cond": t["ratios.cond"].reshape(2, 3)})), "'twod.safetensors'", "'ratios.cond' must be a 1-D float32 tensor, got torch.float32 (2, 3)"),
    "ratios-nan": refused(MAG, ratio_file("nan.safetensors", lambda t: t["ratios.cond"].fill_(NAN)), "'nan.safetensors'", "'ratios.cond' contains NaN or infinite values"),
    "ratios-nan-progress": refused(MAG, ratio_file("nanprogress.safetensors", lambda t: t["progress"].fill_(NAN)), "'nanprogress.safetensors'", "'progress' contains NaN"),
    "ratios-float16": refused(MAG, ratio_file("half.safetensors", lambda t: t.update({"ratios.cond": t["ratios.cond"].half()})), "'half.safetensors'", "float32 tensor, got torch.float16"),
    "ratios-float64": refused(MAG, ratio_file("double.safetensors", lambda t: t.update({"ratios.uncond": t["ratios.uncond"].double()})), "'double.safetensors'", "'ratios.uncond' must be a 1-D float32 tensor, got torch.float64"),
    "ratios-int64": refused(MAG, ratio_file("int.safetensors", lambda t: t.update({"progress": torch.arange(6)})), "'int.safetensors'", "got torch.int64"),
    "ratios-without-metadata": refused(MAG, ratio_file("nometa.safetensors", metadata=None), "'nometa.safetensors' is not a CacheKit calibration", "readable: cachekit.magcache.v1, cachekit.magcache.v2"),
    "ratios-other-format-version": refused(MAG, ratio_file("v99.safetensors", metadata={**META, "format": "cachekit.magcache.v99"}), "format 'cachekit.magcache.v99'; readable: cachekit.magcache.v1, cachekit.magcache.v2"),
    "ratios-incomplete": refused(MAG, ratio_file("incomplete.safetensors", metadata={**META, "complete": "false"}), "'incomplete.safetensors' was recorded by a run that did not finish"),
    "ratios-unknown-level": refused(MAG, ratio_file("level.safetensors", metadata={**META, "level": "attention"}), "unknown level 'attention' (expected blocks or model)"),
    "ratios-without-cond": refused(MAG, ratio_file("nocond.safetensors", lambda t: t.pop("ratios.cond")), "'nocond.safetensors' lacks the 'ratios.cond' tensor"),
    "ratios-one-step": refused(MAG, ratio_file("one.safetensors", lambda t: t.update({k: v[:1] for k, v in t.items()})), "MagCache ratio file 'one.safetensors': the cond table needs at least two steps, it has 1"),
    "ratios-length-mismatch": refused(MAG, ratio_file("lengths.safetensors", lambda t: t.update({"progress": t["progress"][:4]})), "'lengths.safetensors'", "4 positions for 6 ratios"),
    "ratios-progress-decreasing": refused(MAG, ratio_file("backwards.safetensors", lambda t: t.update({"progress": t["progress"].flip(0)})), "positions must increase within [0, 1]"),
    "ratios-negative": refused(MAG, ratio_file("negative.safetensors", lambda t: t["ratios.cond"].neg_()), "not finite positive numbers"),
    "ratios-uncond-shorter": refused(MAG, ratio_file("short.safetensors", lambda t: t.update({"ratios.uncond": t["ratios.uncond"][:5]})), "cond and uncond tables differ in length"),
    "ratios-directory": refused(MAG, directory_named_like_a_file("folder.safetensors"), "'folder.safetensors' was not found"),
    "ratios-other-level-for-the-model": fails(MAG, ratio_file("modellevel.safetensors", metadata={**META, "level": "model"}), "the ratios 'modellevel.safetensors' measure the whole model output, but Wan is cached at blocks level"),
    "ratios-format-v1": runs(MAG, ratio_file("v1.safetensors", metadata={**META, "format": "cachekit.magcache.v1"}), reports_work),
    "ratios-other-family": runs(MAG, ratio_file("flux.safetensors", metadata={**META, "family": "Flux"}), warns_on_the_node("calibrated for Flux, but the model is Wan")),
    "ratios-unreadable-fingerprint": runs(MAG, ratio_file("fingerprint.safetensors", metadata={**META, "fingerprint": "{"}), warns_on_the_node("fingerprint is unreadable")),
    # what ComfyUI converts or drops before CacheKit sees it
    "fbc-threshold-numeric-text": runs(FBC, with_values(FBC, threshold="0.5"), same_as(lambda: (FBC, good_prompt(FBC)))),
    "fbc-skips-fraction": runs(FBC, with_values(FBC, max_consecutive_skips=2.7), same_as(lambda: ("skips2", wan_prompt((FBC, {**REUSING[FBC], "max_consecutive_skips": 2}))))),
    "fbc-threshold-true": runs(FBC, with_values(FBC, threshold=True), same_as(lambda: ("threshold1", wan_prompt((FBC, {**REUSING[FBC], "threshold": 1.0}))))),
    "unknown-extra-input": runs(FBC, with_values(FBC, thresold=0.9), same_as(lambda: (FBC, good_prompt(FBC)))),
    "hybrid-mask-blank": runs(HBC, with_values(HBC, steps_computation_mask="   "), same_as(lambda: (HBC, good_prompt(HBC)))),
    # a model of a family the node does not support: pass-through with a warning (or reached another way)
    **{f"unsupported-family-{node.removeprefix('CacheKit')}": runs(node, tiny_family(node), passes_through_or_names_the_family("PixArt"))
       for node in NODE_IDS if node != MAG},
    "unsupported-family-MagCache": fails(MAG, tiny_family(MAG), "MagCache (CacheKit): the ratios 'wan2.1_t2v_1.3B' measure the block stack's residual, but PixArt is cached at model level"),
    "unsupported-family-Hunyuan3Dv2_1": runs(FBC, tiny_family(FBC, "hunyuan3d_v21"), passes_through_or_names_the_family("Hunyuan3Dv2_1", "hunyuan3d_v21")),
}


@pytest.mark.parametrize("case_id", list(C))
def test_bad_input(server, reference, case_id):
    case = C[case_id]
    result = server.run(case.build(server))
    if case.expect == "refused":
        assert result.refused, f"not refused: {result.status} {result.lines}"
        errors = result.answer["node_errors"]
        (node_id,) = [k for k, v in errors.items() if v.get("class_type") == case.node] or [None]
        assert node_id is not None, errors
        class_type, text = result.node_errors(node_id)
        assert class_type == case.node
        for says in case.says:
            assert says in text, f"{says!r} not in {text}"
        if "Custom validation failed" in text:  # CacheKit's message names the node by its display name
            assert DISPLAY[case.node] in text
    elif case.expect == "fails":
        assert result.status == "error", f"{result.status} {result.lines}"
        error = result.execution_error
        assert error["node_type"] == (case.failing_node or case.node)
        assert error["exception_message"].startswith(DISPLAY[case.node]), error["exception_message"]
        for says in case.says:
            assert says in error["exception_message"], error["exception_message"]
    else:
        assert result.status == "success", result.error
        assert case.check(result, reference, server) is not False
    # the server is still up, and the node's good prompt gives what it gave before
    assert server.alive()
    before = reference(case.node, good_prompt(case.node))
    again = server.ok(good_prompt(case.node))
    assert (again.sha, again.work) == (before.sha, before.work)


def test_at_least_24_cases_and_every_node_covered():
    assert len(C) >= 24
    assert {case.node for case in C.values()} == set(NODE_IDS)


def test_a_ratio_file_replaced_under_the_same_name_is_read_again(server):
    """ComfyUI serves a prompt whose inputs did not change from its output cache; the MagCache node fingerprints the
    file it names (size, modification time), so a table replaced on disk under the same name is used by the next
    prompt, while an untouched file keeps everything cached."""
    import os

    from safetensors.torch import save_file

    path = server.ratios / "replaced.safetensors"

    def write(value, when):
        tensors = good_ratios()
        tensors["ratios.cond"].fill_(value)
        tensors["ratios.uncond"].fill_(value)
        save_file(tensors, str(path), metadata=META)
        os.utime(path, ns=(when, when))

    write(0.999, 1_000_000_000_000_000_000)
    prompt = wan_prompt((MAG, dict(ratios="replaced.safetensors", threshold=0.1, retention_ratio=0.0, max_skip_steps=3)),
                        rerun=None)
    reusing = server.ok(prompt)
    assert reusing.lines and "computed 6/6" not in reusing.lines[0]
    untouched = server.ok(prompt)
    assert untouched.lines == [] and untouched.sha == reusing.sha  # nothing ran again
    write(0.5, 1_000_000_000_000_000_001)  # a table that allows no reuse at this threshold
    replaced = server.ok(prompt)
    assert len(replaced.lines) == 1 and "computed 6/6 steps" in replaced.lines[0]
    assert replaced.sha == reference_unpatched(server)


def reference_unpatched(server) -> str:
    return server.ok(wan_prompt(name="unpatched_for_replaced")).stats("unpatched_for_replaced")["sha256"]


def test_the_v1_nodes_check_and_fingerprint_as_the_v3_nodes_do():
    """The legacy node classes (ComfyUI without the V3 API) share the definitions' checks: the same messages, and
    IS_CHANGED exactly where the V3 node has fingerprint_inputs."""
    from cachekit.nodes import NODE_DEFS
    from cachekit.nodes.comfy_v1 import build_v1_node
    from cachekit.nodes.comfy_v3 import build_v3_node

    for definition in NODE_DEFS:
        v1, v3 = build_v1_node(definition), build_v3_node(definition)
        good = {w.id: w.default for w in definition.widgets}
        assert v1.VALIDATE_INPUTS(**good) is True and v3.validate_inputs(**good) is True
        name = definition.widgets[0].id
        bad = dict(good, **{name: NAN})
        message = v1.VALIDATE_INPUTS(**bad)
        assert message == v3.validate_inputs(**bad) and message.startswith(definition.display_name) and name in message
        assert hasattr(v1, "IS_CHANGED") == ("fingerprint_inputs" in vars(v3)) == (definition.node_id == MAG)
    mag = build_v1_node(next(d for d in NODE_DEFS if d.node_id == MAG))
    assert mag.IS_CHANGED(ratios="flux") == (("flux",),)
