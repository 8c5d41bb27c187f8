"""The TaylorSeer node."""
from __future__ import annotations

from ..cache_core.methods.taylorseer import TAYLORSEER_SPEC
from .node_def import NodeDef

KEY = TAYLORSEER_SPEC.key

TAYLORSEER_NODE = NodeDef(
    node_id="CacheKitTaylorSeerCache",
    display_name="TaylorSeer Cache (CacheKit)",
    description=(
        "Computes the model on a few steps and predicts the others by extrapolating (Taylor-style) from "
        "the last computed steps. Place it between the model loader and the sampler."
    ),
    method=TAYLORSEER_SPEC,
)

apply_taylorseer_cache = TAYLORSEER_NODE.apply
