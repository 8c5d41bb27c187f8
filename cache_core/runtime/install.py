"""Installing a cache on a ComfyUI model: a patched clone, never a change to the shared model."""
from __future__ import annotations

import logging
from typing import Any, Callable

from ..families.table import Family, family_for_module, qualified_name
from .block_stack import StackBlockHook
from .run import CacheSpec, MethodRun, SamplingRun
from .sampling_hooks import MINIMUM_COMFYUI, EvaluationHook, ForwardHook, OuterSampleHook

log = logging.getLogger("CacheKit")



class UnsupportedComfyUI(RuntimeError):
    """The running ComfyUI lacks an extension point that CacheKit needs."""


def require_wrapper_support() -> Any:
    """ComfyUI's WrappersMP, or a clear error when this ComfyUI is too old for CacheKit."""
    try:
        from comfy.patcher_extension import WrappersMP
    except ImportError as err:  # ComfyUI before Dec 2024
        raise UnsupportedComfyUI(f"CacheKit needs ComfyUI {MINIMUM_COMFYUI} or newer; please update ComfyUI.") from err
    if not all(hasattr(WrappersMP, name) for name in ("OUTER_SAMPLE", "PREDICT_NOISE", "CALC_COND_BATCH", "APPLY_MODEL")):
        raise UnsupportedComfyUI(
            f"CacheKit needs ComfyUI {MINIMUM_COMFYUI} or newer (its sampling wrappers are missing); please update ComfyUI."
        )
    return WrappersMP


def describe_model(model: Any) -> str:
    """The model's family as a user reads it, e.g. 'WAN21 (comfy.ldm.wan.model.WanModel)'."""
    base = type(model.model).__name__
    return f"{base} ({qualified_name(type(model.get_model_object('diffusion_model')))})"


def supported_family_name(model: Any) -> str | None:
    """The family-table name of `model`, or None when the family is not in the table."""
    family = family_for_module(model.get_model_object("diffusion_model"))
    return family.name if family is not None else None


def supported_family(model: Any, method: str) -> Family | None:
    """The family entry of `model` when `method` supports it; otherwise log one warning and return None."""
    family = family_for_module(model.get_model_object("diffusion_model"))
    if family is None:
        log.warning("CacheKit %s: model family %s is not supported; the model passes through unchanged.", method, describe_model(model))
        return None
    if method not in family.methods:
        reason = family.unsupported.get(method, "not supported for this family yet")
        log.warning("CacheKit %s: model family %s is not supported (%s); the model passes through unchanged.", method, family.name, reason)
        return None
    return family


def install_cache(
    model: Any,
    *,
    key: str,
    method: str,
    config: Any,
    start_run: Callable[[SamplingRun], MethodRun],
    patch_model: Callable[[Any, Family, str], None] | None = None,
    start_percent: float = 0.0,
    end_percent: float = 1.0,
    unit: str = "blocks",
    node_id: str | None = None,
    on_report: Callable | None = None,
) -> Any:
    """Return a clone of `model` with a cache installed: the shared lifecycle wrappers under `key`,
    plus whatever `patch_model(clone, family, key)` adds (block patches, attention overrides).

    Unsupported models come back unchanged (the same object), with one warning naming the family.
    """
    wrappers = require_wrapper_support()
    family = supported_family(model, method)
    if family is None:
        return model
    spec = CacheSpec(
        key=key, method=method, family=family, config=config, start_run=start_run,
        enabled=bool(getattr(config, "enabled", True)), start_percent=start_percent,
        end_percent=end_percent, unit=unit, node_id=node_id, on_report=on_report,
    )
    patched = model.clone()
    for wrapper_type in (wrappers.OUTER_SAMPLE, wrappers.PREDICT_NOISE, wrappers.APPLY_MODEL):
        patched.remove_wrappers_with_key(wrapper_type, key)
    patched.add_wrapper_with_key(wrappers.OUTER_SAMPLE, key, OuterSampleHook(spec))
    patched.add_wrapper_with_key(wrappers.PREDICT_NOISE, key, EvaluationHook(key))
    patched.add_wrapper_with_key(wrappers.APPLY_MODEL, key, ForwardHook(key))
    if patch_model is not None:
        patch_model(patched, family, key)
    return patched


def install_block_stack_cache(model: Any, **kwargs: Any) -> Any:
    """`install_cache` for caches that skip the block stack and replay its residual (see block_stack)."""
    return install_cache(model, patch_model=install_block_hooks, **kwargs)


def install_block_hooks(patched: Any, family: Family, key: str) -> None:
    """Put a StackBlockHook on every block of the family's block lists (keeping earlier patches)."""
    stack = [
        (block_list, index)
        for block_list in family.block_lists
        for index in range(len(patched.get_model_object(f"diffusion_model.{block_list.attr}")))
    ]
    existing = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
    for position, (block_list, index) in enumerate(stack):
        inner = existing.get((block_list.replace_name, index))
        if isinstance(inner, StackBlockHook):
            if inner.key != key:
                raise ValueError(
                    f"CacheKit: this model already has the {inner.key} block cache; use one block-skipping cache per model."
                )
            inner = inner.inner  # the same cache applied again: its new settings replace the old
        hook = StackBlockHook(key=key, family=family, block_list=block_list, position=position, length=len(stack), inner=inner)
        patched.set_model_patch_replace(hook, "dit", block_list.replace_name, index)
