"""CacheKit benchmark: quality against speed of every CacheKit node, ComfyUI's EasyCache / LazyCache,
diffusers' own hooks and cache-dit, on the same trained weights, in one run.

Everything runs in one process: the same weights in ComfyUI (its Flux classes, with the CacheKit nodes,
EasyCache and LazyCache) and in diffusers (FluxTransformer2DModel with diffusers' cache hooks, and a
second copy with cache-dit's DBCache through `cache_dit.enable_cache` on the transformer), the same
sigmas (ComfyUI's simple schedule), Euler steps, CFG, prompts and noise. Both sides use PyTorch's
scaled_dot_product_attention.

Per setting:
- ideal speedup: transformer-block work of the uncached run / this setting's (block_work.py: the
  multiply-adds of the blocks actually run and of the attention kernels actually called, counted in an
  untimed run that also gives the images); the same definition for every implementation;
- realized speedup: wall-clock time of the uncached run of the same implementation / this setting's,
  each the median of --repeats timed runs, cached and uncached alternating (load drift cancels);
- realized / ideal, and the ceiling a zero-overhead cache would reach with the implementation's own
  work outside the blocks (sampler, embedders, final layer: timed with every block skipped);
- PSNR and SSIM of the decoded RGB samples against the uncached samples, averaged over prompts;
- cache memory: peak bytes held by CacheKit's caches (its run report); on a GPU, the peak memory
  added over the uncached run for every implementation.

Writes bench/results.md and bench/results.png (bench/results_<model>.md/.png for another model).
Usage: python3 bench/run_benchmark.py [--model deep|small] [--steps 30] [--repeats 3] [--quick]
       python3 bench/run_benchmark.py --speed-only   (large random-weight models; see speed_only.py)
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parent / "tests"))  # last: ComfyUI's namespace package `comfy` must win over tests/comfy

import benchmark_model as bm  # noqa: E402
from block_work import count_block_work  # noqa: E402
from harness.packages import register_cachekit  # noqa: E402
from image_metrics import psnr, ssim  # noqa: E402

CFG, SEEDS_PER_CLASS = 4.0, 2
TIMED_EVERY = 2
PSNR_CAP = 100.0  # per image, so that one identical image does not make the average infinite


@dataclass
class Result:
    """One implementation at one setting."""

    group: str  # "CacheKit", "ComfyUI core", "diffusers", "cache-dit"; the baselines: "ComfyUI" / "diffusers", method "uncached"
    method: str
    setting: str
    seconds: float = 0.0
    work: float = 0.0  # transformer-block multiply-adds of the counting run
    block_calls: int = 0
    latents: Optional[torch.Tensor] = None
    cache_bytes: Optional[int] = None
    gpu_bytes: Optional[int] = None
    reference: "Optional[Result]" = None
    note: str = ""
    reference_seconds: Optional[float] = None  # the uncached time measured alongside this setting
    floor_seconds: Optional[float] = None  # baselines: the same runs with every transformer block skipped
    work_per_prompt: list[float] = field(default_factory=list)
    timed_prompts: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    _quality: Optional[tuple[float, float, bool]] = None

    @property
    def implementation(self) -> str:
        """What a front is drawn for: CacheKit, EasyCache, LazyCache, diffusers, cache-dit."""
        return self.method if self.group == "ComfyUI core" else self.group

    @property
    def ok(self) -> bool:
        return not self.note and self.method != "uncached"

    @property
    def speedup(self) -> float:
        return (self.reference_seconds or self.reference.seconds) / self.seconds

    @property
    def ideal(self) -> float:
        return self.reference.work / self.work if self.work else math.inf

    @property
    def timed_ideal(self) -> float:
        """The ideal speedup over the timed prompts only (what realized/ideal compares the timed speedup with)."""
        ours = sum(self.work_per_prompt[i] for i in self.timed_prompts)
        theirs = sum(self.reference.work_per_prompt[i] for i in self.timed_prompts)
        return theirs / ours if ours else math.inf

    @property
    def realized_over_ideal(self) -> float:
        return self.speedup / self.timed_ideal

    @property
    def ceiling(self) -> float:
        """The speedup of a zero-overhead cache doing this setting's block work, with the implementation's
        measured time outside the blocks left in."""
        share = min(1.0, (self.reference.floor_seconds or 0.0) / self.reference.seconds)
        return 1.0 / (share + (1.0 - share) / self.timed_ideal)

    def quality(self) -> tuple[float, float]:
        """(PSNR, SSIM) against the uncached samples, each averaged over the prompts."""
        if self._quality is None:
            ours, theirs = bm.latent_to_image(self.latents), bm.latent_to_image(self.reference.latents)
            ps = [min(psnr(a[None], b[None]), PSNR_CAP) for a, b in zip(ours, theirs)]
            ss = [ssim(a[None], b[None]) for a, b in zip(ours, theirs)]
            self._quality = (statistics.fmean(ps), statistics.fmean(ss), bool(torch.equal(ours, theirs)))
        return self._quality[:2]

    @property
    def identical(self) -> bool:
        self.quality()
        return self._quality[2]


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any]) -> float:
    sync()
    started = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - started


def measure(result: Result, sample: Callable[[list[int]], torch.Tensor], blocks: Sequence[torch.nn.Module], repeats: int,
            prompts: "Prompts", reference: Optional[Callable[[list[int]], torch.Tensor]] = None) -> Result:
    """Count the block work of every prompt's run (untimed; also the warm-up and the images), then time
    `repeats` runs over the timed prompts; keep the median.

    With `reference` (the uncached sampler of the same implementation), each timed run alternates
    with a timed uncached run, and the speedup uses those: machine-load drift cancels out.
    """
    if torch.cuda.is_available():
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    latents, result.work_per_prompt = [], []
    for i in prompts.indices(False):
        with count_block_work(blocks) as work:
            latents.append(sample([i]).float().cpu())
        result.work_per_prompt.append(work.macs)
        result.block_calls += work.block_calls
    result.latents = torch.cat(latents)
    result.work = sum(result.work_per_prompt)
    if torch.cuda.is_available():
        result.gpu_bytes = torch.cuda.max_memory_allocated() - base
    result.timed_prompts = prompts.timed
    times, reference_times = [], []
    for _ in range(repeats):
        times.append(timed(lambda: sample(prompts.timed)))
        if reference is not None:
            reference_times.append(timed(lambda: reference(prompts.timed)))
    result.seconds = statistics.median(times) if times else math.nan
    if reference_times:
        result.reference_seconds = statistics.median(reference_times)
    return result


class Prompts:
    """The benchmark's prompts: SEEDS_PER_CLASS seeds of every class, one sampling run each (batch 1, as
    users sample; ComfyUI's EasyCache needs it). Timed runs use the first seed of every TIMED_EVERY-th class
    (to fit the full run in about half an hour on 2 CPU cores)."""

    def __init__(self, spec: bm.ModelSpec, seeds_per_class: int = SEEDS_PER_CLASS) -> None:
        tokens, pooled = bm.class_prompts(spec)
        self.labels = torch.arange(len(bm.CLASSES)).repeat_interleave(seeds_per_class).tolist()
        self.tokens = [tokens[i:i + 1] for i in self.labels]
        self.pooled = [pooled[i:i + 1] for i in self.labels]
        self.noise = torch.randn(len(self.labels), 16, bm.LATENT_SIZE, bm.LATENT_SIZE, generator=torch.Generator().manual_seed(42))
        self.timed = list(range(0, len(self.labels), seeds_per_class))[::TIMED_EVERY]

    def indices(self, timed_only: bool) -> list[int]:
        return list(self.timed) if timed_only else list(range(len(self.labels)))


# ---------------------------------------------------------------- ComfyUI side

class ComfySide:
    """The benchmark model in ComfyUI, sampled with comfy.sample like SamplerCustom."""

    def __init__(self, spec: bm.ModelSpec, prompts: Prompts, steps: int) -> None:
        import comfy.samplers

        self.spec = spec
        self.model = bm.load_comfy_model(spec)
        self.prompts = prompts
        self.conds = [
            ([[t, {"pooled_output": p}]], [[torch.zeros_like(t), {"pooled_output": torch.zeros_like(p)}]])
            for t, p in zip(prompts.tokens, prompts.pooled)
        ]
        self.sigmas = comfy.samplers.calculate_sigmas(self.model.get_model_object("model_sampling"), "simple", steps).float()
        diffusion_model = self.model.get_model_object("diffusion_model")
        self.blocks = list(diffusion_model.double_blocks) + list(diffusion_model.single_blocks)

    def sample(self, model: Any, indices: Optional[list[int]] = None) -> torch.Tensor:
        """Latents of the prompts `indices` (default all) in model space (ComfyUI's latent-format scaling undone)."""
        import comfy.sample
        import comfy.samplers

        outs = []
        for i in self.prompts.indices(False) if indices is None else indices:
            positive, negative = self.conds[i]
            noise = self.prompts.noise[i][None]
            out = comfy.sample.sample_custom(model, noise, CFG, comfy.samplers.sampler_object("euler"), self.sigmas,
                                             positive, negative, torch.zeros_like(noise), disable_pbar=True, seed=0)
            outs.append(model.get_model_object("latent_format").process_in(out))
        return torch.cat(outs)

    def run(self, result: Result, model: Any, repeats: int, reports: list) -> Result:
        before = len(reports)
        reference = None if model is self.model else (lambda indices: self.sample(self.model, indices))
        measure(result, lambda indices: self.sample(model, indices), self.blocks, repeats, self.prompts, reference)
        runs = reports[before:before + len(self.prompts.labels)]  # the counting run's reports, one per prompt
        if runs:
            result.cache_bytes = max(r.peak_cache_bytes for r in runs)
            result.extra["steps"] = f"{sum(r.steps_computed for r in runs)}/{sum(r.steps_evaluated for r in runs)}"
            if all(r.units_computed for r in runs):
                result.extra["reported_ideal"] = sum(r.units_total for r in runs) / sum(r.units_computed for r in runs)
            reached = [r.extra.get("reached_speedup") for r in runs if r.extra.get("reached_speedup")]
            if reached:
                result.extra["reached_speedup"] = statistics.fmean(reached)
        return result

    def floor(self, repeats: int) -> float:
        """Median time of the timed prompts with every transformer block skipped (block replace patches that
        return their input): the sampler's and the model's own work outside the blocks."""
        idle = self.model.clone()
        for i in range(self.spec.depth):
            idle.set_model_patch_replace(lambda args, extra: {"img": args["img"], "txt": args["txt"]}, "dit", "double_block", i)
        for i in range(self.spec.depth_single):
            idle.set_model_patch_replace(lambda args, extra: {"img": args["img"]}, "dit", "single_block", i)
        self.sample(idle, self.prompts.timed)
        return statistics.median(timed(lambda: self.sample(idle, self.prompts.timed)) for _ in range(repeats))


def capture_reports() -> list:
    """CacheKit's run report of every sampling run, in order."""
    from cachekit.cache_core.runtime.run import SamplingRun

    captured: list = []
    original = SamplingRun.finish

    def finish(self, *args, **kwargs):
        captured.append(original(self, *args, **kwargs))
        return captured[-1]

    SamplingRun.finish = finish
    return captured


def cachekit_node(node_id: str, model: Any, **settings: Any) -> Any:
    from cachekit.nodes import NODE_DEFS

    node = {d.node_id: d for d in NODE_DEFS}[node_id]
    values = {w.id: w.default for w in node.widgets}
    unknown = set(settings) - set(values)
    if unknown:
        raise ValueError(f"{node_id} has no inputs {sorted(unknown)}")
    values.update(settings)
    return node.apply(model, **values)


EASYCACHE_COPIED = "EasyCache (input copied)"


def copied_input(model: Any) -> Any:
    """A clone of `model` whose diffusion model gets a copy of its input (an outermost DIFFUSION_MODEL wrapper).

    ComfyUI's EasyCache adds its cached difference to the diffusion model's input in place
    (`apply_cache_diff`). With a float32 model and flow-matching sampling that input is the very tensor
    `apply_model` then passes to `calculate_denoised` (CONST's `calculate_input` returns it and
    `.to(float32)` does not copy), so skipped steps come out wrong (bf16/fp16 models get a copy and
    are not affected). EasyCache is measured both as shipped and on this clone; nothing else changes."""
    import comfy.patcher_extension

    clone = model.clone()
    clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "cachekit_bench_copy_input",
                               lambda executor, x, *args, **kwargs: executor(x.clone(), *args, **kwargs))
    return clone


