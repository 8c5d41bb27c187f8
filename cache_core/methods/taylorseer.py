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
- Factors are only kept while a later step will be predicted, and per conditioning branch.
- Lite mode predicts the diffusion model's output, as diffusers' lite mode predicts `proj_out`
  (ComfyUI's output is that projection unpatchified, a linear rearrangement); nothing else of the
  model runs on a predicted step. Blocks mode predicts the residual of the whole block stack per
  stream (see TaylorSeerBlocksRun); diffusers' default mode predicts attention modules matched by
  name instead (which matches nothing in Wan).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..families.table import TAYLORSEER  # noqa: F401  (re-exported for the node)
from ..runtime.branches import BranchStore
from ..runtime.forward import ForwardContext, rows
from .taylor_series import EXPANSIONS, TaylorSeries

FACTOR_DTYPES: dict[str, torch.dtype] = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
MODES = ("lite", "blocks")
MAX_ORDER = 4

Streams = dict[str, torch.Tensor]


def _check_whole(name: str, value: object, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a whole number {bounds}, got {value!r}.")


@dataclass(frozen=True)
class TaylorSeerConfig:
    """Settings of the TaylorSeer node (diffusers' TaylorSeerCacheConfig fields).

    cache_interval: N, the spacing of computed steps once caching has started (1 computes all).
    disable_cache_before_step: D, steps 0 .. D-1 of the run are always computed.
    disable_cache_after_step: steps from this one on are always computed; None means never.
    max_order: order of the expansion (0 reuses the last computed value).
    taylor_factors_dtype: dtype the factors are stored in.
    mode: "lite" predicts the whole model output; "blocks" predicts what the transformer
        blocks add and runs the embeddings and the final layer.
    expansion: "newton" (default) or "diffusers" (diffusers' recursion, for parity tests).
    """

    cache_interval: int = 5
    disable_cache_before_step: int = 3
    disable_cache_after_step: int | None = None
    max_order: int = 1
    taylor_factors_dtype: torch.dtype = torch.bfloat16
    mode: str = "blocks"
    expansion: str = "newton"

    def __post_init__(self) -> None:
        _check_whole("cache_interval", self.cache_interval, 1)
        _check_whole("disable_cache_before_step", self.disable_cache_before_step, 0)
        if self.disable_cache_after_step is not None:
            _check_whole("disable_cache_after_step", self.disable_cache_after_step, 0)
        _check_whole("max_order", self.max_order, 0, MAX_ORDER)
        if self.taylor_factors_dtype not in FACTOR_DTYPES.values():
            raise ValueError(f"taylor_factors_dtype must be one of {', '.join(FACTOR_DTYPES)}, got {self.taylor_factors_dtype!r}.")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}.")
        if self.expansion not in EXPANSIONS:
            raise ValueError(f"expansion must be one of {', '.join(EXPANSIONS)}, got {self.expansion!r}.")

    @property
    def enabled(self) -> bool:
        """Whether these settings predict any step at all (for some number of steps)."""
        after = self.disable_cache_after_step
        return self.cache_interval > 1 and (after is None or after > self.disable_cache_before_step)

    def computes_at(self, step: int) -> bool:
        """diffusers' rule: whether sampler step `step` (0-based, within the run) is computed."""
        after = self.disable_cache_after_step
        return (
            step < self.disable_cache_before_step
            or (step - self.disable_cache_before_step - 1) % self.cache_interval == 0
            or (after is not None and step >= after)
        )


def factor_dtype_named(name: str) -> torch.dtype:
    """The torch dtype of a `taylor_factors_dtype` choice; ValueError for an unknown name."""
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
    """TaylorSeer's state for one sampling run: the step plan and one series per branch and stream."""

    copy_values = True  # whether computed values must be copied before they are kept

    def __init__(self, config: TaylorSeerConfig, sample_sigmas: Sequence[float]) -> None:
        self.config = config
        self.sample_sigmas = tuple(float(s) for s in sample_sigmas)
        self.predicts = predicted_steps(max(len(self.sample_sigmas) - 1, 0), config)
        self.last_predicted_step = max((i for i, p in enumerate(self.predicts) if p), default=-1)
        self.branches: BranchStore[dict[str, TaylorSeries]] = BranchStore(dict)
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
        return ctx.may_cache and ctx.step < self.last_predicted_step and self.position(ctx.sigma).is_integer()

    def predict(self, ctx: ForwardContext, fits: tuple[int, ...] | None = None) -> Streams | None:
        """Every stream predicted for the whole batch (branches joined in batch order), or None when
        a branch has nothing to predict from, or its cached shape does not end in `fits`."""
        position = self.position(ctx.sigma)
        parts: list[Streams] = []
        for chunk in ctx.chunks:
            series = self.branches.find(chunk.uuid)
            if not series:
                return None
            size = chunk.rows.stop - chunk.rows.start
            for one in series.values():
                shape = one.shape
                if shape is None or shape[0] != size or (fits and tuple(shape[-len(fits):]) != fits):
                    return None
            parts.append({name: one.predict(position) for name, one in series.items()})
        if len(parts) == 1:
            return parts[0]
        return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}

    def learn(self, ctx: ForwardContext, streams: Streams) -> None:
        """Update each branch's series with its rows of the computed streams."""
        position = self.position(ctx.sigma)
        config = self.config
        for chunk in ctx.chunks:
            series = self.branches.get(chunk.uuid)
            for name, value in streams.items():
                one = series.get(name)
                if one is None:
                    one = series[name] = TaylorSeries(config.max_order, config.taylor_factors_dtype, config.expansion)
                one.update(rows(value, chunk), position, copy=self.copy_values)

    def cache_bytes(self) -> int:
        """Bytes of cached tensors held now: (orders kept) x (stream size) per stream per branch."""
        return sum(one.nbytes() for series in self.branches for one in series.values())

    def close(self) -> None:
        """Free every cached tensor."""
        self.branches.clear()
        self._positions.clear()


