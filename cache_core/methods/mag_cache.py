"""MagCache: skip whole model evaluations while calibrated magnitude ratios say the error stays small.

Rule as in diffusers' `MagCacheConfig`: past the retention phase, each evaluation multiplies an
accumulated ratio by the calibrated ratio of residual magnitudes, adds |1 - ratio| to an error
budget, and reuses the last residual while the budget stays within `threshold` and at most
`max_skip_steps` evaluations were skipped in a row; otherwise it computes and resets. Ratios are
read by schedule progress (cache_core/ratios/mag_ratios.py). Outside the schedule range the table
measured, MagCache computes: it never guesses.

Placement: the whole block stack where the family has block patch points (front and back of zero
blocks, the middle replayed), else the whole model output (model level); the table must measure
the same level.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ..families.table import MAG_CACHE, STACK, Family
from ..ratios.mag_ratios import BLOCKS, MODEL, MagRatios, cumulative_log_ratio, log_ratio_between  # noqa: F401
from ..runtime.branches import ReplayCache
from ..runtime.forward import ForwardContext
from ..settings import COMBO, FLOAT, INT, setting
from .spec import MethodSpec, Placement, stack_or_model


def _ratio_choices() -> list[str]:
    from ..ratios.library import ratio_choices

    return ratio_choices()


@dataclass(frozen=True)
class MagCacheConfig:
    """Settings of the MagCache node (diffusers' MagCacheConfig fields); `table` is the loaded `ratios`."""

    ratios: str = setting(
        COMBO, "flux", "Calibrated magnitude ratios for your model: a built-in table (flux from diffusers; the others "
        "from the official MagCache ComfyUI pack) or a file written by the MagCache Calibrate node "
        "(models/magcache_ratios). Tables are read by schedule progress, so any step count, denoise < 1 and partial "
        "step ranges work.", options=_ratio_choices)
    threshold: float = setting(
        FLOAT, 0.06, "Error budget: evaluations are reused while the accumulated |1 - ratio| stays below this. 0 "
        "turns skipping off. diffusers' default 0.06 is conservative; the MagCache authors use up to 0.24 on Flux "
        "and Wan 14B.", min=0.0, max=1.0, step=0.001)
    max_skip_steps: int = setting(
        INT, 3, "Most evaluations reused in a row before one is computed fully (MagCache's K).", min=0, max=100)
    retention_ratio: float = setting(
        FLOAT, 0.2, "Fraction of the sampler run's first steps that are always computed (they set the composition).",
        min=0.0, max=1.0, step=0.01)
    table: Optional[MagRatios] = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_numbers(self)
        if not isinstance(self.ratios, str):
            raise ValueError(f"ratios must be the name of a preset or a calibration file, got {self.ratios!r}.")
        if self.table is None:
            from ..ratios.library import load_ratios

            object.__setattr__(self, "table", load_ratios(self.ratios)[0])
        else:
            self.table.validate()

    @property
    def enabled(self) -> bool:
        """Whether these settings can skip anything at all."""
        return self.threshold > 0.0 and self.max_skip_steps > 0 and self.retention_ratio < 1.0

    def retention_steps(self, total_steps: int) -> int:
        """Steps at the start of a run that are always computed (diffusers' rounding)."""
        return int(self.retention_ratio * total_steps + 0.5)


def _check_numbers(config: MagCacheConfig) -> None:
    """Check every setting but `ratios`, which loading its table checks (with the file's own errors)."""
    from ..settings import settings_of

    for name, spec in settings_of(type(config)):
        if name != "ratios":
            object.__setattr__(config, name, spec.check(name, getattr(config, name)))


@dataclass
class ErrorBudget:
    """MagCache's accumulators for one ratio table."""

    ratio: float = 1.0
    steps: int = 0
    error: float = 0.0


class MagCacheRun(ReplayCache):
    """MagCache's state for one sampling run (a stack method and a model-level method)."""

    front_blocks = 0
    back_blocks = 0

    def __init__(self, config: MagCacheConfig, total_steps: int) -> None:
        super().__init__()
        self.config = config
        self.retention_steps = config.retention_steps(total_steps)
        self.budgets: dict[str, ErrorBudget] = {}
        self.branch_indices: set[int] = set()
        self.last_progress: Optional[float] = None

    def decide(self, ctx: ForwardContext, lead_front: Optional[torch.Tensor]) -> bool:
        """Block level: decide before the first block runs."""
        return self._decide(ctx, "middle")

    def decide_output(self, ctx: ForwardContext) -> bool:
        """Model level: decide before the model runs."""
        return self._decide(ctx, "output")

    def learn(self, ctx: ForwardContext, front: Optional[torch.Tensor], middle: dict[str, Any]) -> None:
        """Keep the residual of the whole block stack."""
        self.keep(ctx, "middle", middle)

    def learn_output(self, ctx: ForwardContext, x: Any, out: Any) -> None:
        """Keep the whole model output."""
        self.keep(ctx, "output", out)

    def _decide(self, ctx: ForwardContext, name: str) -> bool:
        table = self.config.table
        self.branch_indices.update(chunk.cond_index for chunk in ctx.chunks)
        progress = ctx.progress
        previous, self.last_progress = self.last_progress, progress
        if (previous is None or progress < previous or ctx.step < self.retention_steps or not self.config.enabled
                or not table.covers(progress)):
            self.budgets.clear()
            return False
        advanced = progress > previous
        within = True
        for label, cond_index in self._tables().items():
            budget = self.budgets.setdefault(label, ErrorBudget())
            budget.ratio *= math.exp(log_ratio_between(table, cond_index, previous, progress))
            budget.steps += int(advanced)
            budget.error += abs(1.0 - budget.ratio)
            within = within and budget.error <= self.config.threshold and budget.steps <= self.config.max_skip_steps
        if within and ctx.in_window and self.store.has(name, ctx.lead.uuid):
            return True
        self.budgets.clear()
        return False

    def _tables(self) -> dict[str, int]:
        """The tables in play (cond, and uncond when calibrated and a negative branch runs)."""
        has_uncond = self.config.table.uncond is not None
        return {("uncond" if i != 0 and has_uncond else "cond"): i for i in sorted(self.branch_indices)}

    def close(self, run: Any) -> None:
        """Free every cached tensor and the error budgets."""
        super().close(run)
        self.budgets.clear()


def place(config: MagCacheConfig, family: Family) -> Placement:
    """The block stack where the family has one, else the model output."""
    return stack_or_model(family)


def prepare(config: MagCacheConfig, model: Any) -> MagCacheConfig:
    """Refuse a table that measures another level than the one this model is cached at."""
    from ..runtime.install import model_family

    family = model_family(model)
    placed = place(config, family) if family is not None else ""
    if isinstance(placed, str):
        return config
    level = BLOCKS if STACK in placed else MODEL
    if config.table.level != level:
        measured = "the block stack's residual" if config.table.level == BLOCKS else "the whole model output"
        raise ValueError(
            f"the ratios '{config.ratios}' measure {measured}, but {family.name} is cached at {level} level; "
            f"make a table for it with MagCache Calibrate and pick that file."
        )
    return config


MAG_CACHE_SPEC = MethodSpec(
    name=MAG_CACHE,
    key="cachekit_mag_cache",
    config_type=MagCacheConfig,
    place=place,
    start=lambda config, run: MagCacheRun(config, run.clock.total_steps),
    prepare=prepare,
)
