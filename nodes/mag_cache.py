"""The MagCache node."""
from __future__ import annotations

from typing import Any

from ..cache_core.methods.mag_cache import MAG_CACHE_SPEC, MagCacheConfig
from ..cache_core.ratios.library import load_ratios
from ..cache_core.ratios.ratio_file import fingerprint_mismatch, model_fingerprint
from ..cache_core.runtime.install import model_family
from .node_def import NodeDef


def ratio_warnings(model: Any, config: MagCacheConfig) -> list[str]:
    """Warnings when the chosen table was made for another model family or other weights."""
    table, metadata = load_ratios(config.ratios)
    family = model_family(model)
    warnings = []
    if table.family and family is not None and table.family != family.name:
        warnings.append(f"MagCache ratios '{config.ratios}' were calibrated for {table.family}, but the model is {family.name}.")
    mismatch = fingerprint_mismatch(metadata.get("fingerprint"), model_fingerprint(model.get_model_object("diffusion_model")))
    if mismatch:
        warnings.append(f"MagCache ratios '{config.ratios}': {mismatch}; results may be poor.")
    return warnings


MAG_CACHE_NODE = NodeDef(
    node_id="CacheKitMagCache",
    display_name="MagCache (CacheKit)",
    description=(
        "Skips whole model evaluations while calibrated magnitude ratios predict that the reused residual "
        "stays accurate, and replays the residual of the last computed step. Place it between the model "
        "loader and the sampler."
    ),
    method=MAG_CACHE_SPEC,
    notices=ratio_warnings,
)

apply_mag_cache = MAG_CACHE_NODE.apply
check_mag_cache = MAG_CACHE_NODE.check
