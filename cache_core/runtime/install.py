"""Installing a cache on a ComfyUI model: a patched clone, never a change to the shared model.

`install_cache` places a method on a model according to its spec: the shared lifecycle wrappers
(OUTER_SAMPLE, PREDICT_NOISE, APPLY_MODEL) plus the hooks of each site the method uses there (block
stack patches, the DIFFUSION_MODEL wrapper, attention patches, the CALC_COND_BATCH wrapper), all
under the method's key. Applying the same method again replaces its hooks (never nests them);
two methods that need the same site are refused with a message naming both nodes.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Optional

from ..families.table import ATTENTION, COND_BATCH, OUTPUT, STACK, Family, family_for_module, qualified_name
from .run import CacheSpec

log = logging.getLogger("CacheKit")

MINIMUM_COMFYUI = "0.3.60"
INSTALLED = "cachekit_installed"  # model_options entry: key -> (node name, sites) of the caches on the model

SITE_TEXT = {
    STACK: "skip transformer blocks",
    OUTPUT: "replace whole model outputs",
    ATTENTION: "reuse attention outputs",
    COND_BATCH: "estimate the negative (CFG) branch",
}


class UnsupportedComfyUI(RuntimeError):
    """The running ComfyUI lacks an extension point that CacheKit needs."""


def require_wrapper_support() -> Any:
    """ComfyUI's WrappersMP, or a clear error when this ComfyUI is too old for CacheKit."""
    try:
        from comfy.patcher_extension import WrappersMP
    except ImportError as err:  # ComfyUI before Dec 2024
        raise UnsupportedComfyUI(f"CacheKit needs ComfyUI {MINIMUM_COMFYUI} or newer; please update ComfyUI.") from err
    if not all(hasattr(WrappersMP, name) for name in ("OUTER_SAMPLE", "PREDICT_NOISE", "CALC_COND_BATCH", "APPLY_MODEL", "DIFFUSION_MODEL")):
        raise UnsupportedComfyUI(
            f"CacheKit needs ComfyUI {MINIMUM_COMFYUI} or newer (its sampling wrappers are missing); please update ComfyUI."
        )
    return WrappersMP


def describe_model(model: Any) -> str:
    """The model's family as a user reads it, e.g. 'WAN21 (comfy.ldm.wan.model.WanModel)'."""
    base = type(model.model).__name__
    return f"{base} ({qualified_name(type(model.get_model_object('diffusion_model')))})"


def model_family(model: Any) -> Optional[Family]:
    """The family-table entry of a ModelPatcher's diffusion model, or None."""
    return family_for_module(model.get_model_object("diffusion_model"))


def placement(spec: Any, config: Any, model: Any) -> tuple[Optional[Family], frozenset | str]:
    """(family, the sites the method uses on it) or (family or None, the reason it cannot run)."""
    family = model_family(model)
    if family is None:
        return None, f"model family {describe_model(model)} is not supported"
    placed = spec.place(config, family)
    if isinstance(placed, str):
        return family, f"model family {family.name} ({describe_model(model)}) is not supported ({placed})"
    return family, placed


