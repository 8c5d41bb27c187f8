"""The family table: everything CacheKit knows about each ComfyUI diffusion model family.

One entry per family, keyed by the exact class of `model.diffusion_model`. Subclasses are not
matched on purpose: VACE, camera, S2V and similar variants inject extra inputs inside the block
loop, so a cache that skips blocks must be declared safe for them explicitly.
"""
from __future__ import annotations

from dataclasses import dataclass, field


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
    """

    name: str
    module_class: str
    block_lists: tuple[BlockList, ...]
    methods: frozenset[str]
    joint_order: tuple[str, ...] = ()
    notes: str = ""
    unsupported: dict[str, str] = field(default_factory=dict)


FIRST_BLOCK_CACHE = "FirstBlockCache"
MAG_CACHE = "MagCache"
MAG_CALIBRATION = "MagCacheCalibration"
BLOCK_STACK_METHODS = frozenset({FIRST_BLOCK_CACHE, MAG_CACHE, MAG_CALIBRATION})

# The methods users pick, in the order the README lists them (calibration goes with MagCache).
METHODS = (FIRST_BLOCK_CACHE, MAG_CACHE)

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
        methods=BLOCK_STACK_METHODS,
        notes="Flux dev, schnell and Kontext (reference latents ride along in the image stream).",
    ),
    Family(
        name="Chroma",
        module_class="comfy.ldm.chroma.model.Chroma",
        block_lists=_FLUX_BLOCKS,
        joint_order=("txt", "img"),
        methods=BLOCK_STACK_METHODS,
    ),
    Family(
        name="HunyuanVideo",
        module_class="comfy.ldm.hunyuan_video.model.HunyuanVideo",
        block_lists=_FLUX_BLOCKS,
        joint_order=("img", "txt"),
        methods=BLOCK_STACK_METHODS,
    ),
    Family(
        name="Wan",
        module_class="comfy.ldm.wan.model.WanModel",
        block_lists=(BlockList("blocks", "double_block", ("img",)),),
        methods=BLOCK_STACK_METHODS,
        notes="Wan 2.1 and Wan 2.2 (5B, and each A14B expert as its own run).",
    ),
)

_BY_CLASS = {family.module_class: family for family in FAMILIES}


def qualified_name(cls: type) -> str:
    """`module.QualName` of a class, the key of the family table."""
    return f"{cls.__module__}.{cls.__qualname__}"


def family_for_module(diffusion_model: object) -> Family | None:
    """The family entry for a diffusion model instance, or None when it is not in the table."""
    return _BY_CLASS.get(qualified_name(type(diffusion_model)))
