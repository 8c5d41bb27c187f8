"""Whole-forward prediction: a method may answer a diffusion-model forward without running it.

The APPLY_MODEL wrapper (sampling_hooks.ForwardHook) asks the run's method object,
when it implements `OutputPredictor`, for a predicted output before each forward; a tensor is
returned to the sampler as the forward's output and the model does not run. After a forward that
did run (completely, with no fallback), the method observes its output. Methods without these
methods are unaffected, so block-level caches and output-level caches share one wrapper.
"""
from __future__ import annotations

from typing import Any, Protocol

import torch

from .forward import ForwardContext


class OutputPredictor(Protocol):
    """A method's per-run object that can stand in for whole diffusion-model forwards."""

    def predict_output(self, ctx: ForwardContext, x: torch.Tensor) -> torch.Tensor | None:
        """The output for this forward (the model is not run), or None to run the model.

        `x` is the forward's latent input. The method also counts its units in `ctx`.
        """

    def observe_output(self, ctx: ForwardContext, x: torch.Tensor, output: Any) -> None:
        """See the output of a forward that ran."""


def predicted_output(method: object, ctx: ForwardContext, x: torch.Tensor) -> torch.Tensor | None:
    """`method`'s prediction for this forward, or None (also when it predicts no outputs)."""
    predict = getattr(method, "predict_output", None)
    return predict(ctx, x) if predict is not None else None


def observe_output(method: object, ctx: ForwardContext, x: torch.Tensor, output: Any) -> None:
    """Show `method` the output of a forward that ran (no-op for methods that do not predict outputs)."""
    observe = getattr(method, "observe_output", None)
    if observe is not None:
        observe(ctx, x, output)
