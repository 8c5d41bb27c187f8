"""Tiny random-weight models of the other diffusion families in ComfyUI core, built through ComfyUI's own classes.

Each family is a ``harness.tiny_models.Blueprint`` (its ``comfy.ldm`` class and tiny sizes only), so the models follow
whatever config the running ComfyUI (0.3.60 to 0.33) defines. Two routes, both ending in a real ComfyUI ``ModelPatcher``:

- ``detection``: where ComfyUI's detection reads every size from the weights, a random state dict of the family's
  ``comfy.ldm`` module (a probe built on the meta device at the tiny sizes) goes through
  ``comfy.sd.load_diffusion_model_state_dict`` -- what UNETLoader does after reading the file -- so
  ``comfy/model_detection.py`` really picks the family's ``supported_models`` class. ``write_family_checkpoint`` saves
  the same state dict as .safetensors for UNETLoader / ``comfy.sd.load_diffusion_model``.
- ``config``: where detection hard-codes full widths (or block counts), ComfyUI's ``detect_unet_config`` reads the
  probe's state dict, only the size fields are replaced by the tiny sizes, and the family's ``comfy.supported_models``
  class builds the model (``set_inference_dtype(float32)`` + ``get_model``), like ``tiny_models.tiny_flux``.

Every tensor of the diffusion model is filled with seeded ``randn * 0.05`` (strict load), so a (family, seed) always
gives the same weights. ``family_conditioning`` builds CONDITIONING without a text encoder, with whatever extra keys the
family's ``BaseModel.extra_conds`` / ``forward`` need; ``family_latent`` gives a zero latent in the final layout (what
``comfy.sample.fix_empty_latent_channels`` would produce: 5-D for video latent formats, [B, 64, N] for Hunyuan3D).
``Family`` also records where the blocks live, which 'dit' patches_replace keys exist and whether forward goes through
the DIFFUSION_MODEL wrapper; tests/comfy/test_tiny_families.py checks those claims against the running ComfyUI.

Public API: ``FAMILY_NAMES``, ``FAMILIES`` (name -> ``Family``), ``BLUEPRINTS``, ``load_family``, ``family_config``,
``family_conditioning``, ``family_latent``, ``family_state_dict``, ``write_family_checkpoint``, ``sample_family``,
``UNAVAILABLE``.
"""
from __future__ import annotations

import functools
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .tiny_models import Blueprint, build, flux_blueprint, probe_module, random_state, tiny_config



# --------------------------------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class Family:
    """One tiny family: how to build it, what it expects, and where its blocks live."""

    name: str
    model_class: str  # type(patcher.model).__name__ (comfy.model_base)
    diffusion_class: str  # type(patcher.model.diffusion_model).__name__ (comfy.ldm...)
    latent_shape: tuple[int, ...]  # without the batch dimension
    route: str  # "detection" (comfy.sd.load_diffusion_model_state_dict) or "config" (supported_models class)
    supported_model: str  # the comfy.supported_models class that detection picks / that builds it
    context_dim: int
    block_lists: tuple[str, ...]  # attributes of diffusion_model holding the transformer blocks
    replace_keys: tuple[str, ...]  # 'dit' patches_replace key kinds: "double_block", "single_block", "block"; () = none
    diffusion_model_wrapper: bool  # does forward go through WrappersMP.DIFFUSION_MODEL
    cfg1: bool = True  # False: the model cannot run a lone cond batch (cfg == 1 / split cfg)
    extra: Callable[[torch.Generator, int, int], dict] | None = None  # (generator, batch, length) -> extra cond keys
    notes: str = ""


def _ones_mask(g: torch.Generator, batch: int, length: int) -> dict:
    return {"attention_mask": torch.ones(batch, length, dtype=torch.long)}


def _sd3_extra(g: torch.Generator, batch: int, length: int) -> dict:
    return {"pooled_output": torch.randn(batch, 2048, generator=g)}


def _hidream_extra(g: torch.Generator, batch: int, length: int) -> dict:
    return {
        "pooled_output": torch.randn(batch, 2048, generator=g),
        "conditioning_llama3": torch.randn(batch, HIDREAM_LLAMA_LAYERS, length, 4096, generator=g),
    }


