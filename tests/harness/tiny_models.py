"""Tiny random-weight models loaded through ComfyUI's own classes and loaders, and helpers to sample them.

- wan21: a Wan 2.1 T2V state dict saved as .safetensors and loaded by `comfy.sd.load_diffusion_model`
  (what UNETLoader does), so ComfyUI's model detection really runs.
- hunyuan_video: the same route for HunyuanVideo (Flux-style double and single blocks).
- flux: built from a config, since detection hard-codes Flux's full widths.
Weights are seeded, so every call builds the same model.
"""
from __future__ import annotations

import contextlib
import functools
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch

FAMILIES = ("wan21", "hunyuan_video", "flux")
WEIGHT_SCALE = 0.05


def _randomize(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=generator) * WEIGHT_SCALE for k, v in module.state_dict().items()}


def wan21_state_dict(seed: int = 0, num_layers: int = 3, dim: int = 128) -> dict[str, torch.Tensor]:
    """A Wan 2.1 T2V state dict (default dim 128, one head per 128) that ComfyUI detects as WAN21_T2V."""
    import comfy.ops
    from comfy.ldm.wan.model import WanModel

    with torch.device("meta"):
        module = WanModel(model_type="t2v", dim=dim, ffn_dim=2 * dim, num_heads=dim // 128, num_layers=num_layers, in_dim=16, out_dim=16,
                          text_dim=4096, operations=comfy.ops.disable_weight_init)
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=generator) * WEIGHT_SCALE for k, v in module.state_dict().items()}


def vace_wan21_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A Wan 2.1 VACE state dict: a family variant that injects hints inside the block loop."""
    import comfy.ops
    from comfy.ldm.wan.model import VaceWanModel

    with torch.device("meta"):
        module = VaceWanModel(dim=128, ffn_dim=256, num_heads=1, num_layers=2, in_dim=16, out_dim=16, text_dim=4096,
                              vace_layers=1, vace_in_dim=96, operations=comfy.ops.disable_weight_init)
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=generator) * WEIGHT_SCALE for k, v in module.state_dict().items()}


def hunyuan_video_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A HunyuanVideo state dict (hidden 128, two double and two single blocks)."""
    import comfy.ops
    from comfy.ldm.hunyuan_video.model import HunyuanVideo

    with torch.device("meta"):
        module = HunyuanVideo(
            in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=64, hidden_size=128, mlp_ratio=4.0, num_heads=1,
            depth=2, depth_single_blocks=2, axes_dim=[16, 56, 56], theta=256, patch_size=[1, 2, 2], qkv_bias=True,
            guidance_embed=True, byt5=False, meanflow=False, operations=comfy.ops.disable_weight_init,
        )
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=generator) * WEIGHT_SCALE for k, v in module.state_dict().items()}


STATE_DICTS = {"wan21": wan21_state_dict, "vace_wan21": vace_wan21_state_dict, "hunyuan_video": hunyuan_video_state_dict}


def write_checkpoint(family: str, path: Path, seed: int = 0, dtype: torch.dtype = torch.float16, **sizes: int) -> Path:
    """Save a tiny model of `family` (a STATE_DICTS key) where UNETLoader can load it."""
    from safetensors.torch import save_file

    state = STATE_DICTS[family](seed, **sizes)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype).contiguous() for k, v in state.items()}, str(path))
    return path


@functools.lru_cache(maxsize=1)
def _checkpoint_directory() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="cachekit-tiny-")  # removed when the process exits


@functools.lru_cache(maxsize=None)
def _checkpoint(family: str, seed: int) -> str:
    directory = Path(_checkpoint_directory().name)
    return str(write_checkpoint(family, directory / f"{family}-{seed}.safetensors", seed, dtype=torch.float32))


FLUX_CONFIG = dict(image_model="flux", in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=64, hidden_size=64,
                   mlp_ratio=4.0, num_heads=2, depth=2, depth_single_blocks=2, axes_dim=[8, 12, 12], theta=10000,
                   patch_size=2, qkv_bias=True, guidance_embed=True)


def tiny_flux_controlnet(seed: int = 0) -> Any:
    """A ComfyUI ControlNet object around a tiny XLabs-style ControlNetFlux matching tiny_flux."""
    import comfy.controlnet
    import comfy.ops
    from comfy.ldm.flux.controlnet import ControlNetFlux

    module = ControlNetFlux(mistoline=False, operations=comfy.ops.manual_cast, device="cpu", dtype=torch.float32, **FLUX_CONFIG)
    module.load_state_dict(_randomize(module, seed))
    return comfy.controlnet.ControlNet(module, load_device=torch.device("cpu"), manual_cast_dtype=None, extra_conds=["y", "guidance"])


