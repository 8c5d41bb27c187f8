"""MagCache calibration: record, per conditioning branch, how the block stack's residual changes per step.

The recorder is a block-stack policy that never skips. At the first evaluation of every step it
measures the residual of the whole stack (tail output minus head input) of each branch and keeps
the magnitude ratio to the previous step (mean over tokens of |r_t| / |r_{t-1}|, norms over
channels, as MagCache defines it), its spread over tokens, and the cosine distance.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from ..runtime.branches import BranchStore
from ..runtime.forward import ForwardContext, rows


@dataclass
class BranchCurve:
    """What the recorder keeps for one conditioning branch."""

    cond_index: int = 0
    previous: torch.Tensor | None = None
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


def residual_change(current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """[ratio, std of ratio, cosine distance] of a residual against the previous step's, float32."""
    current = current.float().flatten(0, -2)
    previous = previous.float().flatten(0, -2)
    norm_now = current.norm(dim=-1)
    norm_before = previous.norm(dim=-1)
    ratio = norm_now / (norm_before + 1e-8)
    cosine = torch.nn.functional.cosine_similarity(current, previous, dim=-1, eps=1e-8)
    return torch.stack([ratio.mean(), ratio.std(unbiased=False), (1.0 - cosine).mean()])


class MagCalibrationRun:
    """Records the curves during one sampling run; `on_finish` receives them when the run ends."""

    residual_from_head_input = True

    def __init__(self, sample_sigmas: list[float], progress_of_sigma: Callable[[float], float], on_finish: Callable[[Calibration], None]) -> None:
        self.sample_sigmas = sample_sigmas
        self.progress_of_sigma = progress_of_sigma
        self.on_finish = on_finish
        self.branches: BranchStore[BranchCurve] = BranchStore(BranchCurve)

    def skip_before_head(self, ctx: ForwardContext) -> None:
        """Calibration never skips."""
        return None

    def skip_after_head(self, ctx: ForwardContext, head_in: dict, head_out: dict) -> None:
        """Calibration never skips."""
        return None

    def store_stack_residual(self, ctx: ForwardContext, residual: dict[str, torch.Tensor]) -> None:
        """Record the first evaluation of each step, per branch."""
        stream = next(iter(residual.values()))
        for chunk in ctx.chunks:
            curve = self.branches.get(chunk.uuid)
            if curve.steps and curve.steps[-1] == ctx.step:
                continue  # a later evaluation of the same step (heun's correction)
            current = rows(stream, chunk)
            curve.cond_index = chunk.cond_index
            if curve.previous is None or curve.previous.shape != current.shape:
                stats = torch.tensor([1.0, 0.0, 0.0])
            else:
                stats = residual_change(current, curve.previous)
            curve.previous = current.detach().clone()
            curve.steps.append(ctx.step)
            curve.sigmas.append(ctx.sigma)
            curve.progress.append(self.progress_of_sigma(ctx.sigma))
            curve.stats.append(stats)

    def result(self) -> Calibration | None:
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
            ratios=ratios, ratio_std=spread, cosine_distance=cosine,
        )

    def cache_bytes(self) -> int:
        """Bytes of the previous residuals held."""
        return sum(c.previous.numel() * c.previous.element_size() for c in self.branches if c.previous is not None)

    def close(self) -> None:
        """Hand the curves over and free the recorded tensors."""
        try:
            calibration = self.result()
            if calibration is not None:
                self.on_finish(calibration)
        finally:
            self.branches.clear()