class TaylorSeerLiteRun(TaylorSeerRun):
    """Lite mode: the whole diffusion-model output is predicted (an OutputPredictor, see
    runtime/output_prediction.py). The report's unit is one forward."""

    def predict_output(self, ctx: ForwardContext, x: torch.Tensor) -> torch.Tensor | None:
        """The predicted output of this forward, or None to run the model."""
        ctx.blocks_total += 1
        predicted = self.predict(ctx, fits=tuple(x.shape[2:])) if self.predicts_now(ctx) else None
        if predicted is None:
            ctx.blocks_computed += 1
            return None
        return predicted["output"]

    def observe_output(self, ctx: ForwardContext, x: torch.Tensor, output: object) -> None:
        """Learn from the output of a computed forward."""
        if isinstance(output, torch.Tensor) and self.learns_now(ctx):
            self.learn(ctx, {"output": output})


class TaylorSeerBlocksRun(TaylorSeerRun):
    """Blocks mode: a block-stack policy (runtime/block_stack.py). On predicted steps no block
    runs: the first block's input plus the predicted residual of the whole stack (per stream, in
    the last block's layout) becomes the last block's output, and the final layer runs on it.

    This is what predicting every block would give, at the memory of one block: predicting each
    block's residual and adding it to the block's live input chains to the same sum, because the
    prediction is linear in the cached values; predicting each block's output outright would leave
    only the last block's prediction in the result.
    """

    residual_from_head_input = True
    copy_values = False  # the stack residual is a fresh tensor that only this cache holds

    def skip_before_head(self, ctx: ForwardContext) -> Streams | None:
        """On a predicted step: the stack residual to replay at the tail; otherwise None."""
        return self.predict(ctx) if self.predicts_now(ctx) else None

    def skip_after_head(self, ctx: ForwardContext, head_in: Streams, head_out: Streams) -> None:
        """TaylorSeer decides before the head only."""
        return None

    def store_stack_residual(self, ctx: ForwardContext, residual: Streams) -> None:
        """Learn from the residual of a fully computed stack."""
        if self.learns_now(ctx):
            self.learn(ctx, residual)
