"""The family table: everything CacheKit knows about each ComfyUI diffusion model family.

One entry per family, keyed by the exact class of `model.diffusion_model`. Subclasses are not
matched on purpose: VACE, camera, S2V and similar variants inject extra inputs inside the block
loop, so a cache that skips blocks must be declared safe for them explicitly.

An entry says where a cache can reach the model, per site (cache_core/methods/spec.py):
- the block stack (`block_lists`): lists of blocks with ComfyUI patch points, and the streams each
  block takes and returns (the payload differs per family: Flux's img/txt, Kandinsky 5's x, ...);
- the model level (`model_tier`): the forward goes through ComfyUI's DIFFUSION_MODEL wrapper;
- attention (`attention`): attention sites by kind, for the attention caches;
- the cond batch: every family (CFG estimation works on ComfyUI's conditioning batches).
Stream layouts declared here (`joint_order`) are checked against the running ComfyUI on the first
computed forward of every run, never trusted blindly (they change between releases).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .attention_sites import BLOCK_KERNEL, CROSS, MODULE_FORWARD, SPATIAL, AttentionSites

STACK, OUTPUT, ATTENTION, COND_BATCH = "stack", "output", "attention", "cond_batch"
SITES = (STACK, OUTPUT, ATTENTION, COND_BATCH)

REPLACE = "replace"  # the block is reached through transformer_options["patches_replace"]["dit"]


@dataclass(frozen=True)
class BlockList:
    """A list of transformer blocks that ComfyUI runs through `patches_replace["dit"]`.

    attr: attribute of the diffusion model holding the nn.ModuleList.
    replace_name: block name in the patches_replace key, e.g. ("double_block", i).
    outputs: the streams the block returns in its output dict (the first is the main stream; a
        stream may be a tensor or a tuple of tensors, as LTX-2's (video, audio)).
    """

    attr: str
    replace_name: str
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Family:
    """A diffusion model family and where caches can reach it.

    joint_order: for models whose later blocks run on the concatenation of earlier blocks' streams
        (Flux's single blocks), the declared order of that concatenation along the token axis; the
        runtime checks it against the model on every run.
    model_tier: the forward goes through the DIFFUSION_MODEL wrapper (model-level caches).
    attention: where the blocks compute attention, by kind (for the attention caches).
    loop_patches: `transformer_options["patches"]` entries the model applies between blocks; while
        one is set, nothing is skipped (the stack's residual would no longer be the blocks' alone).
    reasons: per site the family lacks, the reason shown to users.
    """

    name: str
    module_class: str
    block_lists: tuple[BlockList, ...] = ()
    model_tier: bool = False
    joint_order: tuple[str, ...] = ()
    attention: tuple[AttentionSites, ...] = ()
    loop_patches: tuple[str, ...] = ()
    notes: str = ""
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def sites(self) -> frozenset[str]:
        """The sites a cache can use on this family."""
        found = {COND_BATCH}
        if self.block_lists:
            found.add(STACK)
        if self.model_tier:
            found.add(OUTPUT)
        if self.attention:
            found.add(ATTENTION)
        return frozenset(found)

    def reason(self, site: str) -> str:
        """Why `site` is not available on this family."""
        return self.reasons.get(site, _DEFAULT_REASONS[site])


_DEFAULT_REASONS = {
    STACK: "its blocks have no ComfyUI block patch points",
    OUTPUT: "its forward does not go through ComfyUI's DIFFUSION_MODEL wrapper",
    ATTENTION: "its attention cannot be reached through ComfyUI patches",
    COND_BATCH: "",
}

FIRST_BLOCK_CACHE = "FirstBlockCache"
MAG_CACHE = "MagCache"
MAG_CALIBRATION = "MagCacheCalibration"
PYRAMID_ATTENTION_BROADCAST = "PyramidAttentionBroadcast"
FASTER_CACHE = "FasterCache"
TAYLORSEER = "TaylorSeer"

# The methods users pick, in the order the README lists them (calibration goes with MagCache).
METHODS = (FIRST_BLOCK_CACHE, PYRAMID_ATTENTION_BROADCAST, FASTER_CACHE, TAYLORSEER, MAG_CACHE)

_FLUX_ATTENTION = (
    AttentionSites("double_blocks", SPATIAL, BLOCK_KERNEL, replace_name="double_block"),
    AttentionSites("single_blocks", SPATIAL, BLOCK_KERNEL, replace_name="single_block"),
)
_WAN_ATTENTION = (
    AttentionSites("blocks", SPATIAL, MODULE_FORWARD, module="self_attn"),
    AttentionSites("blocks", CROSS, MODULE_FORWARD, module="cross_attn"),
)
_FLUX_BLOCKS = (
    BlockList("double_blocks", "double_block", ("img", "txt")),
    BlockList("single_blocks", "single_block", ("img",)),
)
_WAN_BLOCKS = (BlockList("blocks", "double_block", ("img",)),)

_NO_STACK_LUMINA = "its blocks have no ComfyUI block patch points, so caching them would need a copied model forward"

FAMILIES: tuple[Family, ...] = (
    Family(
        name="Flux", module_class="comfy.ldm.flux.model.Flux", block_lists=_FLUX_BLOCKS, model_tier=True,
        joint_order=("txt", "img"), attention=_FLUX_ATTENTION,
        notes="Flux dev, schnell and Kontext (reference latents ride along in the image stream).",
    ),
    Family(
        name="Chroma", module_class="comfy.ldm.chroma.model.Chroma", block_lists=_FLUX_BLOCKS, model_tier=True,
        joint_order=("txt", "img"), attention=_FLUX_ATTENTION,
    ),
    Family(
        name="HunyuanVideo", module_class="comfy.ldm.hunyuan_video.model.HunyuanVideo", block_lists=_FLUX_BLOCKS,
        model_tier=True, joint_order=("txt", "img"), attention=_FLUX_ATTENTION,
        notes="HunyuanVideo, HunyuanImage 2.1 and HunyuanVideo 1.5 (ComfyUI 0.3.6x joins the single-block streams as "
              "(img, txt), 0.33 as (txt, img): the runtime reads the order off the model).",
    ),
    Family(
        name="Wan", module_class="comfy.ldm.wan.model.WanModel", block_lists=_WAN_BLOCKS, model_tier=True,
        attention=_WAN_ATTENTION, loop_patches=("double_block",),
        notes="Wan 2.1 and Wan 2.2 (5B, and each A14B expert as its own run).",
    ),
    Family(
        name="QwenImage", module_class="comfy.ldm.qwen_image.model.QwenImageTransformer2DModel",
        block_lists=(BlockList("transformer_blocks", "double_block", ("img", "txt")),), model_tier=True,
        attention=(AttentionSites("transformer_blocks", SPATIAL, BLOCK_KERNEL, replace_name="double_block"),),
        loop_patches=("double_block",),
        notes="Qwen-Image and Qwen-Image-Edit (reference latents ride along in the image stream).",
    ),
    Family(
        name="LTXV", module_class="comfy.ldm.lightricks.model.LTXVModel",
        block_lists=(BlockList("transformer_blocks", "double_block", ("img",)),), model_tier=True,
        attention=(
            AttentionSites("transformer_blocks", SPATIAL, MODULE_FORWARD, module="attn1"),
            AttentionSites("transformer_blocks", CROSS, MODULE_FORWARD, module="attn2"),
        ),
    ),
    Family(
        name="SD3", module_class="comfy.ldm.modules.diffusionmodules.mmdit.OpenAISignatureMMDITWrapper",
        block_lists=(BlockList("joint_blocks", "double_block", ("img", "txt")),),
        attention=(AttentionSites("joint_blocks", SPATIAL, BLOCK_KERNEL, replace_name="double_block"),),
        notes="SD3 and SD3.5 (the last joint block returns no text stream).",
    ),
    Family(
        name="Mochi", module_class="comfy.ldm.genmo.joint_model.asymm_models_joint.AsymmDiTJoint",
        block_lists=(BlockList("blocks", "double_block", ("img", "txt")),),
        attention=(AttentionSites("blocks", SPATIAL, BLOCK_KERNEL, replace_name="double_block"),),
    ),
    Family(
        name="AuraFlow", module_class="comfy.ldm.aura.mmdit.MMDiT",
        block_lists=(
            BlockList("double_layers", "double_block", ("img", "txt")),
            BlockList("single_layers", "single_block", ("img",)),
        ),
        model_tier=True, joint_order=("txt", "img"),
        attention=(
            AttentionSites("double_layers", SPATIAL, BLOCK_KERNEL, replace_name="double_block"),
            AttentionSites("single_layers", SPATIAL, BLOCK_KERNEL, replace_name="single_block"),
        ),
    ),
    Family(
        name="Hunyuan3Dv2", module_class="comfy.ldm.hunyuan3d.model.Hunyuan3Dv2", block_lists=_FLUX_BLOCKS,
        model_tier=True, joint_order=("txt", "img"), attention=_FLUX_ATTENTION,
    ),
    Family(name="Lumina2", module_class="comfy.ldm.lumina.model.NextDiT", model_tier=True, reasons={STACK: _NO_STACK_LUMINA}),
    Family(
        name="HiDream", module_class="comfy.ldm.hidream.model.HiDreamImageTransformer2DModel", model_tier=True,
        reasons={STACK: "its blocks have no ComfyUI block patch points and mix per-block Llama states into the text stream"},
    ),
    Family(name="Cosmos", module_class="comfy.ldm.cosmos.model.GeneralDIT", model_tier=True),
    Family(name="CosmosPredict2", module_class="comfy.ldm.cosmos.predict2.MiniTrainDIT", model_tier=True),
    Family(
        name="Hunyuan3Dv2_1", module_class="comfy.ldm.hunyuan3dv2_1.hunyuandit.HunYuanDiTPlain",
        reasons={STACK: "its block patches return bare tensors, it keeps U-Net skips and reorders the CFG halves of the batch"},
    ),
    Family(
        name="UNet (SD1.5 / SDXL)", module_class="comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel", model_tier=True,
        reasons={STACK: "U-Net blocks have no block patch points and carry skip connections",
                 ATTENTION: "U-Net attention patches do not receive the forward's transformer_options"},
    ),
    Family(
        name="PixArt", module_class="comfy.ldm.pixart.pixartms.PixArtMS",
        reasons={ATTENTION: "its attention does not receive transformer_options"},
    ),
    Family(
        name="HunyuanDiT", module_class="comfy.ldm.hydit.models.HunYuanDiT",
        reasons={STACK: "its block patches get no transformer_options and it keeps U-Net skips"},
    ),
    Family(name="OmniGen2", module_class="comfy.ldm.omnigen.omnigen2.OmniGen2Transformer2DModel"),
)

_BY_CLASS = {family.module_class: family for family in FAMILIES}


def qualified_name(cls: type) -> str:
    """`module.QualName` of a class, the key of the family table."""
    return f"{cls.__module__}.{cls.__qualname__}"


def family_named(name: str) -> Family | None:
    """The family entry called `name` (e.g. "Wan"), or None."""
    return next((family for family in FAMILIES if family.name == name), None)


def family_for_module(diffusion_model: object) -> Family | None:
    """The family entry for a diffusion model instance, or None when it is not in the table."""
    return _BY_CLASS.get(qualified_name(type(diffusion_model)))
