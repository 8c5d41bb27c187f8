"""CacheKit benchmark: speed and quality of every method against uncached sampling, ComfyUI's
EasyCache / LazyCache and diffusers' own hooks, on the trained benchmark model (bench/model/).

Everything runs in one process and one run: the same weights in ComfyUI (its Flux classes, with the
CacheKit nodes, EasyCache and LazyCache) and in diffusers (FluxTransformer2DModel with diffusers'
cache configs), the same sigmas (ComfyUI's simple schedule), Euler steps and CFG.

Per setting:
- speedup: median wall-clock time of the uncached run of the same implementation / this setting's;
- ideal speedup: linear-layer work (multiply-adds of every nn.Linear, counted with forward hooks
  in a separate untimed run) of the uncached run / this setting's: what a zero-overhead cache
  would gain;
- overhead ratio: speedup / ideal;
- PSNR and SSIM of the decoded RGB samples against the uncached samples;
- cache memory: peak bytes held by CacheKit's caches (its run report); on a GPU, the peak memory
  added over the uncached run for every implementation.

Writes bench/results.md and bench/results.png.
Usage: python3 bench/run_benchmark.py [--steps 30] [--repeats 3] [--quick]
       python3 bench/run_benchmark.py --speed-only   (large random-weight models; see speed_only.py)
"""
from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parent / "tests"))  # last: ComfyUI's namespace package `comfy` must win over tests/comfy

import benchmark_model as bm  # noqa: E402
from harness.comfy_env import boot_comfy  # noqa: E402
from harness.packages import register_cachekit  # noqa: E402
from image_metrics import psnr, ssim  # noqa: E402

CFG, SEEDS_PER_CLASS = 4.0, 2


@dataclass
class Result:
    """One method at one setting."""

    group: str  # "CacheKit", "ComfyUI core", "diffusers"
    method: str
    setting: str
    seconds: float = 0.0
    macs: float = 0.0
    latents: torch.Tensor | None = None
    cache_bytes: int | None = None
    gpu_bytes: int | None = None
    reference: "Result | None" = None
    note: str = ""
    reference_seconds: float | None = None  # the uncached time measured alongside this setting
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        return (self.reference_seconds or self.reference.seconds) / self.seconds

    @property
    def ideal(self) -> float:
        return self.reference.macs / self.macs

    def quality(self) -> tuple[float, float]:
        a, b = bm.latent_to_image(self.latents), bm.latent_to_image(self.reference.latents)
        return psnr(a, b), ssim(a, b)


@contextlib.contextmanager
def count_linear_macs(module: torch.nn.Module):
    """Sum the multiply-adds of every nn.Linear call inside `module`."""
    total = {"macs": 0.0}

    def hook(layer, inputs, _output):
        total["macs"] += inputs[0].numel() / layer.in_features * layer.in_features * layer.out_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, torch.nn.Linear)]
    try:
        yield total
    finally:
        for handle in handles:
            handle.remove()


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure(result: Result, sample: Callable[[], torch.Tensor], module: torch.nn.Module, repeats: int,
            reference: Callable[[], torch.Tensor] | None = None) -> Result:
    """Count the work once (also the warm-up), then time `repeats` runs; keep the median.

    With `reference` (the uncached sampler of the same implementation), each timed run alternates
    with a timed uncached run, and the speedup uses those: machine-load drift cancels out.
    """
    with count_linear_macs(module) as counted:
        result.latents = sample().float().cpu()
    result.macs = counted["macs"]
    times, reference_times = [], []
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    for _ in range(repeats):
        for fn, bucket in ((sample, times), (reference, reference_times)):
            if fn is None:
                continue
            sync()
            started = time.perf_counter()
            fn()
            sync()
            bucket.append(time.perf_counter() - started)
    if torch.cuda.is_available():
        result.gpu_bytes = torch.cuda.max_memory_allocated() - base
    result.seconds = statistics.median(times)
    if reference_times:
        result.reference_seconds = statistics.median(reference_times)
    return result


# ---------------------------------------------------------------- ComfyUI side