def calibrate_mag_cache(side: ComfySide, folder: Path) -> str:
    """Run CacheKit's calibration on the benchmark model (first prompt); returns the ratio file's name."""
    import comfy.sample
    import comfy.samplers
    import folder_paths

    from cachekit.cache_core.ratios.library import FOLDER

    folder_paths.folder_names_and_paths[FOLDER] = ([str(folder)], {".safetensors"})
    model = cachekit_node("CacheKitMagCacheCalibrate", side.model, filename_prefix="bench")
    positive, negative = side.conds[0]
    noise = side.prompts.noise[0][None]
    comfy.sample.sample_custom(model, noise, CFG, comfy.samplers.sampler_object("euler"), side.sigmas, positive, negative,
                               torch.zeros_like(noise), disable_pbar=True, seed=0)
    (path,) = folder.glob("bench_*.safetensors")
    return path.name


# ---------------------------------------------------------------- diffusers side

class DiffusersSide:
    """The same weights in diffusers, sampled with the same sigmas, Euler steps and batched CFG."""

    def __init__(self, spec: bm.ModelSpec, prompts: Prompts, sigmas: torch.Tensor, device: torch.device) -> None:
        self.spec = spec
        self.model = self.load()
        self.prompts = prompts
        self.sigmas = sigmas
        self.device = device
        h = w = bm.LATENT_SIZE
        ids = torch.zeros(h // 2, w // 2, 3)
        ids[..., 1] = torch.arange(h // 2)[:, None]
        ids[..., 2] = torch.arange(w // 2)[None, :]
        self.img_ids, self.txt_ids = ids.reshape(-1, 3).to(device), torch.zeros(spec.tokens, 3, device=device)
        self.timestep = {"t": 1000.0}

    def load(self) -> Any:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return bm.load_diffusers_model(self.spec).to(device)

    @staticmethod
    def blocks(model: Any) -> list[torch.nn.Module]:
        return list(model.transformer_blocks) + list(model.single_transformer_blocks)

    def sample(self, model: Any, indices: Optional[list[int]] = None, before_prompt: Optional[Callable[[], None]] = None) -> torch.Tensor:
        """The prompts `indices` (default all), each at batch 1, cond and uncond batched."""
        outs = []
        for i in self.prompts.indices(False) if indices is None else indices:
            if before_prompt is not None:
                before_prompt()
            context = torch.cat([torch.zeros_like(self.prompts.tokens[i]), self.prompts.tokens[i]]).to(self.device)
            pooled = torch.cat([torch.zeros_like(self.prompts.pooled[i]), self.prompts.pooled[i]]).to(self.device)
            outs.append(self._sample_one(model, self.prompts.noise[i][None].to(self.device), context, pooled))
        return torch.cat(outs)

    def _sample_one(self, model: Any, noise: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        from train_model import pack

        sigmas = self.sigmas
        b, _, h, w = noise.shape
        x = pack(noise)
        hooks = getattr(model, "is_cache_enabled", False)  # diffusers' own cache hooks
        if hooks:
            model._reset_stateful_cache()  # a new generation, as a diffusers pipeline starts one
        with torch.no_grad(), (model.cache_context("cfg") if hooks else contextlib.nullcontext()):
            for i in range(len(sigmas) - 1):
                self.timestep["t"] = float(sigmas[i]) * 1000
                t = torch.full((2 * b,), float(sigmas[i]), device=self.device)
                v = model(hidden_states=torch.cat([x, x]), encoder_hidden_states=context, pooled_projections=pooled,
                          timestep=t, img_ids=self.img_ids, txt_ids=self.txt_ids, return_dict=False)[0]
                v_uncond, v_cond = v.chunk(2)
                x = x + (sigmas[i + 1] - sigmas[i]) * (v_uncond + CFG * (v_cond - v_uncond))
        c = x.shape[-1] // 4
        return x.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)

    def uncached(self, indices: Optional[list[int]] = None) -> torch.Tensor:
        return self.sample(self.model, indices)

    def run(self, result: Result, config: Any, repeats: int) -> Result:
        """diffusers' own hooks (`config`) on the shared model, switched off for the alternating uncached runs."""
        if config is None:
            return measure(result, self.uncached, self.blocks(self.model), repeats, self.prompts)
        state = {"on": False}

        def switch(on: bool) -> None:
            if on != state["on"]:
                self.model.enable_cache(config) if on else self.model.disable_cache()
                state["on"] = on

        def cached(indices: list[int]) -> torch.Tensor:
            switch(True)
            return self.sample(self.model, indices)

        def uncached(indices: list[int]) -> torch.Tensor:
            switch(False)
            return self.sample(self.model, indices)

        try:
            return measure(result, cached, self.blocks(self.model), repeats, self.prompts, uncached)
        finally:
            switch(False)

    def run_cache_dit(self, result: Result, make_config: Callable[[], tuple[Any, Any]], repeats: int) -> Result:
        """cache-dit on its own copy of the weights (it patches the transformer's forward in place), through
        its transformer-only API: enable_cache on the FluxTransformer2DModel (its registered Flux adapter:
        one block stack of the double then the single blocks), and refresh_context before every prompt
        (a new generation) with the same configs."""
        import cache_dit

        model = self.load()
        cache_config, calibrator_config = make_config()
        cache_dit.enable_cache(model, cache_config=cache_config, calibrator_config=calibrator_config)
        refresh_kwargs = {"cache_config": copy.deepcopy(cache_config)}
        if calibrator_config is not None:
            refresh_kwargs["calibrator_config"] = copy.deepcopy(calibrator_config)

        def refresh() -> None:
            cache_dit.refresh_context(model, **copy.deepcopy(refresh_kwargs))

        try:
            measure(result, lambda indices: self.sample(model, indices, refresh), self.blocks(model), repeats, self.prompts, self.uncached)
            result.extra["cache_dit_tag"] = cache_config.strify()
        finally:
            cache_dit.disable_cache(model)
            del model
        return result

    def floor(self, repeats: int) -> float:
        """Median time of the timed prompts with every transformer block skipped (its forward returning its inputs)."""
        def passthrough(hidden_states, encoder_hidden_states, *args, **kwargs):
            return encoder_hidden_states, hidden_states

        with contextlib.ExitStack() as stack:
            from unittest import mock

            for block in self.blocks(self.model):
                stack.enter_context(mock.patch.object(block, "forward", passthrough))
            self.uncached(self.prompts.timed)
            return statistics.median(timed(lambda: self.uncached(self.prompts.timed)) for _ in range(repeats))


# ---------------------------------------------------------------- the comparison

def hybrid_label(front: int, back: int, predictor: str, threshold: float = 0.0, mc: int = 3, mask: str = "", policy: str = "dynamic",
                 target: float = 0.0, warmup: int = 3) -> tuple[str, dict]:
    settings = dict(front_blocks=front, back_blocks=back, predictor=predictor, residual_diff_threshold=threshold,
                    max_continuous_cached_steps=mc, steps_computation_mask=mask, steps_computation_policy=policy,
                    target_speedup=target, warmup_steps=warmup)
    parts = [f"F{front}B{back}", predictor]
    if target:
        parts.append(f"target {target:g}x")
    else:
        parts.append(f"R{threshold:g}")
    parts.append(f"MC{mc}" if mc else "MC-")
    if warmup != 3:
        parts.append(f"W{warmup}")
    if mask:
        parts.append(f"SCM {mask} {policy}")
    label = " ".join(parts)
    if (front, back, predictor, threshold, mc, mask, target, warmup) == (1, 0, "taylorseer", 0.12, 3, "", 0.0, 3):
        label += " (default)"
    return label, settings


# (residual_diff_threshold, max_continuous_cached_steps): one threshold sweep for the hybrid node and for cache-dit,
# longer reuse runs allowed as the threshold grows (as cache-dit's presets do)
SWEEP = [(0.08, 3), (0.12, 3), (0.16, 4), (0.24, 6), (0.36, 6), (0.5, 8), (0.8, 10)]
QUICK_SWEEP = [(0.12, 3), (0.24, 6), (0.5, 8)]


def hybrid_plan(quick: bool, blocks: int) -> list[tuple[str, dict]]:
    """The Hybrid Block Cache settings: front/back segments, a threshold sweep, the three predictors, step
    masks, and the quality-budget mode."""
    sweep = QUICK_SWEEP if quick else SWEEP
    plan = [hybrid_label(1, 0, "taylorseer", r, mc) for r, mc in sweep]  # F1B0, TaylorSeer: the threshold sweep
    if not quick:  # a threshold no step passes: the node's own cost while it computes everything
        label, values = hybrid_label(1, 0, "taylorseer", 0.001, 3)
        plan.insert(0, (label + " (overhead probe)", values))
    plan += [hybrid_label(1, 0, "foca", r, mc) for r, mc in ([(0.24, 6)] if quick else [(0.12, 3), (0.24, 6), (0.5, 8)])]
    plan += [hybrid_label(1, 0, "replay", r, mc) for r, mc in ([] if quick else [(0.12, 3), (0.24, 6)])]
    # front / back segments
    plan += [hybrid_label(2, 2, "taylorseer", r, mc) for r, mc in ([(0.24, 6)] if quick else [(0.12, 3), (0.24, 6), (0.5, 8)])]
    if not quick:
        plan += [hybrid_label(4, 0, "taylorseer", 0.12, 4), hybrid_label(4, 0, "taylorseer", 0.24, 6),
                 hybrid_label(8, 0, "taylorseer", 0.12, 4), hybrid_label(1, 4, "taylorseer", 0.24, 6)]
    # step masks (cache-dit's SCM)
    plan += [hybrid_label(1, 0, "taylorseer", 0.0, 0, "fast", "static")]
    if not quick:
        plan += [hybrid_label(1, 0, "taylorseer", 0.0, 0, "ultra", "static"), hybrid_label(1, 0, "taylorseer", 0.24, 0, "medium", "dynamic")]
    # the quality-budget mode (reuse-run caps as in the threshold sweep)
    budget = [(3.0, 6)] if quick else [(1.5, 3), (2.0, 3), (2.5, 4), (3.0, 6), (4.0, 8)]
    plan += [hybrid_label(1, 0, "taylorseer", target=t, mc=mc) for t, mc in budget]
    if not quick:
        plan += [hybrid_label(1, 0, "taylorseer", target=3.0, mc=0), hybrid_label(1, 0, "foca", target=3.0, mc=6)]
    return [(label, s) for label, s in plan if s["front_blocks"] + s["back_blocks"] < blocks]


def cache_dit_plan(quick: bool, blocks: int, steps: int) -> list[tuple[str, Callable[[], tuple[Any, Any]]]]:
    """cache-dit's DBCache at several Fn/Bn and thresholds (its documented presets among them), with and
    without its TaylorSeer and FoCa calibrators, and with SCM step masks."""
    import cache_dit
    from cache_dit import DBCacheConfig, FoCaCalibratorConfig, TaylorSeerCalibratorConfig

    def entry(label: str, calibrator: str = "", scm: str = "", policy: str = "dynamic", **db: Any):
        db.setdefault("num_inference_steps", steps)

        def make() -> tuple[Any, Any]:
            config = dict(db)
            if scm:
                config["steps_computation_mask"] = cache_dit.steps_mask(total_steps=steps, mask_policy=scm)
                config["steps_computation_policy"] = policy
            cal = {"": None, "taylorseer": lambda: TaylorSeerCalibratorConfig(taylorseer_order=1),
                   "foca": lambda: FoCaCalibratorConfig()}[calibrator]
            return DBCacheConfig(**config), (cal() if cal else None)

        name = label + (f" + {'TaylorSeer' if calibrator == 'taylorseer' else 'FoCa'}" if calibrator else "")
        return name, make, db

    def f1(r: float, mc: int, calibrator: str = "") -> tuple:
        """F1B0 with warmup 3: the hybrid node's defaults but for the threshold and cap."""
        return entry(f"F1B0 W3 MC{mc} R{r:g}", calibrator, Fn_compute_blocks=1, Bn_compute_blocks=0, max_warmup_steps=3,
                     max_continuous_cached_steps=mc, residual_diff_threshold=r)

    S = dict(Fn_compute_blocks=4, Bn_compute_blocks=0, max_warmup_steps=4, max_continuous_cached_steps=4, residual_diff_threshold=0.12)
    M = dict(Fn_compute_blocks=1, Bn_compute_blocks=0, max_warmup_steps=4, max_continuous_cached_steps=6, residual_diff_threshold=0.24)
    F = dict(Fn_compute_blocks=1, Bn_compute_blocks=0, max_warmup_steps=8, warmup_interval=2, max_continuous_cached_steps=8,
             residual_diff_threshold=0.8)
    U = dict(Fn_compute_blocks=1, Bn_compute_blocks=0, max_warmup_steps=8, warmup_interval=4, max_continuous_cached_steps=10,
             residual_diff_threshold=0.8)
    presets = {"S: F4B0 W4 MC4 R0.12": S, "M: F1B0 W4 MC6 R0.24": M, "F: F1B0 W8 I2 MC8 R0.8": F, "U: F1B0 W8 I4 MC10 R0.8": U}
    if quick:
        plan = [f1(r, mc, "taylorseer") for r, mc in QUICK_SWEEP] + [f1(0.24, 6), f1(0.24, 6, "foca")]
        plan += [entry("SCM fast static F1B0", "taylorseer", "fast", "static", Fn_compute_blocks=1, Bn_compute_blocks=0,
                       max_warmup_steps=4, residual_diff_threshold=0.24)]
    else:
        plan = [f1(r, mc, "taylorseer") for r, mc in SWEEP]
        plan += [f1(r, mc) for r, mc in [(0.12, 3), (0.24, 6)]]
        plan += [f1(r, mc, "foca") for r, mc in [(0.12, 3), (0.24, 6), (0.5, 8)]]
        plan += [entry("F8B0 R0.08 (defaults)", Fn_compute_blocks=8, Bn_compute_blocks=0, residual_diff_threshold=0.08),
                 entry("F8B0 W4 MC3 R0.12", Fn_compute_blocks=8, Bn_compute_blocks=0, max_warmup_steps=4, max_continuous_cached_steps=3,
                       residual_diff_threshold=0.12),
                 entry("F2B2 W4 MC4 R0.12", Fn_compute_blocks=2, Bn_compute_blocks=2, max_warmup_steps=4, max_continuous_cached_steps=4,
                       residual_diff_threshold=0.12),
                 entry("F2B2 W4 MC6 R0.24", "taylorseer", Fn_compute_blocks=2, Bn_compute_blocks=2, max_warmup_steps=4,
                       max_continuous_cached_steps=6, residual_diff_threshold=0.24)]
        plan += [entry(name, calibrator, **db) for name, db in presets.items() for calibrator in ("", "taylorseer")]
        plan += [entry("SCM fast static F1B0", "taylorseer", "fast", "static", Fn_compute_blocks=1, Bn_compute_blocks=0,
                       max_warmup_steps=4, residual_diff_threshold=0.24),
                 entry("SCM ultra static F1B0", "taylorseer", "ultra", "static", Fn_compute_blocks=1, Bn_compute_blocks=0,
                       max_warmup_steps=4, residual_diff_threshold=0.24),
                 entry("SCM medium dynamic F1B0 R0.24", "taylorseer", "medium", "dynamic", Fn_compute_blocks=1, Bn_compute_blocks=0,
                       max_warmup_steps=4, residual_diff_threshold=0.24)]
    return [(name, make) for name, make, db in plan if db["Fn_compute_blocks"] + db["Bn_compute_blocks"] < blocks]


def settings(quick: bool, blocks: int, mag_file: str, mag_ratios: list[float], steps: int, timestep: dict,
             percent_to_sigma: Callable) -> dict[str, list]:
    """(method, setting label, CacheKit node settings / diffusers config / cache-dit factory) per group."""
    from diffusers import FasterCacheConfig, FirstBlockCacheConfig, MagCacheConfig, PyramidAttentionBroadcastConfig, TaylorSeerCacheConfig

    now = lambda: timestep["t"]  # noqa: E731

    def window(start: float, end: float) -> tuple[int, int]:
        """CacheKit's start/end percent as diffusers' (low, high) timestep range, through ComfyUI's percent -> sigma."""
        return math.floor(1000 * percent_to_sigma(end)) - 1, math.ceil(1000 * percent_to_sigma(start)) + 1
    fbc = [0.05, 0.1, 0.2, 0.4]
    diffusers_fbc = [0.05, 0.08, 0.12, 0.2, 0.3, 0.4]
    pab = [(2, 0.2, 0.9)]
    taylor = [(3, 3), (5, 3), (8, 3)]
    diffusers_taylor = [(2, 3), (3, 3), (5, 3), (8, 3)]
    mag = [0.06, 0.12, 0.24]
    whole_blocks = [r"transformer_blocks\.\d+", r"single_transformer_blocks\.\d+"]
    if quick:
        fbc, pab, taylor, mag = [0.1, 0.2], pab[:1], taylor[1:2], mag[:1]
        diffusers_fbc, diffusers_taylor = [0.1, 0.2, 0.4], [(3, 3), (5, 3)]
    cachekit = (
        ([("FirstBlockCache", "threshold 0.001 (overhead probe)", "CacheKitFirstBlockCache", dict(threshold=0.001))] if not quick else [])
        + [("FirstBlockCache", f"threshold {t}" + (" (default)" if t == 0.05 else ""), "CacheKitFirstBlockCache", dict(threshold=t)) for t in fbc]
        + [("PAB", f"range {r}, {s}-{e}" + (" (default)" if r == 2 and s == 0.2 else ""), "CacheKitPyramidAttentionBroadcast",
            dict(spatial_attention_block_skip_range=r, spatial_attention_start_percent=s, spatial_attention_end_percent=e)) for r, s, e in pab]
        + ([("FasterCache", "defaults", "CacheKitFasterCache", {})] if not quick else [])
        + [("TaylorSeer", f"interval {i}" + (" (default)" if i == 5 else ""), "CacheKitTaylorSeerCache",
            dict(cache_interval=i, disable_cache_before_step=b, taylor_factors_dtype="float32")) for i, b in taylor]
        + [("MagCache", f"threshold {t}" + (" (default)" if t == 0.06 else ""), "CacheKitMagCache", dict(ratios=mag_file, threshold=t)) for t in mag]
        + [("HybridBlockCache", label, "CacheKitHybridBlockCache", values) for label, values in hybrid_plan(quick, blocks)]
    )
    diffusers = (
        [("FirstBlockCache", f"threshold {t}", FirstBlockCacheConfig(threshold=t)) for t in diffusers_fbc]
        + [("PAB", f"range {r}, {s}-{e}", PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=r, spatial_attention_timestep_skip_range=window(s, e),
            current_timestep_callback=now)) for r, s, e in pab]
        + ([("FasterCache", label, FasterCacheConfig(
            spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=window(0.32, 1.0), attention_weight_callback=lambda _: 0.5,
            unconditional_batch_timestep_skip_range=window(0.36, 1.0), low_frequency_weight_update_timestep_range=window(0.1, 0.9),
            high_frequency_weight_update_timestep_range=window(0.7, 1.0), current_timestep_callback=now, tensor_format="BCHW",
            is_guidance_distilled=distilled)) for label, distilled in (("defaults", False), ("attention part only", True))] if not quick else [])
        + [("TaylorSeer", f"interval {i}, whole blocks", TaylorSeerCacheConfig(
            cache_interval=i, disable_cache_before_step=b, max_order=1, taylor_factors_dtype=torch.float32, cache_identifiers=whole_blocks))
           for i, b in diffusers_taylor]
        + ([("TaylorSeer", "interval 5, attention modules (its default)", TaylorSeerCacheConfig(
            cache_interval=5, disable_cache_before_step=3, max_order=1, taylor_factors_dtype=torch.float32))] if not quick else [])
        + [("MagCache", f"threshold {t}", MagCacheConfig(mag_ratios=mag_ratios, num_inference_steps=steps, threshold=t, max_skip_steps=3,
                                                        retention_ratio=0.2)) for t in mag]
    )
    core = [("EasyCache", t) for t in ([0.1, 0.3] if not quick else [0.2])]
    core += [(name, t) for name in (EASYCACHE_COPIED, "LazyCache") for t in ([0.05, 0.1, 0.2, 0.4] if not quick else [0.1, 0.3])]
    return {"cachekit": cachekit, "diffusers": diffusers, "core": core, "cache-dit": cache_dit_plan(quick, blocks, steps)}


def run_all(spec: bm.ModelSpec, steps: int, repeats: int, quick: bool) -> tuple[list[Result], dict[str, Any]]:
    bm.boot_comfy_for_benchmark()
    register_cachekit()
    from comfy_extras.nodes_easycache import EasyCacheNode, LazyCacheNode

    from cachekit.cache_core.ratios.ratio_file import load_ratio_file

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    reports = capture_reports()
    prompts = Prompts(spec, 1 if quick else SEEDS_PER_CLASS)
    comfy_side = ComfySide(spec, prompts, steps)
    diffusers_side = DiffusersSide(spec, prompts, comfy_side.sigmas, device)
    folder = Path(tempfile.mkdtemp(prefix="cachekit-bench-ratios-"))
    mag_file = calibrate_mag_cache(comfy_side, folder)
    mag_ratios = list(load_ratio_file(folder / mag_file)[0].cond)
    percent_to_sigma = comfy_side.model.get_model_object("model_sampling").percent_to_sigma
    plan = settings(quick, spec.blocks, mag_file, mag_ratios, steps, diffusers_side.timestep, lambda p: float(percent_to_sigma(p)))

    results: list[Result] = []

    def log(r: Result) -> None:
        if r.note:
            print(f"  {r.group:12s} {r.method:16s} {r.setting:42s} {r.note}", flush=True)
            return
        p, s = r.quality()
        print(f"  {r.group:12s} {r.method:16s} {r.setting:42s} {r.seconds:6.3f} s  ideal {r.ideal:5.2f}x  speedup {r.speedup:5.2f}x  "
              f"PSNR {p:6.2f} dB  SSIM {s:.4f}  [{time.perf_counter() - started:5.0f} s]", flush=True)

    comfy_base = comfy_side.run(Result("ComfyUI", "uncached", "-"), comfy_side.model, repeats, reports)
    comfy_base.reference = comfy_base
    comfy_base.floor_seconds = comfy_side.floor(repeats)
    diffusers_base = diffusers_side.run(Result("diffusers", "uncached", "-"), None, repeats)
    diffusers_base.reference = diffusers_base
    diffusers_base.floor_seconds = diffusers_side.floor(repeats)
    difference = (comfy_base.latents - diffusers_base.latents).abs().max().item()
    print(f"uncached: ComfyUI {comfy_base.seconds:.3f} s (blocks skipped: {comfy_base.floor_seconds:.3f} s), diffusers "
          f"{diffusers_base.seconds:.3f} s (blocks skipped: {diffusers_base.floor_seconds:.3f} s); max latent difference {difference:.2e}",
          flush=True)
    results += [comfy_base, diffusers_base]

    def attempt(result: Result, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as error:  # report a setting that cannot run this model instead of stopping the comparison
            result.note = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}"
        results.append(result)
        log(result)

    for method, label, node_id, values in plan["cachekit"]:
        result = Result("CacheKit", method, label, reference=comfy_base, extra={"node": node_id})
        attempt(result, lambda: comfy_side.run(result, cachekit_node(node_id, comfy_side.model, **values), repeats, reports))
    for name, threshold in plan["core"]:
        node = EasyCacheNode if name.startswith("EasyCache") else LazyCacheNode
        result = Result("ComfyUI core", name, f"threshold {threshold}", reference=comfy_base)
        model = copied_input(comfy_side.model) if name == EASYCACHE_COPIED else comfy_side.model
        attempt(result, lambda: comfy_side.run(result, node.execute(model, threshold, 0.15, 0.95, False).result[0], repeats, reports))
    for method, label, config in plan["diffusers"]:
        result = Result("diffusers", method, label, reference=diffusers_base)
        attempt(result, lambda: diffusers_side.run(result, config, repeats))
    for label, make in plan["cache-dit"]:
        result = Result("cache-dit", "DBCache", label, reference=diffusers_base)
        attempt(result, lambda: diffusers_side.run_cache_dit(result, make, repeats))

    import comfyui_version
    import diffusers

    import cache_dit

    meta = dict(
        model=spec, steps=steps, repeats=repeats, quick=quick, cfg=CFG, samples=len(prompts.labels), timed_samples=len(prompts.timed),
        classes=len(bm.CLASSES), tokens=(bm.LATENT_SIZE // 2) ** 2 + spec.tokens, image=bm.IMAGE_SIZE,
        params=sum(p.numel() for p in diffusers_side.model.parameters()), comfyui=comfyui_version.__version__,
        diffusers=diffusers.__version__, cache_dit=getattr(cache_dit, "__version__", "1.5.3"), difference=difference,
        seconds=time.perf_counter() - started, threads=torch.get_num_threads(),
    )
    return results, meta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(bm.MODELS), default=bm.DEFAULT_MODEL,
                        help=f"benchmark model (default {bm.DEFAULT_MODEL}; small: the first, 9-block model)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a few settings per implementation, 1 timed repeat (a smoke run)")
    parser.add_argument("--speed-only", action="store_true", help="large random-weight architectures, speed only")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.speed_only:
        import speed_only

        return speed_only.main(args.out)
    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # the small trained models' denormal values made CPU runs many times slower
    spec = bm.MODELS[args.model]
    results, meta = run_all(spec, args.steps, 1 if args.quick and args.repeats == 3 else args.repeats, args.quick)
    from results_report import write_report

    stem = "results" if args.model == bm.DEFAULT_MODEL and not args.quick else f"results_{args.model}" + ("_quick" if args.quick else "")
    write_report(results, args.out, stem, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
