"""Estimating the negative (unconditional) CFG branch, model-agnostically, through CALC_COND_BATCH.

`samplers._calc_cond_batch(model, conds, x_in, timestep, model_options)` evaluates every
conditioning of one model evaluation; CFGGuider passes conds = [positive, negative]. On an
evaluation the method chooses to estimate, the wrapper runs it with the negative entry set to None
(so only the positive rows are computed, however ComfyUI would have batched them) and builds the
negative output from the positive one. On other evaluations it runs normally and lets the method
record the difference. The outputs here are denoised (x0) predictions; the method carries the
difference between sigmas with the model's output scale (see `output_scale`).

It passes through for cfg 1 (negative None), guidance-distilled use, DualCFGGuider's three conds,
context windows, and outside a CacheKit run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Hashable, Protocol

import torch

from .forward import forward_signature
from .run import SamplingRun

POSITIVE, NEGATIVE = 0, 1  # CFGGuider's order of conds (the indices of `cond_or_uncond`)


class UnconditionalPolicy(Protocol):
    """What a method implements to have its negative branch estimated."""

    def skip_unconditional(self, eval_key: Hashable, sigma: float, batch_shape: torch.Size,
                           positive: frozenset[Hashable], negative: frozenset[Hashable]) -> bool:
        """Decide, once per evaluation, whether to estimate the negative branch (given each side's uuids)."""

    def estimate_negative(self, positive: torch.Tensor, sigma: float, output_scale: float) -> torch.Tensor:
        """The negative output estimated from the positive one."""

    def record_negative(self, positive: torch.Tensor, negative: torch.Tensor, output_scale: float) -> None:
        """Learn from a fully computed evaluation."""


def is_positive_negative(conds: Any) -> bool:
    """True for exactly [positive, negative] with both present (CFG above 1)."""
    return isinstance(conds, (list, tuple)) and len(conds) == 2 and conds[POSITIVE] is not None and conds[NEGATIVE] is not None


def has_control(conds: Any) -> bool:
    """True when a ControlNet / T2I adapter is attached to any conditioning (caching stays off)."""
    return any(isinstance(c, dict) and c.get("control") is not None for side in conds if side for c in side)


def cond_uuids(cond: list) -> frozenset[Hashable]:
    """The conditioning uuids (the branch keys of the forwards) of one side of the conds list."""
    return frozenset(c["uuid"] for c in cond if isinstance(c, dict) and "uuid" in c)


def output_scale(model: Any, sigma: float) -> float:
    """d(denoised)/d(model output) at `sigma` (e.g. -sigma for flow and eps models); 1.0 if unknown.

    Differences of denoised outputs divided by this are differences of raw model outputs, the space
    in which FasterCache assumes the branch difference changes slowly.
    """
    sampling = getattr(model, "model_sampling", None)
    try:
        value = float(sampling.calculate_denoised(torch.tensor([sigma]), torch.ones(1, 1), torch.zeros(1, 1)).reshape(-1)[0])
    except Exception:  # an unusual model_sampling: keep the difference in denoised space
        return 1.0
    return value if math.isfinite(value) and value != 0.0 else 1.0


@dataclass(frozen=True)
class UnconditionalEstimationHook:
    """CALC_COND_BATCH wrapper; the run is at model_options["transformer_options"][key]."""

    key: str

    def __call__(self, executor: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) != 5 or kwargs:
            return executor(*args, **kwargs)
        model, conds, x_in, timestep, model_options = args
        run = (model_options.get("transformer_options") or {}).get(self.key)
        if (
            not isinstance(run, SamplingRun)
            or not run.spec.enabled
            or run.disabled_reason is not None
            or not is_positive_negative(conds)
            or has_control(conds)
            or model_options.get("context_handler") is not None
            or forward_signature(model_options.get("transformer_options") or {}) != run.baseline
        ):
            return executor(*args)
        policy: UnconditionalPolicy = run.state
        sigma = float(timestep.reshape(-1)[0])
        scale = output_scale(model, sigma)
        with run.lock:
            skip = policy.skip_unconditional(run.evaluation, sigma, x_in.shape, cond_uuids(conds[POSITIVE]), cond_uuids(conds[NEGATIVE]))
        if skip:
            out = list(executor(model, [conds[POSITIVE], None], x_in, timestep, model_options))
            with run.lock:
                out[NEGATIVE] = policy.estimate_negative(out[POSITIVE], sigma, scale)
            return out
        out = executor(*args)
        with run.lock:
            policy.record_negative(out[POSITIVE], out[NEGATIVE], scale)
        return out