def _kontext_extra(g: torch.Generator, batch: int, length: int) -> dict:
    return {
        "pooled_output": torch.randn(batch, 768, generator=g),
        "guidance": 2.5,
        # what ReferenceLatent (comfy_extras/nodes_edit_model.py) appends: a list of raw VAE latents [B, 16, h, w]
        "reference_latents": [torch.randn(1, 16, 8, 8, generator=g)],
    }


def _t5_only_extra(g: torch.Generator, batch: int, length: int) -> dict:
    # a T5-only text encoder still returns the key, as None (Flux.encode_adm reads kwargs["pooled_output"])
    return {"pooled_output": None}


def _sdxl_extra(g: torch.Generator, batch: int, length: int) -> dict:
    return {"pooled_output": torch.randn(batch, 1280, generator=g), "width": 64, "height": 64}


def _wan_i2v_extra(g: torch.Generator, batch: int, length: int) -> dict:
    # What WanImageToVideo sets: a VAE latent of the start image, its mask, and a CLIP-vision output
    # (model_base.WAN21.extra_conds reads .penultimate_hidden_states -> clip_fea, img_emb projects 1280 -> dim).
    mask = torch.ones(1, 1, 1, 8, 8)
    mask[:, :, :1] = 0.0
    return {
        "concat_latent_image": torch.randn(1, 16, 1, 8, 8, generator=g),
        "concat_mask": mask,
        "clip_vision_output": types.SimpleNamespace(penultimate_hidden_states=torch.randn(batch, 257, 1280, generator=g)),
    }


HIDREAM_LLAMA_LAYERS = 4
HYDIT_TEXT_LEN = 4
HYDIT_T5_DIM = 64


def _hydit_extra(g: torch.Generator, batch: int, length: int) -> dict:
    return {
        "attention_mask": torch.ones(batch, length, dtype=torch.long),
        "conditioning_mt5xl": torch.randn(batch, HYDIT_TEXT_LEN, HYDIT_T5_DIM, generator=g),
        "attention_mask_mt5xl": torch.ones(batch, HYDIT_TEXT_LEN, dtype=torch.long),
        "width": 64, "height": 64,
    }


def _size_extra(g: torch.Generator, batch: int, length: int) -> dict:
    return {"width": 64, "height": 64}


FAMILIES: dict[str, Family] = {}


def _register(family: Family) -> None:
    FAMILIES[family.name] = family


