"""Tiny random-weight models loaded through ComfyUI's own classes and loaders, and helpers to sample them.

Tiny models must survive ComfyUI's constructor changes (new required fields, new flags), so nothing here
hand-writes a full constructor config. A ``Blueprint`` names a family's ``comfy.ldm`` class and only its
tiny *sizes* (widths, heads, depths, context dims, axes). From it:

1. a probe module of that class is built on the meta device (constructor fields that this ComfyUI requires
   and the blueprint does not give get a placeholder -- False, [] or None -- only to get the key layout);
2. ComfyUI's own ``comfy.model_detection.detect_unet_config`` reads the probe's state dict, which gives this
   ComfyUI's complete config for the family;
3. only the size fields are replaced by the tiny sizes;
4. the family's ``comfy.supported_models`` class builds the model (``set_inference_dtype(float32)``,
   ``get_model``), every tensor gets seeded ``randn * 0.05`` (strict load), and it is wrapped in a ModelPatcher.

Where ComfyUI's detection already reads every size from the weights (Wan, HunyuanVideo), the probe's random
state dict goes through ComfyUI's loader itself (``comfy.sd.load_diffusion_model``, what UNETLoader does).

- wan21: a Wan 2.1 T2V checkpoint (.safetensors) loaded by UNETLoader's route.
- hunyuan_video: the same route for HunyuanVideo (Flux-style double and single blocks).
- flux: the config route, since detection hard-codes Flux's full widths.
Weights are seeded, so every call builds the same model.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import inspect
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch

FAMILIES = ("wan21", "hunyuan_video", "flux")
WEIGHT_SCALE = 0.05


# --------------------------------------------------------------------------------------------------------------------
# Blueprints: a family's comfy.ldm class plus tiny sizes; the rest of the config comes from ComfyUI


@dataclasses.dataclass(frozen=True)
class Blueprint:
    """How to build one tiny model from ComfyUI's own definition of its family.

    ``sizes`` replace what detection reads or hard-codes for widths, heads, depths, context dims and axes;
    ``layout`` holds the few further constructor arguments the probe needs to get the family's key layout
    (flags such as qk-norm, or ``image_model``); it never reaches the final config, which is detection's.
    ``params`` is the dataclass the class fills from ``**kwargs`` (FluxParams, ...), whose fields that this
    ComfyUI requires and the blueprint lacks get placeholders in the probe.
    ``route``: "config" (detected config, sizes replaced, built by ``supported_model``) or "detection" (ComfyUI's
    detection reads every size from the probe's weights, so the probe's state dict is the checkpoint and ComfyUI's
    loader builds the model; ``supported_model`` is what detection must pick).
    ``probe`` (config route only): sizes the probe takes instead of ``sizes`` where ComfyUI's detection only knows the
    family at its real width (Z-Image is the Lumina 2 layout at dim 3840); the probe is on the meta device, so that
    costs nothing, and the final config still gets ``sizes``.
    ``metadata`` (detection route only): the checkpoint's ``config.transformer`` safetensors metadata, which ComfyUI's
    detection lays over what it reads from the weights (Wan FlowRVS and Animate 2 checkpoints name their model_type
    there; nothing in their weights tells them apart).
    ``checkpoint_prefix``: what the family's released checkpoints put before the module's keys and its
    supported_models class strips in process_unet_state_dict (PixelDiT's ``core.``); detection looks for it.
    ``extra_weights`` (config route): weights outside the diffusion model that the supported_models class's get_model
    reads from the checkpoint, as {key prefix: (class path, constructor kwargs)}; each module gets seeded random
    weights (Stable Audio's seconds_start / seconds_total number conditioners).
    """

    ldm_class: str  # dotted path of the comfy.ldm class
    supported_model: str  # the comfy.supported_models class that builds the final model
    sizes: dict[str, Any]
    layout: dict[str, Any] = dataclasses.field(default_factory=dict)
    params: str | None = None
    route: str = "config"
    probe: dict[str, Any] = dataclasses.field(default_factory=dict)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    checkpoint_prefix: str = ""
    extra_weights: dict[str, tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=dict)


def _import(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _placeholder(annotation: Any) -> Any:
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    if kind == "bool":
        return False
    if kind in ("list", "tuple") or kind.startswith(("list", "tuple")):
        return []
    return None  # optional widths (vec_in_dim, vision_in_dim, ...): None means "no such layer"


def _probe_kwargs(blueprint: Blueprint) -> dict[str, Any]:
    """Constructor arguments for the probe, fitted to this release's constructor: layout and sizes, merged with the
    supported_models class's unet_extra_config as its get_model does (config route; a checkpoint has none)."""
    import comfy.supported_models

    extra = getattr(comfy.supported_models, blueprint.supported_model).unet_extra_config if blueprint.route == "config" else {}
    kwargs = {**blueprint.layout, **blueprint.sizes, **blueprint.probe, **extra}
    if blueprint.params is None:
        return kwargs
    fields = {f.name: f for f in dataclasses.fields(_import(blueprint.params))}
    accepted = set(inspect.signature(_import(blueprint.ldm_class)).parameters)
    kwargs = {k: v for k, v in kwargs.items() if k in fields or k in accepted}  # a field an older release lacks
    for name, field in fields.items():
        if name not in kwargs and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            kwargs[name] = _placeholder(field.type)
    return kwargs


def probe_module(blueprint: Blueprint) -> torch.nn.Module:
    """The family's comfy.ldm module at the blueprint's sizes, on the meta device (on the CPU for the few
    constructors that compute with their own tensors)."""
    import comfy.ops

    cls, kwargs = _import(blueprint.ldm_class), _probe_kwargs(blueprint)
    try:
        with torch.device("meta"):
            return cls(**kwargs, operations=comfy.ops.disable_weight_init)
    except (RuntimeError, NotImplementedError):  # e.g. .item() on a meta tensor inside the constructor
        return cls(**kwargs, operations=comfy.ops.disable_weight_init)


def random_state(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Seeded randn * WEIGHT_SCALE for every tensor of `module`, in its state-dict order."""
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=generator) * WEIGHT_SCALE for k, v in module.state_dict().items()}


def detected_config(blueprint: Blueprint) -> dict[str, Any]:
    """This ComfyUI's own config for the family: detect_unet_config on the probe's state dict."""
    import comfy.model_detection

    state = {blueprint.checkpoint_prefix + k: v for k, v in probe_module(blueprint).state_dict().items()}
    config = comfy.model_detection.detect_unet_config(state, "")
    if config is None:
        raise RuntimeError(f"ComfyUI does not detect a {blueprint.ldm_class} state dict")
    return config


def tiny_config(blueprint: Blueprint) -> dict[str, Any]:
    """The detected config with only the size fields replaced by the tiny sizes."""
    return {**detected_config(blueprint), **blueprint.sizes}


def build(blueprint: Blueprint, seed: int = 0) -> Any:
    """A ComfyUI ModelPatcher built by the family's supported_models class from tiny_config, seeded weights."""
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    supported = getattr(comfy.supported_models, blueprint.supported_model)
    model_config = supported(tiny_config(blueprint))
    # A supported_models class lays its unet_extra_config over the config; where that fixes widths (Ideogram 4's 18 x 256
    # heads) the tiny sizes still win, and nothing else of it changes.
    model_config.unet_config.update({k: v for k, v in blueprint.sizes.items() if k in supported.unet_extra_config})
    model_config.set_inference_dtype(torch.float32, None)
    checkpoint = {}
    for index, (prefix, (path, kwargs)) in enumerate(sorted(blueprint.extra_weights.items())):
        checkpoint.update({prefix + k: v for k, v in random_state(_import(path)(**kwargs), seed + 1000 + index).items()})
    model = model_config.get_model(checkpoint)
    model.diffusion_model.load_state_dict(random_state(model.diffusion_model, seed), strict=True)
    return comfy.model_patcher.ModelPatcher(
        model, load_device=comfy.model_management.get_torch_device(), offload_device=comfy.model_management.unet_offload_device()
    )


# --------------------------------------------------------------------------------------------------------------------
# The three families of the method tests


FLUX_SIZES = dict(in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=64, hidden_size=64, num_heads=2,
                  mlp_ratio=4.0, depth=2, depth_single_blocks=2, axes_dim=[8, 12, 12], patch_size=2)
FLUX_LAYOUT = dict(image_model="flux", theta=10000, qkv_bias=True, guidance_embed=True)


def flux_blueprint(layout: dict[str, Any] | None = None, **sizes: Any) -> Blueprint:
    """The tiny Flux (hidden 64, two heads, two double and two single blocks); `sizes` override any size, `layout` the
    probe's flags (e.g. guidance_embed=False for a model without guidance distillation)."""
    return Blueprint("comfy.ldm.flux.model.Flux", "Flux", {**FLUX_SIZES, **sizes}, {**FLUX_LAYOUT, **(layout or {})},
                     "comfy.ldm.flux.model.FluxParams")


def wan21_blueprint(num_layers: int = 3, dim: int = 128) -> Blueprint:
    """A Wan 2.1 T2V (default dim 128, one head per 128) that ComfyUI detects as WAN21_T2V."""
    return Blueprint("comfy.ldm.wan.model.WanModel", "WAN21_T2V", dict(
        dim=dim, ffn_dim=2 * dim, num_heads=max(dim // 128, 1), num_layers=num_layers, in_dim=16, out_dim=16, text_dim=4096,
    ), dict(model_type="t2v"), route="detection")


VACE_WAN21 = Blueprint("comfy.ldm.wan.model.VaceWanModel", "WAN21_Vace", dict(
    dim=128, ffn_dim=256, num_heads=1, num_layers=2, in_dim=16, out_dim=16, text_dim=4096, vace_layers=1, vace_in_dim=96,
), route="detection")

HUNYUAN_VIDEO = Blueprint("comfy.ldm.hunyuan_video.model.HunyuanVideo", "HunyuanVideo", dict(
    in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=64, hidden_size=128, mlp_ratio=4.0, num_heads=1,
    depth=2, depth_single_blocks=2, axes_dim=[16, 56, 56], patch_size=[1, 2, 2],
), dict(theta=256, qkv_bias=True, guidance_embed=True, byt5=False, meanflow=False),
    "comfy.ldm.hunyuan_video.model.HunyuanVideoParams", route="detection")


def wan21_state_dict(seed: int = 0, num_layers: int = 3, dim: int = 128) -> dict[str, torch.Tensor]:
    """A Wan 2.1 T2V state dict (default dim 128, one head per 128) that ComfyUI detects as WAN21_T2V."""
    return random_state(probe_module(wan21_blueprint(num_layers, dim)), seed)


def vace_wan21_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A Wan 2.1 VACE state dict: a family variant that injects hints inside the block loop."""
    return random_state(probe_module(VACE_WAN21), seed)


def hunyuan_video_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A HunyuanVideo state dict (hidden 128, two double and two single blocks)."""
    return random_state(probe_module(HUNYUAN_VIDEO), seed)


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


def flux_config() -> dict[str, Any]:
    """The tiny Flux's complete config on this ComfyUI (detected, sizes replaced)."""
    return tiny_config(flux_blueprint())


def tiny_flux_controlnet(seed: int = 0) -> Any:
    """A ComfyUI ControlNet object around a tiny XLabs-style ControlNetFlux matching tiny_flux."""
    import comfy.controlnet
    import comfy.ops
    from comfy.ldm.flux.controlnet import ControlNetFlux

    module = ControlNetFlux(mistoline=False, operations=comfy.ops.manual_cast, device="cpu", dtype=torch.float32, **flux_config())
    module.load_state_dict(random_state(module, seed))
    return comfy.controlnet.ControlNet(module, load_device=torch.device("cpu"), manual_cast_dtype=None, extra_conds=["y", "guidance"])


def tiny_flux(seed: int = 0, **sizes: Any) -> Any:
    """A tiny Flux (hidden 64, two heads, two double and two single blocks) built by supported_models.Flux."""
    return build(flux_blueprint(**sizes), seed)


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


# --------------------------------------------------------------------------------------------------------------------
# Split CFG


@contextlib.contextmanager
def force_split_cfg() -> Iterator[None]:
    """Make ComfyUI evaluate cond and uncond in separate forwards, as it does when memory is short.

    ComfyUI's rule (the same from 0.3.60 to 0.33): it joins several conditionings into one forward only
    while ``model.memory_required(joined input shape, cond_shapes=...) * 1.5`` is below the free memory.
    Inside this context every diffusion model reports that an input joining more than one conditioning
    (``cond_shapes`` holding more than one shape for a key) needs more memory than any machine has, so each
    conditioning runs on its own, as on a small GPU. An input of one conditioning, whatever its latent batch,
    reports what it always does. (The sampling-time estimate that also joins every conditioning only sizes
    model loading, which the CPU ignores.) Tests count forwards to check the split really happens.
    """
    import comfy.model_base

    original = comfy.model_base.BaseModel.memory_required

    def memory_required(self: Any, input_shape: Any, cond_shapes: Any = {}, *args: Any, **kwargs: Any) -> Any:
        if any(len(shapes) > 1 for shapes in dict(cond_shapes).values()):
            return MORE_THAN_ANY_MACHINE_HAS
        return original(self, input_shape, cond_shapes, *args, **kwargs)

    comfy.model_base.BaseModel.memory_required = memory_required
    try:
        yield
    finally:
        comfy.model_base.BaseModel.memory_required = original


MORE_THAN_ANY_MACHINE_HAS = float(2 ** 70)  # bytes


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
