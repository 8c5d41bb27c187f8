"""MagCache: skip whole model evaluations while calibrated magnitude ratios say the error stays small.

Rule as in diffusers' `MagCacheConfig`: past the retention phase, each evaluation multiplies an
accumulated ratio by the calibrated ratio of residual magnitudes, adds |1 - ratio| to an error
budget, and reuses the last residual while the budget stays within `threshold` and at most
`max_skip_steps` evaluations were skipped in a row; otherwise it computes and resets.

CacheKit reads the ratio tables by schedule progress instead of by step number: a table measured
with L steps is a piecewise-constant density of log-magnitude change over progress, and the ratio
between two evaluations is that density integrated between their progress values. With as many
steps as the table this gives exactly the table's entries; with fewer or more steps, or a partial
run (denoise < 1, KSamplerAdvanced, one Wan 2.2 expert), each step gets the change it really spans.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..runtime.block_stack import ResidualCacheRun, assemble_replay
from ..runtime.branches import BranchStore
from ..runtime.forward import ForwardContext
from .validation import check_finite_range

GRID_SNAP = 0.02  # progress within 2% of a step of a table position counts as that position


@dataclass(frozen=True)
class MagRatios:
    """A magnitude-ratio table: per calibration step, |residual_t| / |residual_{t-1}|.

    cond: the conditional branch's table; uncond: the unconditional branch's, when calibrated.
    positions: schedule progress of each entry; None means a full run of len(cond) steps with the
    simple scheduler (entry j at progress j / L), which is how the published tables were made.
    """

    name: str
    cond: tuple[float, ...]
    uncond: tuple[float, ...] | None = None
    positions: tuple[float, ...] | None = None
    family: str | None = None
    source: str = ""

    @classmethod
    def from_lists(
        cls, name: str, cond: Sequence[float], uncond: Sequence[float] | None = None,
        positions: Sequence[float] | None = None, family: str | None = None, source: str = "",
    ) -> "MagRatios":
        """Build and validate a table; ValueError names what is wrong."""
        ratios = cls(
            name=name, cond=tuple(float(v) for v in cond), uncond=tuple(float(v) for v in uncond) if uncond else None,
            positions=tuple(float(p) for p in positions) if positions is not None else None, family=family, source=source,
        )
        ratios.validate()
        return ratios

    def validate(self) -> None:
        """Raise ValueError unless the tables have at least two finite positive values and sane positions."""
        for label, table in (("cond", self.cond), ("uncond", self.uncond)):
            if table is None:
                continue
            if len(table) < 2:
                raise ValueError(f"MagCache ratios '{self.name}': the {label} table needs at least two steps, it has {len(table)}.")
            if not all(math.isfinite(v) and v > 0 for v in table):
                raise ValueError(f"MagCache ratios '{self.name}': the {label} table has values that are not finite positive numbers.")
        if self.uncond is not None and len(self.uncond) != len(self.cond):
            raise ValueError(f"MagCache ratios '{self.name}': cond and uncond tables differ in length.")
        if self.positions is not None:
            if len(self.positions) != len(self.cond):
                raise ValueError(f"MagCache ratios '{self.name}': {len(self.positions)} positions for {len(self.cond)} ratios.")
            if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in self.positions) or any(
                b <= a for a, b in zip(self.positions, self.positions[1:])
            ):
                raise ValueError(f"MagCache ratios '{self.name}': positions must increase within [0, 1].")

    def grid(self) -> tuple[float, ...]:
        """Schedule progress of every entry."""
        if self.positions is not None:
            return self.positions
        return tuple(j / len(self.cond) for j in range(len(self.cond)))

    def table(self, cond_index: int) -> tuple[float, ...]:
        """The table for a branch: index 0 (positive) uses cond, others uncond when present."""
        return self.uncond if cond_index != 0 and self.uncond is not None else self.cond


def cumulative_log_ratio(table: Sequence[float], grid: Sequence[float], progress: float) -> float:
    """Integral over [grid[0], progress] of the table's log-ratio density.

    Entry j (j >= 1) spreads log(table[j]) evenly over [grid[j-1], grid[j]]; outside the grid the
    density is 0 (ratio 1). Progress within 2% of a bin of a grid point counts as that point, so a
    run with the table's own schedule reads exactly the table's entries.
    """
    total = 0.0
    for j in range(1, len(table)):
        low, high = grid[j - 1], grid[j]
        width = high - low
        if progress >= high - GRID_SNAP * width:
            total += math.log(table[j])
        elif progress > low + GRID_SNAP * width:
            total += (progress - low) / width * math.log(table[j])
            break
        else:
            break
    return total


def log_ratio_between(ratios: "MagRatios", cond_index: int, start: float, end: float) -> float:
    """log(|residual at end| / |residual at start|) predicted by the table, for progress start <= end."""
    table, grid = ratios.table(cond_index), ratios.grid()
    return cumulative_log_ratio(table, grid, end) - cumulative_log_ratio(table, grid, start)


@dataclass(frozen=True)
class MagCacheConfig:
    """Settings of the MagCache node (diffusers' MagCacheConfig fields).

    threshold: error budget; 0 turns skipping off.
    max_skip_steps: most evaluations reused in a row (K).
    retention_ratio: fraction of the run's first steps that are always computed.
    """

    ratios: MagRatios
    threshold: float = 0.06
    max_skip_steps: int = 3
    retention_ratio: float = 0.2

    def __post_init__(self) -> None:
        check_finite_range("threshold", self.threshold, 0.0, 10.0)
        check_finite_range("retention_ratio", self.retention_ratio, 0.0, 1.0)
        if int(self.max_skip_steps) != self.max_skip_steps or not 0 <= self.max_skip_steps <= 100:
            raise ValueError(f"max_skip_steps must be a whole number between 0 and 100, got {self.max_skip_steps}.")
        self.ratios.validate()

    @property
    def enabled(self) -> bool:
        """Whether these settings can skip anything at all."""
        return self.threshold > 0.0 and self.max_skip_steps > 0 and self.retention_ratio < 1.0

    def retention_steps(self, total_steps: int) -> int:
        """Steps at the start of a run that are always computed (diffusers' rounding)."""
        return int(self.retention_ratio * total_steps + 0.5)


@dataclass
class MagCacheBranch:
    """Cached tensors of one conditioning branch: the whole stack's residual at the last compute."""

    stack_residual: dict[str, torch.Tensor] | None = None


@dataclass
class ErrorBudget:
    """MagCache's accumulators for one ratio table."""

    ratio: float = 1.0
    steps: int = 0
    error: float = 0.0


class MagCacheRun(ResidualCacheRun):
    """MagCache's state for one sampling run."""

    residual_from_head_input = True

    def __init__(self, config: MagCacheConfig, total_steps: int, progress_of_sigma: Callable[[float], float]) -> None:
        self.config = config
        self.retention_steps = config.retention_steps(total_steps)
        self.progress_of_sigma = progress_of_sigma
        self.branches: BranchStore[MagCacheBranch] = BranchStore(MagCacheBranch)
        self.budgets: dict[str, ErrorBudget] = {}
        self.branch_indices: set[int] = set()
        self.last_progress: float | None = None

    def skip_before_head(self, ctx: ForwardContext) -> dict[str, torch.Tensor] | None:
        """Decide before the first block runs; on a skip return the residual of the whole stack."""
        skip = ctx.eval_state.get("skip")
        if skip is None:
            skip = self._decide(ctx)
            ctx.eval_state["skip"] = skip
        return assemble_replay(ctx, self.branches) if skip else None

    def skip_after_head(self, ctx: ForwardContext, head_in: dict, head_out: dict) -> None:
        """MagCache decides before the head only."""
        return None

    def _decide(self, ctx: ForwardContext) -> bool:
        self.branch_indices.update(chunk.cond_index for chunk in ctx.chunks)
        progress = self.progress_of_sigma(ctx.sigma)
        previous, self.last_progress = self.last_progress, progress
        if previous is None or progress < previous or ctx.step < self.retention_steps or not self.config.enabled:
            self.budgets.clear()
            return False
        advanced = progress > previous
        within = True
        for name, cond_index in self._tables().items():
            budget = self.budgets.setdefault(name, ErrorBudget())
            budget.ratio *= math.exp(log_ratio_between(self.config.ratios, cond_index, previous, progress))
            budget.steps += int(advanced)
            budget.error += abs(1.0 - budget.ratio)
            within = within and budget.error <= self.config.threshold and budget.steps <= self.config.max_skip_steps
        lead = self.branches.find(ctx.lead.uuid)
        if within and ctx.in_window and lead is not None and lead.stack_residual is not None:
            return True
        self.budgets.clear()
        return False

    def _tables(self) -> dict[str, int]:
        """The tables in play (cond, and uncond when calibrated and a negative branch runs)."""
        has_uncond = self.config.ratios.uncond is not None
        return {("uncond" if i != 0 and has_uncond else "cond"): i for i in sorted(self.branch_indices)}

    def close(self) -> None:
        """Free every cached tensor and the error budgets."""
        super().close()
        self.budgets.clear()