_register(Family(
    "qwen_image", "QwenImage", "QwenImageTransformer2DModel", (16, 1, 8, 8), "config", "QwenImage", 3584,
    ("transformer_blocks",), ("double_block",), True,
    notes="detection reads only in_channels and num_layers; widths (24 heads x 128, joint_attention_dim 3584) are defaults",
))
_register(Family(
    "ltxv", "LTXV", "LTXVModel", (128, 1, 8, 8), "detection", "LTXV", 4096,
    ("transformer_blocks",), ("double_block",), True, extra=_ones_mask,
    notes="detection: attention_head_dim = attn2.to_k rows // 32 (32 heads), so inner_dim 128 = 32 heads x 4; "
          "forward's attention_mask has no default, so the conditioning carries one",
))
_register(Family(
    "sd3", "SD3", "OpenAISignatureMMDITWrapper", (16, 8, 8), "detection", "SD3", 4096,
    ("joint_blocks",), ("double_block",), False, extra=_sd3_extra,
    notes="detection: hidden = 64 * depth, heads = depth; depth 2 -> hidden 128, 2 heads",
))
_register(Family(
    "sd35", "SD3", "OpenAISignatureMMDITWrapper", (16, 8, 8), "detection", "SD3", 4096,
    ("joint_blocks",), ("double_block",), False, extra=_sd3_extra,
    notes="SD3.5 Medium layout: rms qk-norm (ln_q) and x_block_self_attn (attn2) in joint_blocks[0]",
))
_register(Family(
    "mochi", "GenmoMochi", "AsymmDiTJoint", (12, 1, 8, 8), "config", "GenmoMochi", 256,
    ("blocks",), ("double_block",), False, extra=_ones_mask,
    notes="detection hard-codes the full 48 x 3072 model; AsymmetricJointBlock asserts hidden_x * mlp_ratio_x == 12288, "
          "so mlp_ratio_x is 96 at width 128; t5_feat_dim 256 instead of 4096 keeps AttentionPool small",
))
_register(Family(
    "auraflow", "AuraFlow", "MMDiT", (4, 8, 8), "config", "AuraFlow", 2048,
    ("double_layers", "single_layers"), ("double_block", "single_block"), True,
    notes="detection reads max_seq, cond_seq_dim and layer counts only; dim 3072 / 12 heads are constructor defaults",
))
_register(Family(
    "chroma", "Chroma", "Chroma", (16, 8, 8), "config", "Chroma", 4096,
    ("double_blocks", "single_blocks"), ("double_block", "single_block"), True, extra=_t5_only_extra,
    notes="detection shares Flux's hard-coded widths (3072 / 24 heads / context 4096)",
))
_register(Family(
    "lumina2", "Lumina2", "NextDiT", (16, 8, 8), "config", "Lumina2", 2304,
    ("layers",), (), True, extra=_ones_mask,
    notes="detection hard-codes dim 2304 / 24 heads; forward needs num_tokens, which extra_conds derives from attention_mask",
))
_register(Family(
    "hidream", "HiDream", "HiDreamImageTransformer2DModel", (16, 8, 8), "config", "HiDream", 4096,
    ("double_stream_blocks", "single_stream_blocks"), (), True, extra=_hidream_extra,
    notes=f"detection hard-codes the full model; conditioning_llama3 is [B, {HIDREAM_LLAMA_LAYERS}, L, 4096] "
          "(llama_layers = [0, 1, 2, 3])",
))
_register(Family(
    "cosmos_t2v", "CosmosVideo", "GeneralDIT", (16, 1, 8, 8), "config", "CosmosT2V", 1024,
    ("blocks",), (), True,
    notes="detection forces 36 blocks / 40 heads for any width other than 4096; blocks is a ModuleDict 'block{i}' "
          "(iterating it yields names) and the blocks see x as [T, H, W, B, D]: batch is dim 3",
))
_register(Family(
    "cosmos_predict2", "CosmosPredict2", "MiniTrainDIT", (16, 1, 8, 8), "config", "CosmosT2IPredict2", 1024,
    ("blocks",), (), True,
    notes="detection sets block/head counts only for widths 2048 and 5120 (else 10 blocks x 16 heads; widths < 192 then "
          "divide by zero in the RoPE ntk factor)",
))
_register(Family(
    "hunyuan_image21", "HunyuanImage21", "HunyuanVideo", (64, 8, 8), "detection", "HunyuanImage21", 3584,
    ("double_blocks", "single_blocks"), ("double_block", "single_block"), True,
    notes="HunyuanVideo class with a 2-D patch_size [1, 1] and no vector_in; detection: heads = hidden // 128",
))
_register(Family(
    "hunyuan3d_v2", "Hunyuan3Dv2", "Hunyuan3Dv2", (64, 64), "detection", "Hunyuan3Dv2", 1536,
    ("double_blocks", "single_blocks"), ("double_block", "single_block"), True,
    notes="1-D latent [B, 64, N]; detection fixes 16 heads (head dim 8 at width 128); no RoPE (pe=None)",
))
_register(Family(
    "hunyuan3d_v21", "Hunyuan3Dv2_1", "HunYuanDiTPlain", (64, 64), "detection", "Hunyuan3Dv2_1", 1024,
    ("blocks",), ("block",), False, cfg1=False,
    notes="forward splits context with chunk(2) into (uncond, cond) halves: it only runs when cond and uncond share "
          "one batch, so cfg 1 (uncond dropped), split cfg and cond/uncond of different lengths all fail",
))
_register(Family(
    "wan22_5b", "WAN22", "WanModel", (48, 1, 8, 8), "detection", "WAN22_T2V", 4096,
    ("blocks",), ("double_block",), True,
    notes="detected through out_dim 48 (head.head rows // 4); in_dim 48; Wan22 48-channel latent",
))
_register(Family(
    "wan21_i2v", "WAN21", "WanModel", (16, 1, 8, 8), "detection", "WAN21_I2V", 4096,
    ("blocks",), ("double_block",), True, extra=_wan_i2v_extra,
    notes="i2v because img_emb.proj.0.bias exists; in_dim 36 = 16 noise + 4 mask + 16 image (c_concat)",
))
_register(Family(
    "flux_kontext", "Flux", "Flux", (16, 8, 8), "config", "Flux", 64,
    ("double_blocks", "single_blocks"), ("double_block", "single_block"), True, extra=_kontext_extra,
    notes="the tiny Flux with conditioning['reference_latents'] (ReferenceLatent); the ref tokens are appended to the "
          "img stream and cut off after the final layer",
))
_register(Family(
    "sd15", "BaseModel", "UNetModel", (4, 8, 8), "config", "SD15", 768,
    ("input_blocks", "middle_block", "output_blocks"), (), True,
    notes="supported_models.SD15 matches model_channels 320 only; tiny: 64 channels, channel_mult [1, 2], 8 heads",
))
_register(Family(
    "sdxl", "SDXL", "UNetModel", (4, 8, 8), "config", "SDXL", 2048, ("input_blocks", "middle_block", "output_blocks"), (),
    True, extra=_sdxl_extra,
    notes="supported_models.SDXL matches model_channels 320 only; tiny: 64 channels, heads of 64, adm 2816",
))

