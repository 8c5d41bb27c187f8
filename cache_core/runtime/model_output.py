"""The model level: reusing or predicting the whole diffusion-model output.

Where a family's forward goes through the DIFFUSION_MODEL wrapper, that wrapper sees the model's
own input and raw output (model space: velocity, noise, or what the family's `_forward` returns;
not APPLY_MODEL's denoised x0), with each family's own arguments; inputs and outputs may be tensor
trees (LTX-2 passes [video, audio]). Every other family is reached at APPLY_MODEL, whose denoised
output is mapped back to model space through the model's own sampling (denoised is linear in the
model output: denoised = a(sigma) x + b(sigma) output for every ComfyUI model_sampling), so the
method sees the same quantity at the same scale. Once per model evaluation the method decides; on
a reuse the model does not run and the method's output for this batch is used; a computed output
is handed to the method to learn from. Reused outputs are copies: model code may change its output
in place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Protocol

import torch

from . import trees
from .forward import ForwardContext, forward_context


class OutputMethod(Protocol):
    """What a model-level method supplies (MagCache and TaylorSeer at model level, ...)."""

    def decide_output(self, ctx: ForwardContext) -> bool:
        """Once per model evaluation (and device): True to reuse or predict the output."""

    def output(self, ctx: ForwardContext, x: trees.Tree) -> Optional[trees.Tree]:
        """On a reuse: the output for this forward's batch; None to compute instead."""

    def learn_output(self, ctx: ForwardContext, x: trees.Tree, out: trees.Tree) -> None:
        """After a computed forward: its input and output (whole batch)."""


def _options_of(key: str, args: tuple, kwargs: dict) -> Optional[dict]:
    options = kwargs.get("transformer_options")
    if isinstance(options, dict) and key in options:
        return options
    for value in reversed(args):
        if isinstance(value, dict) and key in value:
            return value
    return None


@dataclass(frozen=True)
class ModelOutputHook:
    """DIFFUSION_MODEL wrapper of a model-level cache (registered under the cache's key)."""

    key: str

    def __call__(self, executor: Any, *args: Any, **kwargs: Any) -> Any:
        reused, ctx = _before_output(self.key, args, kwargs)
        if reused is not None:
            return reused
        out = executor(*args, **kwargs)
        if ctx is not None:
            _after_output(ctx, args[0], out)
        return out


@torch.compiler.disable
def _before_output(key: str, args: tuple, kwargs: dict) -> tuple[Any, Optional[ForwardContext]]:
    ctx = forward_context(_options_of(key, args, kwargs), key)
    if ctx is None or not args:
        return None, None
    out = _reused_output(ctx, args[0], fits=lambda value: trees.first_leaf(value) is not None)
    return (out, None) if out is not None else (None, ctx if ctx.caching else None)


def _reused_output(ctx: ForwardContext, x: Any, fits: Any) -> Any:
    """The method's output for this forward when the evaluation reuses and it `fits`, else None;
    counts the forward either way."""
    ctx.scratch["output_reached"] = True
    out = None
    if ctx.caching:
        run = ctx.run
        with run.lock:
            reuse = ctx.decisions.get("output")
            if reuse is None:
                reuse = bool(run.state.decide_output(ctx))
                ctx.decisions["output"] = reuse
            out = run.state.output(ctx, x) if reuse else None
        if out is not None and not fits(out):
            out = None
    ctx.count(computed=out is None)
    return out


@torch.compiler.disable
def _after_output(ctx: ForwardContext, x: Any, out: Any) -> None:
    if trees.first_leaf(out) is None:
        return
    with ctx.run.lock:
        ctx.run.state.learn_output(ctx, x, out)


def output_reached(ctx: ForwardContext) -> bool:
    """Whether the model-level hook saw the forward's context."""
    return bool(ctx.scratch.get("output_reached"))


def _denoised_scale(model_sampling: Any, sigma: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a x, b) with denoised = a x + b * model_output at `sigma`, from ComfyUI's own calculate_denoised."""
    zero = torch.zeros_like(x)
    ax = model_sampling.calculate_denoised(sigma, zero, x)
    b = model_sampling.calculate_denoised(sigma, torch.ones_like(x), zero)
    return ax, b


def denoised_through_model_output(executor: Any, args: tuple, kwargs: dict, ctx: ForwardContext) -> Any:
    """APPLY_MODEL at model level: answer with the method's model output turned into denoised, or run
    the model and show the method its output in model space."""
    x, sigma = args[0], args[1]
    model_sampling = getattr(executor.class_obj, "model_sampling", None)
    if not isinstance(x, torch.Tensor) or model_sampling is None:
        return executor(*args, **kwargs)
    reused = _reuse_at_apply(ctx, x)
    if reused is not None:
        return model_sampling.calculate_denoised(sigma, reused.to(x.dtype), x)
    denoised = executor(*args, **kwargs)
    if ctx.caching and isinstance(denoised, torch.Tensor) and denoised.shape == x.shape:
        ax, b = _denoised_scale(model_sampling, sigma, x)
        if bool((b != 0).all()):
            _after_output(ctx, x, (denoised - ax) / b)
    return denoised


@torch.compiler.disable
def _reuse_at_apply(ctx: ForwardContext, x: torch.Tensor) -> Optional[torch.Tensor]:
    return _reused_output(ctx, x, fits=lambda value: isinstance(value, torch.Tensor) and value.shape == x.shape)
