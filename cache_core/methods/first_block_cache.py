"""FirstBlockCache: skip every block after the first while the first block's residual barely changes.

Decision rule as in diffusers' `FirstBlockCacheConfig`: the first block always runs; its residual
r is compared with the residual of the last fully computed evaluation,
`mean|r - r_prev| / mean|r_prev|`, and the remaining blocks are skipped (their cached residual is
replayed) when that relative change is below `threshold`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..runtime.branches import BranchStore
from ..runtime.forward import ForwardContext, rows
from ..runtime.block_stack import ResidualCacheRun, assemble_replay
from .validation import check_finite_range, check_percent_window


@dataclass(frozen=True)
class FirstBlockCacheConfig:
    """Settings of the FirstBlockCache node.

    threshold: relative mean absolute change of the first block's residual under which the
        remaining blocks are skipped; 0 turns skipping off.
    start_percent, end_percent: window of schedule progress in which skipping may happen.
    max_consecutive_skips: most evaluations skipped in a row; 0 means no limit (diffusers).
    """

    threshold: float = 0.05
    start_percent: float = 0.0
    end_percent: float = 1.0
    max_consecutive_skips: int = 0

    def __post_init__(self) -> None:
        check_finite_range("threshold", self.threshold, 0.0, 10.0)
        check_percent_window(self.start_percent, self.end_percent)
        if int(self.max_consecutive_skips) != self.max_consecutive_skips or self.max_consecutive_skips < 0:
            raise ValueError(f"max_consecutive_skips must be a whole number >= 0, got {self.max_consecutive_skips}.")

    @property
    def enabled(self) -> bool:
        """Whether this configuration can skip anything at all."""
        return self.threshold > 0.0 and self.start_percent < self.end_percent


def relative_change(current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """`mean|current - previous| / mean|previous|` as a 0-d float32 tensor (no host sync)."""
    current = current.float()
    previous = previous.float()
    return (current - previous).abs().mean() / previous.abs().mean().clamp_min(1e-12)


def may_skip(change: float, config: FirstBlockCacheConfig) -> bool:
    """FirstBlockCache's rule: skip when the first block's residual changed less than the threshold."""
    return config.enabled and change < config.threshold


@dataclass
class FirstBlockBranch:
    """Cached tensors of one conditioning branch.

    head_residual: the first block's residual at the last fully computed evaluation.
    stack_residual: what the remaining blocks added at that evaluation, per stream.
    """

    head_residual: torch.Tensor | None = None
    stack_residual: dict[str, torch.Tensor] | None = None


class FirstBlockCacheRun(ResidualCacheRun):
    """FirstBlockCache's state for one sampling run: a branch store and the skip streak."""

    residual_from_head_input = False

    def __init__(self, config: FirstBlockCacheConfig) -> None:
        self.config = config
        self.branches: BranchStore[FirstBlockBranch] = BranchStore(FirstBlockBranch)
        self.consecutive_skips = 0

    def skip_before_head(self, ctx: ForwardContext) -> None:
        """FirstBlockCache decides after the head only."""
        return None

    def skip_after_head(self, ctx: ForwardContext, head_in: dict[str, torch.Tensor], head_out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """Decide for this forward; on a skip return the residual to replay at the tail."""
        stream = next(iter(head_in))
        residual = head_out[stream] - head_in[stream]
        skip = ctx.eval_state.get("skip")
        if skip is None:
            skip = self._decide(ctx, residual)
            ctx.eval_state["skip"] = skip
        replay = assemble_replay(ctx, self.branches) if skip else None
        if replay is None:
            for chunk in ctx.chunks:
                self.branches.get(chunk.uuid).head_residual = rows(residual, chunk)
        return replay

    @torch.compiler.disable  # a host-side decision: keep it out of torch.compile graphs
    def _decide(self, ctx: ForwardContext, residual: torch.Tensor) -> bool:
        limit = self.config.max_consecutive_skips
        skip = False
        if ctx.in_window and self.config.enabled and not (limit and self.consecutive_skips >= limit):
            lead = self.branches.find(ctx.lead.uuid)
            current = rows(residual, ctx.lead)
            if lead is not None and lead.head_residual is not None and lead.head_residual.shape == current.shape:
                skip = may_skip(float(relative_change(current, lead.head_residual)), self.config)
        self.consecutive_skips = self.consecutive_skips + 1 if skip else 0
        return skip