# Beyond the requested list: other image families in ComfyUI core that build the same way.
_register(Family(
    "chroma_radiance", "ChromaRadiance", "ChromaRadiance", (3, 32, 32), "config", "ChromaRadiance", 4096,
    ("double_blocks", "single_blocks", "nerf_blocks"), ("double_block", "single_block"), True, extra=_t5_only_extra,
    notes="pixel space (3 channels, patch 16, so 32x32 pixels = 4 tokens); Chroma's blocks, then a NeRF head per patch",
))
_register(Family(
    "omnigen2", "Omnigen2", "OmniGen2Transformer2DModel", (16, 8, 8), "config", "Omnigen2", 2048,
    ("layers",), (), False, extra=_ones_mask,
    notes="detection hard-codes the full model; Lumina-style refiners, then layers over cat(text, ref images, image)",
))
_register(Family(
    "pixart_sigma", "PixArt", "PixArtMS", (4, 48, 48), "config", "PixArtSigma", 4096,
    ("blocks",), (), False, extra=_size_extra,
    notes="detection hard-codes hidden 1152 / 16 heads; EPS model with learned sigma (returns the first 4 channels); "
          "latents under 48x48 divide by zero in the sin-cos pos embed (round((H + W) / 2 / 64) == 0)",
))
_register(Family(
    "hunyuan_dit", "HunyuanDiT", "HunYuanDiT", (4, 8, 8), "config", "HunyuanDiT", 1024,
    ("blocks",), ("double_block",), False, extra=_hydit_extra,
    notes=f"depth must be even (U-Net skips push d//2 - 1, pop d - d//2 - 1); text_len and text_len_t5 are "
          f"{HYDIT_TEXT_LEN}: the CLIP context needs >= {HYDIT_TEXT_LEN} tokens, the mT5 part is always that long; "
          f"mT5 width {HYDIT_T5_DIM} instead of 2048 keeps mlp_t5 small; forward writes into the context in place",
))

FAMILY_NAMES: tuple[str, ...] = tuple(FAMILIES)

UNAVAILABLE: dict[str, str] = {
    "z_image": "Z-Image has no tiny model here: ComfyUI 0.3.60 to 0.3.64 do not know it (comfy/ldm/lumina/model.py "
               "has only NextDiT's Lumina 2 layout; Z-Image landed later, in the NextDiT class of later releases).",
}


# --------------------------------------------------------------------------------------------------------------------
# Blueprints: each family's comfy.ldm class and tiny sizes (harness.tiny_models.Blueprint). Detection route: the sizes
# are the probe's whole constructor input and ComfyUI's loader builds the model from the probe's weights. Config route:
# ComfyUI's detection reads the probe, and only the sizes below replace what it reads or hard-codes.

