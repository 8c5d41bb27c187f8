"""TaylorSeer: on most steps, predict features from a Taylor-style expansion instead of computing them.

Schedule as in diffusers' `TaylorSeerCacheConfig` (arXiv 2503.06923): step s is computed when
s < D (`disable_cache_before_step`), when (s - D - 1) % N == 0 (N = `cache_interval`), or when
s >= `disable_cache_after_step`; every other step is predicted from factors that the computed
steps left behind. With D=3, N=5 a 28-step run computes steps {0, 1, 2, 4, 9, 14, 19, 24}.

Where CacheKit differs from diffusers, on purpose:
- The step is the sampler step of CacheKit's step clock, not a count of calls, so partial step
  ranges, denoise < 1 and samplers that evaluate the model several times per step are right.
- Factors are functions of the *schedule position*: the index of the evaluation's sigma in the
  run's sigmas, linear between two entries (`schedule_position`). For one evaluation per step this
  is the step number, as in diffusers; heun's correction at sigma[i + 1] sits at i + 1, dpm_2's
  midpoint between i and i + 1. Computed evaluations at the schedule's sigmas update the factors;
  midpoints are predicted at their own position but not learned from (see `learns_now`).
- The default expansion is Newton's divided differences over those positions (taylor_series.py),
  exact on polynomials of degree <= max_order for any spacing. For max_order <= 1 it is
  diffusers' formula; for higher orders `expansion="diffusers"` reproduces diffusers.
- Arithmetic runs in the wider of the model's and the factors' dtype (diffusers casts the
  factors to the model's dtype first); factors are stored in `taylor_factors_dtype`, order 0
  included, as in diffusers.
- Two computed evaluations at the same position (heun's correction and the next step's first
  evaluation) cannot be differenced: the newer value replaces the order-0 factor and the higher
  factors are kept (diffusers raises on a zero step delta).
- Factors are only kept while a later step will be predicted, per conditioning branch (one
  series per batch of branches as ComfyUI runs them, so a batched prediction needs no copy).
- Lite mode predicts the diffusion model's raw output (model space, at the DIFFUSION_MODEL
  wrapper), as diffusers' lite mode predicts `proj_out` (ComfyUI's output is that projection
  unpatchified, a linear rearrangement); nothing else of the model runs on a predicted step. Blocks
  mode predicts the residual of the whole block stack per stream; diffusers' default mode predicts
  attention modules matched by name instead (which matches nothing in Wan). Predicting the stack's
  residual is what predicting every block would give, at the memory of one block: the prediction
  is linear in the cached values, so per-block residual predictions chained on live inputs sum to
  the same thing.
- taylor_factors_dtype "auto" (the default) keeps factors in the dtype of the values they come
  from; diffusers' fixed bfloat16 rounds a float32 model's values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, Optional, Sequence

import torch

from ..families.table import OUTPUT, STACK, TAYLORSEER, Family
from ..runtime.forward import ForwardContext
from ..settings import COMBO, INT, check_settings, setting
from .spec import MethodSpec, Placement, stack_or_model
from .forecast import TreeForecast
from .taylor_series import EXPANSIONS, TaylorSeries

FACTOR_DTYPES: dict[str, Optional[torch.dtype]] = {
    "auto": None, "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32,
}
MODES = ("lite", "blocks")
MAX_ORDER = 4
MAX_STEP = 10000
NEVER = -1

STEPS_NOTE = (
    " Steps are counted within the sampler run, from 0: with KSamplerAdvanced or split sigmas the count "
    "starts at the run's first step, and samplers that call the model twice per step (heun, dpm_2) still "
    "count one step."
)


@dataclass(frozen=True)
class TaylorSeerConfig:
    """Settings of the TaylorSeer node (diffusers' TaylorSeerCacheConfig fields).

    `expansion` is not a widget: "newton" (default) or "diffusers" (diffusers' recursion, for parity).
    """

    cache_interval: int = setting(
        INT, 5, "After the first disable_cache_before_step steps (D), one step in every cache_interval (N) is "
        "computed, steps D+1, D+1+N, D+1+2N, ..., and the others are predicted from the last computed ones. "
        "diffusers' default 5 with D=3 computes steps 0, 1, 2, 4, 9, 14, ... 1 computes every step.", min=1, max=100)
    disable_cache_before_step: int = setting(
        INT, 3, "The run's first steps are always computed: steps 0 up to this number minus one. They set the "
        "composition and give the prediction its first values. Set it to the step count or more to compute "
        "everything." + STEPS_NOTE, min=0, max=MAX_STEP)
    disable_cache_after_step: int = setting(
        INT, NEVER, "From this step on every step is computed again (to keep fine detail). -1 means never "
        "(diffusers' None)." + STEPS_NOTE, min=NEVER, max=MAX_STEP)
    max_order: int = setting(
        INT, 1, "Order of the prediction: 0 reuses the last computed result, 1 extrapolates linearly from the last "
        "two computed steps (diffusers' recommendation), higher orders follow curves through more steps but can "
        "overshoot. Each order keeps one more cached tensor.", min=0, max=MAX_ORDER)
    taylor_factors_dtype: str = setting(
        COMBO, "auto", "Precision of the cached factors. auto keeps the precision of the model's own values; "
        "bfloat16 (diffusers' default) halves the memory of float32 but rounds the cached values; float32 is the "
        "most accurate; float16 is more precise than bfloat16 but overflows above 65504, which large hidden states "
        "(blocks mode) can reach.", options=tuple(FACTOR_DTYPES))
    mode: str = setting(
        COMBO, "blocks", "blocks: on predicted steps no transformer block runs; what the blocks add to the hidden "
        "state is predicted, and the input embedding and the final layer run with the current timestep (diffusers' "
        "default, non-lite mode). Caches max_order + 1 hidden-state tensors per CFG branch. lite: the whole model "
        "output is predicted and nothing of the model runs on predicted steps; caches only latent-sized tensors "
        "(diffusers' use_lite_mode). Models without block patch points always use lite.", options=MODES)
    expansion: str = field(default="newton", compare=False)

    def __post_init__(self) -> None:
        check_settings(self)
        if self.expansion not in EXPANSIONS:
            raise ValueError(f"expansion must be one of {', '.join(EXPANSIONS)}, got {self.expansion!r}.")

    @property
    def factor_dtype(self) -> Optional[torch.dtype]:
        """The dtype factors are stored in; None keeps each value's own dtype."""
        return FACTOR_DTYPES[self.taylor_factors_dtype]

    @property
    def after_step(self) -> Optional[int]:
        """disable_cache_after_step as diffusers reads it (None: never)."""
        return None if self.disable_cache_after_step == NEVER else self.disable_cache_after_step

    @property
    def enabled(self) -> bool:
        """Whether these settings predict any step at all (for some number of steps)."""
        after = self.after_step
        return self.cache_interval > 1 and (after is None or after > self.disable_cache_before_step)

    def computes_at(self, step: int) -> bool:
        """diffusers' rule: whether sampler step `step` (0-based, within the run) is computed."""
        after = self.after_step
        return (
            step < self.disable_cache_before_step
            or (step - self.disable_cache_before_step - 1) % self.cache_interval == 0
            or (after is not None and step >= after)
        )


def factor_dtype_named(name: str) -> Optional[torch.dtype]:
    """The torch dtype of a `taylor_factors_dtype` choice (None for auto); ValueError for an unknown name."""
    try:
        return FACTOR_DTYPES[name]
    except KeyError:
        raise ValueError(f"taylor_factors_dtype must be one of {', '.join(FACTOR_DTYPES)}, got {name!r}.") from None


def predicted_steps(total_steps: int, config: TaylorSeerConfig) -> tuple[bool, ...]:
    """For each step of a run of `total_steps`, whether it is predicted.

    A step before the first computed one has nothing to predict from and is computed (diffusers
    raises there, e.g. at step 0 with disable_cache_before_step=0).
    """
    plan: list[bool] = []
    computed_before = False
    for step in range(total_steps):
        plan.append(config.enabled and computed_before and not config.computes_at(step))
        computed_before = computed_before or not plan[-1]
    return tuple(plan)


def schedule_position(sample_sigmas: Sequence[float], sigma: float) -> float:
    """Where `sigma` lies in the run's descending sigmas, in steps.

    sample_sigmas[i] is position i (exactly, within a relative 1e-5); between two entries the
    position is linear in sigma. Sigmas above the first entry are position 0, sigmas below the
    last are the last position.
    """
    tolerance = 1e-5 * abs(sigma) + 1e-8
    last = len(sample_sigmas) - 1
    for i in range(last):
        high, low = sample_sigmas[i], sample_sigmas[i + 1]
        if sigma >= high - tolerance:
            return float(i)
        if sigma > low + tolerance:
            return i + (high - sigma) / (high - low)
    return float(max(last, 0))


class TaylorSeerRun:
    """TaylorSeer's state for one sampling run: the step plan and one series per batch layout and leaf.

    It is a block-stack method (blocks mode: the middle is the whole stack) and a model-level
    method (lite mode); the runtime uses the protocol of the site it was placed on.
    """

    front_blocks = 0
    back_blocks = 0

    def __init__(self, config: TaylorSeerConfig, sample_sigmas: Sequence[float]) -> None:
        self.config = config
        self.sample_sigmas = tuple(float(s) for s in sample_sigmas)
        self.predicts = predicted_steps(max(len(self.sample_sigmas) - 1, 0), config)
        self.last_predicted_step = max((i for i, p in enumerate(self.predicts) if p), default=-1)
        self.forecast = TreeForecast(lambda leaf: TaylorSeries(config.max_order, config.factor_dtype or leaf.dtype, config.expansion))
        self._positions: dict[float, float] = {}

    def position(self, sigma: float) -> float:
        """Schedule position of an evaluation at `sigma` (memoised per run)."""
        position = self._positions.get(sigma)
        if position is None:
            position = self._positions[sigma] = schedule_position(self.sample_sigmas, sigma)
        return position

    def predicts_now(self, ctx: ForwardContext) -> bool:
        """Whether this forward's step is a predicted one."""
        return ctx.in_window and ctx.step < len(self.predicts) and self.predicts[ctx.step]

    def learns_now(self, ctx: ForwardContext) -> bool:
        """Whether a computed forward updates the factors: a later step will be predicted, and the
        evaluation lies on the sampling trajectory, at one of the schedule's sigmas.

        The extra evaluations of midpoint samplers (dpm_2, dpmpp_2s, ...) run at a trial latent
        between two sigmas; differencing them against trajectory values over a fraction of a step
        amplifies their error (on the tiny test models dpmpp_2s_ancestral went from 0.04 to 0.3
        relative error in blocks mode, and from 0.3 to 3 in lite mode), so they are computed
        but not learned from.
        """
        return ctx.caching and ctx.step < self.last_predicted_step and self.position(ctx.sigma).is_integer()

    # --- the two sites ---

    def decide(self, ctx: ForwardContext, lead_front: Any) -> bool:
        return self.predicts_now(ctx)

    def decide_output(self, ctx: ForwardContext) -> bool:
        return self.predicts_now(ctx)

    def middle(self, ctx: ForwardContext) -> Optional[dict[str, Any]]:
        """The predicted residual of the whole stack for this batch."""
        return self.predict(ctx, "middle")

    def output(self, ctx: ForwardContext, x: Any) -> Any:
        """The predicted model output for this batch."""
        return self.predict(ctx, "output")

    def learn(self, ctx: ForwardContext, front: Any, middle: dict[str, Any]) -> None:
        if self.learns_now(ctx):
            self.update(ctx, "middle", middle, copy=False)  # a fresh tensor only this cache holds

    def learn_output(self, ctx: ForwardContext, x: Any, out: Any) -> None:
        if self.learns_now(ctx):
            self.update(ctx, "output", out, copy=True)

    # --- series ---

    @staticmethod
    def layout(ctx: ForwardContext) -> tuple[Hashable, ...]:
        return tuple((chunk.uuid, chunk.size) for chunk in ctx.chunks)

    def predict(self, ctx: ForwardContext, name: str) -> Any:
        """The tree `name` extrapolated to this evaluation's position, or None without history."""
        return self.forecast.predict(self.layout(ctx), name, self.position(ctx.sigma))

    def update(self, ctx: ForwardContext, name: str, value: Any, copy: bool) -> None:
        """Add a computed tree at this evaluation's position."""
        self.forecast.learn(self.layout(ctx), name, value, self.position(ctx.sigma), copy)

    def cache_bytes(self) -> int:
        """Bytes of cached tensors held now: (orders kept) x (value size) per leaf per batch layout."""
        return self.forecast.nbytes()

    def close(self, run: Any) -> None:
        """Free every cached tensor."""
        self.forecast.clear()
        self._positions.clear()


def place(config: TaylorSeerConfig, family: Family) -> Placement:
    """blocks mode on the block stack, lite mode on the model output; each falls back to the other
    where the family lacks its site."""
    return stack_or_model(family, prefer_stack=config.mode == "blocks")


TAYLORSEER_SPEC = MethodSpec(
    name=TAYLORSEER,
    key="cachekit_taylorseer",
    config_type=TaylorSeerConfig,
    place=place,
    start=lambda config, run: TaylorSeerRun(config, run.clock.sample_sigmas),
)
