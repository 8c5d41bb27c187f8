"""ComfyUI wrappers that give every cache the same per-run lifecycle.

OUTER_SAMPLE creates the run state in a per-run copy of the guider's model options and frees it in
`finally`; PREDICT_NOISE marks each model evaluation; APPLY_MODEL opens the context of each forward
and passes it down in that call's own transformer_options. Each is a small stateless callable,
registered with `add_wrapper_with_key` under the cache's key, so several caches and other packs
compose. APPLY_MODEL (`BaseModel._apply_model(x, t, c_concat, c_crossattn, control,
transformer_options)`) has the same arguments for every family and is never inside a compiled
region.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..families.table import APPLY, ATTENTION, OUTPUT, REPLACE, STACK
from .attention_hooks import attention_reached, forward_attention_override
from .block_stack import StackShapeMismatch, forward_was_consistent, stack_reached
from .forward import BASELINE, forward_signature
from .install import MINIMUM_COMFYUI
from .model_output import denoised_through_model_output, output_reached
from .run import CacheSpec, SamplingRun

log = logging.getLogger("CacheKit")

OPTIONS_POSITION = 5  # transformer_options in BaseModel._apply_model's positional arguments


def _model_options_clone(options: dict) -> dict:
    import comfy.model_patcher  # ComfyUI is imported only once a model is being sampled

    return comfy.model_patcher.create_model_options_clone(options)


def _sampler_name(sampler: Any) -> str:
    return getattr(getattr(sampler, "sampler_function", None), "__name__", type(sampler).__name__)


@dataclass(frozen=True)
class OuterSampleHook:
    """OUTER_SAMPLE wrapper: one SamplingRun per sampler run, freed when the run ends."""

    spec: CacheSpec

    def __call__(self, executor, *args, **kwargs):
        guider = executor.class_obj
        sigmas = args[3] if len(args) > 3 else kwargs["sigmas"]
        sampler = args[2] if len(args) > 2 else kwargs.get("sampler")
        model_sampling = guider.model_patcher.get_model_object("model_sampling")
        original_options = guider.model_options
        guider.model_options = _model_options_clone(original_options)
        options = guider.model_options.setdefault("transformer_options", {})
        run = SamplingRun(
            self.spec, sigmas.detach().float().cpu().tolist(), model_sampling.percent_to_sigma,
            _sampler_name(sampler), model_sampling, baseline=forward_signature(options),
        )
        options[self.spec.key] = run
        if STACK in self.spec.sites:
            _check_stack_hooks(run, options)
        if guider.model_options.get("context_handler") is not None:
            run.disable("context windows split every evaluation into windows that one cache cannot tell apart")
        completed = False
        try:
            out = executor(*args, **kwargs)
            completed = True
            return out
        finally:
            run.finish(completed)
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


def _with_options(args: tuple, kwargs: dict, options: dict) -> tuple[tuple, dict]:
    if len(args) > OPTIONS_POSITION:
        return args[:OPTIONS_POSITION] + (options,) + args[OPTIONS_POSITION + 1:], kwargs
    return args, {**kwargs, "transformer_options": options}


@dataclass(frozen=True)
class ForwardHook:
    """APPLY_MODEL wrapper: opens the forward's context and sends it down with the call."""

    key: str

    def __call__(self, executor, *args, **kwargs):
        options = (args[OPTIONS_POSITION] if len(args) > OPTIONS_POSITION else kwargs.get("transformer_options")) or {}
        run = options.get(self.key)
        if not isinstance(run, SamplingRun):
            return executor(*args, **kwargs)
        has_control = (args[4] if len(args) > 4 else kwargs.get("control")) is not None
        first = run.report.forwards == 0
        ctx = run.open_forward(options, args[0], has_control)
        call_args, call_kwargs = _with_options(args, kwargs, _call_options(run, options, ctx, self.key))
        try:
            if OUTPUT in run.spec.sites and run.spec.family.model_tier == APPLY:
                out = denoised_through_model_output(executor, call_args, call_kwargs, ctx)
            else:
                out = executor(*call_args, **call_kwargs)
            failure = None if forward_was_consistent(ctx) else "the model did not reach its last cached block after a reuse"
        except StackShapeMismatch as err:
            out, failure = None, str(err)
        except BaseException:
            ctx.aborted = True
            raise
        ctx.aborted = failure is not None
        if failure is None and first and ctx.caching and ctx.kind == BASELINE:
            _check_reached(run, ctx)
        run.close_forward(ctx)
        if failure is None:
            return out
        # The reused forward could not be completed: run it again with caching off.
        run.disable(failure)
        ctx = run.open_forward(options, args[0], has_control)
        call_args, call_kwargs = _with_options(args, kwargs, _call_options(run, options, ctx, self.key))
        try:
            return executor(*call_args, **call_kwargs)
        finally:
            run.close_forward(ctx)


def _call_options(run: SamplingRun, options: dict, ctx: Any, key: str) -> dict:
    """The transformer_options the forward runs with: a copy holding its context (and, for families
    reached by one attention override per forward, that override)."""
    call = {**options, key: ctx}
    if ATTENTION in run.spec.sites:
        override = forward_attention_override(run.spec.family, key, run.spec.method.attention_kinds(run.spec.config), call)
        if override is not None:
            call["optimized_attention_override"] = override
    return call


def _check_stack_hooks(run: SamplingRun, options: dict) -> None:
    """Disable the run when a node applied later replaced some of the cache's block patches."""
    from .block_stack import StackBlockHook

    def has_hook(entry: Any) -> bool:
        while entry is not None:
            if isinstance(entry, StackBlockHook) and entry.key == run.spec.key:
                return True
            entry = getattr(entry, "inner", None)
        return False

    installed = ((options.get("patches_replace") or {}).get("dit") or {}).values()
    found = sum(1 for entry in installed if has_hook(entry))
    expected = sum(run.spec.stack_lengths.get(bl.attr, 0) for bl in run.spec.family.block_lists if bl.via == REPLACE)
    if found != expected:
        run.disable(f"{expected - found} of its {run.spec.family.name} block patches were replaced by a node applied after it")


def _check_reached(run: SamplingRun, ctx: Any) -> None:
    """After the first caching forward: disable the run when its hooks never saw the context."""
    sites = run.spec.sites
    family = run.spec.family.name
    if STACK in sites and not stack_reached(ctx):
        run.disable(f"the {family} blocks did not pass CacheKit its run state (ComfyUI older than {MINIMUM_COMFYUI}, "
                    "or another node replaced every block)")
    elif OUTPUT in sites and not output_reached(ctx):
        run.disable(f"the {family} forward did not go through ComfyUI's DIFFUSION_MODEL wrapper")
    elif ATTENTION in sites and not attention_reached(ctx):
        run.disable(f"the {family} attention did not receive CacheKit's run state (this ComfyUI does not pass "
                    "transformer_options to it)")