_FLUX_PARAMS = "comfy.ldm.flux.model.FluxParams"
_CHROMA_SIZES = dict(in_channels=64, out_channels=64, context_in_dim=4096, hidden_size=128, mlp_ratio=4.0, num_heads=2,
                     depth=2, depth_single_blocks=2, axes_dim=[16, 24, 24], patch_size=2, in_dim=64, out_dim=128,
                     hidden_dim=128, n_layers=2)
_CHROMA_LAYOUT = dict(theta=10000, qkv_bias=True)

BLUEPRINTS: dict[str, Blueprint] = {
    # detection route
    "ltxv": Blueprint("comfy.ldm.lightricks.model.LTXVModel", "LTXV", dict(
        in_channels=128, cross_attention_dim=128, attention_head_dim=4, num_attention_heads=32, caption_channels=4096,
        num_layers=2), route="detection"),
    "sd3": Blueprint("comfy.ldm.modules.diffusionmodules.mmdit.OpenAISignatureMMDITWrapper", "SD3", dict(
        input_size=None, patch_size=2, in_channels=16, out_channels=16, depth=2, adm_in_channels=2048,
        context_embedder_config={"target": "torch.nn.Linear", "params": {"in_features": 4096, "out_features": 128}},
        num_patches=64, pos_embed_max_size=8, pos_embed_scaling_factor=None), dict(qk_norm=None, x_block_self_attn_layers=[]),
        route="detection"),
    "sd35": Blueprint("comfy.ldm.modules.diffusionmodules.mmdit.OpenAISignatureMMDITWrapper", "SD3", dict(
        input_size=None, patch_size=2, in_channels=16, out_channels=16, depth=2, adm_in_channels=2048,
        context_embedder_config={"target": "torch.nn.Linear", "params": {"in_features": 4096, "out_features": 128}},
        num_patches=64, pos_embed_max_size=8, pos_embed_scaling_factor=None), dict(qk_norm="rms", x_block_self_attn_layers=[0]),
        route="detection"),
    "hunyuan_image21": Blueprint("comfy.ldm.hunyuan_video.model.HunyuanVideo", "HunyuanImage21", dict(
        in_channels=64, out_channels=64, vec_in_dim=None, context_in_dim=3584, hidden_size=128, mlp_ratio=4.0, num_heads=1,
        depth=2, depth_single_blocks=2, axes_dim=[64, 64], patch_size=[1, 1]),
        dict(theta=256, qkv_bias=True, guidance_embed=False, byt5=False, meanflow=False),
        "comfy.ldm.hunyuan_video.model.HunyuanVideoParams", route="detection"),
    "hunyuan3d_v2": Blueprint("comfy.ldm.hunyuan3d.model.Hunyuan3Dv2", "Hunyuan3Dv2", dict(
        in_channels=64, context_in_dim=1536, hidden_size=128, mlp_ratio=4.0, num_heads=16, depth=2, depth_single_blocks=2),
        dict(qkv_bias=True, guidance_embed=False), route="detection"),
    "hunyuan3d_v21": Blueprint("comfy.ldm.hunyuan3dv2_1.hunyuandit.HunYuanDiTPlain", "Hunyuan3Dv2_1", dict(
        in_channels=64, hidden_size=128, context_dim=1024, depth=3, num_heads=16),
        dict(qkv_bias=False, guidance_cond_proj_dim=None), route="detection"),
    "wan22_5b": Blueprint("comfy.ldm.wan.model.WanModel", "WAN22_T2V", dict(
        dim=128, ffn_dim=256, num_heads=1, num_layers=2, in_dim=48, out_dim=48, text_dim=4096), dict(model_type="t2v"),
        route="detection"),
    "wan21_i2v": Blueprint("comfy.ldm.wan.model.WanModel", "WAN21_I2V", dict(
        dim=128, ffn_dim=256, num_heads=1, num_layers=2, in_dim=36, out_dim=16, text_dim=4096), dict(model_type="i2v"),
        route="detection"),
    # config route
    "qwen_image": Blueprint("comfy.ldm.qwen_image.model.QwenImageTransformer2DModel", "QwenImage", dict(
        patch_size=2, in_channels=64, out_channels=16, num_layers=2, attention_head_dim=64, num_attention_heads=2,
        joint_attention_dim=3584, axes_dims_rope=(8, 28, 28)), dict(image_model="qwen_image")),
    "mochi": Blueprint("comfy.ldm.genmo.joint_model.asymm_models_joint.AsymmDiTJoint", "GenmoMochi", dict(
        depth=2, patch_size=2, num_heads=2, hidden_size_x=128, hidden_size_y=64, mlp_ratio_x=96.0, mlp_ratio_y=4.0,
        in_channels=12, t5_feat_dim=256, t5_token_length=256), dict(
        image_model="mochi_preview", learn_sigma=False, qk_norm=True, qkv_bias=False, out_bias=True, attn_drop=0.0,
        patch_embed_bias=True, posenc_preserve_area=True, timestep_mlp_bias=True, attend_to_padding=False,
        timestep_scale=1000.0, use_t5=True, rope_theta=10000.0)),
    "auraflow": Blueprint("comfy.ldm.aura.mmdit.MMDiT", "AuraFlow", dict(
        in_channels=4, out_channels=4, patch_size=2, dim=128, n_layers=4, n_double_layers=2, n_heads=2,
        global_conddim=128, cond_seq_dim=2048, max_seq=64)),
    "chroma": Blueprint("comfy.ldm.chroma.model.Chroma", "Chroma", _CHROMA_SIZES, dict(image_model="chroma", **_CHROMA_LAYOUT),
                        "comfy.ldm.chroma.model.ChromaParams"),
    "lumina2": Blueprint("comfy.ldm.lumina.model.NextDiT", "Lumina2", dict(
        patch_size=2, in_channels=16, dim=128, cap_feat_dim=2304, n_layers=2, n_refiner_layers=1, n_heads=2, n_kv_heads=1,
        axes_dims=[16, 24, 24], axes_lens=[300, 512, 512]), dict(image_model="lumina2", qk_norm=True)),
    "hidream": Blueprint("comfy.ldm.hidream.model.HiDreamImageTransformer2DModel", "HiDream", dict(
        patch_size=2, in_channels=16, out_channels=16, num_layers=2, num_single_layers=2, attention_head_dim=64,
        num_attention_heads=2, caption_channels=[4096, 4096], text_emb_dim=2048, num_routed_experts=4,
        num_activated_experts=2, axes_dims_rope=[32, 16, 16], max_resolution=[128, 128],
        llama_layers=list(range(HIDREAM_LLAMA_LAYERS))), dict(image_model="hidream")),
    "cosmos_t2v": Blueprint("comfy.ldm.cosmos.model.GeneralDIT", "CosmosT2V", dict(
        max_img_h=240, max_img_w=240, max_frames=128, in_channels=16, out_channels=16, patch_spatial=2, patch_temporal=1,
        model_channels=128, crossattn_emb_channels=1024, adaln_lora_dim=64, num_blocks=2, num_heads=2), dict(
        image_model="cosmos", block_config="FA-CA-MLP", concat_padding_mask=True, pos_emb_cls="rope3d",
        pos_emb_learnable=False, pos_emb_interpolation="crop", block_x_format="THWBD", affline_emb_norm=True,
        use_adaln_lora=True, extra_per_block_abs_pos_emb=True, extra_per_block_abs_pos_emb_type="learnable",
        rope_h_extrapolation_ratio=1.0, rope_w_extrapolation_ratio=1.0, rope_t_extrapolation_ratio=2.0)),
    "cosmos_predict2": Blueprint("comfy.ldm.cosmos.predict2.MiniTrainDIT", "CosmosT2IPredict2", dict(
        max_img_h=240, max_img_w=240, max_frames=128, in_channels=16, out_channels=16, patch_spatial=2, patch_temporal=1,
        model_channels=128, crossattn_emb_channels=1024, adaln_lora_dim=64, num_blocks=2, num_heads=2), dict(
        image_model="cosmos_predict2", concat_padding_mask=True, pos_emb_cls="rope3d", pos_emb_learnable=True,
        pos_emb_interpolation="crop", min_fps=1, max_fps=30, use_adaln_lora=True, extra_per_block_abs_pos_emb=False,
        rope_h_extrapolation_ratio=4.0, rope_w_extrapolation_ratio=4.0, rope_t_extrapolation_ratio=1.0,
        extra_h_extrapolation_ratio=1.0, extra_w_extrapolation_ratio=1.0, extra_t_extrapolation_ratio=1.0,
        rope_enable_fps_modulation=False)),
    "flux_kontext": flux_blueprint(),
    "chroma_radiance": Blueprint("comfy.ldm.chroma_radiance.model.ChromaRadiance", "ChromaRadiance", dict(
        _CHROMA_SIZES, in_channels=3, out_channels=3, patch_size=16, nerf_hidden_size=16, nerf_mlp_ratio=4, nerf_depth=2,
        nerf_max_freqs=8, nerf_tile_size=32), dict(image_model="chroma_radiance", nerf_final_head_type="conv",
        nerf_embedder_dtype=torch.float32, **_CHROMA_LAYOUT), "comfy.ldm.chroma_radiance.model.ChromaRadianceParams"),
    "omnigen2": Blueprint("comfy.ldm.omnigen.omnigen2.OmniGen2Transformer2DModel", "Omnigen2", dict(
        patch_size=2, in_channels=16, hidden_size=128, num_layers=2, num_refiner_layers=1, num_attention_heads=2,
        num_kv_heads=1, multiple_of=256, axes_dim_rope=[16, 24, 24], axes_lens=[300, 512, 512], text_feat_dim=2048),
        dict(image_model="omnigen2", out_channels=None, ffn_dim_multiplier=None, norm_eps=1e-5, timestep_scale=1000.0)),
    "pixart_sigma": Blueprint("comfy.ldm.pixart.pixartms.PixArtMS", "PixArtSigma", dict(
        patch_size=2, in_channels=4, hidden_size=128, depth=2, num_heads=2, model_max_length=300, caption_channels=4096),
        dict(image_model="pixart_sigma", micro_condition=False)),
    "hunyuan_dit": Blueprint("comfy.ldm.hydit.models.HunYuanDiT", "HunyuanDiT", dict(
        input_size=32, patch_size=2, in_channels=4, hidden_size=128, depth=4, num_heads=2, mlp_ratio=4.0,
        text_states_dim=1024, text_states_dim_t5=HYDIT_T5_DIM, text_len=HYDIT_TEXT_LEN, text_len_t5=HYDIT_TEXT_LEN),
        dict(image_model="hydit")),
    "sd15": Blueprint("comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel", "SD15", dict(
        image_size=32, in_channels=4, out_channels=4, model_channels=64, num_res_blocks=[1, 1], transformer_depth=[1, 1],
        transformer_depth_output=[1, 1, 1, 1], channel_mult=[1, 2], transformer_depth_middle=1, context_dim=768,
        adm_in_channels=None), dict(
        use_checkpoint=False, use_spatial_transformer=True, legacy=False, use_linear_in_transformer=False,
        use_temporal_resblock=False, use_temporal_attention=False)),
    "sdxl": Blueprint("comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel", "SDXL", dict(
        image_size=32, in_channels=4, out_channels=4, model_channels=64, num_res_blocks=[1, 1], transformer_depth=[0, 1],
        transformer_depth_output=[0, 0, 1, 1], channel_mult=[1, 2], transformer_depth_middle=1, context_dim=2048,
        adm_in_channels=2816), dict(
        use_checkpoint=False, use_spatial_transformer=True, legacy=False, num_classes="sequential",
        use_linear_in_transformer=True, use_temporal_resblock=False, use_temporal_attention=False)),
}


