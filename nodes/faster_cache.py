"""The FasterCache node."""
from __future__ import annotations

from ..cache_core.methods.faster_cache import FASTER_CACHE_SPEC
from .node_def import NodeDef

KEY = FASTER_CACHE_SPEC.key

FASTER_CACHE_NODE = NodeDef(
    node_id="CacheKitFasterCache",
    display_name="FasterCache (CacheKit)",
    description=(
        "FasterCache: extrapolates spatial attention between steps and, with CFG, estimates the negative prompt's "
        "prediction from the positive one on most steps (its stored difference, split into low and high "
        "frequencies). Place it between the model loader and the sampler."
    ),
    method=FASTER_CACHE_SPEC,
)

WIDGETS = FASTER_CACHE_NODE.widgets
apply_faster_cache = FASTER_CACHE_NODE.apply