def install_cache(
    model: Any, spec: Any, config: Any, *, node_id: Optional[str] = None, node_name: str = "",
    on_report: Optional[Callable] = None,
) -> Any:
    """Return a clone of `model` with the method `spec` installed with settings `config`.

    Unsupported models come back unchanged (the same object), with one warning naming the family.
    """
    wrappers = require_wrapper_support()
    config = spec.prepare(config, model)
    family, sites = placement(spec, config, model)
    if isinstance(sites, str):
        log.warning("CacheKit %s: %s; the model passes through unchanged.", spec.name, sites)
        return model
    _refuse_conflicts(model, spec, sites, node_name or spec.name)
    from .block_stack import block_list_lengths

    cache = CacheSpec(method=spec, config=config, family=family, sites=sites, node_id=node_id,
                      node_name=node_name or spec.name, on_report=on_report,
                      stack_lengths=block_list_lengths(model, family) if STACK in sites else {})
    patched = model.clone()
    _remove_key(patched, wrappers, spec.key)
    from .sampling_hooks import EvaluationHook, ForwardHook, OuterSampleHook

    patched.add_wrapper_with_key(wrappers.OUTER_SAMPLE, spec.key, OuterSampleHook(cache))
    patched.add_wrapper_with_key(wrappers.PREDICT_NOISE, spec.key, EvaluationHook(spec.key))
    patched.add_wrapper_with_key(wrappers.APPLY_MODEL, spec.key, ForwardHook(spec.key))
    if STACK in sites:
        from .block_stack import install_stack_hooks

        install_stack_hooks(patched, family, spec.key)
    if OUTPUT in sites:
        from .model_output import ModelOutputHook

        patched.add_wrapper_with_key(wrappers.DIFFUSION_MODEL, spec.key, ModelOutputHook(spec.key))
    if ATTENTION in sites:
        from .attention_hooks import install_attention_hooks

        install_attention_hooks(patched, family, spec.key, spec.attention_kinds(config))
    if COND_BATCH in sites:
        from .cfg_estimation import UnconditionalEstimationHook

        patched.add_wrapper_with_key(wrappers.CALC_COND_BATCH, spec.key, UnconditionalEstimationHook(spec.key))
    installed = dict(patched.model_options.get(INSTALLED) or {})
    installed[spec.key] = (node_name or spec.name, tuple(sorted(sites)))
    patched.model_options[INSTALLED] = installed
    return patched


def _refuse_conflicts(model: Any, spec: Any, sites: frozenset, node_name: str) -> None:
    for key, (other, other_sites) in (model.model_options.get(INSTALLED) or {}).items():
        if key == spec.key:
            continue  # the same method again: its new settings replace the old
        shared = sorted(set(other_sites) & set(sites))
        if shared:
            what = " and ".join(SITE_TEXT[s] for s in shared)
            raise ValueError(
                f"{node_name} cannot go on a model that already has {other}: both {what}, and one would silently "
                f"undo the other. Use one of them, or apply them to separate copies of the model."
            )


def _remove_key(patched: Any, wrappers: Any, key: str) -> None:
    """Take every wrapper, block patch and object patch of `key` off a fresh clone."""
    for name in ("OUTER_SAMPLE", "PREDICT_NOISE", "CALC_COND_BATCH", "APPLY_MODEL", "DIFFUSION_MODEL"):
        patched.remove_wrappers_with_key(getattr(wrappers, name), key)
    dit = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit")
    if dit:
        for block_key, entry in list(dit.items()):
            stripped = strip_key(entry, key)
            if stripped is None:
                del dit[block_key]
            elif stripped is not entry:
                dit[block_key] = stripped
    for path, entry in list(patched.object_patches.items()):
        stripped = strip_key(entry, key)
        if stripped is not entry:
            if stripped is None or _is_original(patched, path, stripped):
                del patched.object_patches[path]
            else:
                patched.object_patches[path] = stripped
    installed = dict(patched.model_options.get(INSTALLED) or {})
    installed.pop(key, None)
    patched.model_options[INSTALLED] = installed


def _is_original(patched: Any, path: str, value: Any) -> bool:
    import comfy.utils

    try:
        return comfy.utils.get_attr(patched.model, path) == value
    except AttributeError:
        return False


def strip_key(entry: Any, key: str) -> Any:
    """`entry` (a patch, maybe a chain of CacheKit hooks) without the hooks of `key`.

    CacheKit hooks keep the patch they wrap in `.inner`; a foreign patch ends the chain (what it
    wraps cannot be seen). Returns None when nothing is left.
    """
    if entry is None or not dataclasses.is_dataclass(entry) or not hasattr(entry, "inner") or not hasattr(entry, "key"):
        return entry
    inner = strip_key(entry.inner, key)
    if entry.key == key:
        return inner
    return entry if inner is entry.inner else dataclasses.replace(entry, inner=inner)


def existing_block_patch(patched: Any, replace_name: str, index: int) -> Any:
    """The `patches_replace["dit"][(replace_name, index)]` entry already on a model, or None."""
    dit = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
    return dit.get((replace_name, index))
