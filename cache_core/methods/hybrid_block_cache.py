"""Hybrid Block Cache: the segmented block stack with a residual predictor (cache-dit's DBCache idea).

The first `front_blocks` blocks always run and decide: while their residual changes (relative mean
absolute change against the last computed evaluation, FirstBlockCache's measure) by less than
`residual_diff_threshold`, the middle blocks are not run and their residual is supplied by the
predictor; the last `back_blocks` always run, on the corrected middle output, and correct it
further. Around the threshold: warmup steps that always compute, a cap on consecutive and on total
reused steps, and an optional step mask (SCM: which steps must compute). Predictors: replay the
last computed residual, TaylorSeer (order 1 or 2, over schedule positions), or FoCa's
predictor-corrector (forecast.py).

Quality-budget mode: with `target_speedup` above 1 the threshold is not fixed but steered through
the run so that the middle is computed on as many steps as that speedup allows (counting the
always-computed front and back blocks), from the run's own signal; the report says what was reached.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..families.table import Family
from ..runtime.branches import ReplayCache
from ..runtime.forward import ForwardContext
from ..settings import COMBO, FLOAT, INT, STRING, check_settings, setting
from .first_block_cache import relative_change
from .forecast import FoCaSeries, TreeForecast
from .spec import MethodSpec, Placement, stack_only
from .taylor_series import TaylorSeries

HYBRID_BLOCK_CACHE = "HybridBlockCache"
PREDICTORS = ("replay", "taylorseer", "foca")
POLICIES = ("dynamic", "static")
# Named step masks: the fraction of steps computed. Computes are spread evenly over the run after the
# first fifth of it (always computed) and the last step (always computed).
MASKS = {"slow": 0.65, "medium": 0.55, "fast": 0.4, "ultra": 0.3}
MAX_BLOCKS = 64


@dataclass(frozen=True)
class HybridBlockCacheConfig:
    """Settings of the Hybrid Block Cache node (cache-dit's DBCache names where they mean the same)."""

    front_blocks: int = setting(
        INT, 1, "Fn: blocks at the start of the stack that run on every step; the change of their residual decides "
        "whether the middle blocks run. More front blocks decide better and save less (cache-dit uses 1-8).",
        min=1, max=MAX_BLOCKS)
    back_blocks: int = setting(
        INT, 0, "Bn: blocks at the end of the stack that run on every step, on the middle's predicted output, and "
        "correct it (cache-dit's auto-scaler). 0 ends the stack with the predicted middle.", min=0, max=MAX_BLOCKS)
    residual_diff_threshold: float = setting(
        FLOAT, 0.12, "Reuse the middle while the front blocks' residual changes by less than this (relative mean "
        "absolute change since the last computed step). 0 turns reuse off. Ignored when target_speedup is set.",
        min=0.0, max=1.0, step=0.005)
    warmup_steps: int = setting(
        INT, 3, "The run's first steps always compute (they set the composition and give the predictor its history).",
        min=0, max=10000)
    max_continuous_cached_steps: int = setting(
        INT, 3, "Most steps in a row whose middle is reused before one is computed. 0 means no limit.", min=0, max=100)
    max_cached_steps: int = setting(
        INT, 0, "Most steps of the run whose middle is reused. 0 means no limit.", min=0, max=10000)
    predictor: str = setting(
        COMBO, "taylorseer", "What stands in for the middle blocks on a reused step: replay (their last computed "
        "residual), taylorseer (extrapolated from the last computed residuals) or foca (a predictor-corrector "
        "anchored to the last computed residual, smoother over long reuse runs).", options=PREDICTORS)
    taylorseer_order: int = setting(
        INT, 1, "Order of the taylorseer predictor: 1 linear, 2 quadratic (one more cached residual).", min=1, max=2)
    steps_computation_mask: str = setting(
        STRING, "", "Optional step mask (cache-dit's SCM): empty for none; slow, medium, fast or ultra (about 65, 55, "
        "40 or 30 % of the steps computed); or one character per step, 1 = compute, 0 = may reuse (e.g. 11101101...). "
        "A mask of another length is stretched over the run.")
    steps_computation_policy: str = setting(
        COMBO, "dynamic", "dynamic: a 0 in the mask reuses only while the residual change allows; static: a 0 always "
        "reuses.", options=POLICIES)
    target_speedup: float = setting(
        FLOAT, 0.0, "Quality-budget mode: instead of a threshold, reach about this ideal speedup of the block stack "
        "(e.g. 2.0); CacheKit steers the threshold through the run and reports what it reached. 0 turns it off.",
        min=0.0, max=20.0, step=0.05)

    def __post_init__(self) -> None:
        check_settings(self)
        object.__setattr__(self, "steps_computation_mask", self.steps_computation_mask.strip())
        parse_mask(self.steps_computation_mask, 10)  # raises for a malformed mask
        if 0.0 < self.target_speedup < 1.0:
            raise ValueError(f"target_speedup must be 0 (off) or at least 1.0, got {self.target_speedup}.")

    @property
    def enabled(self) -> bool:
        """Whether these settings can reuse anything at all."""
        return self.residual_diff_threshold > 0.0 or self.target_speedup > 1.0 or (
            bool(self.steps_computation_mask) and self.steps_computation_policy == "static")


def parse_mask(mask: str, steps: int) -> Optional[tuple[bool, ...]]:
    """Per step of a run of `steps`, whether the mask requires a compute; None without a mask."""
    if not mask:
        return None
    if mask in MASKS:
        fraction = MASKS[mask]
        head = max(1, math.ceil(0.2 * steps))
        computes = max(head + 1, round(fraction * steps))
        rest = max(computes - head - 1, 0)
        middle = range(head, steps - 1)
        picks = {middle[round(i * (len(middle) - 1) / max(rest - 1, 1))] for i in range(rest)} if rest and len(middle) else set()
        return tuple(i < head or i == steps - 1 or i in picks for i in range(steps))
    digits = mask.replace(",", "").replace(" ", "")
    if not digits or set(digits) - {"0", "1"}:
        raise ValueError(f"steps_computation_mask must be empty, one of {', '.join(MASKS)}, or a string of 0 and 1, "
                         f"got {mask!r}.")
    return tuple(digits[min(int(i * len(digits) / steps), len(digits) - 1)] == "1" for i in range(steps))


class HybridBlockCacheRun(ReplayCache):
    """The hybrid cache's state for one sampling run (a stack method)."""

    def __init__(self, config: HybridBlockCacheConfig, run: Any) -> None:
        super().__init__()
        self.config = config
        self.front_blocks = config.front_blocks
        self.back_blocks = config.back_blocks
        self.total_steps = run.clock.total_steps
        self.sample_sigmas = run.clock.sample_sigmas
        self.mask = parse_mask(config.steps_computation_mask, self.total_steps)
        self.forecast = self._forecast()
        self.threshold = config.residual_diff_threshold if config.target_speedup <= 1.0 else max(config.residual_diff_threshold, 0.05)
        self.budget = self._middle_budget(run)
        self.consecutive = 0
        self.cached_steps = 0
        self.computed_steps = 0
        self.decided_steps = 0
        self._positions: dict[float, float] = {}

    def _forecast(self) -> Optional[TreeForecast]:
        if self.config.predictor == "taylorseer":
            order = self.config.taylorseer_order
            return TreeForecast(lambda leaf: TaylorSeries(order, leaf.dtype))
        if self.config.predictor == "foca":
            return TreeForecast(lambda leaf: FoCaSeries())
        return None

    def _middle_budget(self, run: Any) -> Optional[int]:
        """Steps whose middle may be computed to reach target_speedup (None: no budget)."""
        target = self.config.target_speedup
        length = sum(run.spec.stack_lengths.values())
        middle = length - self.front_blocks - self.back_blocks
        if target <= 1.0 or middle <= 0 or not self.total_steps:
            return None
        steps = self.total_steps
        computed_units = steps * length / target - steps * (self.front_blocks + self.back_blocks)
        return max(1, min(steps, math.floor(computed_units / middle + 1e-9)))

    def position(self, sigma: float) -> float:
        from .taylorseer import schedule_position

        position = self._positions.get(sigma)
        if position is None:
            position = self._positions[sigma] = schedule_position(self.sample_sigmas, sigma)
        return position

    # --- the decision ---

    def decide(self, ctx: ForwardContext, lead_front: Optional[torch.Tensor]) -> bool:
        """Reuse the middle when every rule allows it (once per model evaluation)."""
        step = ctx.step
        reuse = self._may_reuse(ctx, lead_front)
        if reuse:
            self.consecutive += 1
            self.cached_steps += 1
        else:
            self.consecutive = 0
            self.computed_steps += 1
        self.decided_steps += 1
        if self.budget is not None:
            self._steer(step)
        return reuse

    def _may_reuse(self, ctx: ForwardContext, lead_front: Optional[torch.Tensor]) -> bool:
        config, step = self.config, ctx.step
        if not ctx.in_window or not config.enabled or lead_front is None or step < config.warmup_steps:
            return False
        if config.max_continuous_cached_steps and self.consecutive >= config.max_continuous_cached_steps:
            return False
        if config.max_cached_steps and self.cached_steps >= config.max_cached_steps:
            return False
        if self.mask is not None and step < len(self.mask) and self.mask[step]:
            return False
        if step >= self.total_steps - 1 and self.budget is not None:
            return False  # the last step computes in budget mode, as a mask's last step does
        if self.budget is not None:
            remaining = self.total_steps - step
            left = self.budget - self.computed_steps
            if left >= remaining:
                return False
            if left <= 1:  # keep one compute for the last step
                return self._has_history(ctx)
        previous = self.store.get("front", (ctx.lead,))
        if not isinstance(previous, torch.Tensor) or previous.shape != lead_front.shape:
            return False
        if self.mask is not None and config.steps_computation_policy == "static" and step < len(self.mask):
            return self._has_history(ctx)
        change = relative_change(lead_front, previous.to(lead_front.device))
        return change < self.threshold and self._has_history(ctx)

    def _has_history(self, ctx: ForwardContext) -> bool:
        return self.store.has("middle", ctx.lead.uuid)

    def _steer(self, step: int) -> None:
        """Quality-budget mode: move the threshold so computes track the budget over the run."""
        expected = self.budget * (step + 1) / self.total_steps
        error = (self.computed_steps - expected) / max(1.0, 0.1 * self.total_steps)
        self.threshold = min(1.0, max(1e-4, self.threshold * 2.0 ** error))

    # --- the middle ---

    def middle(self, ctx: ForwardContext) -> Optional[dict[str, Any]]:
        """The middle's residual for this batch: replayed or forecast."""
        if self.forecast is None:
            return super().middle(ctx)
        return self.forecast.predict(self.layout(ctx), "middle", self.position(ctx.sigma))

    def learn(self, ctx: ForwardContext, front: Optional[torch.Tensor], middle: dict[str, Any]) -> None:
        """Keep the front's residual (to compare with) and the middle's (to replay or forecast from)."""
        if front is not None:
            self.keep(ctx, "front", front)
        if self.forecast is None:
            self.keep(ctx, "middle", middle)
        else:
            self.store.put("middle", ctx.chunks, {})  # marks the branches as having history
            if self.position(ctx.sigma).is_integer():  # midpoint evaluations are not on the trajectory
                self.forecast.learn(self.layout(ctx), "middle", middle, self.position(ctx.sigma), copy=False)

    @staticmethod
    def layout(ctx: ForwardContext) -> tuple:
        return tuple((chunk.uuid, chunk.size) for chunk in ctx.chunks)

    def cache_bytes(self) -> int:
        return super().cache_bytes() + (self.forecast.nbytes() if self.forecast is not None else 0)

    def close(self, run: Any) -> None:
        """Free every cached tensor; in budget mode, say what was reached."""
        if self.budget is not None and run.report.units_computed:
            reached = run.report.units_total / run.report.units_computed
            run.report.extra["target_speedup"] = self.config.target_speedup
            run.report.extra["reached_speedup"] = round(reached, 3)
            run.report.add_note(f"target {self.config.target_speedup:.2f}x, reached {reached:.2f}x")
        super().close(run)
        if self.forecast is not None:
            self.forecast.clear()


def place(config: HybridBlockCacheConfig, family: Family) -> Placement:
    """The block stack."""
    return stack_only(family)


def prepare(config: HybridBlockCacheConfig, model: Any) -> HybridBlockCacheConfig:
    """Refuse front and back segments that leave no middle to cache on this model."""
    from ..runtime.block_stack import block_list_lengths
    from ..runtime.install import model_family

    family = model_family(model)
    if family is None or not family.block_lists:
        return config
    length = sum(block_list_lengths(model, family).values())
    if config.front_blocks + config.back_blocks >= length:
        raise ValueError(f"front_blocks + back_blocks ({config.front_blocks} + {config.back_blocks}) must be less than the "
                         f"model's {length} blocks, or nothing is left to cache.")
    return config


HYBRID_BLOCK_CACHE_SPEC = MethodSpec(
    name=HYBRID_BLOCK_CACHE,
    key="cachekit_hybrid_block_cache",
    config_type=HybridBlockCacheConfig,
    place=place,
    start=lambda config, run: HybridBlockCacheRun(config, run),
    prepare=prepare,
)
