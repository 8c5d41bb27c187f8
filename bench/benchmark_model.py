"""The benchmark model: a small Flux-architecture transformer trained on procedural images.

Shared by train_model.py (which makes the checkpoint) and run_benchmark.py (which samples it).
Images are 32x32 RGB, class-conditional: discs, stripes, squares and gradients in random colours.
They enter a 16-channel latent of 16x16 through a fixed linear map (2x2 pixel-unshuffle to 12
channels, then an orthonormal 12 -> 16 embedding), so a sampled latent maps back to RGB exactly.
Each class is "prompted" by fixed random text tokens and a pooled vector; the null prompt (zeros)
is the unconditional branch of classifier-free guidance.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ModelSpec:
    """One benchmark model: its architecture (Flux, sizes only) and checkpoint."""

    name: str
    heads: int
    head_dim: int
    depth: int  # double-stream blocks
    depth_single: int  # single-stream blocks
    axes: tuple[int, int, int]  # RoPE axes, summing to head_dim
    train_steps: int  # what train_model.py trains by default
    context_dim: int = 64
    pooled_dim: int = 64
    tokens: int = 4

    @property
    def checkpoint(self) -> Path:
        return ROOT / "model" / ("cachekit_bench_flux.safetensors" if self.name == "small" else f"cachekit_bench_flux_{self.name}.safetensors")

    @property
    def hidden(self) -> int:
        return self.heads * self.head_dim

    @property
    def blocks(self) -> int:
        return self.depth + self.depth_single

    def describe(self) -> str:
        return f"{self.depth} double + {self.depth_single} single blocks, hidden {self.hidden}"

    def __getitem__(self, key: str) -> Any:  # the old CONFIG dict's keys
        return getattr(self, key)


MODELS = {
    # The first benchmark model: 9 blocks (the existing results were made with it).
    "small": ModelSpec("small", heads=2, head_dim=64, depth=3, depth_single=6, axes=(8, 28, 28), train_steps=3000),
    # A deeper, narrower one (less work per step, 3.6 MiB): 24 blocks, so that front/back block choices
    # (cache-dit's Fn/Bn, CacheKit's Hybrid Block Cache) have room.
    "deep": ModelSpec("deep", heads=2, head_dim=32, depth=4, depth_single=20, axes=(4, 14, 14), train_steps=4000),
}
DEFAULT_MODEL = "deep"
CONFIG = MODELS["small"]  # kept for callers of the first version
CHECKPOINT = CONFIG.checkpoint
IMAGE_SIZE, LATENT_SIZE, CLASSES = 32, 16, ("disc", "stripes", "square", "gradient")
DATA_SCALE = 2.0  # latents ~ unit variance


def boot_comfy_for_benchmark() -> Path:
    """Import ComfyUI in this process (the test harness' boot, with the benchmark's arguments): on the GPU
    where there is one, else on the CPU; with PyTorch's scaled_dot_product_attention on both (ComfyUI's
    default on a GPU; on a CPU it would pick its sub-quadratic attention), so that ComfyUI and diffusers
    run the same attention kernel and the block-work count sees every attention call."""
    import sys

    from harness import comfy_env

    if comfy_env._booted is not None:
        return comfy_env._booted
    root = comfy_env.find_comfyui()
    if root is None:
        raise RuntimeError("no ComfyUI checkout found ($COMFYUI_PATH, ~/ComfyUI, .comfyui)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    saved_argv = sys.argv
    sys.argv = [saved_argv[0] if saved_argv else "bench", "--use-pytorch-cross-attention"] + ([] if torch.cuda.is_available() else ["--cpu"])
    try:
        import comfy.options

        comfy.options.enable_args_parsing()
        import comfy.model_management  # noqa: F401  (parses the arguments)
        import comfy.sample  # noqa: F401
    finally:
        sys.argv = saved_argv
    comfy_env._booted = root
    return root


def embedding_matrix() -> torch.Tensor:
    """The fixed orthonormal 12 -> 16 channel map [16, 12]."""
    q, _ = torch.linalg.qr(torch.randn(16, 12, generator=torch.Generator().manual_seed(1234)))
    return q


def image_to_latent(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, 32, 32] in [-1, 1] -> [B, 16, 16, 16]."""
    x = torch.nn.functional.pixel_unshuffle(images, 2)  # [B, 12, 16, 16]
    return torch.einsum("oc,bchw->bohw", embedding_matrix(), x) * DATA_SCALE


def latent_to_image(latents: torch.Tensor) -> torch.Tensor:
    """Inverse of image_to_latent (projects onto the data channels), clamped to [-1, 1]."""
    x = torch.einsum("oc,bohw->bchw", embedding_matrix(), latents.float()) / DATA_SCALE
    return torch.nn.functional.pixel_shuffle(x, 2).clamp(-1, 1)


