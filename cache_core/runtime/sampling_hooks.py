"""ComfyUI wrappers that give every cache the same per-run lifecycle.

OUTER_SAMPLE creates the run state in a per-run copy of the guider's model options and frees it in
`finally`; SAMPLER_SAMPLE hands the sampler a step callback that drives the step clock;
DIFFUSION_MODEL opens and closes the context of each forward. Each is a small stateless callable,
registered with `add_wrapper_with_key` under the cache's key, so several caches and other packs
compose.
"""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable

from .block_stack import StackBlockHook, StackShapeMismatch, forward_was_consistent
from .output_prediction import observe_output, predicted_output
from .run import CacheSpec, SamplingRun

log = logging.getLogger("CacheKit")


def _model_options_clone(options: dict) -> dict:
    import comfy.model_patcher  # ComfyUI is imported only once a model is being sampled

    return comfy.model_patcher.create_model_options_clone(options)


@dataclass(frozen=True)
class OuterSampleHook:
    """OUTER_SAMPLE wrapper: one SamplingRun per sampler run, freed when the run ends."""

    spec: CacheSpec

    def __call__(self, executor, *args, **kwargs):
        guider = executor.class_obj
        sigmas = args[3] if len(args) > 3 else kwargs["sigmas"]
        model_sampling = guider.model_patcher.get_model_object("model_sampling")
        original_options = guider.model_options
        guider.model_options = _model_options_clone(original_options)
        sampler = args[2] if len(args) > 2 else kwargs.get("sampler")
        sampler_name = getattr(getattr(sampler, "sampler_function", None), "__name__", type(sampler).__name__)
        run = SamplingRun(self.spec, sigmas.detach().float().cpu().tolist(), model_sampling.percent_to_sigma, sampler_name)
        guider.model_options.setdefault("transformer_options", {})[self.spec.key] = run
        try:
            return executor(*args, **kwargs)
        finally:
            run.finish()
            guider.model_options = original_options


@dataclass(frozen=True)
class SamplerStepHook:
    """SAMPLER_SAMPLE wrapper: passes the sampler a callback that reports finished steps."""

    key: str

    def __call__(self, executor, *args, **kwargs):
        args = list(args)
        extra_args = args[2] if len(args) > 2 else kwargs["extra_args"]
        run = extra_args.get("model_options", {}).get("transformer_options", {}).get(self.key)
        if isinstance(run, SamplingRun):
            if len(args) > 3:
                args[3] = _step_reporter(run, args[3])
            else:
                kwargs["callback"] = _step_reporter(run, kwargs.get("callback"))
        return executor(*args, **kwargs)


def _step_reporter(run: SamplingRun, callback: Callable | None) -> Callable:
    def report_step(step: int, *rest: Any) -> Any:
        run.clock.step_finished(int(step))
        return callback(step, *rest) if callback is not None else None

    return report_step


@dataclass(frozen=True)
class DiffusionModelHook:
    """DIFFUSION_MODEL wrapper: opens the forward context that the block hooks work in, and lets
    a method that predicts whole outputs (output_prediction.OutputPredictor) answer the forward."""

    key: str

    def __call__(self, executor, *args, **kwargs):
        arguments = _bind_forward_arguments(executor.class_obj, args, kwargs)
        options = arguments.get("transformer_options") or {}
        run = options.get(self.key)
        if not isinstance(run, SamplingRun):
            return executor(*args, **kwargs)
        if run.report.forwards == 0:
            _check_block_hooks(run, options)
        has_control = arguments.get("control") is not None
        ctx = run.begin_forward(options, args[0], has_control)
        try:
            predicted = predicted_output(run.method, ctx, args[0])
            out = predicted if predicted is not None else executor(*args, **kwargs)
            failure = None if forward_was_consistent(ctx) else "the model did not reach its last block after a skip"
            if failure is None and predicted is None:
                observe_output(run.method, ctx, args[0], out)
        except StackShapeMismatch as err:
            out, failure = None, str(err)
        except BaseException:
            run.end_forward(ctx)
            raise
        ctx.aborted = failure is not None
        run.end_forward(ctx)
        if failure is None:
            return out
        # The skipped forward could not be completed: run it again with caching off.
        run.disable(failure)
        ctx = run.begin_forward(options, args[0], has_control)
        try:
            return executor(*args, **kwargs)
        finally:
            run.end_forward(ctx)


def _bind_forward_arguments(module: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The wrapped `_forward`'s arguments by name (their positions differ between families)."""
    try:
        bound = inspect.signature(module._forward).bind_partial(*args, **kwargs)
    except (TypeError, ValueError, AttributeError):
        return dict(kwargs)
    arguments = dict(bound.arguments)
    arguments.update(arguments.pop("kwargs", {}) or {})
    return arguments


def _check_block_hooks(run: SamplingRun, options: dict) -> None:
    """Disable caching for the run when another patch replaced some of CacheKit's block hooks."""
    installed = (options.get("patches_replace") or {}).get("dit") or {}
    family = run.spec.family
    hooks = [h for h in installed.values() if isinstance(h, StackBlockHook) and h.key == run.spec.key]
    if not hooks:
        return
    expected = hooks[0].length
    if len(hooks) != expected:
        run.disable(f"{expected - len(hooks)} of its {family.name} block patches were replaced by a node applied after it")