class ComfySide:
    """The benchmark model in ComfyUI, sampled with comfy.sample like KSampler."""

    def __init__(self, steps: int, device: torch.device) -> None:
        import comfy.samplers

        self.model = bm.load_comfy_model()
        self.steps = steps
        tokens, pooled = bm.class_prompts()
        labels = torch.arange(len(bm.CLASSES)).repeat_interleave(SEEDS_PER_CLASS)
        # one prompt per sampling run (batch 1, as users sample; ComfyUI's EasyCache needs it)
        self.prompts = [
            ([[tokens[i:i + 1], {"pooled_output": pooled[i:i + 1]}]],
             [[torch.zeros_like(tokens[i:i + 1]), {"pooled_output": torch.zeros_like(pooled[i:i + 1])}]])
            for i in labels.tolist()
        ]
        self.noise = torch.randn(len(labels), 16, bm.LATENT_SIZE, bm.LATENT_SIZE, generator=torch.Generator().manual_seed(42))
        self.sigmas = comfy.samplers.calculate_sigmas(self.model.get_model_object("model_sampling"), "simple", steps).float()

    def sample(self, model: Any, count: int | None = None) -> torch.Tensor:
        """Latents of every prompt (or the first `count`) in model space (ComfyUI's VAE-space scaling undone)."""
        import comfy.sample
        import comfy.samplers

        outs = []
        for (positive, negative), noise in list(zip(self.prompts, self.noise))[:count]:
            noise = noise[None]
            out = comfy.sample.sample_custom(model, noise, CFG, comfy.samplers.sampler_object("euler"), self.sigmas,
                                             positive, negative, torch.zeros_like(noise), disable_pbar=True, seed=0)
            outs.append(model.get_model_object("latent_format").process_in(out))
        return torch.cat(outs)

    def run(self, result: Result, model: Any, repeats: int, reports: list) -> Result:
        before = len(reports)
        reference = None if model is self.model else (lambda: self.sample(self.model))
        measure(result, lambda: self.sample(model), self.model.get_model_object("diffusion_model"), repeats, reference)
        if len(reports) > before:
            runs = reports[before:before + len(self.prompts)]  # the counting run's reports, one per prompt
            result.cache_bytes = max(r.peak_cache_bytes for r in runs)
            result.extra["steps"] = f"{sum(r.steps_computed for r in runs)}/{sum(r.steps_evaluated for r in runs)}"
        return result


def capture_reports() -> list:
    """CacheKit's run report of every sampling run, in order."""
    from cachekit.cache_core.runtime.run import SamplingRun

    captured: list = []
    original = SamplingRun.finish

    def finish(self):
        captured.append(original(self))
        return captured[-1]

    SamplingRun.finish = finish
    return captured


def cachekit_node(node_id: str, model: Any, **settings: Any) -> Any:
    from cachekit.nodes import NODE_DEFS

    node = {d.node_id: d for d in NODE_DEFS}[node_id]
    values = {w.id: w.default for w in node.widgets}
    values.update(settings)
    return node.apply(model, **values)


def calibrate_mag_cache(side: ComfySide, folder: Path) -> str:
    """Run CacheKit's calibration on the benchmark model; returns the ratio file's name."""
    import folder_paths

    from cachekit.cache_core.ratios.library import FOLDER

    folder_paths.folder_names_and_paths[FOLDER] = ([str(folder)], {".safetensors"})
    side.sample(cachekit_node("CacheKitMagCacheCalibrate", side.model, filename_prefix="bench"), count=1)
    (path,) = folder.glob("bench_*.safetensors")
    return path.name


# ---------------------------------------------------------------- diffusers side