def tiny_flux(seed: int = 0) -> Any:
    """A config-built tiny Flux (hidden 64, two heads, two double and two single blocks)."""
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    model_config = comfy.supported_models.Flux(dict(FLUX_CONFIG))
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({})
    state = _randomize(model.diffusion_model, seed)
    model.diffusion_model.load_state_dict(state)
    return comfy.model_patcher.ModelPatcher(
        model, load_device=comfy.model_management.get_torch_device(), offload_device=comfy.model_management.unet_offload_device()
    )


def load_tiny(family: str, seed: int = 0) -> Any:
    """A ComfyUI ModelPatcher of a tiny `family` model (see FAMILIES)."""
    if family == "flux":
        return tiny_flux(seed)
    import comfy.sd

    return comfy.sd.load_diffusion_model(_checkpoint(family, seed), model_options={"dtype": torch.float32})


def make_conditioning(family: str, seed: int = 0, length: int = 8, batch: int = 1) -> list:
    """CONDITIONING for `family` without a text encoder."""
    generator = torch.Generator().manual_seed(seed)
    if family in ("wan21", "vace_wan21"):
        return [[torch.randn(batch, length, 4096, generator=generator), {}]]
    context = torch.randn(batch, length, 64, generator=generator)
    extra = {"pooled_output": torch.randn(batch, 768, generator=generator), "guidance": 3.5}
    return [[context, extra]]


def empty_latent(family: str, batch: int = 1) -> torch.Tensor:
    """A zero latent of the right layout: 5-D video latents for Wan and HunyuanVideo, 4-D for Flux."""
    if family == "flux":
        return torch.zeros(batch, 16, 8, 8)
    return torch.zeros(batch, 16, 1, 8, 8)


def run_sampler(
    model: Any, family: str, *, steps: int = 8, cfg: float = 1.0, sampler: str = "euler", scheduler: str = "simple",
    seed: int = 0, batch: int = 1, denoise: float = 1.0, start_step: int | None = None, last_step: int | None = None,
    latent: torch.Tensor | None = None, positive: list | None = None, negative: list | None = None,
) -> torch.Tensor:
    """Sample `model` like KSampler / KSamplerAdvanced with fixed noise and (by default) seeded conditioning."""
    import comfy.sample

    latent = empty_latent(family, batch) if latent is None else latent
    noise = comfy.sample.prepare_noise(latent, seed)
    positive = make_conditioning(family, seed=1) if positive is None else positive
    negative = make_conditioning(family, seed=2) if negative is None else negative
    return comfy.sample.sample(
        model, noise, steps, cfg, sampler, scheduler, positive, negative, latent, denoise=denoise,
        start_step=start_step, last_step=last_step, disable_pbar=True, seed=seed,
    )


def run_custom_sampler(model: Any, family: str, sigmas: torch.Tensor, *, cfg: float = 1.0, sampler: str = "euler",
                       seed: int = 0, latent: torch.Tensor | None = None) -> torch.Tensor:
    """Sample with explicit sigmas, like SamplerCustom / SamplerCustomAdvanced (e.g. after SplitSigmas)."""
    import comfy.sample
    import comfy.samplers

    latent = empty_latent(family) if latent is None else latent
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample_custom(
        model, noise, cfg, comfy.samplers.sampler_object(sampler), sigmas, make_conditioning(family, seed=1),
        make_conditioning(family, seed=2), latent, disable_pbar=True, seed=seed,
    )


@contextlib.contextmanager
def force_split_cfg() -> Iterator[None]:
    """Make ComfyUI evaluate cond and uncond in separate forwards (as it does when memory is short).

    Test-only: ComfyUI batches the branches when `memory_required * 1.5 < free memory`.
    """
    import sys

    import comfy.model_management

    original = comfy.model_management.get_free_memory

    def no_room_for_a_cfg_batch(*args: Any, **kwargs: Any) -> Any:
        if sys._getframe(1).f_code.co_name == "_calc_cond_batch":
            return 0
        return original(*args, **kwargs)

    comfy.model_management.get_free_memory = no_room_for_a_cfg_batch
    try:
        yield
    finally:
        comfy.model_management.get_free_memory = original


class BlockCounter:
    """Counts forward calls of a model's transformer blocks."""

    def __init__(self) -> None:
        self.calls = 0
        self.forwards = 0


@contextlib.contextmanager
def count_block_calls(model: Any) -> Iterator[BlockCounter]:
    """Count how often the blocks (and the whole diffusion model) run, with torch hooks (tests only)."""
    diffusion_model = model.get_model_object("diffusion_model")
    counter = BlockCounter()
    handles = []
    for name in ("double_blocks", "single_blocks", "blocks"):
        for block in getattr(diffusion_model, name, []):
            handles.append(block.register_forward_hook(lambda *_: setattr(counter, "calls", counter.calls + 1)))
    handles.append(diffusion_model.register_forward_hook(lambda *_: setattr(counter, "forwards", counter.forwards + 1)))
    try:
        yield counter
    finally:
        for handle in handles:
            handle.remove()
