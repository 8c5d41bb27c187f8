"""The MagCache node."""
from __future__ import annotations

from typing import Any

from ..cache_core.families.table import MAG_CACHE
from ..cache_core.methods.mag_cache import MagCacheConfig, MagCacheRun
from ..cache_core.ratios.library import load_ratios, ratio_choices
from ..cache_core.ratios.ratio_file import fingerprint_mismatch, model_fingerprint
from ..cache_core.runtime.install import install_block_stack_cache, supported_family_name
from .node_def import ComboInput, FloatInput, IntInput, NodeDef
from .ui_report import send_report_to_ui

WIDGETS = (
    ComboInput(
        "ratios", ratio_choices, "flux",
        "Calibrated magnitude ratios for your model: a built-in table (flux from diffusers; the others from the "
        "official MagCache ComfyUI pack) or a file written by the MagCache Calibrate node (models/magcache_ratios). "
        "Tables are read by schedule progress, so any step count, denoise < 1 and partial step ranges work.",
    ),
    FloatInput(
        "threshold", 0.06, 0.0, 1.0, 0.001,
        "Error budget: evaluations are reused while the accumulated |1 - ratio| stays below this. 0 turns "
        "skipping off. diffusers' default 0.06 is conservative; the MagCache authors use up to 0.24 on Flux and Wan 14B.",
    ),
    IntInput(
        "max_skip_steps", 3, 0, 100,
        "Most evaluations reused in a row before one is computed fully (MagCache's K).",
    ),
    FloatInput(
        "retention_ratio", 0.2, 0.0, 1.0, 0.01,
        "Fraction of the sampler run's first steps that are always computed (they set the composition).",
    ),
)


def _config(ratios: str, threshold: float, max_skip_steps: int, retention_ratio: float) -> MagCacheConfig:
    table, _ = load_ratios(ratios)
    return MagCacheConfig(ratios=table, threshold=threshold, max_skip_steps=max_skip_steps, retention_ratio=retention_ratio)


def ratio_warnings(model: Any, ratios: str, **_: Any) -> list[str]:
    """Warnings when the chosen table was made for another model family or other weights."""
    table, metadata = load_ratios(ratios)
    family = supported_family_name(model)
    warnings = []
    if table.family and family and table.family != family:
        warnings.append(f"MagCache ratios '{ratios}' were calibrated for {table.family}, but the model is {family}.")
    mismatch = fingerprint_mismatch(metadata.get("fingerprint"), model_fingerprint(model.get_model_object("diffusion_model")))
    if mismatch:
        warnings.append(f"MagCache ratios '{ratios}': {mismatch}; results may be poor.")
    return warnings


def check_mag_cache(**values: Any) -> None:
    """Raise ValueError when the widget values are not valid."""
    _config(**values)


def apply_mag_cache(model: Any, node_id: str | None = None, **values: Any) -> Any:
    """Return a clone of `model` with MagCache installed (or `model` itself if unsupported)."""
    config = _config(**values)
    return install_block_stack_cache(
        model,
        key="cachekit_mag_cache",
        method=MAG_CACHE,
        config=config,
        start_run=lambda run: MagCacheRun(config, run.clock.total_steps, run.progress_of_sigma),
        node_id=node_id,
        on_report=send_report_to_ui,
    )


MAG_CACHE_NODE = NodeDef(
    node_id="CacheKitMagCache",
    display_name="MagCache (CacheKit)",
    description=(
        "Skips whole model evaluations while calibrated magnitude ratios predict that the reused residual "
        "stays accurate, and replays the residual of the last computed step. Place it between the model "
        "loader and the sampler."
    ),
    widgets=WIDGETS,
    apply=apply_mag_cache,
    check=check_mag_cache,
    notices=ratio_warnings,
)
