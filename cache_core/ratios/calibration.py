"""MagCache calibration: record, per conditioning branch, how the cached quantity changes per step.

The recorder is a method that never reuses. At the first evaluation of every step it measures, for
each branch, the residual of the whole block stack (block level) or the model output (model level)
and keeps the magnitude ratio to the previous step (mean over tokens of |r_t| / |r_{t-1}|, norms
over channels, as MagCache defines it), its spread over tokens, and the cosine distance. The
curves are handed over only for a run that finished and recorded every one of its steps: an
interrupted or partial run writes nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from . import mag_ratios
from ..runtime import trees
from ..runtime.branches import BranchStore
from ..runtime.forward import ForwardContext

log = logging.getLogger("CacheKit")


@dataclass
class BranchCurve:
    """What the recorder keeps for one conditioning branch."""

    cond_index: int = 0
    previous: Optional[torch.Tensor] = None
    steps: list[int] = field(default_factory=list)
    progress: list[float] = field(default_factory=list)
    sigmas: list[float] = field(default_factory=list)
    stats: list[torch.Tensor] = field(default_factory=list)  # per step: [ratio, std, cosine distance]


@dataclass(frozen=True)
class Calibration:
    """A finished calibration: per branch (cond, uncond) one value per recorded step."""

    progress: list[float]
    sigmas: list[float]
    steps: list[int]
    ratios: dict[str, list[float]]
    ratio_std: dict[str, list[float]]
    cosine_distance: dict[str, list[float]]
    level: str = mag_ratios.BLOCKS


def residual_change(current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """[ratio, std of ratio, cosine distance] of a residual against the previous step's, float32."""
    current = current.float().flatten(0, -2) if current.dim() > 1 else current.float().view(1, -1)
    previous = previous.float().flatten(0, -2) if previous.dim() > 1 else previous.float().view(1, -1)
    norm_now = current.norm(dim=-1)
    norm_before = previous.norm(dim=-1)
    ratio = norm_now / (norm_before + 1e-8)
    cosine = torch.nn.functional.cosine_similarity(current, previous, dim=-1, eps=1e-8)
    return torch.stack([ratio.mean(), ratio.std(unbiased=False), (1.0 - cosine).mean()])


def _tokens_last(value: torch.Tensor) -> torch.Tensor:
    """A model output [B, C, ...spatial] as [B, tokens, C], the layout the block residuals have."""
    return value.flatten(2).transpose(1, 2) if value.dim() > 2 else value


class MagCalibrationRun:
    """Records the curves during one sampling run; `on_finish` receives them when a complete run ends."""

    front_blocks = 0
    back_blocks = 0

    def __init__(self, total_steps: int, level: str, on_finish: Callable[[Calibration], None]) -> None:
        self.total_steps = total_steps
        self.level = level
        self.on_finish = on_finish
        self.branches: BranchStore[BranchCurve] = BranchStore(BranchCurve)
        self.not_saved: Optional[str] = None

    # --- never reuse ---

    def decide(self, ctx: ForwardContext, lead_front: Any) -> bool:
        return False

    def decide_output(self, ctx: ForwardContext) -> bool:
        return False

    def middle(self, ctx: ForwardContext) -> None:
        return None

    def output(self, ctx: ForwardContext, x: Any) -> None:
        return None

    # --- record ---

    def learn(self, ctx: ForwardContext, front: Any, middle: dict[str, Any]) -> None:
        """Block level: record the whole stack's residual (main stream)."""
        self._record(ctx, trees.first_leaf(next(iter(middle.values()))) if middle else None)

    def learn_output(self, ctx: ForwardContext, x: Any, out: Any) -> None:
        """Model level: record the model output."""
        leaf = trees.first_leaf(out)
        self._record(ctx, _tokens_last(leaf) if leaf is not None else None)

    def _record(self, ctx: ForwardContext, value: Optional[torch.Tensor]) -> None:
        if value is None:
            return
        for chunk in ctx.chunks:
            curve = self.branches.get(chunk.uuid)
            if curve.steps and curve.steps[-1] == ctx.step:
                continue  # a later evaluation of the same step (heun's correction)
            current = value[chunk.rows]
            curve.cond_index = chunk.cond_index
            if curve.previous is None or curve.previous.shape != current.shape:
                stats = torch.tensor([1.0, 0.0, 0.0])
            else:
                stats = residual_change(current, curve.previous)
            curve.previous = current.detach().clone()
            curve.steps.append(ctx.step)
            curve.sigmas.append(ctx.sigma)
            curve.progress.append(ctx.progress)
            curve.stats.append(stats)

    def result(self) -> Optional[Calibration]:
        """The recorded curves, aligned on the steps that every branch saw; None if under two steps."""
        curves = {("cond" if c.cond_index == 0 else "uncond"): c for c in self.branches}
        if "cond" not in curves:
            return None
        steps = [s for s in curves["cond"].steps if all(s in c.steps for c in curves.values())]
        if len(steps) < 2:
            return None
        first = curves["cond"]
        keep = [first.steps.index(s) for s in steps]
        ratios, spread, cosine = {}, {}, {}
        for name, curve in curves.items():
            table = torch.stack([curve.stats[curve.steps.index(s)] for s in steps]).cpu()
            ratios[name], spread[name], cosine[name] = (table[:, k].tolist() for k in range(3))
            ratios[name][0] = 1.0  # the first recorded step has no previous step
        return Calibration(
            progress=[first.progress[i] for i in keep], sigmas=[first.sigmas[i] for i in keep], steps=steps,
            ratios=ratios, ratio_std=spread, cosine_distance=cosine, level=self.level,
        )

    def cache_bytes(self) -> int:
        """Bytes of the previous residuals held."""
        return sum(c.previous.numel() * c.previous.element_size() for c in self.branches if c.previous is not None)

    def close(self, run: Any) -> None:
        """Hand the curves of a complete run over; free the recorded tensors."""
        try:
            calibration = self.result()
            recorded = len(calibration.steps) if calibration is not None else 0
            if not run.completed:
                self.not_saved = f"the run stopped after {recorded} of {self.total_steps} steps"
            elif run.disabled_reason is not None:
                self.not_saved = f"caching was off ({run.disabled_reason})"
            elif calibration is None or recorded < self.total_steps:
                self.not_saved = f"only {recorded} of the run's {self.total_steps} steps were recorded"
            if self.not_saved is not None:
                run.report.add_note(f"calibration not saved: {self.not_saved}")
                log.warning("CacheKit MagCache calibration: nothing saved, %s.", self.not_saved)
            else:
                self.on_finish(calibration)
        finally:
            self.branches.clear()
