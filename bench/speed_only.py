"""Speed-only benchmark on large architectures with random weights (`run_benchmark.py --speed-only`).

On a GPU: Flux-dev's real size (hidden 3072, 19 double + 38 single blocks, bf16) at 1024x1024
(4096 image tokens). On a CPU: the same architecture reduced (hidden 768, 2 + 4 blocks, 256 image
tokens, float32) so that it runs in minutes. Random weights say nothing about quality; this mode
reports realized against ideal speedup (overhead) of each CacheKit node at a fixed setting.
Writes speed_only.md next to results.md.
"""
from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

GPU_CONFIG = dict(hidden=3072, heads=24, depth=19, single=38, context=4096, latent=128, steps=20, dtype=torch.bfloat16)
CPU_CONFIG = dict(hidden=768, heads=6, depth=2, single=4, context=4096, latent=32, steps=16, dtype=torch.float32)

SETTINGS = [
    ("FirstBlockCache", "CacheKitFirstBlockCache", dict(threshold=0.3)),
    ("PAB", "CacheKitPyramidAttentionBroadcast", dict(spatial_attention_block_skip_range=3, spatial_attention_start_percent=0.0,
                                                       spatial_attention_end_percent=1.0)),
    ("FasterCache", "CacheKitFasterCache", {}),
    ("TaylorSeer", "CacheKitTaylorSeerCache", dict(cache_interval=4, disable_cache_before_step=2)),
    ("MagCache", "CacheKitMagCache", dict(ratios="flux", threshold=0.24, max_skip_steps=3)),
]


def random_flux(config: dict[str, Any]) -> Any:
    """A ComfyUI Flux ModelPatcher of the given size with seeded random weights (guidance-distilled, like dev)."""
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    head_dim = config["hidden"] // config["heads"]
    unet = dict(
        image_model="flux", in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=config["context"], hidden_size=config["hidden"],
        mlp_ratio=4.0, num_heads=config["heads"], depth=config["depth"], depth_single_blocks=config["single"],
        axes_dim=[head_dim // 8, head_dim * 7 // 16, head_dim * 7 // 16], theta=10000, patch_size=2, qkv_bias=True, guidance_embed=True,
    )
    model_config = comfy.supported_models.Flux(unet)
    model_config.set_inference_dtype(config["dtype"], None)
    device = comfy.model_management.get_torch_device()
    model = model_config.get_model({}, device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for parameter in model.diffusion_model.parameters():
            noise = torch.randn(parameter.shape, generator=generator, device=device, dtype=torch.float32)
            scale = parameter.shape[1] ** -0.5 if parameter.dim() >= 2 else 0.02
            parameter.copy_((noise * scale).to(parameter.dtype))
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=comfy.model_management.unet_offload_device())


def main(out: Path) -> int:
    from run_benchmark import boot_comfy, cachekit_node, capture_reports, count_linear_macs, register_cachekit, sync

    boot_comfy()
    register_cachekit()
    import comfy.sample
    import comfy.samplers

    gpu = torch.cuda.is_available()
    config = GPU_CONFIG if gpu else CPU_CONFIG
    model = random_flux(config)
    reports = capture_reports()
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(1, 16, config["latent"], config["latent"], generator=generator)
    positive = [[torch.randn(1, 64, config["context"], generator=generator), {"pooled_output": torch.randn(1, 768, generator=generator), "guidance": 3.5}]]
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", config["steps"]).float()

    def sample(m):
        return comfy.sample.sample_custom(m, noise, 1.0, comfy.samplers.sampler_object("euler"), sigmas, positive, positive,
                                          torch.zeros_like(noise), disable_pbar=True, seed=0)

    def timed(m) -> tuple[float, float]:
        with count_linear_macs(model.get_model_object("diffusion_model")) as counted:
            sample(m)
        times = []
        for _ in range(3):
            sync()
            started = time.perf_counter()
            sample(m)
            sync()
            times.append(time.perf_counter() - started)
        return statistics.median(times), counted["macs"]

    base_time, base_macs = timed(model)
    device = torch.cuda.get_device_name() if gpu else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads, reduced size)"
    lines = [
        "# CacheKit speed-only benchmark",
        "",
        f"`python3 bench/run_benchmark.py --speed-only` on {device}: Flux architecture, hidden {config['hidden']}, "
        f"{config['depth']} double + {config['single']} single blocks, {(config['latent'] // 2) ** 2} image tokens, {config['dtype']}, "
        f"{config['steps']} Euler steps, cfg 1 (guidance-distilled), random weights. Median of 3 runs. Uncached: {base_time:.3f} s.",
        "",
        "| Method | Setting | Steps computed | Speedup | Ideal | Realized/ideal |",
        "|---|---|---|---|---|---|",
    ]
    for method, node_id, values in SETTINGS:
        before = len(reports)
        seconds, macs = timed(cachekit_node(node_id, model, **values))
        report = reports[before]
        speedup, ideal = base_time / seconds, base_macs / macs
        setting = ", ".join(f"{k}={v}" for k, v in values.items()) or "defaults"
        lines.append(f"| {method} | {setting} | {report.steps_computed}/{report.steps_evaluated} | {speedup:.2f}x | {ideal:.2f}x | {speedup / ideal:.0%} |")
        print(lines[-1], flush=True)
    (out / "speed_only.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'speed_only.md'}")
    return 0
