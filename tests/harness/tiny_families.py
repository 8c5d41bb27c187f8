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
``comfy.sample.fix_empty_latent_channels`` would produce: 5-D for video latent formats, [B, 64, N] for Hunyuan3D; a
``comfy.nested_tensor.NestedTensor`` for families with several latents, LTX-2's video + audio, as ComfyUI's nodes build
it, whose samples ``sample_family`` returns packed into one tensor). ``Family`` also records where the blocks live,
which 'dit' patches_replace keys exist, whether forward goes through the DIFFUSION_MODEL wrapper, whether one branch
runs alone (``cfg1``) and which entry of CacheKit's family table it exercises (``TABLE_FAMILY``);
tests/comfy/test_tiny_families.py checks those claims against the running ComfyUI.

Families ComfyUI added after 0.3.60 (``Family.since``) are registered on every release; where the running ComfyUI lacks
the family's supported_models / model_base / comfy.ldm class or a constructor field it is made of (``Family.needs``),
the family is left out of ``FAMILY_NAMES`` and ``UNAVAILABLE`` says what is missing. ``NOT_BUILT`` names the family
table entries no tiny model can stand for, with the reason.

Public API: ``FAMILY_NAMES``, ``FAMILIES`` (name -> ``Family``), ``BLUEPRINTS``, ``TABLE_FAMILY``, ``NOT_BUILT``,
``load_family``, ``family_config``, ``family_conditioning``, ``family_latent``, ``flat``, ``family_state_dict``,
``family_metadata``, ``write_family_checkpoint``, ``sample_family``, ``UNAVAILABLE``.
"""
from __future__ import annotations

import dataclasses
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
    since: str = "0.3.60"  # the oldest ComfyUI release this tiny model is built on (older ones: see `needs`)
    needs: tuple[str, ...] = ()  # constructor / params fields the family is made of (a release without them lacks it)
    more_latents: tuple[tuple[int, ...], ...] = ()  # further latents of a nested (packed) latent, without batch
    # (generator, batch, length) -> (cross_attn, extra): where context and extras come from one source (HiDream-O1's
    # token ids); replaces context_dim and `extra`
    conditioning: Callable[[torch.Generator, int, int], tuple[Any, dict]] | None = None
    sampler: str = "euler"  # the ComfyUI sampler sample_family uses unless told otherwise
    guided: bool = True  # False: the family's sampler runs at cfg 1 only (one branch per forward)
    broken_replace: str = ""  # why calling a replace patch's original_block fails on this ComfyUI ("" = it works)
    latent_batch: bool = True  # False: the model takes one latent per forward (a latent batch of two fails)
    param_budget: int = 10_000_000  # more only where ComfyUI hard-codes a submodule's widths (HuMo's audio_proj, ...)


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



# --------------------------------------------------------------------------------------------------------------------
# The families of ComfyUI 0.33's family table (cache_core/families/table.py) that the ones above lack. Each is
# registered with its blueprint; a release without the family's classes lists it in UNAVAILABLE with the reason.

_033 = "0.33.0"


def _add(family: Family, blueprint: Blueprint) -> None:
    _register(family)
    BLUEPRINTS[family.name] = blueprint


_FLUX2_SIZES = dict(in_channels=128, out_channels=128, vec_in_dim=None, context_in_dim=48, hidden_size=64, mlp_ratio=3.0,
                    num_heads=2, depth=2, depth_single_blocks=2, axes_dim=[8, 8, 8, 8], patch_size=1)
_FLUX1_SIZES = dict(in_channels=16, out_channels=16, vec_in_dim=None, context_in_dim=48, hidden_size=64, mlp_ratio=4.0,
                    num_heads=2, depth=2, depth_single_blocks=2, axes_dim=[8, 12, 12], patch_size=2)

_add(Family(
    "flux2", "Flux2", "Flux", (128, 4, 4), "config", "Flux2", 48,
    ("double_blocks", "single_blocks"), ("double_block", "single_block"), True, since=_033, needs=("global_modulation",),
    notes="Flux.2 dev (Klein 4B / 9B are the same DiT without guidance_in): global modulation, so the blocks' vec is a "
          "tuple of ModulationOut; patch 1 on the 128-channel Flux2 latent (4x4 = 16 tokens); model_base.Flux2 pads the "
          "context to 512 tokens at the front",
), Blueprint("comfy.ldm.flux.model.Flux", "Flux2", _FLUX2_SIZES, dict(
    image_model="flux2", global_modulation=True, mlp_silu_act=True, qkv_bias=False, ops_bias=False, guidance_embed=True,
    txt_ids_dims=[3], theta=2000), _FLUX_PARAMS))
_add(Family(
    "ovis_image", "Flux", "Flux", (16, 8, 8), "config", "FluxSchnell", 48,
    ("double_blocks", "single_blocks"), ("double_block", "single_block"), True, since=_033, needs=("yak_mlp", "txt_norm"),
    notes="no supported_models class of its own: detection marks it by yak_mlp + txt_norm (txt_ids_dims [1, 2]) and it "
          "loads as Flux / FluxSchnell by guidance_in; built here without guidance_in (FluxSchnell)",
), Blueprint("comfy.ldm.flux.model.Flux", "FluxSchnell", _FLUX1_SIZES, dict(
    image_model="flux", yak_mlp=True, txt_norm=True, guidance_embed=False, qkv_bias=True, theta=10000), _FLUX_PARAMS))
_add(Family(
    "longcat_image", "LongCatImage", "Flux", (16, 8, 8), "config", "LongCatImage", 3584,
    ("double_blocks", "single_blocks"), ("double_block", "single_block"), True, since=_033, needs=("txt_ids_dims",),
    notes="Flux without vector_in and guidance_in, context 3584 (what supported_models.LongCatImage and CacheKit's "
          "variant test match), txt_ids_dims [1, 2]; model_base.LongCatImage sets rope_options shifts per call",
), Blueprint("comfy.ldm.flux.model.Flux", "LongCatImage", dict(_FLUX1_SIZES, context_in_dim=3584), dict(
    image_model="flux", guidance_embed=False, qkv_bias=True, theta=10000), _FLUX_PARAMS))

# Z-Image: ComfyUI's detection and supported_models.ZImage only know the Lumina 2 layout at dim 3840, so the probe
# (on the meta device) has that width and detection gives Z-Image's config; the tiny sizes then replace it. dim stays
# >= 256: z_image_modulation's t-embedder is 256 wide while adaLN takes min(dim, 256).
_Z_IMAGE_SIZES = dict(dim=256, n_heads=2, n_kv_heads=2, n_layers=2, n_refiner_layers=1, axes_dims=[32, 48, 48],
                      cap_feat_dim=32)
_Z_IMAGE_LAYOUT = dict(image_model="lumina2", qk_norm=True, z_image_modulation=True, pad_tokens_multiple=32)
_Z_IMAGE_PROBE = dict(dim=3840, n_heads=30, n_kv_heads=30)

_add(Family(
    "z_image", "Lumina2", "NextDiT", (16, 8, 8), "config", "ZImage", 32,
    ("layers",), (), True, extra=_ones_mask, since=_033,
    notes="NextDiT with z_image_modulation (Z-Image Turbo / Base): probed at dim 3840 (the only width detection maps to "
          "Z-Image), built at dim 256 / 2 heads of 128; tokens padded to multiples of 32; forward returns -img",
), Blueprint("comfy.ldm.lumina.model.NextDiT", "ZImage", _Z_IMAGE_SIZES, _Z_IMAGE_LAYOUT, probe=_Z_IMAGE_PROBE))
_add(Family(
    "z_image_pixel", "ZImagePixelSpace", "NextDiTPixelSpace", (3, 32, 32), "config", "ZImagePixelSpace", 32,
    ("layers",), (), True, extra=_ones_mask, since=_033,
    notes="Z-Image on raw RGB: patch 8 (32x32 pixels = 16 tokens), the backbone's -x0 goes through a small MLP decoder "
          "and forward turns it into a velocity after the DIFFUSION_MODEL wrapper",
), Blueprint("comfy.ldm.lumina.model.NextDiTPixelSpace", "ZImagePixelSpace", dict(
    _Z_IMAGE_SIZES, patch_size=8, in_channels=3, decoder_in_channels=192, decoder_hidden_size=32, decoder_num_res_blocks=1,
    decoder_max_freqs=4), _Z_IMAGE_LAYOUT, probe=_Z_IMAGE_PROBE))

# Qwen-Image edits: reference latents (what TextEncodeQwenImageEdit / ReferenceLatent append) ride along in the image
# stream. 2509 is the plain model with references; 2511 is detected by its __index_timestep_zero__ buffer and runs the
# reference tokens at t = 0, which doubles the blocks' timestep batch.


def _qwen_edit_extra(g: torch.Generator, batch: int, length: int) -> dict:
    return {"reference_latents": [torch.randn(1, 16, 1, 8, 8, generator=g)]}


_QWEN_SIZES = dict(patch_size=2, in_channels=64, out_channels=16, num_layers=2, attention_head_dim=64, num_attention_heads=2,
                   joint_attention_dim=3584, axes_dims_rope=(8, 28, 28))

_add(Family(
    "qwen_image_edit", "QwenImage", "QwenImageTransformer2DModel", (16, 1, 8, 8), "config", "QwenImage", 3584,
    ("transformer_blocks",), ("double_block",), True, extra=_qwen_edit_extra,
    notes="Qwen-Image-Edit (2509): the tiny Qwen-Image with conditioning['reference_latents'] (index method): the "
          "reference tokens are appended to the image stream and cut off after the last block",
), Blueprint("comfy.ldm.qwen_image.model.QwenImageTransformer2DModel", "QwenImage", _QWEN_SIZES, dict(image_model="qwen_image")))
_add(Family(
    "qwen_image_edit_2511", "QwenImage", "QwenImageTransformer2DModel", (16, 1, 8, 8), "config", "QwenImage", 3584,
    ("transformer_blocks",), ("double_block",), True, extra=_qwen_edit_extra, since=_033, needs=("default_ref_method",),
    notes="Qwen-Image-Edit 2511: detection reads default_ref_method index_timestep_zero off the __index_timestep_zero__ "
          "buffer; the reference tokens run at t = 0, so the blocks' vec has twice the image batch",
), Blueprint("comfy.ldm.qwen_image.model.QwenImageTransformer2DModel", "QwenImage", _QWEN_SIZES, dict(
    image_model="qwen_image", default_ref_method="index_timestep_zero")))


# Wan 2.1 / 2.2 variants, each through ComfyUI's loader (detection tells them apart by marker weights; FlowRVS and
# Animate 2 only by their checkpoints' config metadata). Every variant gets the inputs its node would give it.

_WAN_SIZES = dict(dim=128, ffn_dim=256, num_heads=1, num_layers=2, in_dim=16, out_dim=16, text_dim=4096)


def _clip_vision(g: torch.Generator, batch: int, tokens: int = 16) -> types.SimpleNamespace:
    # a CLIP-vision output as model_base reads it (.penultimate_hidden_states; img_emb projects 1280 -> dim per token, so
    # 16 tokens instead of CLIP-H's 257 keep the image cross-attention small)
    return types.SimpleNamespace(penultimate_hidden_states=torch.randn(batch, tokens, 1280, generator=g))


def _wan_camera_extra(g: torch.Generator, batch: int, length: int) -> dict:
    # WanCameraEmbedding: 24 Plücker channels per pixel frame ([B, 24, T, 8 H, 8 W]), pixel-unshuffled by 8 in the model
    return {"camera_conditions": torch.randn(1, 24, 1, 64, 64, generator=g)}


def _wan_humo_extra(g: torch.Generator, batch: int, length: int) -> dict:
    # WanHuMoImageToVideo: whisper features per latent frame, [B, T, 8 (window), 5 (layer blocks), 1280]
    return {"audio_embed": torch.randn(1, 1, 8, 5, 1280, generator=g)}


def _wan_s2v_extra(g: torch.Generator, batch: int, length: int) -> dict:
    # WanSoundImageToVideo: wav2vec layers x features x audio frames (4 per latent frame), and the reference image latent
    return {"audio_embed": torch.randn(1, 25, 1024, 4, generator=g),
            "reference_latents": [torch.randn(1, 16, 1, 8, 8, generator=g)]}


def _wan_animate_extra(g: torch.Generator, batch: int, length: int) -> dict:
    # WanAnimateToVideo without a face video (its motion encoder wants 512 x 512 faces): pose latents and CLIP vision
    return {"pose_video_latent": torch.randn(1, 16, 1, 8, 8, generator=g), "clip_vision_output": _clip_vision(g, batch)}


def _wan_scail_extra(g: torch.Generator, batch: int, length: int) -> dict:
    return {"pose_video_latent": torch.randn(1, 16, 1, 8, 8, generator=g),
            "reference_latents": [torch.randn(1, 16, 1, 8, 8, generator=g)], "clip_vision_output": _clip_vision(g, batch)}


def _wan_dancer_extra(g: torch.Generator, batch: int, length: int) -> dict:
    # WanDancer: 35 music features per frame, projected and interpolated to 8 tokens per latent frame
    return {"audio_embed": torch.randn(1, 8, 35, generator=g), "clip_vision_output": _clip_vision(g, batch)}


def _wan_animate2_extra(g: torch.Generator, batch: int, length: int) -> dict:
    # frame 0 of the latent is the reference slot; the pose branch has the other frames
    return {"pose_video_latent": torch.randn(1, 16, 1, 4, 4, generator=g), "clip_vision_output": _clip_vision(g, batch)}


def _wan(name: str, model_class: str, diffusion_class: str, supported: str, ldm: str, latent: tuple[int, ...],
         extra: Any = None, since: str = "0.3.60", notes: str = "", layout: dict | None = None, metadata: dict | None = None,
         param_budget: int = 10_000_000, wrapper: bool = True, replace: tuple[str, ...] = ("double_block",),
         sampler: str = "euler", guided: bool = True, **sizes: Any) -> None:
    _add(Family(name, model_class, diffusion_class, latent, "detection", supported, 4096, ("blocks",), replace,
                wrapper, extra=extra, since=since, notes=notes, param_budget=param_budget, sampler=sampler, guided=guided),
         Blueprint(f"comfy.ldm.wan.{ldm}", supported, {**_WAN_SIZES, **sizes}, layout or {}, route="detection",
                   metadata=metadata or {}))


_wan("wan21_flow_rvs", "WAN21_FlowRVS", "WanModel", "WAN21_FlowRVS", "model.WanModel", (16, 1, 8, 8), since=_033,
     layout=dict(model_type="t2v"), metadata=dict(model_type="flow_rvs"),
     notes="the Wan 2.1 T2V DiT; the checkpoint's config metadata says model_type flow_rvs, and model_base.WAN21_FlowRVS "
           "samples it as image-to-image flow")
_wan("wan22_camera", "WAN21_Camera", "CameraWanModel", "WAN22_Camera", "model.CameraWanModel", (16, 1, 8, 8),
     extra=_wan_camera_extra, layout=dict(model_type="camera_2.2"), in_dim=36,
     notes="Wan 2.2 Fun Camera: control_adapter (detected) adds the camera embedding to the patch embedding; in_dim 36 "
           "= 16 noise + 20 concat channels (zeros without a start image)")
_wan("wan21_humo", "WAN21_HuMo", "HumoWanModel", "WAN21_HuMo", "model.HumoWanModel", (16, 1, 8, 8), extra=_wan_humo_extra,
     param_budget=45_000_000,
     notes="HuMo 1.7B layout (no concat): audio_proj is hard-coded (8 x 5 x 1280 -> 512: ~27M of its ~41M weights); an "
           "audio cross-attention in every block reads 16 audio tokens per latent frame")
_wan("wan21_vace", "WAN21_Vace", "VaceWanModel", "WAN21_Vace", "model.VaceWanModel", (16, 1, 8, 8),
     vace_layers=1, vace_in_dim=96,
     notes="VACE: model_base.WAN21_Vace builds zero vace_frames + ones mask (96 channels) when none are given; the hint "
           "blocks add into the stream after mapped blocks, in place")
_wan("wan22_s2v", "WAN22_S2V", "WanModel_S2V", "WAN22_S2V", "model.WanModel_S2V", (16, 1, 8, 8), extra=_wan_s2v_extra,
     notes="Wan 2.2 S2V: the causal audio encoder (25 wav2vec layers x 1024) feeds an audio injector after block 0 (the "
           "injected layers that exist); the reference latent's tokens are appended to the stream")
_wan("wan22_animate", "WAN22_Animate", "AnimateWanModel", "WAN22_Animate", "model_animate.AnimateWanModel", (16, 1, 8, 8),
     extra=_wan_animate_extra, in_dim=36, num_layers=5, param_budget=45_000_000,
     notes="Wan 2.2 Animate (i2v layout): detection needs face_adapter.fuser_blocks.0 (num_layers // 5 of them), so 5 "
           "blocks; pose latents are added into the patch embedding of frames 1.. in place; no face video (the motion "
           "encoder wants 512 x 512 faces), so the face adapter does not run")
_wan("wan21_scail", "WAN21_SCAIL", "SCAILWanModel", "WAN21_SCAIL", "model.SCAILWanModel", (16, 1, 8, 8),
     extra=_wan_scail_extra, since=_033, in_dim=20,
     notes="SCAIL: 20-channel inputs (16 latent + 4 mask); pose tokens are appended to the stream and the reference frames "
           "prepended along time, both cut off after the head")
_wan("wan21_scail2", "WAN21_SCAIL2", "SCAIL2WanModel", "WAN21_SCAIL2", "model.SCAIL2WanModel", (16, 1, 8, 8),
     extra=_wan_scail_extra, since=_033, in_dim=20,
     notes="SCAIL-2: SCAIL plus patch_embedding_mask (28-channel identity masks; none given here)")
_wan("wan22_dancer", "WAN22_WanDancer", "WanDancerModel", "WAN22_WanDancer", "model_wandancer.WanDancerModel",
     (16, 1, 8, 8), extra=_wan_dancer_extra, since=_033, in_dim=36,
     notes="WanDancer (i2v layout): a 2-layer music encoder, whose features an audio injector adds after block 0")
_wan("wan21_causal_ar", "WAN21_CausalAR", "CausalWanModel", "WAN21_CausalAR_T2V", "ar_model.CausalWanModel",
     (16, 2, 8, 8), since=_033, layout=dict(model_type="t2v"), metadata=dict(causal_ar=True), wrapper=False, replace=(),
     sampler="ar_video", guided=False,
     notes="Causal (autoregressive) Wan 2.1 T2V, causal_ar from its config metadata; sampled as ComfyUI samples it, with "
           "the ar_video sampler (SamplerARVideo: frame by frame, key/value caches in transformer_options['ar_state']): "
           "on that path the forward bypasses the DIFFUSION_MODEL wrapper and every block patch. ar_video sizes its "
           "caches by the latent batch, so it runs at cfg 1 only (cfg > 1 batches cond and uncond: a shape error in "
           "comfy/ldm/wan/ar_model.py); KSampler's samplers would run the plain WanModel forward, which is not this model")
_wan("wan_animate2", "WAN_Animate2", "WanAnimate2Model", "WAN_Animate2", "model_animate2.WanAnimate2Model", (16, 2, 4, 4),
     extra=_wan_animate2_extra, since=_033, metadata=dict(model_type="animate2"), in_dim=36,
     notes="Wan Animate 2 (i2v-shaped checkpoint, model_type from its config metadata): latent frame 0 is the reference "
           "slot, the pose branch runs beside every block on the other frames")

# Image DiTs of the Qwen-Image lineage and other dual / single stream models.

_add(Family(
    "mage_flow", "MageFlow", "MageFlowTransformer2DModel", (128, 4, 4), "config", "MageFlow", 40,
    ("transformer_blocks",), ("double_block",), True, since=_033,
    notes="Qwen-Image blocks on the 128-channel Flux2 latent with patch 1; detection tells it from Qwen-Image only by a "
          "2560-wide txt_norm and 128 proj_out rows, so the probe has joint_attention_dim 2560 (built at 40)",
), Blueprint("comfy.ldm.mage_flow.model.MageFlowTransformer2DModel", "MageFlow", dict(
    in_channels=128, out_channels=128, num_layers=2, attention_head_dim=32, num_attention_heads=2, joint_attention_dim=40,
    axes_dims_rope=(8, 12, 12)), dict(image_model="mage_flow"), probe=dict(joint_attention_dim=2560)))
_add(Family(
    "lens", "Lens", "LensTransformer2DModel", (128, 4, 4), "detection", "Lens", 48,
    ("transformer_blocks",), ("double_block",), True, extra=_ones_mask, since=_033,
    notes="detection: heads = img_in rows // 64, out_channels = proj_out rows // 4, two stacked text layers of 24 (the "
          "context is 2 x 24 wide); joint attention over [img, txt] with an additive mask from attention_mask",
), Blueprint("comfy.ldm.lens.model.LensTransformer2DModel", "Lens", dict(
    in_channels=128, out_channels=32, num_layers=2, attention_head_dim=64, num_attention_heads=2, enc_hidden_dim=24,
    multi_layer_encoder_feature=True, selected_layer_index=(0, 1)), route="detection"))
_add(Family(
    "joyimage", "JoyImage", "JoyImageTransformer3DModel", (16, 1, 8, 8), "detection", "JoyImage", 4096,
    ("double_blocks",), ("double_block",), True, since=_033,
    notes="detection fixes text_dim 4096 and supported_models.JoyImage the rope split [16, 56, 56], so heads of 128: "
          "hidden 128, one head; joint attention over [img, txt]",
), Blueprint("comfy.ldm.joyimage.model.JoyImageTransformer3DModel", "JoyImage", dict(
    patch_size=[1, 2, 2], in_channels=16, hidden_size=128, num_attention_heads=1, text_dim=4096, num_layers=2),
    route="detection"))
_add(Family(
    "krea2", "Krea2", "SingleStreamDiT", (16, 1, 8, 8), "config", "Krea2", 192,
    ("blocks",), (), True, since=_033,
    notes="single stream over [txt, img]; detection assumes heads of 128, built at 128 wide with 2 heads of 64 (rope "
          "[16, 24, 24]); the context is 3 stacked text layers of 64, fused by 2 + 2 text blocks",
), Blueprint("comfy.ldm.krea2.model.SingleStreamDiT", "Krea2", dict(
    features=128, heads=2, kvheads=1, txtdim=64, txtlayers=3, txtheads=2, txtkvheads=2, layers=2, patch=2, channels=16),
    dict(image_model="krea2")))
_add(Family(
    "ideogram4", "Ideogram4", "Ideogram4Transformer2DModel", (128, 4, 4), "config", "Ideogram4", 40,
    ("layers",), (), True, extra=_ones_mask, since=_033,
    notes="supported_models.Ideogram4 fixes 18 heads x 256 and a 53248-wide LLM input in unet_extra_config; the tiny "
          "sizes replace those too; packed [text, image] stream, forward returns -velocity",
), Blueprint("comfy.ldm.ideogram4.model.Ideogram4Transformer2DModel", "Ideogram4", dict(
    in_channels=128, num_layers=2, num_attention_heads=2, attention_head_dim=32, intermediate_size=128, adaln_dim=32,
    llm_features_dim=40, mrope_section=(4, 6, 6)), dict(image_model="ideogram4")))

# Video (and audio + video) DiTs.


def _pooled_none(g: torch.Generator, batch: int, length: int) -> dict:
    # model_base.HunyuanVideo.encode_adm reads kwargs["pooled_output"] (a KeyError without the key)
    return {"pooled_output": None}


_add(Family(
    "hunyuan_video15", "HunyuanVideo15", "HunyuanVideo", (32, 1, 4, 4), "detection", "HunyuanVideo15", 64,
    ("double_blocks", "single_blocks"), ("double_block", "single_block"), True, extra=_pooled_none, since=_033,
    needs=("vision_in_dim",),
    notes="HunyuanVideo 1.5 T2V: supported_models.HunyuanVideo15 matches vision_in_dim 1152 exactly (the vision_in "
          "projection's input); heads = hidden // 128; 32-channel latent, patch [1, 1, 1]; in_channels 65 = 32 noise + 32 "
          "image + 1 mask (concat_cond's zeros without a start image); cond type embeddings, no byT5, no meanflow",
), Blueprint("comfy.ldm.hunyuan_video.model.HunyuanVideo", "HunyuanVideo15", dict(
    in_channels=65, out_channels=32, vec_in_dim=None, context_in_dim=64, hidden_size=128, mlp_ratio=4.0, num_heads=1,
    depth=2, depth_single_blocks=2, axes_dim=[16, 56, 56], patch_size=[1, 1, 1], vision_in_dim=1152),
    dict(theta=256, qkv_bias=True, guidance_embed=False, byt5=False, meanflow=False, use_cond_type_embedding=True,
         meanflow_sum=True), "comfy.ldm.hunyuan_video.model.HunyuanVideoParams", route="detection"))

# LTX-2 checkpoints carry their transformer config as safetensors metadata (detection reads only a few widths off the
# weights), so the tiny sizes travel the same way. The latent is a NestedTensor [video [B, 128, T, H, W], audio
# [B, 8, T_a, 16]] as LTXVConcatAVLatent builds it; the sampler packs it and passes latent_shapes to the model.
_LTXAV_SIZES = dict(in_channels=128, audio_in_channels=128, cross_attention_dim=64, audio_cross_attention_dim=32,
                    attention_head_dim=32, audio_attention_head_dim=16, num_attention_heads=2, audio_num_attention_heads=2,
                    caption_channels=48, num_layers=2, connector_attention_head_dim=24, connector_num_attention_heads=2,
                    connector_num_layers=1)
_add(Family(
    "ltxav", "LTXAV", "LTXAVModel", (128, 1, 4, 4), "detection", "LTXAV", 48,
    ("transformer_blocks",), ("double_block",), True, since=_033, more_latents=((8, 4, 16),),
    notes="LTX-2 audio + video: the blocks take img = (video, audio) tokens; model_base.LTXAV runs the text through the "
          "video and audio connectors in extra_conds (48 -> 2 x 48 wide, padded with learned registers)",
), Blueprint("comfy.ldm.lightricks.av_model.LTXAVModel", "LTXAV", _LTXAV_SIZES, route="detection",
             metadata=_LTXAV_SIZES))

_K5_POOLED = 24
_K5_BROKEN_REPLACE = ("comfy/ldm/kandinsky5/model.py's block_wrap calls the block with x= / context= keywords that "
                      "TransformerDecoderBlock.forward does not take (TypeError), so a patch cannot call original_block")


def _kandinsky5_extra(g: torch.Generator, batch: int, length: int) -> dict:
    # model_base.Kandinsky5.encode_adm reads kwargs["pooled_output"] (the CLIP-L pooled text, in_text_dim2 wide)
    return {"pooled_output": torch.randn(batch, _K5_POOLED, generator=g)}


_K5_SIZES = dict(in_visual_dim=16, out_visual_dim=16, in_text_dim=40, in_text_dim2=_K5_POOLED, time_dim=32, model_dim=64,
                 ff_dim=128, num_text_blocks=1, num_visual_blocks=2, axes_dims=(8, 12, 12))
_add(Family(
    "kandinsky5", "Kandinsky5", "Kandinsky5", (16, 1, 8, 8), "config", "Kandinsky5", 40,
    ("visual_transformer_blocks",), ("double_block",), True, extra=_kandinsky5_extra, since=_033,
    broken_replace=_K5_BROKEN_REPLACE,
    notes="Kandinsky 5 video: visual_embed_dim 132 = (16 latent + 16 zero image + 1 mask) x 2 x 2 (concat_cond); "
          "detection reads widths off the weights but not the text widths (in_text_dim / in_text_dim2)",
), Blueprint("comfy.ldm.kandinsky5.model.Kandinsky5", "Kandinsky5", dict(_K5_SIZES, visual_embed_dim=132),
             dict(image_model="kandinsky5")))
_add(Family(
    "kandinsky5_image", "Kandinsky5Image", "Kandinsky5", (16, 8, 8), "config", "Kandinsky5Image", 40,
    ("visual_transformer_blocks",), ("double_block",), True, extra=_kandinsky5_extra, since=_033,
    broken_replace=_K5_BROKEN_REPLACE,
    notes="Kandinsky 5 Image: no concat (visual_embed_dim 64 = 16 x 2 x 2), a 4-D Flux latent the model unsqueezes to "
          "one frame",
), Blueprint("comfy.ldm.kandinsky5.model.Kandinsky5", "Kandinsky5Image", dict(_K5_SIZES, visual_embed_dim=64),
             dict(image_model="kandinsky5")))

_add(Family(
    "cogvideox", "CogVideoX", "CogVideoXTransformer3DModel", (16, 1, 8, 8), "detection", "CogVideoX_T2V", 40,
    ("blocks",), (), True, since=_033,
    notes="CogVideoX 1.0 T2V layout (Conv2d patch embed, rotary positions): detection fixes heads of 64; v-prediction "
          "DDPM with zero terminal SNR; joint [text, latent] attention inline in each block",
), Blueprint("comfy.ldm.cogvideo.model.CogVideoXTransformer3DModel", "CogVideoX_T2V", dict(
    num_attention_heads=2, attention_head_dim=64, time_embed_dim=32, text_embed_dim=40, num_layers=2, in_channels=16,
    patch_size=2, use_rotary_positional_embeddings=True, use_learned_positional_embeddings=False), route="detection"))


def _cosmos_i2v_extra(g: torch.Generator, batch: int, length: int) -> dict:
    # what CosmosPredict2ImageToVideoLatent gives: the start image latent and its mask
    mask = torch.ones(1, 1, 2, 8, 8)
    mask[:, :, :1] = 0.0
    return {"concat_latent_image": torch.randn(1, 16, 2, 8, 8, generator=g), "concat_mask": mask}


_add(Family(
    "cosmos_predict2_i2v", "CosmosPredict2", "MiniTrainDIT", (16, 2, 8, 8), "config", "CosmosI2VPredict2", 1024,
    ("blocks",), (), True, since="0.3.60",
    notes="Cosmos Predict2 Video2World: in_channels 17 (+1 condition mask channel); model_base.CosmosPredict2 with "
          "image_to_video gives per-frame timesteps from the denoise mask",
), dataclasses.replace(BLUEPRINTS["cosmos_predict2"], supported_model="CosmosI2VPredict2",
                       sizes=dict(BLUEPRINTS["cosmos_predict2"].sizes, in_channels=17)))


_PIXEL_SIZES = dict(num_groups=2, hidden_size=64, pixel_hidden_size=8, pixel_attn_hidden_size=32, pixel_num_groups=2,
                    patch_depth=2, pixel_depth=1, patch_size=8, txt_embed_dim=40, txt_max_length=16)
_add(Family(
    "pixeldit", "PixelDiTT2I", "PixDiT_T2I", (3, 32, 32), "config", "PixelDiTT2I", 40,
    ("patch_blocks", "pixel_blocks"), (), True, extra=_ones_mask, since=_033,
    notes="pixel space: patch 8 (32 x 32 pixels = 16 patch tokens), dual-stream patch blocks then per-pixel blocks; "
          "detection knows it by its checkpoints' core. prefix and returns no sizes at all (the 1024px stage-3 model)",
), Blueprint("comfy.ldm.pixeldit.model.PixDiT_T2I", "PixelDiTT2I", _PIXEL_SIZES, dict(image_model="pixeldit_t2i"),
             checkpoint_prefix="core."))


def _pid_extra(g: torch.Generator, batch: int, length: int) -> dict:
    # PiDConditioning: a low-quality Flux latent (32 x 32 pixels / (sr_scale 4 x 8) = 1 x 1) and its degrade sigma
    return {"attention_mask": torch.ones(batch, length, dtype=torch.long),
            "lq_latent": torch.randn(1, 16, 1, 1, generator=g), "degrade_sigma": torch.tensor([0.0])}


_add(Family(
    "pid", "PiD", "PidNet", (3, 32, 32), "config", "PiD", 40,
    ("patch_blocks", "pixel_blocks"), (), True, extra=_pid_extra, since=_033,
    notes="PixelDiT decoder with a sigma-gated LQ-latent feature injected before every lq_interval-th patch block (and "
          "built inside the DIFFUSION_MODEL wrapper); detected by lq_proj.latent_proj",
), Blueprint("comfy.ldm.pixeldit.pid.PidNet", "PiD", dict(_PIXEL_SIZES, lq_latent_channels=16, lq_hidden_dim=16,
                                                          lq_num_res_blocks=1, lq_interval=1), dict(image_model="pid")))

# Stable Cascade: U-Net-like stages without a DIFFUSION_MODEL wrapper. extra_conds reads kwargs["pooled_output"] (the
# CLIP-G pooled text, [B, 1, D]); stage C gets zero CLIP-image embeddings (768 wide) and stage B a zero prior when none
# are given.


def _cascade_extra(g: torch.Generator, batch: int, length: int) -> dict:
    return {"pooled_output": torch.randn(batch, 1, 64, generator=g)}


_add(Family(
    "stable_cascade_c", "StableCascade_C", "StageC", (16, 8, 8), "config", "Stable_Cascade_C", 64,
    ("down_blocks", "up_blocks"), (), False, extra=_cascade_extra,
    notes="Stage C (the prior, 16-channel SC_Prior latent): two levels of one block each at width 64, 2 heads; the CLIP "
          "image input stays 768 wide (extra_conds' zeros)",
), Blueprint("comfy.ldm.cascade.stage_c.StageC", "Stable_Cascade_C", dict(
    c_in=16, c_out=16, c_cond=64, c_hidden=[64, 64], nhead=[2, 2], blocks=[[1, 1], [1, 1]], block_repeat=[[1, 1], [1, 1]],
    c_clip_text=64, c_clip_text_pooled=64, c_clip_img=768), dict(stable_cascade_stage="c")))
_add(Family(
    "stable_cascade_b", "StableCascade_B", "StageB", (4, 16, 16), "config", "Stable_Cascade_B", 64,
    ("down_blocks", "up_blocks"), (), False, extra=_cascade_extra,
    notes="Stage B (the decoder, 4-channel SC_B latent): four levels (CT, CT, CTA, CTA) of one block each; the effnet "
          "prior is extra_conds' zeros",
), Blueprint("comfy.ldm.cascade.stage_b.StageB", "Stable_Cascade_B", dict(
    c_in=4, c_out=4, c_cond=64, c_hidden=[32, 32, 64, 64], nhead=[-1, -1, 2, 2], blocks=[[1, 1, 1, 1], [1, 1, 1, 1]],
    block_repeat=[[1, 1, 1, 1], [1, 1, 1, 1]], c_clip=64), dict(stable_cascade_stage="b")))

_add(Family(
    "boogu", "Boogu", "BooguTransformer2DModel", (16, 8, 8), "config", "Boogu", 64,
    ("double_stream_layers", "single_stream_layers"), (), False, extra=_ones_mask, since=_033,
    notes="OmniGen2 derivative: refiners, then dual-stream (image / instruction) layers, then single-stream layers over "
          "cat(text, image); no DIFFUSION_MODEL wrapper; detection reads widths and layer counts, not heads",
), Blueprint("comfy.ldm.boogu.model.BooguTransformer2DModel", "Boogu", dict(
    patch_size=2, in_channels=16, hidden_size=128, num_layers=2, num_double_stream_layers=1, num_refiner_layers=1,
    num_attention_heads=2, num_kv_heads=1, axes_dim_rope=(16, 24, 24), axes_lens=(300, 512, 512),
    instruction_feat_dim=64), dict(image_model="boogu")))
_add(Family(
    "ernie_image", "ErnieImage", "ErnieImageModel", (128, 4, 4), "config", "ErnieImage", 40,
    ("layers",), (), False, since=_033,
    notes="detection returns only image_model (the full 4096-wide model); shared-AdaLN blocks over cat(img, text) on the "
          "128-channel Flux2 latent with patch 1; its attention takes no transformer_options",
), Blueprint("comfy.ldm.ernie.model.ErnieImageModel", "ErnieImage", dict(
    hidden_size=64, num_attention_heads=2, num_layers=2, ffn_hidden_size=128, in_channels=128, out_channels=128,
    patch_size=1, text_in_dim=40, rope_axes_dim=(8, 12, 12)), dict(image_model="ernie")))

_NUMBER_CONDITIONER = "comfy.ldm.audio.embedders.NumberConditioner"
_add(Family(
    "stable_audio", "StableAudio1", "AudioDiffusionTransformer", (64, 32), "config", "StableAudio", 768,
    ("transformer.layers",), ("double_block",), False,
    notes="Stable Audio Open 1.0: 1-D 64-channel latent; model_base.StableAudio1 appends the seconds_start / "
          "seconds_total embeddings (768 wide, their number conditioners come from the checkpoint) to the 768-wide text "
          "tokens and uses them as the global condition (1536); v-prediction; no DIFFUSION_MODEL wrapper. The text "
          "tokens are projected to the model width (project_cond_tokens, read off to_cond_embed): unprojected, the "
          "768-wide context would give the 64-wide model's cross-attention 24 key heads for 2 query heads",
), Blueprint("comfy.ldm.audio.dit.AudioDiffusionTransformer", "StableAudio", dict(
    io_channels=64, embed_dim=64, cond_token_dim=768, global_cond_dim=1536, depth=2, num_heads=2),
    dict(audio_model="dit1.0", project_cond_tokens=True),
    extra_weights={f"conditioner.conditioners.{name}.": (_NUMBER_CONDITIONER, dict(output_dim=768, min_val=0, max_val=512))
                   for name in ("seconds_start", "seconds_total")}))


def _ace_extra(g: torch.Generator, batch: int, length: int) -> dict:
    # AceT5Model's output: lyric token ids (VoiceBpe) next to the UMT5 text tokens
    return {"conditioning_lyrics": torch.randint(0, 6693, (1, 6), generator=g)}


_add(Family(
    "ace_step", "ACEStep", "ACEStepTransformer2DModel", (8, 16, 32), "config", "ACEStep", 64,
    ("transformer_blocks",), (), True, extra=_ace_extra, param_budget=100_000_000,
    notes="ACE-Step 1 (music): latent [B, 8, 16, T] patched 16 x 1 (one token per frame); linear self-attention, "
          "cross-attention to [genre text, lyrics, speaker]; detection hard-codes the 3.5B model; the speaker embedding "
          "stays 512 wide (extra_conds' zeros) and the lyric conformer is fixed by comfy/ldm/ace/lyric_encoder.py "
          "(output 1024, 6 blocks, 4096-wide FFN: ~83M weights, read on every forward)",
), Blueprint("comfy.ldm.ace.model.ACEStepTransformer2DModel", "ACEStep", dict(
    in_channels=8, out_channels=8, num_layers=2, num_attention_heads=2, attention_head_dim=32, mlp_ratio=2.5,
    text_embedding_dim=64, speaker_embedding_dim=512, lyric_hidden_size=1024, ssl_latent_dims=[32, 32],
    ssl_encoder_depths=[1, 1]), dict(audio_model="ace")))


def _ace15_extra(g: torch.Generator, batch: int, length: int) -> dict:
    # ACE15 text encoder output: the lyric token embeddings of its LM (text_hidden_dim wide) next to the caption tokens
    return {"conditioning_lyrics": torch.randn(1, 6, 64, generator=g)}


_add(Family(
    "ace_step15", "ACEStep15", "AceStepConditionGenerationModel", (64, 25), "config", "ACEStep15", 64,
    ("decoder.layers",), (), False, extra=_ace15_extra, since=_033,
    notes="ACE-Step 1.5: 1-D 64-channel latent; a condition encoder (lyrics, timbre from extra_conds' built-in silence "
          "latent, text) feeds the DiT decoder; no DIFFUSION_MODEL wrapper, attention without transformer_options",
), Blueprint("comfy.ldm.ace.ace_step15.AceStepConditionGenerationModel", "ACEStep15", dict(
    hidden_size=128, text_hidden_dim=64, num_dit_layers=2, num_lyric_layers=1, num_timbre_layers=1, num_tokenizer_layers=1,
    num_heads=2, num_kv_heads=1, head_dim=64, intermediate_size=256, fsq_dim=128, encoder_hidden_size=128,
    encoder_intermediate_size=256, encoder_num_heads=2), dict(audio_model="ace1.5")))


def _seedvr2_extra(g: torch.Generator, batch: int, length: int) -> dict:
    # SeedVR2Conditioning: the low-quality video's VAE latent plus a ones mask channel, on both branches
    return {"condition": torch.cat([torch.randn(1, 16, 1, 8, 8, generator=g), torch.ones(1, 1, 1, 8, 8)], dim=1)}


_add(Family(
    "seedvr2", "SeedVR2", "NaDiT", (16, 1, 8, 8), "config", "SeedVR2", 5120,
    ("blocks",), ("block",), False, extra=_seedvr2_extra, since=_033,
    notes="SeedVR2 (video restoration): detection only knows the 3B / 7B presets by their last block index (blocks.31), "
          "so the probe has 32 blocks; text stays 5120 wide (the width of the model's built-in positive / negative "
          "embeddings); packed variable-length streams; with cond and uncond in one batch it swaps the halves around "
          "the blocks, a lone branch (cfg 1, split cfg) it runs as is (transformer_options['cond_or_uncond'])",
), Blueprint("comfy.ldm.seedvr.model.NaDiT", "SeedVR2", dict(
    vid_dim=128, heads=2, head_dim=64, num_layers=2, mm_layers=2, txt_in_dim=5120, rope_dim=32, norm_eps=1e-5,
    mlp_type="swiglu", vid_out_norm=True), dict(image_model="seedvr2"), probe=dict(num_layers=32)))

_add(Family(
    "triposplat", "TripoSplat", "LatentSeqMMFlowModel", (64, 16), "config", "TripoSplat", 40,
    ("blocks",), (), True, since=_033, more_latents=((1, 5),),
    notes="image -> 3D gaussian splats: a nested latent [latent tokens [B, q_token_length, 16], camera [B, 1, 5]] as "
          "TripoSplatConditioning builds it; the latent tokens are tied to fixed Sobol anchors, so q_token_length (8192 "
          "in the release) is a size here (64); the context stands in for DINOv3 tokens (1280 wide in the release)",
), Blueprint("comfy.ldm.triposplat.model.LatentSeqMMFlowModel", "TripoSplat", dict(
    q_token_length=64, in_channels=16, model_channels=64, cond_channels=40, out_channels=16, num_blocks=2,
    num_refiner_blocks=1, num_head_channels=32, cam_channels=5), dict(image_model="triposplat")))

_add(Family(
    "minimax_h3", "MiniMaxH3", "MiniMaxH3Model", (24, 1, 4, 4), "detection", "MiniMaxH3", 40,
    ("blocks",), ("double_block",), True, since=_033, more_latents=((32, 2, 4),), latent_batch=False,
    notes="MiniMax H3 audio + video: a nested latent [video [B, 24, T, H, W], audio [B, 32, 2, T_a]] as its empty-latent "
          "node builds it, packed into one batch-less token stream [text | audio | video]; detection reads every size "
          "off the weights; the text runs through condition_proj + token refiner once in extra_conds; each branch "
          "carries its own minimax_payload constant, so cond and uncond never share a forward; batch 1 only "
          "(ValueError in comfy/ldm/minimax/model.py)",
), Blueprint("comfy.ldm.minimax.model.MiniMaxH3Model", "MiniMaxH3", dict(
    hidden_size=64, num_layers=2, token_refiner_num_layers=1, num_attention_heads=2, attention_head_dim=32,
    ffn_hidden_size=96, text_dim=40, time_embed_hidden_size=64, time_embed_dim=32, rope_inv_freq_len=4),
    route="detection"))


def _hidream_o1_conditioning(g: torch.Generator, batch: int, length: int) -> tuple[torch.Tensor, dict]:
    # HiDreamO1TE only tokenizes: the chat-wrapped prompt ids (ending in <|boi|><|tms|>) go to extra_conds as
    # text_input_ids, and a float copy of them fills the cross_attn slot
    from comfy.text_encoders import hidream_o1 as te

    prompt = torch.randint(0, 150000, (length,), generator=g).tolist()
    ids = [te.IM_START_ID, te.USER_ID, te.NEWLINE_ID, *prompt, te.IM_END_ID, te.NEWLINE_ID, te.IM_START_ID,
           te.ASSISTANT_ID, te.NEWLINE_ID, te.BOI_TOKEN_ID, te.TMS_TOKEN_ID]
    input_ids = torch.tensor([ids], dtype=torch.long)
    return input_ids.unsqueeze(-1).to(torch.float32), {"text_input_ids": input_ids}


_add(Family(
    "hidream_o1", "HiDreamO1", "HiDreamO1Transformer", (3, 64, 64), "config", "HiDreamO1", 1,
    ("language_model.layers",), ("double_block",), True, conditioning=_hidream_o1_conditioning, since=_033,
    param_budget=15_000_000,
    notes="pixel space, fixed 32-pixel patches (64 x 64 pixels = 4 image tokens) through a Qwen3-VL language model; "
          "detection returns only image_model (the 8B), so the text / vision config overrides are the sizes; the "
          "vocabulary stays 152000 (its special tokens sit at 151643+: ~9.7M of the weights); extra_conds builds "
          "input_ids / position_ids / token types from text_input_ids; a block replace turns its prompt KV cache off",
), Blueprint("comfy.ldm.hidream_o1.model.HiDreamO1Transformer", "HiDreamO1", dict(
    text_config_overrides=dict(vocab_size=152000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                               num_attention_heads=2, num_key_value_heads=1, head_dim=32, rope_dims=[4, 6, 6]),
    vision_config_overrides=dict(hidden_size=32, num_heads=2, intermediate_size=64, depth=1, deepstack_visual_indexes=())),
    dict(image_model="hidream_o1")))

_add(Family(
    "anima", "Anima", "Anima", (16, 1, 8, 8), "config", "Anima", 1024,
    ("blocks",), (), True, since=_033, param_budget=150_000_000,
    notes="Cosmos Predict2's MiniTrainDIT plus an LLM adapter (detected by its llm_adapter keys); Anima.__init__ always "
          "builds the adapter at its fixed size (6 x 1024 blocks, a 32128 x 1024 embedding: most of the weights); at "
          "inference the adapter runs in extra_conds only for t5xxl_ids, so plain 1024-wide context tokens skip it",
), dataclasses.replace(BLUEPRINTS["cosmos_predict2"], ldm_class="comfy.ldm.anima.model.Anima", supported_model="Anima",
                       layout=dict(BLUEPRINTS["cosmos_predict2"].layout, image_model="anima")))

# The entry of CacheKit's family table (cache_core/families/table.py) each tiny family exercises (checked on the loaded
# model), and the table entries no tiny model can stand for, with the reason.
TABLE_FAMILY: dict[str, str] = {
    "qwen_image": "QwenImage",
    "ltxv": "LTXV",
    "sd3": "SD3",
    "sd35": "SD3",
    "mochi": "Mochi",
    "auraflow": "AuraFlow",
    "chroma": "Chroma",
    "lumina2": "Lumina2 / Z-Image",
    "hidream": "HiDream",
    "cosmos_t2v": "Cosmos",
    "cosmos_predict2": "CosmosPredict2",
    "hunyuan_image21": "HunyuanVideo",
    "hunyuan3d_v2": "Hunyuan3Dv2",
    "hunyuan3d_v21": "Hunyuan3Dv2_1",
    "wan22_5b": "Wan",
    "wan21_i2v": "Wan",
    "flux_kontext": "Flux",
    "sd15": "UNet (SD1.5 / SDXL)",
    "sdxl": "UNet (SD1.5 / SDXL)",
    "chroma_radiance": "ChromaRadiance",
    "omnigen2": "OmniGen2",
    "pixart_sigma": "PixArt",
    "hunyuan_dit": "HunyuanDiT",
    "flux2": "Flux2",
    "ovis_image": "Ovis-Image",
    "longcat_image": "LongCat-Image",
    "z_image": "Lumina2 / Z-Image",
    "z_image_pixel": "Z-Image PixelSpace",
    "qwen_image_edit": "QwenImage",
    "qwen_image_edit_2511": "QwenImage",
    "wan21_flow_rvs": "Wan",
    "wan22_camera": "WanCamera",
    "wan21_humo": "WanHuMo",
    "wan21_vace": "WanVACE",
    "wan22_s2v": "WanS2V",
    "wan22_animate": "WanAnimate",
    "wan21_scail": "WanSCAIL",
    "wan21_scail2": "WanSCAIL2",
    "wan22_dancer": "WanDancer",
    "wan21_causal_ar": "WanCausalAR",
    "wan_animate2": "WanAnimate2",
    "mage_flow": "MageFlow",
    "lens": "Lens",
    "joyimage": "JoyImage",
    "krea2": "Krea2",
    "ideogram4": "Ideogram4",
    "hunyuan_video15": "HunyuanVideo15",
    "ltxav": "LTX-2",
    "kandinsky5": "Kandinsky5",
    "kandinsky5_image": "Kandinsky5",
    "cogvideox": "CogVideoX",
    "cosmos_predict2_i2v": "CosmosPredict2",
    "pixeldit": "PixelDiT",
    "pid": "PiD",
    "stable_cascade_c": "StableCascade C",
    "stable_cascade_b": "StableCascade B",
    "boogu": "Boogu",
    "ernie_image": "ERNIE-Image",
    "stable_audio": "StableAudio",
    "ace_step": "ACE-Step",
    "ace_step15": "ACE-Step 1.5",
    "seedvr2": "SeedVR2",
    "triposplat": "TripoSplat",
    "minimax_h3": "MiniMaxH3",
    "hidream_o1": "HiDream-O1",
    "anima": "Anima",
}
NOT_BUILT: dict[str, str] = {
    "MiniMaxMusic3": "comfy/ldm/minimax_music/dit.py builds its DiT at fixed sizes (ContinuousTransformer: 36 blocks of "
                     "2048 wide with 8192-wide FFNs, project_in 2304 -> 2048, MiniMaxMusic3DiT's 4096 -> 2048 latent "
                     "conditioner; dit.py:131-145, 174-180) with no size arguments, about 1.8 billion weights: no tiny "
                     "model can come out of ComfyUI's class",
}

# --------------------------------------------------------------------------------------------------------------------
# Which families this ComfyUI has


def _ldm_class(path: str) -> Any:
    import importlib

    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def _missing(name: str) -> str | None:
    """Why the running ComfyUI cannot build the tiny `name` model, or None when it can: its supported_models,
    model_base and comfy.ldm classes must exist, and the fields the family is made of (``Family.needs``) must be
    constructor arguments or fields of the params dataclass (an older Flux class silently lacks Flux.2's)."""
    import dataclasses
    import inspect

    import comfy.model_base
    import comfy.supported_models

    family, blueprint = FAMILIES[name], BLUEPRINTS[name]
    since = f" (the tiny model is built from ComfyUI {family.since} on)"
    if not hasattr(comfy.supported_models, blueprint.supported_model):
        return f"this ComfyUI has no comfy.supported_models.{blueprint.supported_model}" + since
    if not hasattr(comfy.model_base, family.model_class):
        return f"this ComfyUI has no comfy.model_base.{family.model_class}" + since
    cls = _ldm_class(blueprint.ldm_class)
    if cls is None:
        return f"this ComfyUI has no {blueprint.ldm_class}" + since
    accepted = set(inspect.signature(cls).parameters)
    if blueprint.params is not None:
        params = _ldm_class(blueprint.params)
        accepted |= {f.name for f in dataclasses.fields(params)} if params is not None else set()
    lacking = [field for field in family.needs if field not in accepted]
    if lacking:
        return f"this ComfyUI's {blueprint.ldm_class} has no {', '.join(lacking)}" + since
    return None


def _availability() -> tuple[tuple[str, ...], dict[str, str]]:
    try:
        import comfy.supported_models  # noqa: F401
    except ImportError:  # no ComfyUI booted: nothing can be checked (the ComfyUI tests are not collected then)
        return tuple(FAMILIES), {}
    missing = {name: _missing(name) for name in FAMILIES}
    return tuple(n for n, why in missing.items() if why is None), {n: why for n, why in missing.items() if why is not None}


assert set(BLUEPRINTS) == set(FAMILIES) == set(TABLE_FAMILY) and all(
    BLUEPRINTS[n].route == f.route and BLUEPRINTS[n].supported_model == f.supported_model for n, f in FAMILIES.items()
), "tiny_families: BLUEPRINTS and FAMILIES disagree"

FAMILY_NAMES, UNAVAILABLE = _availability()  # the families this ComfyUI builds; the others with the reason


@functools.lru_cache(maxsize=None)
def _cached_state_dict(name: str, seed: int) -> dict[str, torch.Tensor]:
    return random_state(probe_module(BLUEPRINTS[name]), seed)


def family_state_dict(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The random state dict (ComfyUI key layout) of a detection-route family; a fresh dict each call."""
    if BLUEPRINTS[_family(name).name].route != "detection":
        raise KeyError(f"{name!r} is built from a config (detection hard-codes its widths); see FAMILIES[{name!r}].notes")
    return dict(_cached_state_dict(name, seed))


def family_metadata(name: str) -> dict[str, str] | None:
    """The safetensors metadata of a detection-route family's checkpoint (None when it has none), as
    comfy.utils.load_torch_file returns it and comfy.model_detection reads it."""
    import json

    transformer = BLUEPRINTS[_family(name).name].metadata
    return {"config": json.dumps({"transformer": transformer})} if transformer else None


def write_family_checkpoint(name: str, path: Path, seed: int = 0, dtype: torch.dtype = torch.float16) -> Path:
    """Save a detection-route family as .safetensors where UNETLoader / comfy.sd.load_diffusion_model can load it."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype).contiguous() for k, v in family_state_dict(name, seed).items()}, str(path),
              metadata=family_metadata(name))
    return path


def _load_detected(name: str, seed: int) -> Any:
    import comfy.sd

    state = family_state_dict(name, seed)
    keys = set(state)
    metadata = family_metadata(name)
    extra = {"metadata": metadata} if metadata is not None else {}  # 0.3.60's loader takes no metadata
    patcher = comfy.sd.load_diffusion_model_state_dict(state, model_options={"dtype": torch.float32}, **extra)
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
    why = UNAVAILABLE.get(name)
    if why is not None:
        raise KeyError(f"tiny family {name!r} is not available on this ComfyUI: {why}")
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown tiny family {name!r}; known: {', '.join(FAMILY_NAMES)}") from None


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
    if family.conditioning is not None:
        return [list(family.conditioning(generator, batch, length))]
    context = torch.randn(batch, length, family.context_dim, generator=generator)
    extra = family.extra(generator, batch, length) if family.extra is not None else {}
    return [[context, extra]]


def family_latent(name: str, batch: int = 1) -> Any:
    """A zero latent of `name`'s final layout (channels, 4-D / 5-D / 3-D): 8x8 and 1 frame unless a family needs more
    (pixart_sigma 48x48, chroma_radiance 32x32 pixels, Hunyuan3D 64 tokens). Families with several latents (LTX-2's
    video and audio, ...) get a ``comfy.nested_tensor.NestedTensor`` of them, as ComfyUI's nodes build it."""
    family = _family(name)
    if not family.more_latents:
        return torch.zeros((batch,) + family.latent_shape)
    import comfy.nested_tensor

    return comfy.nested_tensor.NestedTensor([torch.zeros((batch,) + shape) for shape in (family.latent_shape,) + family.more_latents])


def flat(latent: Any) -> torch.Tensor:
    """A latent as one tensor: a NestedTensor packed the way ComfyUI's sampler packs it ([B, 1, sum of sizes])."""
    if not getattr(latent, "is_nested", False):
        return latent
    import comfy.utils

    return comfy.utils.pack_latents(latent.unbind())[0]


def sample_family(model: Any, name: str, *, steps: int = 3, cfg: float = 1.0, sampler: str | None = None,
                  scheduler: str = "simple", seed: int = 0, batch: int = 1, latent: Any = None,
                  **kwargs: Any) -> torch.Tensor:
    """Sample `model` like KSampler with fixed noise and this family's conditioning (positive seed 1, negative seed 2),
    with the family's sampler unless `sampler` is given (Causal Wan: ComfyUI's ar_video). A nested latent's result
    comes back packed into one tensor (see ``flat``)."""
    import comfy.sample
    import comfy.samplers

    sampler = _family(name).sampler if sampler is None else sampler
    latent = family_latent(name, batch) if latent is None else latent
    noise = comfy.sample.prepare_noise(latent, seed)
    positive = family_conditioning(name, seed=1, batch=1)
    negative = family_conditioning(name, seed=2, batch=1)
    if sampler in comfy.samplers.KSampler.SAMPLERS:
        out = comfy.sample.sample(model, noise, steps, cfg, sampler, scheduler, positive, negative, latent,
                                  disable_pbar=True, seed=seed, **kwargs)
    else:  # a sampler KSampler does not list (it would silently use euler): SamplerCustom with BasicScheduler's sigmas
        sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()
        out = comfy.sample.sample_custom(model, noise, cfg, comfy.samplers.ksampler(sampler), sigmas, positive, negative,
                                         latent, disable_pbar=True, seed=seed, **kwargs)
    return flat(out)
