"""The FasterCache node."""
from __future__ import annotations

from typing import Any

from ..cache_core.families.attention_sites import SPATIAL
from ..cache_core.methods.faster_cache import METHOD, FasterCacheConfig, FasterCacheRun
from ..cache_core.runtime.attention_hooks import install_attention_hooks
from ..cache_core.runtime.cfg_estimation import install_unconditional_estimation
from ..cache_core.runtime.install import install_cache
from .node_def import FloatInput, IntInput, NodeDef
from .ui_report import send_report_to_ui

KEY = "cachekit_faster_cache"

PROGRESS = (
    "Schedule progress (0 = first step, 1 = end, as ComfyUI's start/end percent). diffusers' timestep windows "
    "are on a 0-1000 scale where timestep / 1000 = sigma for flow models; the default here is diffusers' {window} "
    "on an unshifted flow schedule (progress = 1 - sigma). Shifted schedules (Wan, Flux) cover higher sigmas."
)


def _window(name: str, what: str, start: float, end: float, diffusers: str) -> tuple:
    return (
        FloatInput(f"{name}_start_percent", start, 0.0, 1.0, 0.01, f"Start of the window in which {what}. " + PROGRESS.format(window=diffusers)),
        FloatInput(f"{name}_end_percent", end, 0.0, 1.0, 0.01, f"End of the window in which {what}. An end equal to the start turns it off."),
    )


WIDGETS = (
    IntInput(
        "spatial_attention_block_skip_range", 2, 0, 32,
        "Compute spatial (self / joint) attention every N evaluations of each conditioning branch; in between "
        "extrapolate it from its last two outputs. 0 (or 1) turns the attention part off. Wan skips the whole "
        "self-attention module; Flux-style models skip only the attention kernel.",
    ),
    *_window("spatial_attention", "attention may be extrapolated", 0.32, 1.0, "(-1, 681)"),
    FloatInput(
        "attention_weight", 0.5, -2.0, 2.0, 0.01,
        "w in o_t + (o_t - o_t-2) * w, the extrapolation of attention outputs (diffusers' default 0.5).",
    ),
    IntInput(
        "unconditional_batch_skip_range", 5, 0, 32,
        "Compute the negative (unconditional) branch every N evaluations; in between estimate it from the "
        "positive branch plus the stored negative-minus-positive difference. 0 (or 1) turns the CFG part off. "
        "Inactive at cfg 1 and with guidance-distilled models used without a negative prompt.",
    ),
    *_window("unconditional_batch", "the negative branch may be estimated", 0.36, 1.0, "(-1, 641)"),
    FloatInput(
        "alpha_low_frequency", 1.1, 0.0, 4.0, 0.01,
        "Each estimated evaluation inside the low-frequency window multiplies the low-frequency part of the stored "
        "difference by this (compounding until the next full evaluation), as in FasterCache.",
    ),
    *_window("low_frequency", "alpha_low_frequency applies", 0.1, 0.9, "(99, 901)"),
    FloatInput(
        "alpha_high_frequency", 1.1, 0.0, 4.0, 0.01,
        "The same for the high-frequency part (frequencies outside a disc of radius min(H, W) / 5).",
    ),
    *_window("high_frequency", "alpha_high_frequency applies", 0.7, 1.0, "(-1, 301)"),
)


def check_faster_cache(**values: Any) -> None:
    """Raise ValueError when the widget values are not valid."""
    FasterCacheConfig(**values)


def apply_faster_cache(model: Any, node_id: str | None = None, **values: Any) -> Any:
    """Return a clone of `model` with FasterCache installed (or `model` itself if the family is unsupported)."""
    config = FasterCacheConfig(**values)

    def hook_model(patched: Any, family: Any, key: str) -> None:
        if config.attention_hooked:
            install_attention_hooks(patched, family, key, frozenset({SPATIAL}))
        if config.unconditional_batch_skip_range > 1:
            install_unconditional_estimation(patched, key)

    return install_cache(
        model,
        key=KEY,
        method=METHOD,
        config=config,
        start_run=lambda run: FasterCacheRun(config, run.progress_of_sigma, run.report),
        patch_model=hook_model,
        unit="attention calls",
        node_id=node_id,
        on_report=send_report_to_ui,
    )


FASTER_CACHE_NODE = NodeDef(
    node_id="CacheKitFasterCache",
    display_name="FasterCache (CacheKit)",
    description=(
        "FasterCache: extrapolates spatial attention between steps and, with CFG, estimates the negative prompt's "
        "prediction from the positive one on most steps (its stored difference, split into low and high "
        "frequencies). Place it between the model loader and the sampler."
    ),
    widgets=WIDGETS,
    apply=apply_faster_cache,
    check=check_faster_cache,
)
