"""FirstBlockCache: skip every block after the first while the first block's residual barely changes.

Decision rule as in diffusers' `FirstBlockCacheConfig`: the first block always runs; its residual
r is compared with the residual of the last fully computed evaluation,
`mean|r - r_prev| / mean|r_prev|`, and the remaining blocks are skipped (their cached residual is
replayed) when that relative change is below `threshold`. On the segmented stack this is the
front of one block, no back blocks, and a replayed middle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..families.table import FIRST_BLOCK_CACHE, Family
from ..runtime.branches import ReplayCache
from ..runtime.forward import ForwardContext
from ..settings import FLOAT, INT, check_settings, check_window, setting
from .spec import MethodSpec, Placement, stack_only


@dataclass(frozen=True)
class FirstBlockCacheConfig:
    """Settings of the FirstBlockCache node."""

    threshold: float = setting(
        FLOAT, 0.05, "Skip the remaining blocks while the first block's residual changes by less than this "
        "(relative mean absolute change, as in diffusers). 0 turns skipping off; diffusers suggests values below "
        "0.2 (higher values blur).", min=0.0, max=1.0, step=0.001)
    start_percent: float = setting(
        FLOAT, 0.0, "Schedule progress (0 = first step, 1 = end) from which skipping may start. Early steps lay out "
        "the image, so starting later protects composition.", min=0.0, max=1.0, step=0.01)
    end_percent: float = setting(
        FLOAT, 1.0, "Schedule progress after which every step is computed again (to keep fine detail).",
        min=0.0, max=1.0, step=0.01)
    max_consecutive_skips: int = setting(
        INT, 0, "Most model evaluations that may reuse the cache in a row before one is computed fully. 0 means no "
        "limit (diffusers' behaviour).", min=0, max=100)

    def __post_init__(self) -> None:
        check_settings(self)
        check_window("start_percent", self.start_percent, "end_percent", self.end_percent)

    @property
    def enabled(self) -> bool:
        """Whether this configuration can skip anything at all."""
        return self.threshold > 0.0 and self.start_percent < self.end_percent


def relative_change(current: torch.Tensor, previous: torch.Tensor) -> float:
    """`mean|current - previous| / mean|previous|`, accumulated in float32, with one host sync."""
    change = (current - previous).abs().mean(dtype=torch.float32)
    scale = previous.abs().mean(dtype=torch.float32).clamp_min(1e-12)
    return float(change / scale)


def may_skip(change: float, threshold: float) -> bool:
    """FirstBlockCache's rule: skip when the first block's residual changed less than the threshold."""
    return threshold > 0.0 and change < threshold


class FirstBlockCacheRun(ReplayCache):
    """FirstBlockCache's state for one sampling run: the front and middle residuals per branch."""

    front_blocks = 1
    back_blocks = 0

    def __init__(self, config: FirstBlockCacheConfig) -> None:
        super().__init__()
        self.config = config
        self.consecutive_skips = 0

    def decide(self, ctx: ForwardContext, lead_front: Optional[torch.Tensor]) -> bool:
        """Skip when the lead branch's first-block residual changed less than the threshold."""
        limit = self.config.max_consecutive_skips
        skip = False
        if ctx.in_window and self.config.enabled and lead_front is not None and not (limit and self.consecutive_skips >= limit):
            previous = self.store.get("front", (ctx.lead,))
            if isinstance(previous, torch.Tensor) and previous.shape == lead_front.shape:
                skip = may_skip(relative_change(lead_front, previous.to(lead_front.device)), self.config.threshold)
        self.consecutive_skips = self.consecutive_skips + 1 if skip else 0
        return skip

    def learn(self, ctx: ForwardContext, front: Optional[torch.Tensor], middle: dict[str, Any]) -> None:
        """Keep this evaluation's first-block residual (to compare with) and the remaining blocks' residual."""
        if front is not None:
            self.keep(ctx, "front", front)
        self.keep(ctx, "middle", middle)


def place(config: FirstBlockCacheConfig, family: Family) -> Placement:
    """FirstBlockCache needs the block stack."""
    return stack_only(family)


FIRST_BLOCK_CACHE_SPEC = MethodSpec(
    name=FIRST_BLOCK_CACHE,
    key="cachekit_first_block_cache",
    config_type=FirstBlockCacheConfig,
    place=place,
    start=lambda config, run: FirstBlockCacheRun(config),
    window=lambda config: (config.start_percent, config.end_percent),
)
