"""The same tiny Flux weights in diffusers (FluxTransformer2DModel) and in ComfyUI (its Flux model).

Both sides sample with the same sigmas and the same Euler steps, so a CacheKit node on the ComfyUI
side can be compared step by step with diffusers' own hook on the diffusers side.

Conventions: ComfyUI's Flux takes latents [B, 16, H, W] and patchifies 2x2 itself; diffusers takes the
packed tokens [B, H/2 * W/2, 64] in the same (c, ph, pw) order, with img_ids (0, row, col) and zero
txt_ids. Both take the timestep as sigma (diffusers multiplies by 1000 inside, ComfyUI's timestep
embedding uses time_factor 1000) and guidance 3.5. diffusers returns the velocity; ComfyUI's
apply_model returns denoised = x - sigma * v, and its Euler step x + (s' - s)(x - denoised)/s is the
same update (ComfyUI finally maps the result to VAE space, which euler_comfy undoes). Weights go from diffusers to ComfyUI with ComfyUI's own key map
(comfy.model_detection.convert_diffusers_mmdit).
"""
from __future__ import annotations

from typing import Any, Callable

import torch

HEADS, HEAD_DIM, DEPTH, SINGLE = 2, 32, 2, 3
CONTEXT_DIM, POOLED_DIM, GUIDANCE = 64, 768, 3.5
AXES = (8, 12, 12)


def make_diffusers_flux(seed: int = 0) -> Any:
    """A tiny guidance-distilled FluxTransformer2DModel with seeded, non-degenerate weights."""
    from diffusers import FluxTransformer2DModel

    model = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=DEPTH, num_single_layers=SINGLE, attention_head_dim=HEAD_DIM,
        num_attention_heads=HEADS, joint_attention_dim=CONTEXT_DIM, pooled_projection_dim=POOLED_DIM,
        guidance_embeds=True, axes_dims_rope=AXES,
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.dim() >= 2:
                parameter.copy_(noise / parameter.shape[1] ** 0.5)
            elif name.endswith("norm.weight") or ".norm_" in name and name.endswith("weight"):
                parameter.copy_(1.0 + 0.02 * noise)
            else:
                parameter.copy_(0.02 * noise)
    return model.eval()


def to_comfy_flux(diffusers_model: Any) -> Any:
    """ComfyUI's Flux ModelPatcher holding the same weights."""
    import comfy.model_detection
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    from harness.tiny_models import flux_blueprint, tiny_config

    # this ComfyUI's own Flux config (detected from a probe of its Flux class), only the sizes set (harness/tiny_models.py)
    config = tiny_config(flux_blueprint(vec_in_dim=POOLED_DIM, context_in_dim=CONTEXT_DIM, hidden_size=HEADS * HEAD_DIM,
                                        num_heads=HEADS, depth=DEPTH, depth_single_blocks=SINGLE, axes_dim=list(AXES)))
    model_config = comfy.supported_models.Flux(config)
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({})
    # convert_diffusers_mmdit rewrites some tensors in place, so it gets copies of diffusers' weights
    weights = {k: v.detach().clone() for k, v in diffusers_model.state_dict().items()}
    converted = comfy.model_detection.convert_diffusers_mmdit(weights, "")
    missing, unexpected = model.diffusion_model.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"weights did not map: missing {missing}, unexpected {unexpected}")
    return comfy.model_patcher.ModelPatcher(
        model, load_device=comfy.model_management.get_torch_device(), offload_device=comfy.model_management.unet_offload_device()
    )


def conditioning(seed: int = 1, length: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Text tokens [1, L, 64] and the pooled vector [1, 768]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, length, CONTEXT_DIM, generator=generator), torch.randn(1, POOLED_DIM, generator=generator)


def pack(latents: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, H/2 * W/2, C * 4] in (c, ph, pw) order."""
    b, c, h, w = latents.shape
    return latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of `pack`."""
    b, _, d = tokens.shape
    c = d // 4
    return tokens.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def image_ids(h: int, w: int) -> torch.Tensor:
    """diffusers' img_ids for an H x W latent: (0, row, col) per 2x2 patch."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] = torch.arange(h // 2)[:, None]
    ids[..., 2] = torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3)


def euler_diffusers(model: Any, noise: torch.Tensor, sigmas: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor,
                    on_step: Callable[[int], None] | None = None) -> torch.Tensor:
    """diffusers-side sampling: x_{i+1} = x_i + (sigma_{i+1} - sigma_i) * v_i, inside cache_context("cond")."""
    _, _, h, w = noise.shape
    x = pack(noise)
    img_ids, txt_ids = image_ids(h, w), torch.zeros(context.shape[1], 3)
    guidance = torch.full((1,), GUIDANCE)
    with torch.no_grad():
        for i in range(len(sigmas) - 1):
            if on_step is not None:
                on_step(i)
            timestep = sigmas[i].reshape(1)
            kwargs = dict(hidden_states=x, encoder_hidden_states=context, pooled_projections=pooled, timestep=timestep,
                          img_ids=img_ids, txt_ids=txt_ids, guidance=guidance, return_dict=False)
            if getattr(model, "is_cache_enabled", False):
                with model.cache_context("cond"):
                    velocity = model(**kwargs)[0]
            else:
                velocity = model(**kwargs)[0]
            x = x + (sigmas[i + 1] - sigmas[i]) * velocity
    return unpack(x, h, w)


def euler_comfy(model: Any, noise: torch.Tensor, sigmas: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """ComfyUI-side sampling with its real euler sampler (cfg 1, guidance as a conditioning value)."""
    import comfy.sample
    import comfy.samplers

    positive = [[context, {"pooled_output": pooled, "guidance": GUIDANCE}]]
    negative = [[torch.zeros_like(context), {"pooled_output": torch.zeros_like(pooled), "guidance": GUIDANCE}]]
    latent = torch.zeros_like(noise)
    out = comfy.sample.sample_custom(model, noise, 1.0, comfy.samplers.sampler_object("euler"), sigmas, positive, negative,
                                     latent, disable_pbar=True, seed=0)
    return model.get_model_object("latent_format").process_in(out)  # undo the VAE-space scaling ComfyUI applies at the end


def flux_sigmas(model: Any, steps: int) -> torch.Tensor:
    """ComfyUI's simple schedule for the Flux model (used on both sides)."""
    import comfy.samplers

    return comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", steps).float()
