"""ComfyUI wrappers that give every cache the same per-run lifecycle.

OUTER_SAMPLE creates the run state in a per-run copy of the guider's model options and frees it in
`finally`; PREDICT_NOISE marks each model evaluation; APPLY_MODEL opens and closes the context
of each forward. Each is a small stateless callable,
registered with `add_wrapper_with_key` under the cache's key, so several caches and other packs
compose.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from .block_stack import StackBlockHook, StackShapeMismatch, forward_was_consistent
from .output_prediction import observe_output, predicted_output
from .run import CacheSpec, SamplingRun

MINIMUM_COMFYUI = "0.3.60"

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
        run = SamplingRun(self.spec, sigmas.detach().float().cpu().tolist(), model_sampling.percent_to_sigma, sampler_name, model_sampling)
        guider.model_options.setdefault("transformer_options", {})[self.spec.key] = run
        if guider.model_options.get("context_handler") is not None:
            run.disable("context windows split every evaluation into windows that one cache cannot tell apart")
        try:
            return executor(*args, **kwargs)
        finally:
            run.finish()
            guider.model_options = original_options


@dataclass(frozen=True)
class EvaluationHook:
    """PREDICT_NOISE wrapper: marks the start of each model evaluation (all its CFG forwards)."""

    key: str

    def __call__(self, executor, *args, **kwargs):
        model_options = args[2] if len(args) > 2 else kwargs.get("model_options", {})
        run = (model_options.get("transformer_options") or {}).get(self.key)
        if isinstance(run, SamplingRun):
            run.begin_evaluation()
        return executor(*args, **kwargs)


@dataclass(frozen=True)
class ForwardHook:
    """APPLY_MODEL wrapper: opens the context of one model forward that the block and attention
    hooks work in, and lets a method that predicts whole outputs (output_prediction) answer it.

    APPLY_MODEL (`BaseModel._apply_model(x, t, c_concat, c_crossattn, control, transformer_options)`)
    has the same arguments for every family, unlike the diffusion models' own `_forward`.
    """

    key: str

    def __call__(self, executor, *args, **kwargs):
        options = (args[5] if len(args) > 5 else kwargs.get("transformer_options")) or {}
        run = options.get(self.key)
        if not isinstance(run, SamplingRun):
            return executor(*args, **kwargs)
        if run.report.forwards == 0:
            _check_block_hooks(run, options)
        has_control = (args[4] if len(args) > 4 else kwargs.get("control")) is not None
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
        if failure is None and run.report.forwards == 0 and ctx.may_cache and _uses_block_hooks(run, options) and ctx.blocks_total == 0:
            run.disable(f"the {run.spec.family.name} blocks did not pass CacheKit its run state (ComfyUI older than {MINIMUM_COMFYUI}?)")
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


def _uses_block_hooks(run: SamplingRun, options: dict) -> bool:
    installed = (options.get("patches_replace") or {}).get("dit") or {}
    return any(isinstance(h, StackBlockHook) and h.key == run.spec.key for h in installed.values())


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