def procedural_images(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random image per label, [B, 3, 32, 32] in [-1, 1]."""
    n = labels.numel()
    size = IMAGE_SIZE
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    fg = torch.rand(n, 3, 1, 1, generator=generator) * 2 - 1
    bg = torch.rand(n, 3, 1, 1, generator=generator) * 2 - 1
    cx, cy = (torch.rand(n, 2, generator=generator) * 0.5 + 0.25).unbind(1)
    extent = torch.rand(n, generator=generator) * 0.2 + 0.15
    freq = torch.randint(2, 6, (n,), generator=generator).float()
    angle = torch.rand(n, generator=generator) * torch.pi
    masks = []
    for i, label in enumerate(labels.tolist()):
        if CLASSES[label] == "disc":
            mask = (((xx - cx[i]) ** 2 + (yy - cy[i]) ** 2) < extent[i] ** 2).float()
        elif CLASSES[label] == "stripes":
            mask = (torch.sin((xx * torch.cos(angle[i]) + yy * torch.sin(angle[i])) * freq[i] * 2 * torch.pi) > 0).float()
        elif CLASSES[label] == "square":
            mask = (((xx - cx[i]).abs() < extent[i]) & ((yy - cy[i]).abs() < extent[i])).float()
        else:
            mask = (xx * torch.cos(angle[i]) + yy * torch.sin(angle[i])).sub(0.0).clamp(0, 1.4) / 1.4
        masks.append(mask)
    mask = torch.stack(masks)[:, None]
    return fg * mask + bg * (1 - mask)


def class_prompts(spec: ModelSpec = CONFIG) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed "text" tokens [C, T, D] and pooled vectors [C, P] per class (the same for every model spec)."""
    generator = torch.Generator().manual_seed(99)
    tokens = torch.randn(len(CLASSES), spec.tokens, spec.context_dim, generator=generator)
    pooled = torch.randn(len(CLASSES), spec.pooled_dim, generator=generator)
    return tokens, pooled


def make_diffusers_model(spec: ModelSpec = CONFIG) -> Any:
    """The architecture in diffusers (FluxTransformer2DModel, no guidance embedding: real CFG)."""
    from diffusers import FluxTransformer2DModel

    c = spec
    return FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=c["depth"], num_single_layers=c["depth_single"], attention_head_dim=c["head_dim"],
        num_attention_heads=c["heads"], joint_attention_dim=c["context_dim"], pooled_projection_dim=c["pooled_dim"],
        guidance_embeds=False, axes_dims_rope=c["axes"],
    )


def comfy_config(spec: ModelSpec = CONFIG) -> dict[str, Any]:
    """ComfyUI's Flux unet config for the same architecture."""
    c = spec
    return dict(
        image_model="flux", in_channels=16, out_channels=16, vec_in_dim=c["pooled_dim"], context_in_dim=c["context_dim"],
        hidden_size=c["heads"] * c["head_dim"], mlp_ratio=4.0, num_heads=c["heads"], depth=c["depth"], depth_single_blocks=c["depth_single"],
        axes_dim=list(c["axes"]), theta=10000, patch_size=2, qkv_bias=True, guidance_embed=False, txt_ids_dims=[],
    )


def to_comfy_state_dict(diffusers_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers keys -> ComfyUI Flux keys, with ComfyUI's own converter (on copies: it edits in place)."""
    import comfy.model_detection

    return comfy.model_detection.convert_diffusers_mmdit({k: v.detach().clone() for k, v in diffusers_state.items()}, "")


def load_comfy_model(spec: ModelSpec = CONFIG, dtype: torch.dtype = torch.float32) -> Any:
    """The checkpoint as a ComfyUI MODEL (ModelPatcher), built through ComfyUI's Flux classes."""
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models
    from safetensors.torch import load_file

    path = spec.checkpoint
    model_config = comfy.supported_models.Flux(comfy_config(spec))
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({})
    state = model_config.process_unet_state_dict(load_file(str(path)))  # ComfyUI's own key updates (0.33: norm .scale -> .weight)
    missing, unexpected = model.diffusion_model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{path.name} does not match the benchmark architecture: missing {missing}, unexpected {unexpected}")
    return comfy.model_patcher.ModelPatcher(
        model, load_device=comfy.model_management.get_torch_device(), offload_device=comfy.model_management.unet_offload_device()
    )


def load_diffusers_model(spec: ModelSpec = CONFIG, dtype: torch.dtype = torch.float32) -> Any:
    """The checkpoint in diffusers, mapped back with ComfyUI's own diffusers <-> Flux key map."""
    import comfy.supported_models
    import comfy.utils
    from safetensors.torch import load_file

    comfy_state = comfy.supported_models.Flux(comfy_config(spec)).process_unet_state_dict(load_file(str(spec.checkpoint)))
    key_map = comfy.utils.flux_to_diffusers({"depth": spec.depth, "depth_single_blocks": spec.depth_single, "hidden_size": spec.hidden})
    model = make_diffusers_model(spec)
    state = {}
    for diffusers_key in model.state_dict():
        target = key_map[diffusers_key]
        if isinstance(target, str):
            state[diffusers_key] = comfy_state[target]
            continue
        tensor = comfy_state[target[0]]
        if target[1] is not None:
            tensor = tensor.narrow(*target[1])
        state[diffusers_key] = target[2](tensor) if len(target) > 2 else tensor  # swap_scale_shift is its own inverse
    model.load_state_dict({k: v.to(dtype).contiguous() for k, v in state.items()})
    return model.to(dtype).eval()
