"""The family table: everything CacheKit knows about each ComfyUI diffusion model family.

One entry per family, keyed by the exact class of `model.diffusion_model`. Subclasses are not
matched on purpose: VACE, camera, S2V and similar variants inject extra inputs inside the block
loop, so a cache that skips blocks must be declared safe for them explicitly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .attention_sites import BLOCK_KERNEL, CROSS, MODULE_FORWARD, SPATIAL, AttentionSites


@dataclass(frozen=True)
class BlockList:
    """A list of transformer blocks that ComfyUI runs through `patches_replace["dit"]`.

    attr: attribute of the diffusion model holding the nn.ModuleList.
    replace_name: block name in the patches_replace key, e.g. ("double_block", i).
    outputs: the streams the block returns in its output dict.
    """

    attr: str
    replace_name: str
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Family:
    """A diffusion model family and the caching methods it supports.

    joint_order: for models whose single-stream blocks run on the concatenation of the
    double-stream outputs, the order of that concatenation along the token axis.
    attention: where the blocks compute attention, by kind (for the attention caches).
    loop_patches: `transformer_options["patches"]` entries the model applies between blocks; while
    one is set, nothing is skipped (the stack's residual would no longer be the blocks' alone).
    unsupported: for methods this family lacks, the reason shown to users.
    """

    name: str
    module_class: str
    block_lists: tuple[BlockList, ...]
    methods: frozenset[str]
    joint_order: tuple[str, ...] = ()
    attention: tuple[AttentionSites, ...] = ()
    loop_patches: tuple[str, ...] = ()
    notes: str = ""
    unsupported: dict[str, str] = field(default_factory=dict)


FIRST_BLOCK_CACHE = "FirstBlockCache"
MAG_CACHE = "MagCache"
MAG_CALIBRATION = "MagCacheCalibration"
PYRAMID_ATTENTION_BROADCAST = "PyramidAttentionBroadcast"
FASTER_CACHE = "FasterCache"
TAYLORSEER = "TaylorSeer"
BLOCK_STACK_METHODS = frozenset({FIRST_BLOCK_CACHE, MAG_CACHE, MAG_CALIBRATION})
ATTENTION_METHODS = frozenset({PYRAMID_ATTENTION_BROADCAST, FASTER_CACHE})

# The methods users pick, in the order the README lists them (calibration goes with MagCache).
METHODS = (FIRST_BLOCK_CACHE, PYRAMID_ATTENTION_BROADCAST, FASTER_CACHE, TAYLORSEER, MAG_CACHE)
ALL_METHODS = BLOCK_STACK_METHODS | ATTENTION_METHODS | {TAYLORSEER}

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

FAMILIES: tuple[Family, ...] = (
    Family(
        name="Flux",
        module_class="comfy.ldm.flux.model.Flux",
        block_lists=_FLUX_BLOCKS,
        joint_order=("txt", "img"),
        attention=_FLUX_ATTENTION,
        methods=ALL_METHODS,
        notes="Flux dev, schnell and Kontext (reference latents ride along in the image stream).",
    ),
    Family(
        name="Chroma",
        module_class="comfy.ldm.chroma.model.Chroma",
        block_lists=_FLUX_BLOCKS,
        joint_order=("txt", "img"),
        attention=_FLUX_ATTENTION,
        methods=ALL_METHODS,
    ),
    Family(
        name="HunyuanVideo",
        module_class="comfy.ldm.hunyuan_video.model.HunyuanVideo",
        block_lists=_FLUX_BLOCKS,
        joint_order=("img", "txt"),
        attention=_FLUX_ATTENTION,
        methods=ALL_METHODS,
    ),
    Family(
        name="Wan",
        module_class="comfy.ldm.wan.model.WanModel",
        block_lists=(BlockList("blocks", "double_block", ("img",)),),
        attention=_WAN_ATTENTION,
        methods=ALL_METHODS,
        notes="Wan 2.1 and Wan 2.2 (5B, and each A14B expert as its own run).",
    ),
    Family(
        name="QwenImage",
        module_class="comfy.ldm.qwen_image.model.QwenImageTransformer2DModel",
        block_lists=(BlockList("transformer_blocks", "double_block", ("img", "txt")),),
        attention=(AttentionSites("transformer_blocks", SPATIAL, BLOCK_KERNEL, replace_name="double_block"),),
        loop_patches=("double_block",),
        methods=ALL_METHODS,
        notes="Qwen-Image and Qwen-Image-Edit (reference latents ride along in the image stream).",
    ),
    Family(
        name="LTXV",
        module_class="comfy.ldm.lightricks.model.LTXVModel",
        block_lists=(BlockList("transformer_blocks", "double_block", ("img",)),),
        attention=(
            AttentionSites("transformer_blocks", SPATIAL, MODULE_FORWARD, module="attn1"),
            AttentionSites("transformer_blocks", CROSS, MODULE_FORWARD, module="attn2"),
        ),
        methods=ALL_METHODS,
    ),
    Family(
        name="SD3",
        module_class="comfy.ldm.modules.diffusionmodules.mmdit.OpenAISignatureMMDITWrapper",
        block_lists=(BlockList("joint_blocks", "double_block", ("img", "txt")),),
        attention=(AttentionSites("joint_blocks", SPATIAL, BLOCK_KERNEL, replace_name="double_block"),),
        methods=ALL_METHODS,
        notes="SD3 and SD3.5 (the last joint block returns no text stream).",
    ),
    Family(
        name="Mochi",
        module_class="comfy.ldm.genmo.joint_model.asymm_models_joint.AsymmDiTJoint",
        block_lists=(BlockList("blocks", "double_block", ("img", "txt")),),
        attention=(AttentionSites("blocks", SPATIAL, BLOCK_KERNEL, replace_name="double_block"),),
        methods=ALL_METHODS,
    ),
    Family(
        name="AuraFlow",
        module_class="comfy.ldm.aura.mmdit.MMDiT",
        block_lists=(
            BlockList("double_layers", "double_block", ("img", "txt")),
            BlockList("single_layers", "single_block", ("img",)),
        ),
        joint_order=("txt", "img"),
        attention=(
            AttentionSites("double_layers", SPATIAL, BLOCK_KERNEL, replace_name="double_block"),
            AttentionSites("single_layers", SPATIAL, BLOCK_KERNEL, replace_name="single_block"),
        ),
        methods=ALL_METHODS,
    ),
    Family(
        name="Hunyuan3Dv2",
        module_class="comfy.ldm.hunyuan3d.model.Hunyuan3Dv2",
        block_lists=_FLUX_BLOCKS,
        joint_order=("txt", "img"),
        attention=_FLUX_ATTENTION,
        methods=ALL_METHODS,
    ),
    *(
        Family(name=name, module_class=module_class, block_lists=(), methods=frozenset(), unsupported={m: reason for m in METHODS})
        for name, module_class, reason in (
            ("Lumina2", "comfy.ldm.lumina.model.NextDiT", "its blocks have no ComfyUI block patch points, so caching them would need a copied model forward"),
            ("HiDream", "comfy.ldm.hidream.model.HiDreamImageTransformer2DModel", "its blocks have no ComfyUI block patch points and mix per-block Llama states into the text stream"),
            ("Cosmos", "comfy.ldm.cosmos.model.GeneralDIT", "its blocks have no ComfyUI block patch points"),
            ("CosmosPredict2", "comfy.ldm.cosmos.predict2.MiniTrainDIT", "its blocks have no ComfyUI block patch points"),
            ("Hunyuan3Dv2_1", "comfy.ldm.hunyuan3dv2_1.hunyuandit.HunYuanDiTPlain", "its block patches return bare tensors, it keeps U-Net skips and reorders the CFG halves of the batch"),
            ("UNet (SD1.5 / SDXL)", "comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel", "U-Net blocks have no block patch points and carry skip connections"),
            ("PixArt", "comfy.ldm.pixart.pixartms.PixArtMS", "its attention does not receive transformer_options and it has no block patch points"),
            ("HunyuanDiT", "comfy.ldm.hydit.models.HunYuanDiT", "its block patches get no transformer_options and it keeps U-Net skips"),
            ("OmniGen2", "comfy.ldm.omnigen.omnigen2.OmniGen2Transformer2DModel", "its blocks have no ComfyUI block patch points"),
        )
    ),
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