assert set(BLUEPRINTS) == set(FAMILIES) and all(
    BLUEPRINTS[n].route == f.route and BLUEPRINTS[n].supported_model == f.supported_model for n, f in FAMILIES.items()
), "tiny_families: BLUEPRINTS and FAMILIES disagree"


@functools.lru_cache(maxsize=None)
def _cached_state_dict(name: str, seed: int) -> dict[str, torch.Tensor]:
    return random_state(probe_module(BLUEPRINTS[name]), seed)


def family_state_dict(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The random state dict (ComfyUI key layout) of a detection-route family; a fresh dict each call."""
    if BLUEPRINTS[_family(name).name].route != "detection":
        raise KeyError(f"{name!r} is built from a config (detection hard-codes its widths); see FAMILIES[{name!r}].notes")
    return dict(_cached_state_dict(name, seed))


def write_family_checkpoint(name: str, path: Path, seed: int = 0, dtype: torch.dtype = torch.float16) -> Path:
    """Save a detection-route family as .safetensors where UNETLoader / comfy.sd.load_diffusion_model can load it."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype).contiguous() for k, v in family_state_dict(name, seed).items()}, str(path))
    return path


def _load_detected(name: str, seed: int) -> Any:
    import comfy.sd

    state = family_state_dict(name, seed)
    keys = set(state)
    patcher = comfy.sd.load_diffusion_model_state_dict(state, model_options={"dtype": torch.float32})
    if patcher is None:
        raise RuntimeError(f"ComfyUI did not detect the tiny {name} state dict")
    missing = set(patcher.model.diffusion_model.state_dict()) - keys
    if missing:  # would be left as torch.empty garbage (load_state_dict(strict=False))
        raise RuntimeError(f"tiny {name}: ComfyUI built a model with keys the state dict lacks: {sorted(missing)[:8]}")
    return patcher


def family_config(name: str) -> dict[str, Any]:
    """The config a config-route family is built from on this ComfyUI: detected, only the sizes replaced."""
    return tiny_config(BLUEPRINTS[_family(name).name])


# --------------------------------------------------------------------------------------------------------------------
# Public helpers


def _family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        why = UNAVAILABLE.get(name)
        raise KeyError(f"unknown tiny family {name!r}" + (f": {why}" if why else f"; known: {', '.join(FAMILY_NAMES)}")) from None


def load_family(name: str, seed: int = 0) -> Any:
    """A ComfyUI ModelPatcher of the tiny `name` model (see FAMILY_NAMES); the same weights for the same seed."""
    family = _family(name)
    patcher = _load_detected(name, seed) if family.route == "detection" else build(BLUEPRINTS[name], seed)
    got = (type(patcher.model).__name__, type(patcher.model.diffusion_model).__name__)
    if got != (family.model_class, family.diffusion_class):
        raise RuntimeError(f"tiny {name}: expected {(family.model_class, family.diffusion_class)}, ComfyUI built {got}")
    return patcher


def family_conditioning(name: str, seed: int = 0, length: int = 8, batch: int = 1) -> list:
    """CONDITIONING [[context [batch, length, D], {extra}]] for `name`, without a text encoder."""
    family = _family(name)
    generator = torch.Generator().manual_seed(seed)
    context = torch.randn(batch, length, family.context_dim, generator=generator)
    extra = family.extra(generator, batch, length) if family.extra is not None else {}
    return [[context, extra]]


def family_latent(name: str, batch: int = 1) -> torch.Tensor:
    """A zero latent of `name`'s final layout (channels, 4-D / 5-D / 3-D): 8x8 and 1 frame unless a family needs more
    (pixart_sigma 48x48, chroma_radiance 32x32 pixels, Hunyuan3D 64 tokens)."""
    return torch.zeros((batch,) + _family(name).latent_shape)


def sample_family(model: Any, name: str, *, steps: int = 3, cfg: float = 1.0, sampler: str = "euler",
                  scheduler: str = "simple", seed: int = 0, batch: int = 1, latent: torch.Tensor | None = None,
                  **kwargs: Any) -> torch.Tensor:
    """Sample `model` like KSampler with fixed noise and this family's conditioning (positive seed 1, negative seed 2)."""
    import comfy.sample

    latent = family_latent(name, batch) if latent is None else latent
    noise = comfy.sample.prepare_noise(latent, seed)
    positive = family_conditioning(name, seed=1)
    negative = family_conditioning(name, seed=2)
    return comfy.sample.sample(model, noise, steps, cfg, sampler, scheduler, positive, negative, latent,
                               disable_pbar=True, seed=seed, **kwargs)
