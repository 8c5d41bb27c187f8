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
from typing import Any, Callable, Optional

from .attention_sites import BLOCK_KERNEL, CROSS, FORWARD_KERNEL, MODULE_FORWARD, SPATIAL, AttentionSites

STACK, OUTPUT, ATTENTION, COND_BATCH = "stack", "output", "attention", "cond_batch"
SITES = (STACK, OUTPUT, ATTENTION, COND_BATCH)

REPLACE = "replace"  # the block is reached through transformer_options["patches_replace"]["dit"]
OBJECT = "object"  # the block module's forward is object-patched (families without block patch points)
DM, APPLY = "dm", "apply"  # model level through the DIFFUSION_MODEL wrapper, or through APPLY_MODEL


@dataclass(frozen=True)
class BlockList:
    """A list of transformer blocks a cache can reach, and the payload each block takes and returns.

    attr: attribute of the diffusion model holding the nn.ModuleList.
    replace_name: block name in the patches_replace key, e.g. ("double_block", i) (REPLACE lists).
    outputs: the streams the block returns in its output dict (the first is the main stream; a
        stream may be a tensor or a tuple of tensors, as LTX-2's (video, audio)).
    via: REPLACE (ComfyUI's block patch points) or OBJECT (an object patch on each block module's
        `forward`, for families without patch points whose blocks take the hidden state as their
        first argument, `transformer_options` as a keyword, and return the new hidden state).
    """

    attr: str
    replace_name: str
    outputs: tuple[str, ...]
    via: str = REPLACE


@dataclass(frozen=True)
class Family:
    """A diffusion model family and where caches can reach it.

    joint_order: for models whose later blocks run on the concatenation of earlier blocks' streams
        (Flux's single blocks), the declared order of that concatenation along the token axis; the
        runtime checks it against the model on every run.
    model_tier: where model-level caches see the whole model output: DM (the forward goes through
        the DIFFUSION_MODEL wrapper: the raw output) or APPLY (ComfyUI's APPLY_MODEL, every family:
        the denoised output mapped back to model space through the model's own sampling).
    variant: a predicate on the diffusion model telling this family from another one of the same
        class (Flux.2 is ComfyUI's Flux class with global modulation); None matches the class.
    attention: where the blocks compute attention, by kind (for the attention caches).
    loop_patches: `transformer_options["patches"]` entries the model applies between blocks; while
        one is set, nothing is skipped (the stack's residual would no longer be the blocks' alone).
    cfg_estimation: the negative branch may run on its own (FasterCache's CFG estimate).
    since_033: the family came after ComfyUI 0.3.64 (in 0.33, not in 0.3.60).
    reasons: per site the family lacks, the reason shown to users.
    """

    name: str
    module_class: str
    block_lists: tuple[BlockList, ...] = ()
    model_tier: str = APPLY
    variant: Optional[Callable[[Any], bool]] = None
    joint_order: tuple[str, ...] = ()
    attention: tuple[AttentionSites, ...] = ()
    loop_patches: tuple[str, ...] = ()
    cfg_estimation: bool = True
    since_033: bool = False
    notes: str = ""
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def sites(self) -> frozenset[str]:
        """The sites a cache can use on this family."""
        found = {COND_BATCH} if self.cfg_estimation else set()
        if self.block_lists:
            found.add(STACK)
        if self.model_tier in (DM, APPLY):
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
_FORWARD_ATTENTION = (AttentionSites("", SPATIAL, FORWARD_KERNEL),)
_FLUX_BLOCKS = (
    BlockList("double_blocks", "double_block", ("img", "txt")),
    BlockList("single_blocks", "single_block", ("img",)),
)
_WAN_BLOCKS = (BlockList("blocks", "double_block", ("img",)),)
_DOUBLE_STREAM = (BlockList("transformer_blocks", "double_block", ("img", "txt")),)


