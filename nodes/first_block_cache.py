"""The FirstBlockCache node."""
from __future__ import annotations

from typing import Any

from ..cache_core.families.table import FIRST_BLOCK_CACHE
from ..cache_core.methods.first_block_cache import FirstBlockCacheConfig, FirstBlockCacheRun
from ..cache_core.runtime.install import install_block_stack_cache
from .node_def import FloatInput, IntInput, NodeDef
from .ui_report import send_report_to_ui

WIDGETS = (
    FloatInput(
        "threshold", 0.05, 0.0, 1.0, 0.001,
        "Skip the remaining blocks while the first block's residual changes by less than this "
        "(relative mean absolute change, as in diffusers). 0 turns skipping off; diffusers suggests "
        "values below 0.2 (higher values blur).",
    ),
    FloatInput(
        "start_percent", 0.0, 0.0, 1.0, 0.01,
        "Schedule progress (0 = first step, 1 = end) from which skipping may start. Early steps lay out "
        "the image, so starting later protects composition.",
    ),
    FloatInput(
        "end_percent", 1.0, 0.0, 1.0, 0.01,
        "Schedule progress after which every step is computed again (to keep fine detail).",
    ),
    IntInput(
        "max_consecutive_skips", 0, 0, 100,
        "Most model evaluations that may reuse the cache in a row before one is computed fully. "
        "0 means no limit (diffusers' behaviour).",
    ),
)


def _config(threshold: float, start_percent: float, end_percent: float, max_consecutive_skips: int) -> FirstBlockCacheConfig:
    return FirstBlockCacheConfig(
        threshold=threshold, start_percent=start_percent, end_percent=end_percent, max_consecutive_skips=max_consecutive_skips
    )


def apply_first_block_cache(model: Any, node_id: str | None = None, **values: Any) -> Any:
    """Return a clone of `model` with FirstBlockCache installed (or `model` itself if unsupported)."""
    config = _config(**values)
    return install_block_stack_cache(
        model,
        key="cachekit_first_block_cache",
        method=FIRST_BLOCK_CACHE,
        config=config,
        start_run=lambda run: FirstBlockCacheRun(config),
        start_percent=config.start_percent,
        end_percent=config.end_percent,
        node_id=node_id,
        on_report=send_report_to_ui,
    )


def check_first_block_cache(**values: Any) -> None:
    """Raise ValueError when the widget values are not valid."""
    _config(**values)


FIRST_BLOCK_CACHE_NODE = NodeDef(
    node_id="CacheKitFirstBlockCache",
    display_name="First Block Cache (CacheKit)",
    description=(
        "Runs the first transformer block every step and, while its output barely changes, skips the "
        "remaining blocks and replays the change they made last time. Place it between the model loader "
        "and the sampler."
    ),
    widgets=WIDGETS,
    apply=apply_first_block_cache,
    check=check_first_block_cache,
)
