"""The Pyramid Attention Broadcast node."""
from __future__ import annotations

import logging
from typing import Any

from ..cache_core.families.attention_sites import CROSS, SPATIAL, TEMPORAL, attention_sites
from ..cache_core.methods.pyramid_attention_broadcast import METHOD, PyramidAttentionBroadcastConfig, PyramidAttentionBroadcastRun
from ..cache_core.runtime.attention_hooks import install_attention_hooks
from ..cache_core.runtime.install import install_cache
from .node_def import FloatInput, IntInput, NodeDef
from .ui_report import send_report_to_ui

log = logging.getLogger("CacheKit")

KEY = "cachekit_pyramid_attention_broadcast"

WINDOW_NOTE = (
    "Schedule progress: 0 = first step, 1 = end, as ComfyUI's start/end percent. diffusers' default timestep "
    "window (100, 800) on its 0-1000 scale means sigma between 0.8 and 0.1 (timestep / 1000 = sigma for flow "
    "models); on an unshifted flow schedule (sigma = 1 - progress) that is start 0.2, end 0.9, the defaults. "
    "With a shifted schedule (Wan, Flux) the same percents cover higher sigmas."
)

_KIND_TEXT = {
    SPATIAL: "spatial (self / joint) attention: Flux, Chroma and HunyuanVideo joint attention, Wan self-attention",
    TEMPORAL: "temporal attention (attention along frames only; none of the supported families has it yet)",
    CROSS: "cross-attention to the text (Wan; Flux-style models have none)",
}
_DEFAULT_RANGE = {SPATIAL: 2, TEMPORAL: 0, CROSS: 0}


def _kind_widgets(kind: str) -> tuple:
    return (
        IntInput(
            f"{kind}_attention_block_skip_range", _DEFAULT_RANGE[kind], 0, 32,
            f"Compute {_KIND_TEXT[kind]} every N evaluations of each conditioning branch and reuse its last output "
            "in between (diffusers' block_skip_range; the PAB paper uses larger ranges for cross than spatial "
            "attention). 0 (or 1) turns reuse off for this kind. Flux-style models reuse only the attention kernel "
            "(projections still run); Wan reuses the whole attention module.",
        ),
        FloatInput(
            f"{kind}_attention_start_percent", 0.2, 0.0, 1.0, 0.01,
            f"Start of the window in which {kind} attention may be reused. {WINDOW_NOTE}",
        ),
        FloatInput(
            f"{kind}_attention_end_percent", 0.9, 0.0, 1.0, 0.01,
            f"End of the window in which {kind} attention may be reused; later steps compute it again. "
            "An end equal to the start turns this kind off.",
        ),
    )


WIDGETS = (*_kind_widgets(SPATIAL), *_kind_widgets(TEMPORAL), *_kind_widgets(CROSS))


def check_pyramid_attention_broadcast(**values: Any) -> None:
    """Raise ValueError when the widget values are not valid."""
    PyramidAttentionBroadcastConfig(**values)


def apply_pyramid_attention_broadcast(model: Any, node_id: str | None = None, **values: Any) -> Any:
    """Return a clone of `model` with PAB installed (or `model` itself if the family is unsupported)."""
    config = PyramidAttentionBroadcastConfig(**values)

    def hook_attention(patched: Any, family: Any, key: str) -> None:
        if config.active_kinds and not attention_sites(family, config.active_kinds):
            log.warning("CacheKit %s: %s has no %s attention; nothing will be reused.", METHOD, family.name,
                        " or ".join(sorted(config.active_kinds)))
        install_attention_hooks(patched, family, key, config.hooked_kinds)

    return install_cache(
        model,
        key=KEY,
        method=METHOD,
        config=config,
        start_run=lambda run: PyramidAttentionBroadcastRun(config, run.progress_of_sigma),
        patch_model=hook_attention,
        unit="attention calls",
        node_id=node_id,
        on_report=send_report_to_ui,
    )


PYRAMID_ATTENTION_BROADCAST_NODE = NodeDef(
    node_id="CacheKitPyramidAttentionBroadcast",
    display_name="Pyramid Attention Broadcast (CacheKit)",
    description=(
        "Reuses attention outputs between steps (PAB): each attention layer is computed every N evaluations "
        "inside a window of the schedule and its last output is broadcast in between, separately for the "
        "positive and negative prompt. Place it between the model loader and the sampler."
    ),
    widgets=WIDGETS,
    apply=apply_pyramid_attention_broadcast,
    check=check_pyramid_attention_broadcast,
)