class DiffusersSide:
    """The same weights in diffusers, sampled with the same sigmas, Euler steps and batched CFG."""

    def __init__(self, comfy_side: ComfySide, device: torch.device) -> None:
        self.model = bm.load_diffusers_model().to(device)
        self.comfy = comfy_side
        self.device = device
        h = w = bm.LATENT_SIZE
        ids = torch.zeros(h // 2, w // 2, 3)
        ids[..., 1] = torch.arange(h // 2)[:, None]
        ids[..., 2] = torch.arange(w // 2)[None, :]
        self.img_ids, self.txt_ids = ids.reshape(-1, 3).to(device), torch.zeros(bm.CONFIG["tokens"], 3, device=device)
        self.timestep = {"t": 1000.0}

    def sample(self) -> torch.Tensor:
        """Every prompt at batch 1, cond and uncond batched, each run in its own cache context."""
        outs = []
        for (positive, negative), noise in zip(self.comfy.prompts, self.comfy.noise):
            context = torch.cat([negative[0][0], positive[0][0]]).to(self.device)
            pooled = torch.cat([negative[0][1]["pooled_output"], positive[0][1]["pooled_output"]]).to(self.device)
            outs.append(self._sample_one(noise[None].to(self.device), context, pooled))
        return torch.cat(outs)

    def _sample_one(self, noise: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        from train_model import pack

        sigmas = self.comfy.sigmas
        b, _, h, w = noise.shape
        x = pack(noise)
        if self.model.is_cache_enabled:
            self.model._reset_stateful_cache()  # a new generation, as a diffusers pipeline starts one
        with torch.no_grad(), (self.model.cache_context("cfg") if self.model.is_cache_enabled else contextlib.nullcontext()):
            for i in range(len(sigmas) - 1):
                self.timestep["t"] = float(sigmas[i]) * 1000
                t = torch.full((2 * b,), float(sigmas[i]), device=self.device)
                v = self.model(hidden_states=torch.cat([x, x]), encoder_hidden_states=context, pooled_projections=pooled,
                               timestep=t, img_ids=self.img_ids, txt_ids=self.txt_ids, return_dict=False)[0]
                v_uncond, v_cond = v.chunk(2)
                x = x + (sigmas[i + 1] - sigmas[i]) * (v_uncond + CFG * (v_cond - v_uncond))
        c = x.shape[-1] // 4
        return x.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)

    def run(self, result: Result, config: Any, repeats: int) -> Result:
        if config is None:
            return measure(result, self.sample, self.model, repeats)
        state = {"on": False}

        def switch(on: bool) -> None:
            if on != state["on"]:
                self.model.enable_cache(config) if on else self.model.disable_cache()
                state["on"] = on

        def cached() -> torch.Tensor:
            switch(True)
            return self.sample()

        def uncached() -> torch.Tensor:
            switch(False)
            return self.sample()

        try:
            return measure(result, cached, self.model, repeats, uncached)
        finally:
            switch(False)


# ---------------------------------------------------------------- the comparison

def settings(quick: bool, mag_file: str, mag_ratios: list[float], steps: int, timestep: dict, percent_to_sigma: Callable) -> dict[str, list]:
    """(method, setting label, CacheKit node settings, diffusers config or None) per group."""
    from diffusers import FasterCacheConfig, FirstBlockCacheConfig, MagCacheConfig, PyramidAttentionBroadcastConfig, TaylorSeerCacheConfig

    now = lambda: timestep["t"]  # noqa: E731

    def window(start: float, end: float) -> tuple[int, int]:
        """CacheKit's start/end percent as diffusers' (low, high) timestep range, through ComfyUI's percent -> sigma."""
        return math.floor(1000 * percent_to_sigma(end)) - 1, math.ceil(1000 * percent_to_sigma(start)) + 1
    fbc = [0.05, 0.1, 0.2, 0.4]
    pab = [(2, 0.2, 0.9), (3, 0.0, 1.0), (5, 0.0, 1.0)]
    taylor = [(5, 3), (3, 3), (8, 3)]
    mag = [0.06, 0.12, 0.24]
    if quick:
        fbc, pab, taylor, mag = fbc[:2], pab[:1], taylor[:1], mag[:1]
    cachekit = (
        [("FirstBlockCache", f"threshold {t}" + (" (default)" if t == 0.05 else ""), "CacheKitFirstBlockCache", dict(threshold=t)) for t in fbc]
        + [("PAB", f"range {r}, {s}-{e}" + (" (default)" if r == 2 and s == 0.2 else ""), "CacheKitPyramidAttentionBroadcast",
            dict(spatial_attention_block_skip_range=r, spatial_attention_start_percent=s, spatial_attention_end_percent=e)) for r, s, e in pab]
        + [("FasterCache", "defaults", "CacheKitFasterCache", {}),
           ("FasterCache", "attention part only", "CacheKitFasterCache", dict(unconditional_batch_skip_range=1))]
        + [("TaylorSeer", f"interval {i}" + (" (default)" if i == 5 else ""), "CacheKitTaylorSeerCache",
            dict(cache_interval=i, disable_cache_before_step=b, taylor_factors_dtype="float32")) for i, b in taylor]
        + [("MagCache", f"threshold {t}" + (" (default)" if t == 0.06 else ""), "CacheKitMagCache", dict(ratios=mag_file, threshold=t)) for t in mag]
    )
    diffusers = (
        [("FirstBlockCache", f"threshold {t}", FirstBlockCacheConfig(threshold=t)) for t in fbc]
        + [("PAB", f"range {r}, {s}-{e}", PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=r, spatial_attention_timestep_skip_range=window(s, e),
            current_timestep_callback=now)) for r, s, e in pab]
        + [("FasterCache", label, FasterCacheConfig(
            spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=window(0.32, 1.0), attention_weight_callback=lambda _: 0.5,
            unconditional_batch_timestep_skip_range=window(0.36, 1.0), low_frequency_weight_update_timestep_range=window(0.1, 0.9),
            high_frequency_weight_update_timestep_range=window(0.7, 1.0), current_timestep_callback=now, tensor_format="BCHW",
            is_guidance_distilled=distilled)) for label, distilled in (("defaults", False), ("attention part only", True))]
        + [("TaylorSeer", f"interval {i}", TaylorSeerCacheConfig(cache_interval=i, disable_cache_before_step=b, max_order=1,
                                                                 taylor_factors_dtype=torch.float32)) for i, b in taylor]
        + [("MagCache", f"threshold {t}", MagCacheConfig(mag_ratios=mag_ratios, num_inference_steps=steps, threshold=t, max_skip_steps=3,
                                                        retention_ratio=0.2)) for t in mag]
    )
    core = [(name, t) for name in ("EasyCache", "LazyCache") for t in ([0.2, 0.1, 0.4] if not quick else [0.2])]
    return {"cachekit": cachekit, "diffusers": diffusers, "core": core}


def run_all(steps: int, repeats: int, quick: bool) -> list[Result]:
    boot_comfy()
    register_cachekit()
    from comfy_extras.nodes_easycache import EasyCacheNode, LazyCacheNode

    from cachekit.cache_core.ratios.ratio_file import load_ratio_file

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    reports = capture_reports()
    comfy_side = ComfySide(steps, device)
    diffusers_side = DiffusersSide(comfy_side, device)
    folder = Path(tempfile.mkdtemp(prefix="cachekit-bench-ratios-"))
    mag_file = calibrate_mag_cache(comfy_side, folder)
    mag_ratios = list(load_ratio_file(folder / mag_file)[0].cond)
    percent_to_sigma = comfy_side.model.get_model_object("model_sampling").percent_to_sigma
    plan = settings(quick, mag_file, mag_ratios, steps, diffusers_side.timestep, lambda p: float(percent_to_sigma(p)))

    results = []
    log = lambda r: print(f"  {r.group:13s} {r.method:16s} {r.setting:26s} {r.seconds:7.3f} s  ideal {r.ideal:5.2f}x  speedup {r.speedup:5.2f}x  "
                          f"PSNR {r.quality()[0]:6.2f} dB", flush=True)  # noqa: E731
    comfy_base = comfy_side.run(Result("ComfyUI", "uncached", "-"), comfy_side.model, repeats, reports)
    comfy_base.reference = comfy_base
    diffusers_base = diffusers_side.run(Result("diffusers", "uncached", "-"), None, repeats)
    diffusers_base.reference = diffusers_base
    print(f"uncached: ComfyUI {comfy_base.seconds:.3f} s, diffusers {diffusers_base.seconds:.3f} s; "
          f"max latent difference {(comfy_base.latents - diffusers_base.latents).abs().max().item():.2e}", flush=True)
    results += [comfy_base, diffusers_base]
    for method, label, node_id, values in plan["cachekit"]:
        patched = cachekit_node(node_id, comfy_side.model, **values)
        results.append(comfy_side.run(Result("CacheKit", method, label, reference=comfy_base), patched, repeats, reports))
        log(results[-1])
    for name, threshold in plan["core"]:
        node = EasyCacheNode if name == "EasyCache" else LazyCacheNode
        patched = node.execute(comfy_side.model, threshold, 0.15, 0.95, False).result[0]
        results.append(comfy_side.run(Result("ComfyUI core", name, f"threshold {threshold}", reference=comfy_base), patched, repeats, reports))
        log(results[-1])
    for method, label, config in plan["diffusers"]:
        result = Result("diffusers", method, label, reference=diffusers_base)
        try:
            diffusers_side.run(result, config, repeats)
        except Exception as error:  # report a hook that cannot run this model instead of stopping the comparison
            print(f"  diffusers {method} {label}: failed: {type(error).__name__}: {error}", flush=True)
            result.note = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
            results.append(result)
            continue
        results.append(result)
        log(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one or two settings per method (a smoke run)")
    parser.add_argument("--speed-only", action="store_true", help="large random-weight architectures, speed only")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    if args.speed_only:
        import speed_only

        return speed_only.main(args.out)
    torch.manual_seed(0)
    results = run_all(args.steps, args.repeats, args.quick)
    from results_report import write_report

    write_report(results, args.out, steps=args.steps, repeats=args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