def _kernel(block_list: str) -> tuple[AttentionSites, ...]:
    return (AttentionSites(block_list, SPATIAL, BLOCK_KERNEL, replace_name="double_block"),)


def _params(name: str, test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """A variant test on the diffusion model's `params` (ComfyUI's Flux / HunyuanVideo params)."""
    def check(diffusion_model: Any) -> bool:
        params = getattr(diffusion_model, "params", None)
        try:
            return bool(test(params)) if params is not None else False
        except AttributeError:
            return False
    check.__name__ = name
    return check


_FLUX2 = _params("flux2", lambda p: getattr(p, "global_modulation", False))
_OVIS = _params("ovis_image", lambda p: getattr(p, "yak_mlp", False) and getattr(p, "txt_norm", False))
_LONGCAT = _params("longcat_image", lambda p: p.context_in_dim == 3584 and p.vec_in_dim is None and not getattr(p, "yak_mlp", False))
_HUNYUAN_VIDEO_15 = _params("hunyuan_video_15", lambda p: getattr(p, "vision_in_dim", None) is not None)

_NO_STACK_LUMINA = "its blocks have no ComfyUI block patch points, so caching them would need a copied model forward"
_KV_CACHE = "its autoregressive path keeps key/value caches across calls and bypasses ComfyUI's patches"
_SWAPS_HALVES = "it swaps the CFG halves of the batch inside the model, so the negative branch cannot run alone"


def _wan(name: str, cls: str, notes: str = "", **kwargs: Any) -> Family:
    return Family(name=name, module_class=f"comfy.ldm.wan.{cls}", block_lists=_WAN_BLOCKS, model_tier=DM,
                  attention=_WAN_ATTENTION, loop_patches=("double_block",), notes=notes, **kwargs)


def _wan_injecting(name: str, cls: str, what: str, **kwargs: Any) -> Family:
    """A Wan variant that adds into the stream between blocks: no block skipping."""
    kwargs.setdefault("attention", _WAN_ATTENTION)
    return Family(name=name, module_class=f"comfy.ldm.wan.{cls}", model_tier=DM,
                  reasons={STACK: f"it adds {what} into the stream between blocks, so skipped blocks would miss them"}, **kwargs)


FAMILIES: tuple[Family, ...] = (
    # --- Flux and its relatives (ComfyUI's Flux class; Flux.2 and others are told apart by their params) ---
    Family(
        name="Flux2", since_033=True, module_class="comfy.ldm.flux.model.Flux", variant=_FLUX2, block_lists=_FLUX_BLOCKS, model_tier=DM,
        joint_order=("txt", "img"), attention=_FLUX_ATTENTION,
        notes="Flux.2 dev and Klein 4B / 9B (global modulation: the blocks' vec is a tuple of modulations).",
    ),
    Family(
        name="Ovis-Image", since_033=True, module_class="comfy.ldm.flux.model.Flux", variant=_OVIS, block_lists=_FLUX_BLOCKS, model_tier=DM,
        joint_order=("txt", "img"), attention=_FLUX_ATTENTION,
    ),
    Family(
        name="LongCat-Image", since_033=True, module_class="comfy.ldm.flux.model.Flux", variant=_LONGCAT, block_lists=_FLUX_BLOCKS,
        model_tier=DM, joint_order=("txt", "img"), attention=_FLUX_ATTENTION,
    ),
    Family(
        name="Flux", module_class="comfy.ldm.flux.model.Flux", block_lists=_FLUX_BLOCKS, model_tier=DM,
        joint_order=("txt", "img"), attention=_FLUX_ATTENTION,
        notes="Flux.1 dev, schnell, Fill and Kontext (reference latents ride along in the image stream).",
    ),
    Family(
        name="Chroma", module_class="comfy.ldm.chroma.model.Chroma", block_lists=_FLUX_BLOCKS, model_tier=DM,
        joint_order=("txt", "img"), attention=_FLUX_ATTENTION,
    ),
    Family(
        name="ChromaRadiance", module_class="comfy.ldm.chroma_radiance.model.ChromaRadiance", block_lists=_FLUX_BLOCKS,
        model_tier=DM, joint_order=("txt", "img"), attention=_FLUX_ATTENTION,
        notes="Pixel-space Chroma: the NeRF head after the blocks always runs.",
    ),
    Family(
        name="HunyuanVideo15", since_033=True, module_class="comfy.ldm.hunyuan_video.model.HunyuanVideo", variant=_HUNYUAN_VIDEO_15,
        block_lists=_FLUX_BLOCKS, model_tier=DM, joint_order=("txt", "img"), attention=_FLUX_ATTENTION,
        notes="HunyuanVideo 1.5 (720p / 480p, I2V, SR distilled).",
    ),
    Family(
        name="HunyuanVideo", module_class="comfy.ldm.hunyuan_video.model.HunyuanVideo", block_lists=_FLUX_BLOCKS,
        model_tier=DM, joint_order=("txt", "img"), attention=_FLUX_ATTENTION,
        notes="HunyuanVideo and HunyuanImage 2.1 (ComfyUI 0.3.6x joins the single-block streams as (img, txt), 0.33 as "
              "(txt, img): the runtime reads the order off the model).",
    ),
    Family(
        name="Hunyuan3Dv2", module_class="comfy.ldm.hunyuan3d.model.Hunyuan3Dv2", block_lists=_FLUX_BLOCKS,
        model_tier=DM, joint_order=("txt", "img"), attention=_FLUX_ATTENTION,
    ),
    # --- Wan ---
    _wan("Wan", "model.WanModel", notes="Wan 2.1 and Wan 2.2 (5B, and each A14B expert as its own run), FlowRVS."),
    _wan("WanCamera", "model.CameraWanModel"),
    _wan("WanHuMo", "model.HumoWanModel"),
    _wan("WanSCAIL", "model.SCAILWanModel", since_033=True),
    _wan("WanSCAIL2", "model.SCAIL2WanModel", since_033=True),
    _wan_injecting("WanVACE", "model.VaceWanModel", "VACE hints"),
    _wan_injecting("WanS2V", "model.WanModel_S2V", "audio features"),
    _wan_injecting("WanDancer", "model_wandancer.WanDancerModel", "music features", since_033=True),
    _wan_injecting("WanAnimate", "model_animate.AnimateWanModel", "face-adapter features"),
    _wan_injecting("WanAnimate2", "model_animate2.WanAnimate2Model", "pose-branch features", since_033=True,
                   attention=_kernel("blocks")),  # its blocks run forward_gen: the attention modules' forward is never entered
    Family(name="WanCausalAR", since_033=True, module_class="comfy.ldm.wan.ar_model.CausalWanModel", model_tier="", cfg_estimation=False,
           reasons={STACK: _KV_CACHE, OUTPUT: _KV_CACHE, ATTENTION: _KV_CACHE, COND_BATCH: _KV_CACHE}),
    # --- Qwen-Image and its relatives ---
    Family(
        name="QwenImage", module_class="comfy.ldm.qwen_image.model.QwenImageTransformer2DModel", block_lists=_DOUBLE_STREAM,
        model_tier=DM, attention=_kernel("transformer_blocks"), loop_patches=("double_block",),
        notes="Qwen-Image, its edits (2509, 2511), Layered and 2512 (reference latents ride along in the image stream).",
    ),
    Family(
        name="MageFlow", since_033=True, module_class="comfy.ldm.mage_flow.model.MageFlowTransformer2DModel", block_lists=_DOUBLE_STREAM,
        model_tier=DM, attention=_kernel("transformer_blocks"), loop_patches=("double_block",),
    ),
    Family(
        name="Lens", since_033=True, module_class="comfy.ldm.lens.model.LensTransformer2DModel", block_lists=_DOUBLE_STREAM,
        model_tier=DM, attention=_kernel("transformer_blocks"), loop_patches=("double_block",),
    ),
    Family(
        name="JoyImage", since_033=True, module_class="comfy.ldm.joyimage.model.JoyImageTransformer3DModel",
        block_lists=(BlockList("double_blocks", "double_block", ("img", "txt")),), model_tier=DM, attention=_kernel("double_blocks"),
        notes="JoyImage and JoyImage-Edit.",
    ),
    # --- LTX ---
    Family(
        name="LTXV", module_class="comfy.ldm.lightricks.model.LTXVModel",
        block_lists=(BlockList("transformer_blocks", "double_block", ("img",)),), model_tier=DM,
        attention=(
            AttentionSites("transformer_blocks", SPATIAL, MODULE_FORWARD, module="attn1"),
            AttentionSites("transformer_blocks", CROSS, MODULE_FORWARD, module="attn2"),
        ),
    ),
    Family(
        name="LTX-2", since_033=True, module_class="comfy.ldm.lightricks.av_model.LTXAVModel",
        block_lists=(BlockList("transformer_blocks", "double_block", ("img",)),), model_tier=DM,
        attention=(
            AttentionSites("transformer_blocks", SPATIAL, MODULE_FORWARD, module="attn1"),
            AttentionSites("transformer_blocks", SPATIAL, MODULE_FORWARD, module="audio_attn1"),
            AttentionSites("transformer_blocks", CROSS, MODULE_FORWARD, module="attn2"),
            AttentionSites("transformer_blocks", CROSS, MODULE_FORWARD, module="audio_attn2"),
        ),
        notes="LTX-2 audio + video: the block stream is the tuple (video, audio); the model input and output are lists.",
    ),
    # --- other families with block patch points ---
    Family(
        name="MiniMaxH3", since_033=True, module_class="comfy.ldm.minimax.model.MiniMaxH3Model",
        block_lists=(BlockList("blocks", "double_block", ("img",)),), model_tier=DM,
        attention=(AttentionSites("blocks", SPATIAL, MODULE_FORWARD, module="attn"),),
        notes="Audio + video in one packed stream without a batch axis (the model runs one branch per forward).",
    ),
    Family(
        name="SD3", module_class="comfy.ldm.modules.diffusionmodules.mmdit.OpenAISignatureMMDITWrapper",
        block_lists=(BlockList("joint_blocks", "double_block", ("img", "txt")),),
        attention=_kernel("joint_blocks"),
        notes="SD3 and SD3.5 (the last joint block returns no text stream).",
    ),
    Family(
        name="Mochi", module_class="comfy.ldm.genmo.joint_model.asymm_models_joint.AsymmDiTJoint",
        block_lists=(BlockList("blocks", "double_block", ("img", "txt")),), attention=_kernel("blocks"),
    ),
    Family(
        name="AuraFlow", module_class="comfy.ldm.aura.mmdit.MMDiT",
        block_lists=(
            BlockList("double_layers", "double_block", ("img", "txt")),
            BlockList("single_layers", "single_block", ("img",)),
        ),
        model_tier=DM, joint_order=("txt", "img"),
        attention=(
            AttentionSites("double_layers", SPATIAL, BLOCK_KERNEL, replace_name="double_block"),
            AttentionSites("single_layers", SPATIAL, BLOCK_KERNEL, replace_name="single_block"),
        ),
    ),
    # --- families without block patch points whose blocks can be object-patched ---
    Family(
        name="Lumina2 / Z-Image", module_class="comfy.ldm.lumina.model.NextDiT",
        block_lists=(BlockList("layers", "", ("img",), via=OBJECT),), model_tier=DM,
        attention=(AttentionSites("layers", SPATIAL, MODULE_FORWARD, module="attention"),), loop_patches=("double_block",),
        notes="Z-Image (Turbo, Base, Omni), Lumina 2 and NewBie: the main layers (the refiners before them always run).",
    ),
    Family(
        name="Z-Image PixelSpace", since_033=True, module_class="comfy.ldm.lumina.model.NextDiTPixelSpace",
        block_lists=(BlockList("layers", "", ("img",), via=OBJECT),), model_tier=DM,
        attention=(AttentionSites("layers", SPATIAL, MODULE_FORWARD, module="attention"),), loop_patches=("double_block",),
    ),
    Family(
        name="Kandinsky5", since_033=True, module_class="comfy.ldm.kandinsky5.model.Kandinsky5",
        block_lists=(BlockList("visual_transformer_blocks", "", ("x",), via=OBJECT),), model_tier=DM,
        attention=(
            AttentionSites("visual_transformer_blocks", SPATIAL, MODULE_FORWARD, module="self_attention"),
            AttentionSites("visual_transformer_blocks", CROSS, MODULE_FORWARD, module="cross_attention"),
        ),
        notes="Kandinsky 5 video and Image (its block patch points call the blocks with arguments they do not take, "
              "so the blocks are reached through their own forward).",
    ),
    # --- model level and attention only ---
    Family(
        name="HiDream-O1", since_033=True, module_class="comfy.ldm.hidream_o1.model.HiDreamO1Transformer", model_tier=DM,
        attention=_FORWARD_ATTENTION,
        reasons={STACK: "installing block patches turns off its own prompt key/value cache, which would cost more than "
                        "skipping blocks saves"},
    ),
    Family(name="CogVideoX", since_033=True, module_class="comfy.ldm.cogvideo.model.CogVideoXTransformer3DModel", model_tier=DM,
           attention=_FORWARD_ATTENTION),
    Family(name="Anima", since_033=True, module_class="comfy.ldm.anima.model.Anima", model_tier=DM, attention=_FORWARD_ATTENTION),
    Family(name="Krea2", since_033=True, module_class="comfy.ldm.krea2.model.SingleStreamDiT", model_tier=DM, attention=_FORWARD_ATTENTION),
    Family(name="Ideogram4", since_033=True, module_class="comfy.ldm.ideogram4.model.Ideogram4Transformer2DModel", model_tier=DM,
           attention=_FORWARD_ATTENTION),
    Family(name="PixelDiT", since_033=True, module_class="comfy.ldm.pixeldit.model.PixDiT_T2I", model_tier=DM, attention=_FORWARD_ATTENTION),
    Family(name="PiD", since_033=True, module_class="comfy.ldm.pixeldit.pid.PidNet", model_tier=DM, attention=_FORWARD_ATTENTION),
    Family(
        name="HiDream", module_class="comfy.ldm.hidream.model.HiDreamImageTransformer2DModel", model_tier=DM,
        attention=_FORWARD_ATTENTION,
        reasons={STACK: "its blocks have no ComfyUI block patch points and mix per-block Llama states into the text stream"},
    ),
    Family(name="Cosmos", module_class="comfy.ldm.cosmos.model.GeneralDIT", model_tier=DM, attention=_FORWARD_ATTENTION),
    Family(name="CosmosPredict2", module_class="comfy.ldm.cosmos.predict2.MiniTrainDIT", model_tier=DM,
           attention=_FORWARD_ATTENTION),
    Family(
        name="UNet (SD1.5 / SDXL)", module_class="comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel", model_tier=DM,
        attention=_FORWARD_ATTENTION, reasons={STACK: "U-Net blocks have no block patch points and carry skip connections"},
        notes="SD 1.x / 2.x, SDXL and its derivatives, SVD (every attention call of the U-Net is a site).",
    ),
    Family(name="ACE-Step", module_class="comfy.ldm.ace.model.ACEStepTransformer2DModel", model_tier=DM,
           attention=_FORWARD_ATTENTION, notes="Only its cross-attention goes through ComfyUI's attention (self-attention is linear)."),
    Family(name="TripoSplat", since_033=True, module_class="comfy.ldm.triposplat.model.LatentSeqMMFlowModel", model_tier=DM,
           attention=_FORWARD_ATTENTION),
    Family(name="StableCascade C", module_class="comfy.ldm.cascade.stage_c.StageC", attention=_FORWARD_ATTENTION),
    Family(name="StableCascade B", module_class="comfy.ldm.cascade.stage_b.StageB", attention=_FORWARD_ATTENTION),
    Family(name="OmniGen2", module_class="comfy.ldm.omnigen.omnigen2.OmniGen2Transformer2DModel", attention=_FORWARD_ATTENTION),
    Family(name="Boogu", since_033=True, module_class="comfy.ldm.boogu.model.BooguTransformer2DModel", attention=_FORWARD_ATTENTION),
    Family(
        name="StableAudio", module_class="comfy.ldm.audio.dit.AudioDiffusionTransformer", attention=_FORWARD_ATTENTION,
        reasons={STACK: "its block patch path drops the blocks' local conditioning"},
    ),
    # --- model level at APPLY_MODEL only ---
    Family(
        name="PixArt", module_class="comfy.ldm.pixart.pixartms.PixArtMS",
        reasons={ATTENTION: "its attention does not receive transformer_options"},
    ),
    Family(
        name="HunyuanDiT", module_class="comfy.ldm.hydit.models.HunYuanDiT",
        reasons={STACK: "its block patches get no transformer_options and it keeps U-Net skips",
                 ATTENTION: "its attention does not receive transformer_options"},
    ),
    Family(name="ERNIE-Image", since_033=True, module_class="comfy.ldm.ernie.model.ErnieImageModel",
           reasons={ATTENTION: "its attention does not receive transformer_options"}),
    Family(name="ACE-Step 1.5", since_033=True, module_class="comfy.ldm.ace.ace_step15.AceStepConditionGenerationModel",
           reasons={ATTENTION: "its attention does not receive transformer_options"}),
    Family(name="MiniMaxMusic3", since_033=True, module_class="comfy.ldm.minimax_music.dit.MiniMaxMusic3DiT",
           reasons={ATTENTION: "its attention does not receive transformer_options"}),
    Family(
        name="Hunyuan3Dv2_1", module_class="comfy.ldm.hunyuan3dv2_1.hunyuandit.HunYuanDiTPlain", cfg_estimation=False,
        reasons={STACK: "its block patches return bare tensors and it keeps U-Net skips",
                 ATTENTION: "its attention does not receive transformer_options", COND_BATCH: _SWAPS_HALVES},
    ),
    Family(
        name="SeedVR2", since_033=True, module_class="comfy.ldm.seedvr.model.NaDiT", cfg_estimation=False,
        reasons={STACK: "its blocks take packed variable-length streams", ATTENTION: "its attention does not receive transformer_options",
                 COND_BATCH: _SWAPS_HALVES},
    ),
)

_BY_CLASS: dict[str, list[Family]] = {}
for _family in FAMILIES:
    _BY_CLASS.setdefault(_family.module_class, []).append(_family)


def qualified_name(cls: type) -> str:
    """`module.QualName` of a class, the key of the family table."""
    return f"{cls.__module__}.{cls.__qualname__}"


def family_named(name: str) -> Family | None:
    """The family entry called `name` (e.g. "Wan"), or None."""
    return next((family for family in FAMILIES if family.name == name), None)


def family_for_module(diffusion_model: object) -> Family | None:
    """The family entry for a diffusion model instance, or None when it is not in the table.

    Variants of one class are tried first (in table order), then the entry without a variant.
    """
    candidates = _BY_CLASS.get(qualified_name(type(diffusion_model)), [])
    for family in candidates:
        if family.variant is not None and family.variant(diffusion_model):
            return family
    return next((family for family in candidates if family.variant is None), None)
